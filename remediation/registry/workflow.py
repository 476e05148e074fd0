"""Train-and-register, artifact lookup, and the promotion gate (simulator evaluation + off-policy checks)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from incidents_db.db import make_sessionmaker, session_scope
from incidents_db.models import PolicyVersion
from remediation.errors import ArtifactError
from remediation.evaluation.ope import fitted_q_evaluation, weighted_importance_sampling
from remediation.evaluation.plots import plot_training
from remediation.guardrails.models import RbacConfig
from remediation.learning.ranking import LearnedPolicy
from remediation.learning.rollout import collect_logged, held_out_topologies
from remediation.learning.train import Progress, TrainArgs, train
from remediation.registry import service
from remediation.registry.artifact import Artifact, load_artifact, save_artifact
from remediation.registry.gate import AUTOMATED_MARGIN, check_in_simulator


def train_and_register(*, engine: sa.Engine, data_dir: Path, args: TrainArgs, history_file: Path | None,
                       from_store_url: str | None, progress: Progress | None = None,
                       rollout_workers: int = 0) -> dict[str, Any]:  # fmt: skip
    """Mine history if asked, train, save the artifact under ``data_dir/policies`` and register it.

    ``rollout_workers`` > 0 collects the fine-tuning rollouts on that many Ray actors (connect first).
    """
    if history_file is not None or from_store_url is not None:
        from remediation.learning.history import mine_history_file, mine_store

        scratch = Path(tempfile.mkdtemp(prefix="remediate-train-"))
        npz = (
            mine_history_file(history_file, scratch)
            if history_file
            else mine_store(str(from_store_url), scratch)
        )
        args = replace(args, history=str(npz))
    result = train(args, progress=progress, rollout_workers=rollout_workers)
    plot_training(result.curve, result.run_dir / "training.png")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        current = service.promoted(db_session=session)
        parent = current.id if current else None
        taken = {v.id for v in service.list_versions(db_session=session)}
    version = f"policy-{stamp}-s{args.seed}"
    suffix = 2
    while version in taken or (data_dir / "policies" / version).exists():
        # two runs in the same second: keep versions unique and readable
        version, suffix = f"policy-{stamp}-s{args.seed}-{suffix}", suffix + 1
    directory = data_dir / "policies" / version
    digest = save_artifact(result, directory, version=version, parent=parent)
    with session_scope(factory) as session:
        service.register(db_session=session, version=version, path=str(directory), sha256=digest, parent=parent,
                         metrics=result.metrics, config=result.config)  # fmt: skip
    return {"version": version, "path": str(directory), "sha256": digest, "parent": parent,
            "run_dir": str(result.run_dir), "metrics": result.metrics, "stopped_by": result.stopped_by,
            "curve": result.curve}  # fmt: skip


def resolve_artifact(*, engine: sa.Engine, ref: str | None) -> Artifact:
    """Load a policy by path or registered version (default: promoted, else the newest), SHA-256 checked."""
    if ref and Path(ref).exists():
        return load_artifact(Path(ref))
    with session_scope(make_sessionmaker(engine)) as session:
        row: PolicyVersion | None
        if ref:
            row = service.get_version(db_session=session, version=ref)
        else:
            row = service.promoted(db_session=session) or next(
                iter(service.list_versions(db_session=session)), None
            )
            if row is None:
                raise ArtifactError("no policy registered yet: run `remediate train` or pass --policy PATH")
        path, digest = Path(row.path), row.sha256
    return load_artifact(path, expected_sha256=digest)


def load_policy(*, engine: sa.Engine, ref: str | None = None) -> LearnedPolicy:
    """Load a registered policy (default: the promoted one, else the newest), SHA-256 checked, ready to rank."""
    artifact = resolve_artifact(engine=engine, ref=ref)
    return LearnedPolicy(
        artifact.net, temperature=artifact.temperature, memory=artifact.memory, version=artifact.version
    )


def promoted_artifact(*, engine: sa.Engine) -> tuple[Artifact | None, str]:
    """Return the promoted version's artifact (None when none is promoted or it cannot load) and a note why."""
    with session_scope(make_sessionmaker(engine)) as session:
        row = service.promoted(db_session=session)
        if row is None:
            return None, "no promoted version: the runbook serves"
        version, path, digest = row.id, Path(row.path), row.sha256
    try:
        return load_artifact(path, expected_sha256=digest), version
    except ArtifactError as exc:
        return None, f"promoted {version} cannot load ({exc}): the runbook serves"


def promotion_gate(
    artifact: Artifact,
    *,
    rbac: RbacConfig,
    production: Artifact | None = None,
    episodes: int = 40,
    seed: int = 7,
    automated_margin: float = AUTOMATED_MARGIN,
) -> dict[str, Any]:
    """Check a candidate before promotion; return the evidence and ``passed``.

    On a held-out topology it must mitigate at least as often as the runbook *and* no slower on
    average, and its automated success (mitigated without paging a human) may fall below the
    production policy's (``production``, else the runbook, which serves when nothing is promoted) by
    at most ``automated_margin``; on simulated operator history its off-policy value (FQE, WIS) must
    not be confidently below the operators'. Every policy ranks under ``rbac``'s guardrail mask.
    """
    topology = held_out_topologies()[1]
    learned = LearnedPolicy(artifact.net, temperature=artifact.temperature, explain=False)
    prod = None
    if production is not None:
        prod = LearnedPolicy(production.net, temperature=production.temperature, explain=False)
    sim = check_in_simulator(topology, learned, production=prod, rbac=rbac, episodes=episodes, seed=seed,
                             automated_margin=automated_margin)  # fmt: skip
    logged, _ = collect_logged(topology, n_envs=episodes, seed=seed, n_actions=artifact.net.config.n_actions)
    fqe = fitted_q_evaluation(artifact.net, logged, seed=seed)
    wis = weighted_importance_sampling(artifact.net, artifact.operator_bc, logged, seed=seed)
    behaviour = float(
        np.mean([logged.rewards[logged.traj == t].sum().item() for t in logged.traj.unique().tolist()])
    )
    ope_ok = fqe.high >= behaviour or wis.high >= behaviour
    reasons = list(sim.reasons)
    if not ope_ok:
        reasons.append("off-policy estimates (FQE, WIS) confidently below the operators' logged return")
    return {
        "passed": bool(sim.passed and ope_ok),
        "reasons": reasons,
        "production": production.version if production is not None else "runbook",
        "automated_margin": automated_margin,
        "sim": {name: res.as_json() for name, res in sim.results.items()},
        "fqe": fqe.__dict__,
        "wis": wis.__dict__,
        "logged_operator_return": behaviour,
    }
