"""The evaluate job's work: a candidate against production and the runbook, on the team's graph.

1. In the simulator: the team's graph and generated variations of it (`variations`), every policy on
   the same seeded episodes under the team's guardrails (the promotion gate's simulator check).
2. Off-policy, where the store holds resolved incidents: fitted Q evaluation of the candidate and of
   the production version on what this team's people actually did, beside the logged return.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from playbooks.catalog import load_catalog
from remediation.evaluation.ope import fitted_q_evaluation
from remediation.guardrails.config import load_rbac
from remediation.learning.history import load_mined
from remediation.learning.ranking import LearnedPolicy
from remediation.loop.config import JobContext
from remediation.loop.dataset import full_dataset
from remediation.registry.artifact import Artifact
from remediation.registry.gate import check_in_simulator
from remediation.registry.workflow import promoted_artifact, resolve_artifact
from sim.resolve import resolve_topology
from sim.variations import variations


def _learned(artifact: Artifact) -> LearnedPolicy:
    return LearnedPolicy(artifact.net, temperature=artifact.temperature, explain=False)


def _off_policy(ctx: JobContext, candidate: Artifact, production: Artifact | None) -> dict[str, Any]:
    """Estimate candidate and production on the team's logged decisions (FQE, 95 % bootstrap bounds)."""
    scratch = Path(tempfile.mkdtemp(prefix="remediate-evaluate-"))
    try:
        dataset = full_dataset(ctx, scratch)
        if dataset is None:
            return {"skipped": "no resolved incidents with mapped actions in the store yet"}
        base = resolve_topology(ctx.config.topology or "online-boutique")
        data, _ = load_mined(dataset, base, load_catalog())
        if int(data.actions.shape[0]) == 0:
            return {"skipped": "no logged step maps onto the catalog and the graph"}
        trajs = data.traj.unique().tolist()
        logged = float(np.mean([data.rewards[data.traj == t].sum().item() for t in trajs]))
        out: dict[str, Any] = {"trajectories": len(trajs), "logged_return": logged,
                               "candidate": fitted_q_evaluation(candidate.net, data, seed=ctx.config.seed).__dict__}  # fmt: skip
        if production is not None:
            out["production"] = fitted_q_evaluation(production.net, data, seed=ctx.config.seed).__dict__
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def evaluate_candidate(ctx: JobContext, version: str) -> dict[str, Any]:
    """Return the evidence on ``version`` and ``passed``: every graph's simulator check passed."""
    cfg = ctx.config
    candidate = resolve_artifact(engine=ctx.engine, ref=version)
    production, against = promoted_artifact(engine=ctx.engine)
    if production is None or production.version == version:
        production, against = None, "runbook"
    rbac = load_rbac(cfg.rbac_config)
    team = resolve_topology(cfg.topology or "online-boutique")
    graphs = [team, *variations(team, cfg.variations, seed=cfg.seed)]
    checks = {}
    for topology in graphs:
        check = check_in_simulator(topology, _learned(candidate), production=_learned(production) if production else None,
                                   rbac=rbac, episodes=cfg.evaluate_episodes, seed=cfg.seed,
                                   automated_margin=cfg.automated_margin)  # fmt: skip
        checks[topology.name] = check.as_json()
    reasons = [f"{name}: {r}" for name, c in checks.items() for r in c["reasons"]]
    return {
        "version": version,
        "production": against,
        "passed": not reasons,
        "reasons": reasons,
        "graphs": checks,
        "off_policy": _off_policy(ctx, candidate, production),
    }
