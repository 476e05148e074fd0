"""Store commands: `db upgrade|current`, `import`, `export`, `incidents list|show`, `mine`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from bot.cli.common import console, err_console, print_json, progress_bar, settings_of
from incidents_db import db, exporter, importer, mining, service
from incidents_db.redact import redact_url


@contextmanager
def open_store(ctx: typer.Context) -> Iterator[Engine]:
    """Yield an engine on the configured store, migrated to the newest schema."""
    engine = db.open_store(settings_of(ctx).effective_database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _show_bars(as_json: bool) -> bool:
    return not as_json and err_console.is_terminal


def import_file(
    ctx: typer.Context,
    source: str,
    *,
    as_json: bool,
    log_commits: bool,
    batch_size: int,
    workers: int | None = None,
) -> int:
    """Import a JSON Lines file (or stdin for `-`), print the report and return the exit status."""
    if source == "-":
        stream: IO[bytes] = sys.stdin.buffer
        total = None
    else:
        path = Path(source)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "no such file"
            raise typer.BadParameter(f"{source}: {what}; give a JSON Lines file or - for stdin")
        stream = path.open("rb")
        total = path.stat().st_size
    try:
        with open_store(ctx) as engine, progress_bar(quiet=not _show_bars(as_json)) as bar:
            task = bar.add_task("importing", total=total)

            def committed(progress: importer.Progress) -> None:
                bar.update(task, completed=progress.bytes_read)
                if log_commits:
                    # Written only after the commit returned: everything up to `line` is durably stored.
                    line = {
                        "committed": progress.imported,
                        "skipped_existing": progress.skipped_existing,
                        "refused": progress.refused,
                        "line": progress.last_line,
                    }
                    sys.stderr.write(json.dumps(line) + "\n")
                    sys.stderr.flush()

            report = importer.import_lines(
                engine=engine, lines=stream, batch_size=batch_size, on_commit=committed, workers=workers
            )
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if as_json:
        print_json(report.as_json())
    else:
        console.print(
            f"imported {report.imported}, skipped {report.skipped_existing} already in the store, "
            f"refused {len(report.refused)} line(s)"
        )
        for refusal in report.refused[:20]:
            console.print(f"  line {refusal.line}: {refusal.error}", highlight=False, markup=False)
        if len(report.refused) > 20:
            console.print(f"  ... and {len(report.refused) - 20} more (use --json for all)")
    return 1 if report.refused else 0


def mine_store(
    ctx: typer.Context, out: Path | None, *, full: bool, as_json: bool, workers: int | None = None
) -> mining.MiningSummary:
    """Mine the configured store into `out` (default: data_dir/trajectories) with a progress bar."""
    settings = settings_of(ctx)
    target = out or settings.data_dir / "trajectories"
    with open_store(ctx) as engine, progress_bar(quiet=not _show_bars(as_json)) as bar:
        task = bar.add_task("mining", total=None)
        return mining.mine(
            engine=engine,
            out_dir=target,
            full=full,
            on_progress=lambda n: bar.update(task, completed=n),
            workers=workers,
        )


def print_mining(summary: mining.MiningSummary) -> None:
    """Print a mining summary for people."""
    console.print(
        f"mined {summary.incidents} resolved incident(s) into {summary.trajectories} trajectories, "
        f"{summary.steps} steps ({summary.unmapped_actions} unmapped actions) -> {summary.out}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Mount `db`, `import`, `export`, `incidents` and `mine`."""
    db_group = typer.Typer(help="Schema migrations of the store.", no_args_is_help=True)

    @db_group.command("upgrade")
    def upgrade(ctx: typer.Context) -> None:
        """Migrate the store to the newest schema (safe to run again)."""
        url = settings_of(ctx).effective_database_url
        revision = db.upgrade(url)
        console.print(f"store {redact_url(url)} is at schema revision {revision}", highlight=False)

    @db_group.command("current")
    def current(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
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

    @app.command("import")
    def import_cmd(
        ctx: typer.Context,
        source: Annotated[str, typer.Argument(help="remediate.incident/v1 JSON Lines file, or - for stdin.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        log_commits: Annotated[
            bool,
            typer.Option("--log-commits", help="After each committed batch, write a JSON line to stderr."),
        ] = False,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Incidents per transaction.")] = (
            importer.DEFAULT_BATCH
        ),
        workers: Annotated[
            int | None,
            typer.Option(
                "--workers",
                min=0,
                help="Processes that parse a large file (default: one per core but one; 0: parse in this "
                "process only).",
            ),
        ] = None,
    ) -> None:
        """Import incident history; bad lines are refused (exit 1) and the rest still imports."""
        code = import_file(
            ctx, source, as_json=as_json, log_commits=log_commits, batch_size=batch_size, workers=workers
        )
        raise typer.Exit(code)

    @app.command("export")
    def export_cmd(
        ctx: typer.Context,
        out: Annotated[
            Path | None, typer.Option("--out", help="File to write (default: stdout).", show_default=False)
        ] = None,
    ) -> None:
        """Write every incident as remediate.incident/v1 JSON Lines (import reads it back)."""
        with open_store(ctx) as engine:
            if out is None:
                exporter.export_lines(engine=engine, out=sys.stdout)
                return
            tmp = out.with_name(out.name + ".tmp")
            with progress_bar(quiet=not _show_bars(False)) as bar:
                task = bar.add_task("exporting", total=None)
                with tmp.open("w", encoding="utf-8") as handle:
                    count = exporter.export_lines(
                        engine=engine, out=handle, on_progress=lambda n: bar.update(task, completed=n)
                    )
            os.replace(tmp, out)
        err_console.print(f"exported {count} incident(s) to {out}", highlight=False)

    incidents = typer.Typer(help="Look at incidents in the store.", no_args_is_help=True)

    @incidents.command("list")
    def list_cmd(
        ctx: typer.Context,
        status: Annotated[
            str | None,
            typer.Option("--status", help="Only 'open' or 'resolved' incidents.", show_default=False),
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, help="How many to show.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """List incidents, newest first."""
        if status not in (None, "open", "resolved"):
            raise typer.BadParameter(f"--status {status!r}: expected open or resolved")
        with open_store(ctx) as engine, db.make_sessionmaker(engine)() as session:
            rows = service.list_incidents(db_session=session, status=status, limit=limit)
            total = service.count_incidents(db_session=session, status=status)
        if as_json:
            print_json(
                [
                    {
                        "id": r.id,
                        "title": r.title,
                        "severity": r.severity,
                        "status": r.status,
                        "opened_at": r.opened_at.isoformat(),
                        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
                        "events": r.events,
                    }
                    for r in rows
                ]
            )
            return
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

    @incidents.command("show")
    def show_cmd(
        ctx: typer.Context,
        incident_id: Annotated[str, typer.Argument(help="Incident id, e.g. INC-1042.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the incident as JSON.")] = False,
    ) -> None:
        """Show one incident and its timeline."""
        with open_store(ctx) as engine, db.make_sessionmaker(engine)() as session:
            record = service.get_record(db_session=session, incident_id=incident_id)
        if as_json:
            print_json(record)
            return
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

    app.add_typer(incidents, name="incidents")

    @app.command("mine")
    def mine_cmd(
        ctx: typer.Context,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", help="Dataset directory (default: DATA_DIR/trajectories).", show_default=False
            ),
        ] = None,
        full: Annotated[
            bool, typer.Option("--full", help="Redo every resolved incident, not only new ones.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        workers: Annotated[
            int | None,
            typer.Option(
                "--workers",
                min=0,
                help="Processes that mine a large store (default: one per core but one on 4 cores or "
                "more, none below; 0: all in this process).",
            ),
        ] = None,
    ) -> None:
        """Mine resolved incidents into trajectories (incremental; --full redoes all)."""
        summary = mine_store(ctx, out, full=full, as_json=as_json, workers=workers)
        if as_json:
            print_json(summary.as_json())
        else:
            print_mining(summary)
