"""What the card and the approval reply say about execution, through the real app over HTTP.

With no executor the card leads with "approving records the decision and nothing runs" and the reply
to Approve says so; with ``escalate`` routed to PagerDuty the approved escalation reaches a real
Events API v2 receiver while the other actions stay on the default executor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from remediation.executors.build import ExecutorConfig, build_executor
from tests.bot.conftest import ALICE, CAROL, Harness, generic
from tests.bot.sandbox.conftest import WAIT_S
from tests.remediation.executors.receivers import JsonReceiver

ADVISORY = "Advisory mode: no executor is configured, so approving records the decision and nothing runs."


@pytest.fixture
def pagerduty() -> Iterator[JsonReceiver]:
    receiver = JsonReceiver("pagerduty")
    yield receiver
    receiver.close()


def test_with_no_executor_the_card_says_so_up_front_and_approving_runs_nothing(harness: Harness) -> None:
    harness.services.executor = None  # what `serve` builds for REMEDIATE_EXECUTOR=none
    status, _ = harness.post_alert("generic", generic("HighErrorRate", "checkoutservice", fingerprint="a1"))
    assert status == 200
    card = harness.card_for("INC-1")
    lead = json.dumps(card["blocks"][1])  # right under the title, before signals and suggestions
    assert ADVISORY in lead
    harness.click(ALICE, card, "approve:1")
    reply = harness.wait_ephemeral(ALICE, "Approved restart_service on checkoutservice.")
    assert ADVISORY in reply and "running" not in reply
    assert harness.world.applied == []


def test_escalate_is_routed_to_pagerduty_and_the_rest_stays_on_the_default(
    harness: Harness, pagerduty: JsonReceiver
) -> None:
    config = ExecutorConfig(kind="sim", pagerduty_routing_key="pd-key", pagerduty_events_url=pagerduty.url)
    harness.services.executor = build_executor(config, world=harness.world)
    status, _ = harness.post_alert("generic", generic("NoSuchAlertKnown", "frontend", fingerprint="b1"))
    assert status == 200
    card = harness.wait_card("INC-1", lambda blocks: "escalate" in blocks)
    assert "Advisory mode" not in json.dumps(card["blocks"])
    texts = [json.dumps(b) for b in card["blocks"] if b.get("block_id", "").startswith("text-")]
    n = next(int(re.findall(r"text-(\d+)", t)[0]) for t in texts if "escalate" in t)
    harness.click(CAROL, card, f"approve:{n}")
    assert pagerduty.arrived.wait(WAIT_S), "the escalation never reached PagerDuty"
    [got] = pagerduty.received
    assert got["problems"] == []
    assert got["body"]["routing_key"] == "pd-key" and got["body"]["event_action"] == "trigger"
    assert got["body"]["dedup_key"] == "remediate-INC-1"
    harness.wait_card("INC-1", lambda blocks: "executed" in blocks)
    assert harness.world.applied == []  # escalate did not go to the default (sim) executor
