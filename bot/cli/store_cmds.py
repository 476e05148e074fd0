"""Store commands: `import`, `export` and `mine` (`db` and `incidents` live in `incidents_cmds.py`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer
from sqlalchemy import Engine

from bot.cli.common import console, err_console, print_json, progress_bar, refuse, settings_of
from incidents_db import db, exporter, importer, mining


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
        print_import_report(report)
    return 1 if report.refused else 0


def import_source(ctx: typer.Context, source: str | None, *, sql: str | None, mapping: Path | None,
                  pagerduty: Path | None, as_json: bool, batch_size: int) -> int:  # fmt: skip
    """Import from another SQL database through a mapping file, or from a PagerDuty export; return the exit status."""
    from incidents_db.errors import MappingError
    from incidents_db.import_mapping import load_mapping
    from incidents_db.import_pagerduty import read_pagerduty
    from incidents_db.import_sql import import_records, read_sql

    if source is not None or (sql is None) == (pagerduty is None) or (sql is None) != (mapping is None):
        refuse(
            "give exactly one source: a JSON Lines file, --sql URL with --mapping FILE, or --pagerduty FILE"
        )
    try:
        records = (
            read_sql(str(sql), load_mapping(mapping))
            if mapping is not None
            else read_pagerduty(Path(str(pagerduty)))
        )
        with open_store(ctx) as engine:
            report = import_records(engine=engine, records=records, source="sql" if sql else "pagerduty",
                                    batch_size=batch_size)  # fmt: skip
    except MappingError as exc:
        refuse(str(exc))
    if as_json:
        print_json(report.as_json())
    else:
        print_import_report(report)
    return 1 if report.refused else 0


def print_import_report(report: importer.ImportReport) -> None:
    """Print an import report for people: counts, then the first 20 refused lines."""
    console.print(
        f"imported {report.imported}, skipped {report.skipped_existing} already in the store, "
        f"refused {len(report.refused)} line(s)"
    )
    for refusal in report.refused[:20]:
        console.print(f"  line {refusal.line}: {refusal.error}", highlight=False, markup=False)
    if len(report.refused) > 20:
        console.print(f"  ... and {len(report.refused) - 20} more (use --json for all)")


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


def export_store(ctx: typer.Context, out: Path | None) -> None:
    """Write every incident to ``out`` (atomically, with a progress bar) or to stdout when None."""
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


SourceArgument = Annotated[
    str | None,
    typer.Argument(
        help="remediate.incident/v1 JSON Lines file, or - for stdin (none with --sql or --pagerduty)."
    ),
]
SqlOption = Annotated[
    str | None,
    typer.Option(
        "--sql", help="Read another SQL database (postgresql://, mysql://, sqlite:/// URL) through --mapping."
    ),
]
MappingOption = Annotated[
    Path | None,
    typer.Option("--mapping", help="Mapping file for --sql: queries and column-to-field mapping."),
]
PagerDutyOption = Annotated[
    Path | None,
    typer.Option("--pagerduty", help="PagerDuty export: incidents with their log entries (JSON)."),
]
LogCommitsOption = Annotated[
    bool, typer.Option("--log-commits", help="After each committed batch, write a JSON line to stderr.")
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Incidents per transaction.")]
ImportWorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=0,
        help="Processes that parse a large file (default: one per core but one; 0: parse in this "
        "process only).",
    ),
]
ExportOutOption = Annotated[
    Path | None, typer.Option("--out", help="File to write (default: stdout).", show_default=False)
]
MineOutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Dataset directory (default: DATA_DIR/trajectories).", show_default=False),
]
FullOption = Annotated[bool, typer.Option("--full", help="Redo every resolved incident, not only new ones.")]
MineWorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=0,
        help="Processes that mine a large store (default: one per core but one on 4 cores or "
        "more, none below; 0: all in this process).",
    ),
]


def register(app: typer.Typer) -> None:
    """Mount `import`, `export` and `mine`."""

    @app.command("import")
    def import_cmd(
        ctx: typer.Context,
        source: SourceArgument = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        log_commits: LogCommitsOption = False,
        batch_size: BatchSizeOption = importer.DEFAULT_BATCH,
        workers: ImportWorkersOption = None,
        sql: SqlOption = None,
        mapping: MappingOption = None,
        pagerduty: PagerDutyOption = None,
    ) -> None:
        """Import incident history; bad lines are refused (exit 1) and the rest still imports."""
        if sql is not None or mapping is not None or pagerduty is not None:
            code = import_source(ctx, source, sql=sql, mapping=mapping, pagerduty=pagerduty, as_json=as_json,
                                 batch_size=batch_size)  # fmt: skip
        elif source is None:
            raise typer.BadParameter(
                "give a JSON Lines file, - for stdin, --sql URL --mapping FILE or --pagerduty FILE"
            )
        else:
            code = import_file(
                ctx, source, as_json=as_json, log_commits=log_commits, batch_size=batch_size, workers=workers
            )
        raise typer.Exit(code)

    @app.command("export")
    def export_cmd(ctx: typer.Context, out: ExportOutOption = None) -> None:
        """Write every incident as remediate.incident/v1 JSON Lines (import reads it back)."""
        export_store(ctx, out)

    @app.command("mine")
    def mine_cmd(
        ctx: typer.Context,
        out: MineOutOption = None,
        full: FullOption = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        workers: MineWorkersOption = None,
    ) -> None:
        """Mine resolved incidents into trajectories (incremental; --full redoes all)."""
        summary = mine_store(ctx, out, full=full, as_json=as_json, workers=workers)
        if as_json:
            print_json(summary.as_json())
        else:
            print_mining(summary)
