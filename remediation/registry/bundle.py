"""The bundled policy: a learned artifact shipped in the package, rebuilt bit for bit from its seed.

Reproduce it (one CPU thread, deterministic kernels; a few minutes of one core)::

    OMP_NUM_THREADS=1 python -m remediation.registry.bundle --seed 0 --iterations 50

The run trains on generated topologies only (no team's history), with ``iterations`` binding (never
the wall clock), then writes ``policy.pt`` and ``artifact.json`` into ``remediation/policies/bundled/``
with ``bundle.json``: the SHA-256 of ``policy.pt``, the seed, the exact command, the torch version and
the evaluation (held-out topologies, runbook and oracle beside it). Nothing in the artifact depends on
the clock or the paths: wall times and the run directory are left out of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from remediation.errors import ArtifactError
from remediation.evaluation.sim_eval import evaluate_policies
from remediation.guardrails.config import load_rbac
from remediation.learning.baselines import OraclePolicy, RunbookPolicy
from remediation.learning.ranking import LearnedPolicy
from remediation.learning.rollout import TRAIN_SEED_LIMIT, held_out_topologies
from remediation.learning.train import TrainArgs, train
from remediation.policies.base import Policy
from remediation.registry.artifact import Artifact, load_artifact, save_artifact
from sim.generator import generate_topology

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "policies" / "bundled"
RECORD = "bundle.json"
COMMAND = "OMP_NUM_THREADS=1 python -m remediation.registry.bundle --seed {seed} --iterations {iterations}"
VOLATILE = ("train_wall_s", "budget_s")
"""Metrics that depend on the machine's speed, left out of the artifact so its bytes depend on the seed only."""


def bundle_record(directory: Path = BUNDLED_DIR) -> dict[str, Any]:
    """Return the shipped bundle's record (SHA-256, seed, command, evaluation)."""
    file = directory / RECORD
    if not file.is_file():
        raise ArtifactError(f"no bundled policy at {directory} ({RECORD} is missing)")
    record: dict[str, Any] = json.loads(file.read_text())
    return record


def load_bundled(directory: Path = BUNDLED_DIR) -> Artifact:
    """Load the bundled artifact, verified against the SHA-256 in its record."""
    return load_artifact(directory, expected_sha256=str(bundle_record(directory)["sha256"]))


def serving_loader(path: Path, expected_sha256: str | None, version: str) -> LearnedPolicy:
    """Load an artifact for serving (``LivePolicy``'s loader); raises ArtifactError.

    The SHA-256 is checked against the registry's, or for the bundle (``expected_sha256`` None)
    against its record.
    """
    artifact = (
        load_bundled(path)
        if expected_sha256 is None
        else load_artifact(path, expected_sha256=expected_sha256)
    )
    return LearnedPolicy(
        artifact.net, temperature=artifact.temperature, memory=artifact.memory, version=artifact.version
    )


def build(*, seed: int, iterations: int, out: Path, episodes: int) -> dict[str, Any]:
    """Train the bundle deterministically, save it into ``out`` and write its record; return the record."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="remediate-bundle-"))
    args = TrainArgs(
        seed=seed, iterations=iterations, minutes=24 * 60.0, run_root=str(scratch), name="bundle"
    )
    try:
        result = train(args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # no clock, no path: the bytes of policy.pt depend on the seed and the code only
    config = {**result.config, "run_root": "", "name": ""}
    metrics = {k: v for k, v in result.metrics.items() if k not in VOLATILE}
    version = f"bundled-s{seed}-i{iterations}"
    out.mkdir(parents=True, exist_ok=True)
    digest = save_artifact(result._replace(config=config, metrics=metrics), out, version=version, parent=None)
    record = {
        "version": version,
        "sha256": digest,
        "seed": seed,
        "iterations": iterations,
        "command": COMMAND.format(seed=seed, iterations=iterations),
        "torch": torch.__version__,
        "train_args": {k: v for k, v in replace(args, run_root="", name="").__dict__.items()},
        "train_metrics": metrics,
        "evaluation": evaluate(load_artifact(out, expected_sha256=digest), episodes=episodes),
    }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def evaluate(artifact: Artifact, *, episodes: int, seed: int = 1) -> dict[str, Any]:
    """Evaluate the artifact beside the runbook and the oracle on held-out topologies (never trained on)."""
    rbac = load_rbac(None)
    topologies = [
        *held_out_topologies()[:2],
        generate_topology(40, seed=TRAIN_SEED_LIMIT + 41, name="heldout-40"),
    ]
    out: dict[str, Any] = {"episodes": episodes, "seed": seed, "rbac": "shipped example", "topologies": {}}
    for topology in topologies:
        policies: dict[str, Policy] = {
            "bundled": LearnedPolicy(artifact.net, temperature=artifact.temperature, explain=False),
            "runbook": RunbookPolicy(),
            "oracle": OraclePolicy(),
        }
        results = evaluate_policies(topology, policies, episodes=episodes, seed=seed, rbac=rbac,
                                    calibrated=frozenset({"bundled", "oracle"}))  # fmt: skip
        out["topologies"][topology.name] = {
            "services": topology.n_services,
            "edges": topology.n_edges,
            **{name: res.as_json() for name, res in results.items()},
        }
    return out


def main() -> None:
    """Build the bundle (``python -m remediation.registry.bundle``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=40, help="evaluation episodes per topology")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR)
    opts = parser.parse_args()
    if torch.get_num_threads() != 1:  # OMP_NUM_THREADS=1 in the environment sets it before torch starts
        parser.error("set OMP_NUM_THREADS=1: the bundle is reproducible on one thread only")
    record = build(seed=opts.seed, iterations=opts.iterations, out=opts.out, episodes=opts.episodes)
    print(json.dumps({k: record[k] for k in ("version", "sha256", "command")}, indent=2))


if __name__ == "__main__":
    main()
