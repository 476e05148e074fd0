"""Safety commands: `playbooks validate`, `rbac check`, `freeze`, `killswitch`, `audit verify|publish|show`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of
from bot.settings import Settings


def _store(settings: Settings) -> Any:
    from incidents_db.db import make_sessionmaker, open_store

    return make_sessionmaker(open_store(settings.effective_database_url))


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            refuse(f"--param {pair!r}: expected NAME=VALUE")
        name, value = pair.split("=", 1)
        params[name] = yaml.safe_load(value) if value else ""
    return params


def register(app: typer.Typer) -> None:
    """Mount the `playbooks`, `rbac`, `freeze`, `killswitch` and `audit` groups."""
    playbooks = typer.Typer(help="Check the action catalog and runbooks.", no_args_is_help=True)
    rbac = typer.Typer(help="Explain guardrail decisions.", no_args_is_help=True)
    audit = typer.Typer(help="Read and verify the tamper-evident audit log.", no_args_is_help=True)

    @playbooks.command("validate")
    def validate(
        ctx: typer.Context,
        path: Annotated[
            Path | None, typer.Argument(help="Extra playbook directory (default: the configured one).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Report every problem in the built-in and user playbooks, each with its file and key."""
        from playbooks.validate import validate_playbooks
        from remediation.executors.registry import CHECKERS

        settings = settings_of(ctx)
        dirs = [p for p in (path or settings.playbooks_dir,) if p is not None]
        problems = validate_playbooks(dirs, checkers=CHECKERS)
        if as_json:
            print_json({"ok": not problems, "problems": [p.__dict__ for p in problems]})
        else:
            for problem in problems:
                console.print(str(problem), highlight=False, soft_wrap=True)
            if not problems:
                console.print("playbooks OK: no problems found")
        if problems:
            refuse(f"{len(problems)} problem(s) in the playbooks")

    @rbac.command("check")
    def check(
        ctx: typer.Context,
        user: Annotated[str, typer.Option("--user", help="Slack user id (U...).")],
        action: Annotated[str, typer.Option("--action", help="Catalog action id.")],
        target: Annotated[str | None, typer.Option("--target", help="Target service.")] = None,
        param: Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable.")] = None,
        stage: Annotated[str, typer.Option("--stage", help="request or approve.")] = "request",
        requester: Annotated[str | None, typer.Option("--requester", help="With --stage approve.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Explain whether USER may request (or approve) ACTION on TARGET right now, and who may approve it."""
        from playbooks.catalog import load_catalog
        from remediation.approvals.service import read_switches
        from remediation.guardrails.config import load_rbac
        from remediation.guardrails.decide import Context, decide

        if stage not in ("request", "approve"):
            refuse(f"--stage {stage!r}: expected request or approve")
        settings = settings_of(ctx)
        config = load_rbac(settings.rbac_config)
        catalog = load_catalog([settings.playbooks_dir] if settings.playbooks_dir else [])
        with _store(settings)() as session:
            switches = read_switches(db_session=session)
        context = Context(
            config=config, catalog=catalog, now=datetime.now(UTC), stage=stage,  # type: ignore[arg-type]
            requester=requester, switches=switches,
        )  # fmt: skip
        decision = decide(action, target, _parse_params(param or []), user, context)
        if as_json:
            print_json(decision.as_dict())
        else:
            verdict = "[green]ALLOWED[/]" if decision.allowed else "[red]DENIED[/]"
            console.print(f"{verdict} ({decision.code}): {decision.reason}", soft_wrap=True)
            if decision.risk is not None:
                console.print(f"risk {decision.risk.value}; needs {decision.approvals_required} approval(s)")
                console.print(
                    f"who may approve: {', '.join(decision.approvers) or 'nobody'} (roles: {', '.join(decision.approver_roles) or 'none'})"
                )
            for note in decision.notes:
                console.print(f"note: {note}")
            console.print(f"policy version {decision.policy_version}")
        if not decision.allowed:
            raise typer.Exit(1)

    def _switch(
        kind: str, state: str, ctx: typer.Context, service: str | None, user: str, reason: str
    ) -> None:
        from bot.notify.delivery import refresh_cards
        from remediation.guardrails.config import load_rbac
        from remediation.guardrails.service import set_switch

        if state not in ("on", "off"):
            refuse(f"expected on or off, got {state!r}")
        settings = settings_of(ctx)
        now = datetime.now(UTC)
        with _store(settings)() as session:
            covered = set_switch(
                db_session=session, config=load_rbac(settings.rbac_config), kind=kind,  # type: ignore[arg-type]
                engaged=state == "on", actor=user, now=now, service=service, reason=reason,
            )  # fmt: skip
            # The serving bot's outbox worker (another process, same store) re-renders these cards.
            refresh_cards(db_session=session, incident_ids=covered, now=now)
            session.commit()
        label = "freeze" if kind == "freeze" else "kill switch"
        console.print(f"{label} {state} for {service or 'every service'}")

    def _switch_command(kind: str, name: str, summary: str) -> None:
        def command(
            ctx: typer.Context,
            state: Annotated[str, typer.Argument(help="on or off.")],
            user: Annotated[
                str, typer.Option("--user", help="Your Slack user id (recorded in the audit log).")
            ],
            service: Annotated[
                str | None, typer.Option("--service", help="Only this service (default: all).")
            ] = None,
            reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")] = "",
        ) -> None:
            _switch(kind, state, ctx, service, user, reason)

        command.__doc__ = summary
        app.command(name)(command)

    _switch_command(
        "freeze",
        "freeze",
        "Turn a change freeze on or off, globally or for one service (freeze override roles only).",
    )
    _switch_command(
        "kill", "killswitch", "Stop (on) or allow again (off) every execution, globally or for one service."
    )

    @audit.command("verify")
    def verify_cmd(
        ctx: typer.Context,
        expect_head: Annotated[
            list[str] | None,
            typer.Option(
                "--expect-head",
                help="A head published elsewhere, HASH or SEQ:HASH: that entry must still be on the chain "
                "(repeatable).",
            ),
        ] = None,
        head_file: Annotated[
            Path | None,
            typer.Option(
                "--head-file", help="Append-only file of published heads: check against its newest line."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Check the whole hash chain; name the first entry that was edited, deleted, inserted or moved."""
        from remediation.audit.published import read_last
        from remediation.audit.service import Checkpoint, verify
        from remediation.errors import CheckpointError

        try:
            expected = [Checkpoint.parse(text) for text in expect_head or []]
            if head_file is not None:
                newest = read_last(head_file)
                if newest is None:
                    refuse(f"--head-file {head_file}: no published head in it (missing or empty)")
                expected.append(newest.checkpoint)
        except CheckpointError as exc:
            refuse(str(exc))
        with _store(settings_of(ctx))() as session:
            verdict = verify(db_session=session, expect=expected)
        if as_json:
            print_json({**verdict.__dict__, "expected": [{"seq": c.seq, "hash": c.hash} for c in expected]})
        elif verdict.ok:
            head = f"; head entry {verdict.head_seq} ({verdict.head_hash})" if verdict.head_seq else ""
            against = f"; runs through {len(expected)} published head(s)" if expected else ""
            console.print(
                f"audit log OK: {verdict.checked} entries, chain intact{head}{against}", soft_wrap=True
            )
        if not verdict.ok:
            where = f" at entry {verdict.first_bad_seq}" if verdict.first_bad_seq is not None else ""
            refuse(f"audit log broken{where}: {verdict.problem}")

    @audit.command("publish")
    def publish_cmd(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Check the chain and publish a changed head to the audit_head_* targets once (what `serve` does on a schedule)."""
        from bot.app.audit_head import HeadPublisher
        from bot.services import utc_now

        settings = settings_of(ctx)
        publisher = HeadPublisher.from_settings(settings, sessions=_store(settings), clock=utc_now)
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
        incident: Annotated[
            str | None, typer.Option("--incident", help="Only entries of this incident.")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N entries.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Show audit entries (oldest first among the newest --limit)."""
        from remediation.audit.service import as_dict, entries

        with _store(settings_of(ctx))() as session:
            rows = [as_dict(e) for e in entries(db_session=session, incident_id=incident, limit=limit)]
        if as_json:
            print_json(rows)
            return
        table = Table(
            "seq", "at", "actor", "event", "decision", "action", "target", "reason", title="audit log"
        )
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

    app.add_typer(playbooks, name="playbooks")
    app.add_typer(rbac, name="rbac")
    app.add_typer(audit, name="audit")
