"""The bundled policy: the shipped file matches its record's SHA-256, loads, and ranks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediation.errors import ArtifactError
from remediation.learning.encoding import observation_from_core
from remediation.registry.artifact import sha256_of
from remediation.registry.bundle import BUNDLED_DIR, bundle_record, load_bundled, serving_loader
from sim.core import BatchCore
from sim.generator import generate_topology


def test_the_shipped_artifact_matches_its_record() -> None:
    record = bundle_record()
    assert sha256_of(BUNDLED_DIR / "policy.pt") == record["sha256"]
    assert json.loads((BUNDLED_DIR / "artifact.json").read_text())["sha256"] == record["sha256"]
    assert record["command"].startswith("OMP_NUM_THREADS=1 python -m remediation.registry.bundle --seed ")
    assert f"--seed {record['seed']}" in record["command"]
    assert (BUNDLED_DIR / "policy.pt").stat().st_size < 5 * 2**20  # a few MB at most
    for topology in record["evaluation"]["topologies"].values():
        assert {"bundled", "runbook", "oracle"} <= set(topology)


def test_it_loads_and_ranks_on_a_graph_it_never_saw() -> None:
    artifact = load_bundled()
    assert artifact.version == bundle_record()["version"]
    policy = serving_loader(BUNDLED_DIR, None, "bundled")
    core = BatchCore(generate_topology(15, seed=777_001, name="unseen-15"), 1, seed=3)
    core.reset()
    ranked = policy.rank(observation_from_core(core, 0), 3)
    assert len(ranked) == 3 and all(0.0 <= r.confidence <= 1.0 and r.reason for r in ranked)
    assert artifact.memory.signatures is not None and len(artifact.memory.fixes) > 0


def test_a_changed_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "bundled"
    copy.mkdir()
    for name in ("policy.pt", "artifact.json", "bundle.json"):
        (copy / name).write_bytes((BUNDLED_DIR / name).read_bytes())
    with open(copy / "policy.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_bundled(copy)
