"""`remediate policy canary` and `remediate policy report`: a candidate beside production, and how it compares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.cli.common import console, print_json, refuse, settings_of
from incidents_db import db


def open_engine(ctx: typer.Context) -> Engine:
    """Return an engine on the configured store, migrated to the newest schema (the caller disposes it)."""
    return db.open_store(settings_of(ctx).effective_database_url)


@contextmanager
def registry_session(engine: Engine) -> Iterator[Session]:
    """Yield a session on the registry that commits when the block succeeds."""
    with db.session_scope(db.make_sessionmaker(engine)) as session:
        yield session


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ShareOption = Annotated[
    float | None,
    typer.Option(
        "--share", min=0.0, max=1.0, help="Share of incidents (by a hash of their id) the canary ranks."
    ),
]
EndOption = Annotated[
    bool, typer.Option("--end", help="End the canary: every incident sees production again.")
]


def register_live(group: typer.Typer) -> None:
    """Mount `policy canary` and `policy report`."""

    @group.command("canary")
    def canary_cmd(ctx: typer.Context, version: Annotated[str | None, typer.Argument()] = None,
                   share: ShareOption = None, end: EndOption = False, as_json: JsonOpt = False) -> None:  # fmt: skip
        """Show VERSION's ranking, labelled, on a share of incidents (every replica within 30 s)."""
        from remediation.registry import rankings

        if end == (version is not None) or (version is not None and share is None):
            refuse("use `policy canary VERSION --share S` or `policy canary --end`")
        engine = open_engine(ctx)
        try:
            if version is not None and share is not None:
                from remediation.registry.workflow import resolve_artifact

                resolve_artifact(engine=engine, ref=version)  # verified before any incident sees it
                with registry_session(engine) as session:
                    rankings.set_canary(
                        db_session=session, version=version, share=share, now=datetime.now(UTC)
                    )
                out: dict[str, Any] = {"canary": version, "share": share}
            else:
                with registry_session(engine) as session:
                    out = {"ended": rankings.end_canary(db_session=session)}
        finally:
            engine.dispose()
        if as_json:
            print_json(out)
        elif "canary" in out:
            console.print(f"{version} ranks {share:.0%} of incidents (labelled on their cards)")
        else:
            console.print(f"canary {out['ended'] or '(none)'} ended")

    @group.command("report")
    def report_cmd(
        ctx: typer.Context, version: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False
    ) -> None:
        """Compare VERSION (default: the shadow, else the canary) with production and with people."""
        from remediation.registry.report import policy_report

        engine = open_engine(ctx)
        try:
            with registry_session(engine) as session:
                report = policy_report(db_session=session, version=version)
        finally:
            engine.dispose()
        if as_json:
            print_json(report)
            return
        print_report(report)


def print_report(report: dict[str, Any]) -> None:
    """Print a policy report for people."""
    prod, people = report["agreement_with_production"], report["agreement_with_people"]
    ope, denials = report["time_to_mitigate_ope"], report["guardrail_denials_top1"]
    console.print(f"policy {report['version']}: {report['states']} incident states ranked")
    console.print(
        f"  agrees with production: top-1 {prod['top1']}, top-3 {prod['top3']} ({prod['states']} states)"
    )
    console.print(
        f"  agrees with people: top-1 {people['top1']}, top-3 {people['top3']} ({people['states']} states)"
    )
    for who in ("candidate", "people"):
        est = ope[who]
        console.print(
            f"  time to mitigate ({who}): {est['mean_s']} s [{est['low_s']}, {est['high_s']}] n={est['n']}"
        )
    console.print(f"  guardrail denials of its top-1: {denials['count']} {denials['by_reason'] or ''}")
    for arm, figures in report["canary_arms"].items():
        ttm = figures["time_to_mitigate"]
        console.print(f"  {arm} arm: {figures['incidents']} incidents, {figures['resolved']} resolved, "
                      f"mean time to mitigate {ttm['mean_s']} s [{ttm['low_s']}, {ttm['high_s']}], "
                      f"shown top-1 run {figures['shown_top1_run']}")  # fmt: skip
