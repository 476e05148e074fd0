"""`remediate jobs list|run` and `remediate learning status|freeze|unfreeze|harmful`: the learning loop by hand."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of
from incidents_db import db, jobruns
from remediation.errors import LoopError
from remediation.loop import freeze
from remediation.loop.config import JOB_NAMES, JobContext

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
UserOpt = Annotated[
    str, typer.Option("--user", help="Who does it (Slack user id or name), for the audit log.")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the audit log.")]


def _replica() -> str:
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def list_jobs(ctx: typer.Context) -> list[dict[str, Any]]:
    """Return every job with its schedule, last run and outcome."""
    settings = settings_of(ctx)
    engine = db.open_store(settings.effective_database_url)
    try:
        with db.session_scope(db.make_sessionmaker(engine)) as session:
            last = jobruns.last_runs(db_session=session)
            rows = []
            for name in JOB_NAMES:
                run = last.get(name)
                rows.append({
                    "job": name,
                    "schedule": settings.jobs_schedule.get(name) or "off",
                    "last_run": run.started_at.isoformat() if run else None,
                    "outcome": run.outcome if run else None,
                    "detail": run.detail if run else None,
                })  # fmt: skip
    finally:
        engine.dispose()
    return rows


def run_now(ctx: typer.Context, name: str) -> dict[str, Any]:
    """Run one job in this process, recorded like a scheduled run; return the record."""
    from bot.app.loop_jobs import loop_config
    from remediation.loop.runner import run_job

    settings = settings_of(ctx)
    engine = db.open_store(settings.effective_database_url)
    try:
        record = run_job(engine=engine, name=name, config=loop_config(settings), replica=_replica())
    except LoopError as exc:
        refuse(str(exc))
    finally:
        engine.dispose()
    return record.as_json()


def register_jobs(app: typer.Typer) -> None:
    """Mount `jobs list` and `jobs run`."""
    group = typer.Typer(help="The learning loop's jobs: list them, run one now.", no_args_is_help=True)

    @group.command("list")
    def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List every job: schedule (crontab, UTC), last run and its outcome."""
        rows = list_jobs(ctx)
        if as_json:
            print_json(rows)
            return
        table = Table("job", "schedule", "last run", "outcome")
        for r in rows:
            table.add_row(r["job"], r["schedule"], r["last_run"] or "never", r["outcome"] or "-")
        console.print(table)

    @group.command("run")
    def run_cmd(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
        """Run one job now (mine, retrain, evaluate, promote, report, watch); exit 1 when it failed."""
        record = run_now(ctx, name)
        if as_json:
            print_json(record)
        else:
            console.print(f"{name}: {record['outcome']}")
            for key, value in record["detail"].items():
                console.print(f"  {key}: {value}")
        raise typer.Exit(1 if record["outcome"] == "failed" else 0)

    app.add_typer(group, name="jobs")


def _change(
    ctx: typer.Context, *, frozen: bool | None, user: str, reason: str, request: str | None = None
) -> dict[str, Any]:
    """Read (``frozen`` None) or change the learning freeze; mark a request harmful when given (freezes at once)."""
    from bot.app.loop_jobs import loop_config
    from remediation.loop.watch import live_figures, mark_harmful

    settings = settings_of(ctx)
    engine = db.open_store(settings.effective_database_url)
    now = datetime.now(UTC)
    try:
        with db.session_scope(db.make_sessionmaker(engine)) as session:
            if request is not None:
                mark_harmful(db_session=session, request_id=request, actor=user, reason=reason, now=now)
                freeze.freeze(
                    db_session=session,
                    actor=user,
                    reason=f"safety breach: request {request} did harm: {reason}",
                    now=now,
                )
            elif frozen is True:
                freeze.freeze(db_session=session, actor=user, reason=reason, now=now)
            elif frozen is False:
                freeze.unfreeze(db_session=session, actor=user, reason=reason, now=now)
            state = freeze.state(db_session=session).as_json()
        live = live_figures(JobContext(engine=engine, config=loop_config(settings), now=now))
    except LoopError as exc:
        refuse(str(exc))
    finally:
        engine.dispose()
    return {**state, "live": live}


def _show(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(state)
        return
    if state["frozen"]:
        console.print(f"learning is FROZEN since {state['at']} by {state['actor']}: {state['reason']}")
    else:
        console.print("learning runs (not frozen)")
    live = state["live"]
    console.print(f"promoted: {live.get('promoted') or 'none'}; previous: {live.get('previous') or 'none'}")
    for key in ("live", "before"):
        if key in live:
            f = live[key]
            console.print(f"  {f['version']}: top-1 shown {f['shown']}, finished {f['finished']}, "
                          f"succeeded {f['succeeded']}, denied {f['denied']}")  # fmt: skip


def register_learning(app: typer.Typer) -> None:
    """Mount `learning status|freeze|unfreeze|harmful`."""
    group = typer.Typer(help="The learning freeze: promote and automatic retraining stop while it holds.",
                        no_args_is_help=True)  # fmt: skip

    @group.command("status")
    def status_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Say whether learning is frozen (who, when, why) and the rollback rule's live figures."""
        _show(_change(ctx, frozen=None, user="", reason=""), as_json)

    @group.command("freeze")
    def freeze_cmd(
        ctx: typer.Context, user: UserOpt, reason: ReasonOpt = "frozen by hand", as_json: JsonOpt = False
    ) -> None:
        """Freeze learning: the promote job and automatic retraining stop (audited)."""
        _show(_change(ctx, frozen=True, user=user, reason=reason), as_json)

    @group.command("unfreeze")
    def unfreeze_cmd(
        ctx: typer.Context, user: UserOpt, reason: ReasonOpt = "unfrozen by hand", as_json: JsonOpt = False
    ) -> None:
        """Lift the freeze after a person has looked (audited)."""
        _show(_change(ctx, frozen=False, user=user, reason=reason), as_json)

    @group.command("harmful")
    def harmful_cmd(
        ctx: typer.Context, request: str, user: UserOpt, reason: ReasonOpt, as_json: JsonOpt = False
    ) -> None:
        """Mark an executed request's action as harmful: a safety breach, learning freezes at once."""
        _show(_change(ctx, frozen=None, user=user, reason=reason, request=request), as_json)

    app.add_typer(group, name="learning")


def register(app: typer.Typer) -> None:
    """Mount the `jobs` and `learning` groups."""
    register_jobs(app)
    register_learning(app)
