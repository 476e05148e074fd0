"""`remediate freeze` and `remediate killswitch`: engage or release a switch, globally or for one service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer

from bot.cli.common import console, refuse, sessions_of, settings_of

StateArgument = Annotated[str, typer.Argument(help="on or off.")]
UserOption = Annotated[str, typer.Option("--user", help="Your Slack user id (recorded in the audit log).")]
ServiceOption = Annotated[str | None, typer.Option("--service", help="Only this service (default: all).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the audit log.")]

# (switch kind in the store, command name, the command's help)
SWITCHES: tuple[tuple[str, str, str], ...] = (
    (
        "freeze",
        "freeze",
        "Turn a change freeze on or off, globally or for one service (freeze override roles only).",
    ),
    ("kill", "killswitch", "Stop (on) or allow again (off) every execution, globally or for one service."),
)


def register(app: typer.Typer) -> None:
    """Mount the `freeze` and `killswitch` commands."""
    for kind, name, summary in SWITCHES:
        app.command(name)(_switch_command(kind, summary))


def _switch_command(kind: str, summary: str) -> Callable[..., None]:
    """Return the command function that sets the ``kind`` switch."""

    def command(
        ctx: typer.Context,
        state: StateArgument,
        user: UserOption,
        service: ServiceOption = None,
        reason: ReasonOption = "",
    ) -> None:
        set_switch(ctx, kind=kind, state=state, service=service, user=user, reason=reason)

    command.__doc__ = summary
    return command


def set_switch(
    ctx: typer.Context, *, kind: str, state: str, service: str | None, user: str, reason: str
) -> None:
    """Engage (``on``) or release (``off``) a switch and have the cards it covers re-rendered."""
    from bot.notify.delivery import refresh_cards
    from remediation.guardrails.config import load_rbac
    from remediation.guardrails.service import set_switch as store_switch

    if state not in ("on", "off"):
        refuse(f"expected on or off, got {state!r}")
    settings = settings_of(ctx)
    now = datetime.now(UTC)
    with sessions_of(settings)() as session:
        covered = store_switch(
            db_session=session, config=load_rbac(settings.rbac_config), kind=kind,  # type: ignore[arg-type]
            engaged=state == "on", actor=user, now=now, service=service, reason=reason,
        )  # fmt: skip
        # The serving bot's outbox worker (another process, same store) re-renders these cards.
        refresh_cards(db_session=session, incident_ids=covered, now=now)
        session.commit()
    label = "freeze" if kind == "freeze" else "kill switch"
    console.print(f"{label} {state} for {service or 'every service'}")
