"""Store inspection commands: `db upgrade|current` and `incidents list|show`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, settings_of
from bot.cli.store_cmds import open_store
from incidents_db import db, service
from incidents_db.redact import redact_url

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
StatusOption = Annotated[
    str | None, typer.Option("--status", help="Only 'open' or 'resolved' incidents.", show_default=False)
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="How many to show.")]
IncidentIdArgument = Annotated[str, typer.Argument(help="Incident id, e.g. INC-1042.")]
ShowJsonOption = Annotated[bool, typer.Option("--json", help="Print the incident as JSON.")]


def register(app: typer.Typer) -> None:
    """Mount the `db` and `incidents` groups."""
    register_db(app)
    register_incidents(app)


def register_db(app: typer.Typer) -> None:
    """Mount the `db` group."""
    db_group = typer.Typer(help="Schema migrations of the store.", no_args_is_help=True)

    @db_group.command("upgrade")
    def upgrade(ctx: typer.Context) -> None:
        """Migrate the store to the newest schema (safe to run again)."""
        url = settings_of(ctx).effective_database_url
        revision = db.upgrade(url)
        console.print(f"store {redact_url(url)} is at schema revision {revision}", highlight=False)

    @db_group.command("current")
    def current(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Print the store's schema revision and the newest one this version knows."""
        url = settings_of(ctx).effective_database_url
        revision = db.current(url)
        head = db.head_revision()
        if as_json:
            print_json({"url": redact_url(url), "current": revision, "head": head})
            return
        state = "up to date" if revision == head else "needs `remediate db upgrade`"
        console.print(
            f"{redact_url(url)}: revision {revision or 'none'} (head {head}, {state})", highlight=False
        )

    app.add_typer(db_group, name="db")


def register_incidents(app: typer.Typer) -> None:
    """Mount the `incidents` group."""
    incidents = typer.Typer(help="Look at incidents in the store.", no_args_is_help=True)

    @incidents.command("list")
    def list_cmd(
        ctx: typer.Context, status: StatusOption = None, limit: LimitOption = 50, as_json: JsonOption = False
    ) -> None:
        """List incidents, newest first."""
        if status not in (None, "open", "resolved"):
            raise typer.BadParameter(f"--status {status!r}: expected open or resolved")
        with open_store(ctx) as engine, db.make_sessionmaker(engine)() as session:
            rows = service.list_incidents(db_session=session, status=status, limit=limit)
            total = service.count_incidents(db_session=session, status=status)
        if as_json:
            print_json([_summary(r) for r in rows])
            return
        print_incidents(rows, total)

    @incidents.command("show")
    def show_cmd(
        ctx: typer.Context, incident_id: IncidentIdArgument, as_json: ShowJsonOption = False
    ) -> None:
        """Show one incident and its timeline."""
        with open_store(ctx) as engine, db.make_sessionmaker(engine)() as session:
            record = service.get_record(db_session=session, incident_id=incident_id)
        if as_json:
            print_json(record)
            return
        print_record(record)

    app.add_typer(incidents, name="incidents")


def _summary(r: service.IncidentSummary) -> dict[str, Any]:
    """Return one listed incident as JSON-ready values."""
    return {
        "id": r.id,
        "title": r.title,
        "severity": r.severity,
        "status": r.status,
        "opened_at": r.opened_at.isoformat(),
        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
        "events": r.events,
    }


def print_incidents(rows: list[service.IncidentSummary], total: int) -> None:
    """Print listed incidents as a table, then how many of all matching ones it shows."""
    table = Table("id", "severity", "status", "opened (UTC)", "duration", "events", "title")
    for r in rows:
        minutes = (r.resolved_at - r.opened_at).total_seconds() / 60 if r.resolved_at else None
        table.add_row(
            r.id,
            r.severity,
            r.status,
            r.opened_at.strftime("%Y-%m-%d %H:%M"),
            f"{minutes:.0f} min" if minutes is not None else "open",
            str(r.events),
            r.title,
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} incident(s)")


def print_record(record: dict[str, Any]) -> None:
    """Print one incident's header line and its timeline as a table."""
    console.print(f"[bold]{record['id']}[/] {record['title']}", highlight=False)
    console.print(
        f"{record['severity']}, opened {record['opened_at']}, resolved {record.get('resolved_at') or '-'}; "
        f"services: {', '.join(record['services']) or '-'}",
        highlight=False,
    )
    table = Table("at", "type", "service", "details")
    for event in record["events"]:
        details = {k: v for k, v in event.items() if k not in ("at", "type", "service")}
        table.add_row(
            event["at"], event["type"], event.get("service", ""), json.dumps(details, ensure_ascii=False)
        )
    console.print(table)
