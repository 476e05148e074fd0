"""Safety commands: `playbooks validate` and `rbac check`.

The switches (`freeze`, `killswitch`) live in `switch_cmds.py`, the audit log (`audit verify|publish|show`)
in `audit_cmds.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import console, print_json, refuse, sessions_of, settings_of

if TYPE_CHECKING:
    from remediation.guardrails.decide import Decision
    from remediation.guardrails.models import RbacConfig

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def register(app: typer.Typer) -> None:
    """Mount the `playbooks` and `rbac` groups."""
    register_playbooks(app)
    register_rbac(app)


def register_playbooks(app: typer.Typer) -> None:
    """Mount the `playbooks` group."""
    playbooks = typer.Typer(help="Check the action catalog and runbooks.", no_args_is_help=True)

    @playbooks.command("validate")
    def validate(
        ctx: typer.Context,
        path: Annotated[
            Path | None, typer.Argument(help="Extra playbook directory (default: the configured one).")
        ] = None,
        as_json: JsonOption = False,
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

    app.add_typer(playbooks, name="playbooks")


def register_rbac(app: typer.Typer) -> None:
    """Mount the `rbac` group."""
    rbac = typer.Typer(help="Explain guardrail decisions.", no_args_is_help=True)

    @rbac.command("check")
    def check(
        ctx: typer.Context,
        user: Annotated[str, typer.Option("--user", help="Slack user id (U...).")],
        action: Annotated[str, typer.Option("--action", help="Catalog action id.")],
        target: Annotated[str | None, typer.Option("--target", help="Target service.")] = None,
        param: Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable.")] = None,
        stage: Annotated[str, typer.Option("--stage", help="request or approve.")] = "request",
        requester: Annotated[str | None, typer.Option("--requester", help="With --stage approve.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Explain whether USER may request (or approve) ACTION on TARGET right now, and who may approve it.

        Groups naming a Slack user group or an on-call schedule are read now; each of USER's roles is
        shown with where it came from (file user entry, group members, the source and its freshness).
        """
        from remediation.guardrails.rbac import role_origins

        if stage not in ("request", "approve"):
            refuse(f"--stage {stage!r}: expected request or approve")
        config = rbac_now(ctx)
        decision = decide_now(
            ctx, user=user, action=action, target=target, params=param or [], stage=stage,
            requester=requester, config=config,
        )  # fmt: skip
        origins = role_origins(config, user)
        if as_json:
            print_json({**decision.as_dict(), "roles": [o._asdict() for o in origins],
                        "sources": _sources_json(config)})  # fmt: skip
        else:
            print_decision(decision)
            for origin in origins:
                console.print(f"role {origin.role}: from {origin.via}", highlight=False, soft_wrap=True)
            for gid, resolved in sorted(config.resolved.items()):
                if resolved.error:
                    state = "expired" if resolved.expired else "unreachable"
                    console.print(f"group {gid}: {resolved.label} {state}: {resolved.error}", highlight=False)
        if not decision.allowed:
            raise typer.Exit(1)

    app.add_typer(rbac, name="rbac")


def decide_now(
    ctx: typer.Context,
    *,
    user: str,
    action: str,
    target: str | None,
    params: list[str],
    stage: str,
    requester: str | None,
    config: RbacConfig | None = None,
) -> Decision:
    """Run the guardrails for one request (or approval) with the configured RBAC, catalog and switches.

    ``params`` are the raw ``NAME=VALUE`` flags, parsed once the store was read (as the command always did).
    """
    from playbooks.catalog import load_catalog
    from remediation.approvals.service import read_switches
    from remediation.guardrails.config import load_rbac
    from remediation.guardrails.decide import Context, decide

    settings = settings_of(ctx)
    config = config or load_rbac(settings.rbac_config)
    catalog = load_catalog([settings.playbooks_dir] if settings.playbooks_dir else [])
    with sessions_of(settings)() as session:
        switches = read_switches(db_session=session)
    context = Context(
        config=config, catalog=catalog, now=datetime.now(UTC), stage=stage,  # type: ignore[arg-type]
        requester=requester, switches=switches,
    )  # fmt: skip
    return decide(action, target, _parse_params(params), user, context)


def rbac_now(ctx: typer.Context) -> RbacConfig:
    """Return the configured RBAC with its groups' sources (Slack user groups, schedules) read now."""
    from bot.app.app import web_client
    from bot.app.roster import resolve_now
    from remediation.guardrails.config import load_rbac
    from remediation.guardrails.membership import sources

    settings = settings_of(ctx)
    config = load_rbac(settings.rbac_config)
    if not sources(config):
        return config
    return resolve_now(config, settings=settings, client=web_client(settings), now=datetime.now(UTC))


def _sources_json(config: RbacConfig) -> dict[str, Any]:
    return {gid: {"source": r.label, "members": list(r.members), "as_of": r.as_of.isoformat() if r.as_of else None,
                  "error": r.error or None} for gid, r in config.resolved.items()}  # fmt: skip


def print_decision(decision: Decision) -> None:
    """Print a guardrail decision for people: verdict, risk, approvers, notes, policy version."""
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


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """Parse repeated ``NAME=VALUE`` flags, each value as YAML (so numbers and booleans keep their type)."""
    import yaml

    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            refuse(f"--param {pair!r}: expected NAME=VALUE")
        name, value = pair.split("=", 1)
        params[name] = yaml.safe_load(value) if value else ""
    return params
