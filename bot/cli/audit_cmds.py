"""`remediate audit verify|publish|show`: read, verify and publish the tamper-evident audit log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, sessions_of, settings_of

if TYPE_CHECKING:
    from remediation.audit.service import Checkpoint, Verdict

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ExpectHeadOption = Annotated[
    list[str] | None,
    typer.Option(
        "--expect-head",
        help="A head published elsewhere, HASH or SEQ:HASH: that entry must still be on the chain "
        "(repeatable).",
    ),
]
HeadFileOption = Annotated[
    Path | None,
    typer.Option("--head-file", help="Append-only file of published heads: check against its newest line."),
]
IncidentOption = Annotated[str | None, typer.Option("--incident", help="Only entries of this incident.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Newest N entries.")]


def register(app: typer.Typer) -> None:
    """Mount the `audit` group."""
    audit = typer.Typer(help="Read and verify the tamper-evident audit log.", no_args_is_help=True)

    @audit.command("verify")
    def verify_cmd(
        ctx: typer.Context,
        expect_head: ExpectHeadOption = None,
        head_file: HeadFileOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Check the whole hash chain; name the first entry that was edited, deleted, inserted or moved."""
        from remediation.audit.service import verify

        expected = expected_heads(expect_head or [], head_file)
        with sessions_of(settings_of(ctx))() as session:
            verdict = verify(db_session=session, expect=expected)
        report_verdict(verdict, expected, as_json=as_json)

    @audit.command("publish")
    def publish_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Check the chain and publish a changed head to the audit_head_* targets once (what `serve` does on a schedule)."""
        from bot.app.audit_head import HeadPublisher
        from bot.services import utc_now

        settings = settings_of(ctx)
        publisher = HeadPublisher.from_settings(settings, sessions=sessions_of(settings), clock=utc_now)
        if not publisher.enabled:
            refuse(
                "no place to publish to: set REMEDIATE_AUDIT_HEAD_FILE, REMEDIATE_AUDIT_HEAD_CHANNEL "
                "or REMEDIATE_AUDIT_HEAD_WEBHOOK"
            )
        result = publisher.publish()
        if as_json:
            print_json(result.as_dict())
        elif result.ok:
            console.print(result.summary(), soft_wrap=True, highlight=False)
        if not result.ok:
            refuse(result.summary())

    @audit.command("show")
    def show(
        ctx: typer.Context,
        incident: IncidentOption = None,
        limit: LimitOption = 50,
        as_json: JsonOption = False,
    ) -> None:
        """Show audit entries (oldest first among the newest --limit)."""
        from remediation.audit.service import as_dict, entries

        with sessions_of(settings_of(ctx))() as session:
            rows = [as_dict(e) for e in entries(db_session=session, incident_id=incident, limit=limit)]
        if as_json:
            print_json(rows)
            return
        print_entries(rows)

    app.add_typer(audit, name="audit")


def expected_heads(texts: list[str], head_file: Path | None) -> list[Checkpoint]:
    """Parse the heads the chain must still run through: each ``--expect-head``, then the newest published one."""
    from remediation.audit.published import read_last
    from remediation.audit.service import Checkpoint
    from remediation.errors import CheckpointError

    try:
        expected = [Checkpoint.parse(text) for text in texts]
        if head_file is not None:
            newest = read_last(head_file)
            if newest is None:
                refuse(f"--head-file {head_file}: no published head in it (missing or empty)")
            expected.append(newest.checkpoint)
    except CheckpointError as exc:
        refuse(str(exc))
    return expected


def report_verdict(verdict: Verdict, expected: list[Checkpoint], *, as_json: bool) -> None:
    """Print the verdict (JSON, or one line when intact); refuse with where the chain broke."""
    if as_json:
        print_json({**verdict.__dict__, "expected": [{"seq": c.seq, "hash": c.hash} for c in expected]})
    elif verdict.ok:
        head = f"; head entry {verdict.head_seq} ({verdict.head_hash})" if verdict.head_seq else ""
        against = f"; runs through {len(expected)} published head(s)" if expected else ""
        console.print(f"audit log OK: {verdict.checked} entries, chain intact{head}{against}", soft_wrap=True)
    if not verdict.ok:
        where = f" at entry {verdict.first_bad_seq}" if verdict.first_bad_seq is not None else ""
        refuse(f"audit log broken{where}: {verdict.problem}")


def print_entries(rows: list[dict[str, Any]]) -> None:
    """Print audit entries as a table."""
    table = Table("seq", "at", "actor", "event", "decision", "action", "target", "reason", title="audit log")
    for r in rows:
        table.add_row(
            str(r["seq"]),
            r["at"][:19],
            r["actor"],
            r["event"],
            r["decision"],
            r["action"] or "",
            r["target"] or "",
            r["reason"],
        )
    console.print(table)
