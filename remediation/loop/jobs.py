"""The loop's jobs as plain functions: mine, retrain, evaluate, promote, report.

Each takes a `JobContext` and returns a `JobResult` (or raises; `runner.run_job` records either). Only
the last step of ``retrain`` (register a candidate) and of ``promote`` (promote it) write the registry,
each in one transaction, so a job that fails midway leaves the registry unchanged.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from incidents_db import jobruns, mining
from incidents_db.db import make_sessionmaker, session_scope
from incidents_db.models import PolicyVersion
from remediation.loop import freeze
from remediation.loop.config import JOB_NAMES, JobContext, JobResult
from remediation.loop.dataset import full_dataset
from remediation.registry import service

EVALUATED = ("candidate", "shadow")  # statuses a version may be evaluated and promoted from


def mine(ctx: JobContext) -> JobResult:
    """Mine incidents resolved since the last run into ``data_dir/trajectories`` (incremental)."""
    summary = mining.mine(engine=ctx.engine, out_dir=ctx.config.data_dir / "trajectories")
    return JobResult("succeeded", summary.as_json())


def _frozen(ctx: JobContext) -> str | None:
    with session_scope(make_sessionmaker(ctx.engine)) as session:
        now = freeze.state(db_session=session)
    return (
        f"learning is frozen since {now.at:%Y-%m-%d %H:%M} UTC by {now.actor}: {now.reason}"
        if now.frozen and now.at
        else None
    )


def retrain(ctx: JobContext) -> JobResult:
    """Train a candidate from the store's history plus the simulator, within the minutes budget; register it."""
    from remediation.learning.train import QUICK, TrainArgs
    from remediation.registry.workflow import train_and_register

    frozen = _frozen(ctx)
    if frozen:
        return JobResult("skipped", {"reason": frozen})
    cfg = ctx.config
    scratch = Path(tempfile.mkdtemp(prefix="remediate-retrain-"))
    history = full_dataset(ctx, scratch)
    args = TrainArgs(
        seed=cfg.seed,
        minutes=cfg.retrain_minutes,
        iterations=cfg.retrain_iterations,
        history=str(history) if history else None,
        history_topology=cfg.topology or "online-boutique",
        team_variations=4 if cfg.topology else 0,  # half the simulator's graphs: the team's and 4 variations
        rbac_config=str(cfg.rbac_config) if cfg.rbac_config else None,
        run_root=str(cfg.data_dir / "runs"),
        name=f"retrain-run{ctx.run_id}-{ctx.now:%Y%m%dT%H%M%SZ}",
        **(QUICK if cfg.quick else {}),
    )
    registered = train_and_register(engine=ctx.engine, data_dir=cfg.data_dir, args=args, history_file=None,
                                    from_store_url=None)  # fmt: skip
    metrics = {k: v for k, v in registered["metrics"].items() if k != "curve"}  # the curve is in the run dir
    return JobResult(
        "succeeded", {**registered, "metrics": metrics, "history": str(history) if history else None}
    )


def _candidate(ctx: JobContext) -> str | None:
    with session_scope(make_sessionmaker(ctx.engine)) as session:
        rows = [v for v in service.list_versions(db_session=session) if v.status in EVALUATED]
        return rows[0].id if rows else None


def evaluate(ctx: JobContext) -> JobResult:
    """Compare the newest candidate with production and the runbook on the team's graph and its variations."""
    from remediation.loop.evaluate import evaluate_candidate

    version = _candidate(ctx)
    if version is None:
        return JobResult("skipped", {"reason": "no candidate or shadow version to evaluate"})
    return JobResult("succeeded", evaluate_candidate(ctx, version))


def _passed_evaluation(ctx: JobContext) -> dict[str, Any] | None:
    """Return the newest successful evaluation whose version passed and is still a candidate."""
    with session_scope(make_sessionmaker(ctx.engine)) as session:
        for run in jobruns.runs(db_session=session, job="evaluate", outcome="succeeded"):
            version = run.detail.get("version")
            row = session.get(PolicyVersion, version) if version else None
            if run.detail.get("passed") and row is not None and row.status in EVALUATED:
                return dict(run.detail)
    return None


def promote(ctx: JobContext) -> JobResult:
    """Promote the newest candidate that passed evaluation, through the promotion gate (off by default)."""
    from remediation.guardrails.config import load_rbac
    from remediation.registry.workflow import promoted_artifact, promotion_gate, resolve_artifact

    cfg = ctx.config
    if not cfg.promote:
        return JobResult(
            "skipped", {"reason": "automatic promotion is off (REMEDIATE_JOBS_PROMOTE=true turns it on)"}
        )
    frozen = _frozen(ctx)
    if frozen:
        return JobResult("skipped", {"reason": frozen})
    evaluation = _passed_evaluation(ctx)
    if evaluation is None:
        return JobResult("skipped", {"reason": "no evaluated candidate passed; nothing to promote"})
    version = str(evaluation["version"])
    artifact = resolve_artifact(engine=ctx.engine, ref=version)
    production, against = promoted_artifact(engine=ctx.engine)
    gate = promotion_gate(artifact, rbac=load_rbac(cfg.rbac_config), production=production,
                          episodes=cfg.evaluate_episodes, automated_margin=cfg.automated_margin)  # fmt: skip
    gate["production"] = against
    if not gate["passed"]:
        return JobResult("succeeded", {"version": version, "promoted": False, "gate": gate})
    with session_scope(make_sessionmaker(ctx.engine)) as session:
        service.promote(db_session=session, version=version)
    return JobResult("succeeded", {"version": version, "promoted": True, "gate": gate})


def report(ctx: JobContext) -> JobResult:
    """Write where the loop stands (registry, last runs, freeze, live figures) to ``data_dir/reports``."""
    from remediation.loop.watch import live_figures

    with session_scope(make_sessionmaker(ctx.engine)) as session:
        versions = [service.version_row(v) for v in service.list_versions(db_session=session)[:10]]
        last = jobruns.last_runs(db_session=session)
        runs = {
            name: {"outcome": r.outcome, "started_at": r.started_at.isoformat()} for name, r in last.items()
        }
        state = freeze.state(db_session=session).as_json()
    body = {
        "at": ctx.now.isoformat(),
        "versions": versions,
        "jobs": {name: runs.get(name) for name in JOB_NAMES},
        "learning": state,
        "live": live_figures(ctx),
    }
    out = ctx.config.data_dir / "reports" / f"loop-{ctx.now:%Y%m%dT%H%M%SZ}-run{ctx.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    return JobResult("succeeded", {"report": str(out), "learning": state, "live": body["live"]})
