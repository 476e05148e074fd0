"""Postmortem commands: `postmortem show INCIDENT [--format md|html|json] [--version N] [--out FILE]` and `list`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of
from bot.cli.store_cmds import open_store
from incidents_db import db
from remediation.postmortem import service as postmortems
from remediation.postmortem.export_html import render_html
from remediation.postmortem.export_md import render_markdown
from sim.errors import SimError
from sim.resolve import resolve_topology

FORMATS = ("md", "html", "json")
IncidentArgument = Annotated[str, typer.Argument(help="Incident id, e.g. INC-1042 (must be resolved).")]
FormatOption = Annotated[
    str, typer.Option("--format", help="md (Markdown), html (one self-contained file) or json.")
]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="A published version (default: the current one).")
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")]
StatusOption = Annotated[
    str | None, typer.Option("--status", help="Only draft, in_review or published.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def register(app: typer.Typer) -> None:
    """Mount the `postmortem` group."""
    group = typer.Typer(help="Postmortems: render any version, list them.", no_args_is_help=True)

    @group.command("show")
    def show(
        ctx: typer.Context,
        incident_id: IncidentArgument,
        fmt: FormatOption = "md",
        version: VersionOption = None,
        out: OutOption = None,
    ) -> None:
        """Render an incident's postmortem as Markdown, HTML or JSON (a still-open incident is refused)."""
        if fmt not in FORMATS:
            refuse(f"--format {fmt!r}: expected md, html or json")
        report = load_report(ctx, incident_id, version)
        text = render(report, fmt)
        if out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        out.write_text(text, encoding="utf-8")
        console.print(
            f"wrote the {fmt} postmortem of {report['incident']} v{report['version']} to {out}",
            highlight=False,
        )

    @group.command("list")
    def list_cmd(ctx: typer.Context, status: StatusOption = None, as_json: JsonOption = False) -> None:
        """List postmortems, most recently changed first, with status and reviewers."""
        if status not in (None, *postmortems.STATUSES):
            refuse(f"--status {status!r}: expected draft, in_review or published")
        with open_store(ctx) as engine, db.make_sessionmaker(engine)() as session:
            rows = postmortems.list_postmortems(db_session=session, status=status)
        if as_json:
            print_json([r.as_dict() for r in rows])
            return
        table = Table("incident", "status", "version", "reviewers", "signed off", "updated (UTC)", "title")
        for r in rows:
            table.add_row(
                r.incident_id,
                r.status,
                str(r.version),
                ", ".join(r.reviewers) or "-",
                ", ".join(r.signed_off) or "-",
                r.updated_at.strftime("%Y-%m-%d %H:%M"),
                r.title,
            )
        console.print(table)
        console.print(f"{len(rows)} postmortem(s)")

    app.add_typer(group, name="postmortem")


def load_report(ctx: typer.Context, incident_id: str, version: int | None) -> dict[str, Any]:
    """Return the report of one version, on the configured service graph when the incident names none."""
    settings = settings_of(ctx)
    graph = None
    if settings.topology:
        try:
            graph = resolve_topology(settings.topology).graph()
        except SimError:
            graph = None  # the report still comes, without a graph to infer on
    with open_store(ctx) as engine, db.make_sessionmaker(engine)() as session:
        bots = {"remediate", *([settings.requester] if settings.requester else [])}
        return postmortems.report(
            db_session=session, incident_id=incident_id, graph=graph, version=version, bots=bots
        )


def render(report: dict[str, Any], fmt: str) -> str:
    """Return the report in one of FORMATS."""
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    return render_html(report) if fmt == "html" else render_markdown(report)
