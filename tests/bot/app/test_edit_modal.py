"""Edit before approving, through the running app and the Slack sandbox: the modal changes a parameter,
the catalog and the guardrails decide again (a value over a limit is refused in the modal), and the edit
becomes a pending request that runs only after an approval."""

from __future__ import annotations

import json
import re
from typing import Any

from remediation.approvals import service as approvals
from tests.bot.alerts.test_snapshots import post
from tests.bot.conftest import ALICE, Harness, generic
from tests.bot.sandbox.conftest import wait_for


def _modal(h: Harness, user: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        views = [
            v
            for v in h.sandbox.workspace.views.values()
            if v["user"] == user and v.get("callback_id") == "fix_edit"
        ]
        return views[-1] if views else None

    return dict(wait_for(found))


def _typed(block: str, text: str) -> dict[str, Any]:
    return {block: {block: {"type": "plain_text_input", "value": text}}}


def test_the_edit_modal_changes_a_parameter_and_refuses_a_value_over_its_limit(harness: Harness) -> None:
    h = harness
    # a traffic surge on cartservice: the runbook suggests scale_out (replicas, at most 20)
    surge = {"service": "cartservice", "values": {"saturation": 0.95, "traffic_ratio": 3.0, "cpu": 0.97}}
    status, _ = post(h, {"snapshots": [surge]})
    assert status == 200
    h.post_alert("generic", generic("HighCPU", "cartservice", value=0.97))
    card = h.wait_card("INC-1", lambda blocks: '"edit:' in blocks)
    edit = next(
        e
        for b in card["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"].startswith("edit:")
    )
    h.click(ALICE, card, edit["action_id"])
    modal = _modal(h, ALICE)
    field = next(b for b in modal["blocks"] if b["type"] == "input" and "max " in b["label"]["text"])
    name = field["block_id"]
    top = float(re.search(r"max ([0-9.]+)", field["label"]["text"]).group(1))  # type: ignore[union-attr]
    low = float(re.search(r"min ([0-9.]+)", field["label"]["text"]).group(1))  # type: ignore[union-attr]

    over = h.driver.submit_view(user=ALICE, view_id=modal["id"], values=_typed(name, str(int(top) + 1)))
    assert over.ok
    assert "above the maximum" in json.dumps(h.sandbox.workspace.views[modal["id"]]["errors"])  # still open

    h.driver.submit_view(user=ALICE, view_id=modal["id"], values=_typed(name, str(int(low))))
    assert modal["id"] not in h.sandbox.workspace.views  # accepted, closed
    note = wait_for(lambda: [m for m in h.replies(card["ts"]) if "before approving" in m.get("text", "")])
    request_id = re.search(r"approve ([0-9a-f]{32})", note[-1]["text"]).group(1)  # type: ignore[union-attr]
    with h.services.sessions() as s:
        view = approvals.get(db_session=s, request_id=request_id)
    assert view.state == "pending" and view.params[name] == int(low)  # nothing ran without an approval
    assert not h.world.applied
    h.command(ALICE, f"approve {request_id}")
    wait_for(lambda: h.world.applied)
    assert h.world.applied[0][2][name] == int(low)
