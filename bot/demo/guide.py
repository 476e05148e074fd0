"""The short guide the demo's sandbox page opens with (dismissable; mrkdwn lines, our own text)."""

from __future__ import annotations

from bot.notify.times import duration


def demo_guide(*, topology: str, fault_every_s: float) -> tuple[str, ...]:
    """Return what a first-time visitor needs: what happens, who to act as, what to click, where to look."""
    if round(fault_every_s) == 60:
        every = "every minute"
    else:
        every = f"every {duration(fault_every_s)}" if fault_every_s >= 60 else f"every {fault_every_s:g} s"
    return (
        f"A fault fires in the simulated *{topology}* {every}: its alerts open an incident card here in "
        "#incidents, with ranked suggestions, their confidence, risk and reason.",
        "Pick *carol* (SRE lead, approves anything) or *alice* (on call, low and medium risk) in "
        "_Acting as_ at the top left.",
        "Click *Approve* on a suggestion: the action runs in the simulated world and the card updates; "
        "*Why* explains a suggestion, *Reject* drops it.",
        "The thread under each card is the incident's timeline (alerts, actions, outcomes); "
        "the card turns ✅ Resolved when the fault is fixed.",
        "_Deliveries to the app_ (left column) lists every request the sandbox sent the bot as Slack "
        "would (events, commands, clicks) and its answer. Try `/remediate help` below.",
    )
