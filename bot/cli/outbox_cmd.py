"""`remediate outbox list|retry`: see what has not reached Slack yet (dead letters too) and send it again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of

STATES = ("pending", "sent", "dead")


def _sessions(ctx: typer.Context) -> Any:
    from incidents_db.db import make_sessionmaker, open_store

    return make_sessionmaker(open_store(settings_of(ctx).effective_database_url))


def register(app: typer.Typer) -> None:
    """Mount the `outbox` group."""
    group = typer.Typer(help="Inspect and retry Slack deliveries (the outbox).", no_args_is_help=True)

    @group.command("list")
    def list_(
        ctx: typer.Context,
        state: Annotated[
            str | None, typer.Option("--state", help="Only rows in this state: dead, pending or sent.")
        ] = None,
        limit: Annotated[
            int, typer.Option("--limit", min=1, help="At most this many rows, newest first.")
        ] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """List outbox rows, newest first: kind, incident, state, attempts, last error."""
        from incidents_db import outbox

        if state is not None and state not in STATES:
            refuse(f"--state {state!r}: expected one of {', '.join(STATES)}")
        with _sessions(ctx)() as session:
            rows = outbox.list_messages(db_session=session, state=state, limit=limit)
            counts = outbox.counts(db_session=session)
        if as_json:
            print_json({"counts": counts, "messages": [r.to_json() for r in rows]})
            return
        table = Table("id", "kind", "incident", "state", "attempts", "queued", "next try", "last error")
        now = datetime.now(UTC)
        for r in rows:
            due = "" if r.state == "sent" else _ago(r.next_attempt_at, now)
            table.add_row(
                str(r.id),
                r.kind,
                r.incident_id or "",
                r.state + (" (refused)" if r.refused and r.state == "dead" else ""),
                str(r.attempts),
                f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                due,
                r.last_error[:80],
            )
        console.print(table)
        console.print(
            f"{counts['pending']} pending, {counts['dead']} dead, {counts['sent']} sent", highlight=False
        )

    @group.command("retry")
    def retry(
        ctx: typer.Context,
        message_id: Annotated[int | None, typer.Argument(help="The outbox row to send again.")] = None,
        all_dead: Annotated[bool, typer.Option("--all", help="Send every dead row again.")] = False,
    ) -> None:
        """Make a row (or every dead row) pending and due now; a running bot sends it within a second."""
        from incidents_db import outbox

        if (message_id is None) == (not all_dead):
            refuse("name one row (remediate outbox retry ID) or use --all for every dead row")
        with _sessions(ctx)() as session:
            n = outbox.retry_now(db_session=session, now=datetime.now(UTC), message_id=message_id)
            session.commit()
        if message_id is not None and n == 0:
            refuse(f"no unsent outbox row {message_id}; see remediate outbox list")
        console.print(f"{n} row(s) queued again", highlight=False)

    app.add_typer(group, name="outbox")


def _ago(at: datetime, now: datetime) -> str:
    seconds = (at - now).total_seconds()
    return "now" if seconds <= 0 else f"in {seconds:.0f}s"
