"""The bundled policy: the shipped file matches its record's SHA-256, loads, and ranks (a real crash loop too)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbooks.vocabulary import load_vocabulary
from remediation.errors import ArtifactError
from remediation.learning.encoding import observation_from_core
from remediation.policies.base import rank_avoiding
from remediation.policies.observe import observation_from_record
from remediation.registry.artifact import sha256_of
from remediation.registry.bundle import BUNDLED_DIR, bundle_record, load_bundled, serving_loader
from sim.core import BatchCore
from sim.generator import generate_topology
from sim.observation import ALERTS
from sim.topology import parse_topology

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SHOP = {
    "nodes": [
        {"id": "front-end", "kind": "frontend", "replicas": 1},
        {"id": "carts", "kind": "service", "replicas": 2},
        {"id": "catalogue", "kind": "service", "replicas": 1},
        {"id": "carts-db", "kind": "database", "stateful": True, "replicas": 1},
    ],
    "edges": [
        {"source": "front-end", "target": "carts"},
        {"source": "front-end", "target": "catalogue"},
        {"source": "carts", "target": "carts-db"},
    ],
}
"""The graph `topology discover` finds in the e2e test's cluster (tests/e2e/world.py)."""


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


def test_ranking_around_services_is_the_filtered_pool_with_the_same_reasons() -> None:
    # the learned policy explains only what it returns; the list must equal filtering its full pool
    policy = serving_loader(BUNDLED_DIR, None, "bundled")
    core = BatchCore(generate_topology(40, seed=777_002), 1, seed=5)
    core.reset()
    observation = observation_from_core(core, 0)
    pool = policy.rank(observation, 64)
    avoid = frozenset(r.target for r in pool[:2] if r.target)
    want = [r for r in pool if not r.target or r.target not in avoid][:3]
    assert avoid and len(want) == 3 and all(r.reason for r in want)
    assert rank_avoiding(policy, observation, 3, avoid, 64) == want


def test_a_changed_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "bundled"
    copy.mkdir()
    for name in ("policy.pt", "artifact.json", "bundle.json"):
        (copy / name).write_bytes((BUNDLED_DIR / name).read_bytes())
    with open(copy / "policy.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_bundled(copy)


def _shop_crash_loop(*, deploy: bool) -> dict[str, Any]:
    """The e2e test's incident as its timeline reads: kube-prometheus and Istio alerts, snapshot metrics."""
    opened = (NOW - timedelta(minutes=2)).isoformat()
    events: list[dict[str, Any]] = [
        {
            "type": "alert",
            "name": name,
            "service": "carts",
            "status": "firing",
            "fingerprint": name,
            "at": opened,
        }
        for name in ("KubePodCrashLooping", "KubeDeploymentReplicasMismatch", "IstioHigh5xxErrorRate")
    ]
    healthy = {"error_rate": 0.0, "latency_p99_ms": 9.0, "cpu": 0.2, "saturation": 0.05, "availability": 1.0}
    for service, replicas in (("front-end", 1), ("carts", 2), ("catalogue", 1)):
        values = {**healthy, "replicas": replicas, "traffic_ratio": 1.0}
        if service == "carts":  # one of two pods waits in CrashLoopBackOff; 40 % of its requests get a 503
            values.update(error_rate=0.4, availability=0.5)
        if service == "front-end":
            values["error_rate_to:carts"] = 0.4
        events.append({"type": "metrics", "service": service, "values": values, "at": opened})
    if deploy:
        events.append({"type": "deploy", "service": "carts", "at": (NOW - timedelta(minutes=9)).isoformat()})
    return {"services": ["carts"], "opened_at": opened, "events": events}


@pytest.mark.parametrize(("deploy", "first"), [(False, "restart_service"), (True, "rollback_deploy")])
def test_a_real_crash_loop_is_restarted_unless_a_deploy_came_before_it(deploy: bool, first: str) -> None:
    shop = parse_topology(SHOP, source="the e2e test's sock-shop", name="sock-shop")
    observation, _ = observation_from_record(
        _shop_crash_loop(deploy=deploy),
        topology=shop,
        now=NOW,
        signal_of=load_vocabulary(ALERTS).signal_of,
    )
    ranked = serving_loader(BUNDLED_DIR, None, "bundled").rank(observation, 3)
    assert (ranked[0].action, ranked[0].target) == (first, "carts"), ranked
    if not deploy:  # nothing to roll back: never offered
        assert all(r.action != "rollback_deploy" for r in ranked)
