"""`remediate doctor`: check a real set-up end to end before the first incident, one line per check.

Exit status 0 when nothing failed (warnings allowed), 1 on any FAIL; ``--json`` for scripts. The
checks live in `bot.cli.doctor_checks` (this machine) and `bot.cli.doctor_slack` (Slack's side).
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import console, print_json, state
from bot.cli.doctor_checks import (
    FAIL,
    Check,
    check_alert_token,
    check_executor,
    check_policy,
    check_rbac,
    check_signing_secret,
    check_store,
    check_topology,
)
from bot.settings import Settings, SettingsError

STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


def run_checks(settings: Settings) -> list[Check]:
    """Run every check in the order a person fixes them: settings, store, Slack, secrets, graph, actions."""
    from bot.cli.doctor_slack import slack_checks

    slack, bot_user = slack_checks(settings)
    return [
        Check("settings", "OK", "valid"),
        check_store(settings),
        *slack[:3],
        check_signing_secret(settings),
        check_alert_token(settings),
        check_topology(settings),
        check_executor(settings),
        *check_rbac(settings, bot_user),
        check_policy(settings),
        slack[3],
    ]


def print_checks(checks: list[Check]) -> None:
    """Print one line per check: status, name, what was found, and the fix for WARN and FAIL."""
    width = max(len(c.name) for c in checks)
    for c in checks:
        fix = f" [bold]fix:[/] {c.fix}" if c.fix and c.status in ("WARN", FAIL) else ""
        console.print(
            f"[{STYLE[c.status]}]{c.status:<4}[/] {c.name:<{width}}  {c.detail}{' ·' if fix else ''}{fix}",
            highlight=False,
            soft_wrap=True,
            markup=True,
        )


def register(app: typer.Typer) -> None:
    """Mount `doctor`."""

    @app.command("doctor")
    def doctor(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Check the set-up end to end (settings, store, Slack token, scopes and channel, secrets, graph, executor, RBAC, policy, clock)."""
        try:
            settings = state(ctx).settings()
        except SettingsError as exc:
            checks = [Check("settings", FAIL, str(exc), "fix the value named (environment or --config file)")]
        else:
            checks = run_checks(settings)
        failed = any(c.status == FAIL for c in checks)
        if as_json:
            print_json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
        else:
            print_checks(checks)
            bad = sum(c.status == FAIL for c in checks)
            warned = sum(c.status == "WARN" for c in checks)
            console.print(f"{bad} failed, {warned} warning(s), {len(checks)} checks", highlight=False)
        if failed:
            raise typer.Exit(1)
