"""A freeze or kill switch re-renders the open cards it covers: Approve goes away (and comes back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bot.conftest import CAROL, RBAC, Harness, generic
from tests.bot.sandbox.conftest import WAIT_S, wait_for


def approve_ids(card: dict[str, Any]) -> list[str]:
    return [
        str(e["action_id"])
        for b in card.get("blocks", [])
        if b.get("type") == "actions"
        for e in b.get("elements", [])
        if str(e.get("action_id", "")).startswith("approve")
    ]


def card_where(harness: Harness, incident_id: str, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next(
            (c for c in harness.cards() if c.get("text", "").startswith(incident_id + " ") and test(c)), None
        )

    return dict(wait_for(find))


def test_chat_freeze_refreshes_the_open_card(db_harness: Harness) -> None:
    harness = db_harness  # the covered incidents are a store query: both backends
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    first = card_where(harness, "INC-1", lambda c: bool(approve_ids(c)))
    before = approve_ids(first)
    harness.command(CAROL, "freeze on checkoutservice")
    frozen = card_where(
        harness, "INC-1", lambda c: "freeze on checkoutservice switched on by hand" in json.dumps(c)
    )
    # Only the actions a freeze never blocks (wait, escalate) keep an Approve button.
    assert len(approve_ids(frozen)) < len(before)
    harness.command(CAROL, "freeze off checkoutservice")
    thawed = card_where(harness, "INC-1", lambda c: "switched on by hand" not in json.dumps(c))
    assert len(approve_ids(thawed)) == len(before)


def test_cli_killswitch_refreshes_the_card_of_the_running_bot(
    harness: Harness, tmp_path: Path, sqlite_url: str
) -> None:
    harness.post_alert("generic", generic("HighErrorRate", "checkoutservice"))
    before = approve_ids(card_where(harness, "INC-1", lambda c: bool(approve_ids(c))))
    rbac = tmp_path / "rbac-cli.yaml"
    rbac.write_text(RBAC + "kill_switch: {flip_roles: [sre-lead]}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATE_", "SLACK_"))}
    env.update(
        REMEDIATE_DATA_DIR=str(tmp_path), REMEDIATE_DATABASE_URL=sqlite_url, REMEDIATE_RBAC_CONFIG=str(rbac)
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "killswitch", "on", "--user", CAROL, "--reason", "drill"],
        capture_output=True, text=True, env=env, timeout=WAIT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The CLI only wrote to the store; the serving bot's outbox worker re-rendered the card.
    killed = card_where(
        harness, "INC-1", lambda c: "kill switch is engaged for every service" in json.dumps(c)
    )
    assert len(approve_ids(killed)) < len(before)
