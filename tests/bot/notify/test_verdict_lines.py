"""The card's verification lines: a canary whose run ended unknown says so and what a person does next."""

from __future__ import annotations

from bot.notify.verdicts import verdict_lines


def test_an_unknown_canary_is_shown_as_needing_a_person() -> None:
    todo = (
        "the rest is not run and nothing is undone; check carts by hand, then approve restart_service again"
    )
    record = {
        "events": [
            {"type": "action", "action": "restart_service", "target": "carts", "outcome": "unknown"},
            {"type": "note", "canary": "unknown", "canary_note": todo, "action": "restart_service",
             "target": "carts", "text": "canary of restart_service on carts: its run ended unknown"},
        ]
    }  # fmt: skip
    assert verdict_lines(record, []) == [
        f"🐤 canary of restart_service on carts: ❔ its run ended unknown; {todo}"
    ]


def test_a_failed_canary_run_says_why_and_what_a_person_does() -> None:
    todo = "the rest is not run and nothing is undone automatically; check carts by hand"
    record = {
        "events": [
            {"type": "note", "canary": "run_failed", "canary_run": "run failed (rollout <stuck>)",
             "canary_note": todo, "action": "restart_service", "target": "carts"},
        ]
    }  # fmt: skip
    assert verdict_lines(record, []) == [
        f"🐤 canary of restart_service on carts: ❌ its run failed (rollout &lt;stuck&gt;); {todo}"
    ]
