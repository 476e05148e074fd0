"""The PagerDuty executor against a real local HTTP receiver that checks the Events API v2 shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from playbooks.catalog import builtin_catalog
from remediation.errors import ExecutorConfigError
from remediation.executors.base import ExecRequest
from remediation.executors.pagerduty import PagerDutyExecutor, PagerDutySettings, check_spec
from tests.remediation.executors.receivers import JsonReceiver

KEY = "R0UT1NGKEY0123456789abcdef012345"


@pytest.fixture
def pagerduty() -> Iterator[JsonReceiver]:
    receiver = JsonReceiver("pagerduty")
    yield receiver
    receiver.close()


def executor(url: str, sleeps: list[float] | None = None) -> PagerDutyExecutor:
    settings = PagerDutySettings(routing_key=KEY, url=url, timeout_s=5, attempts=3, backoff_s=0.25)
    return PagerDutyExecutor(settings, sleep=(sleeps if sleeps is not None else []).append)


def escalation(request_id: str = "req-1", incident: str | None = "INC-7") -> ExecRequest:
    return ExecRequest(request_id, builtin_catalog().get("escalate"), None, {}, incident)


def test_trigger_reaches_receiver_with_the_events_v2_shape(pagerduty: JsonReceiver) -> None:
    out = executor(pagerduty.url).execute(escalation(), dry_run=False)
    assert out.status == "succeeded", out.detail
    [got] = pagerduty.received
    assert got["problems"] == []
    event = got["body"]
    assert event["routing_key"] == KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "remediate-INC-7"
    assert event["payload"]["source"] == "remediate"
    assert event["payload"]["severity"] == "critical"
    assert "escalate" in event["payload"]["summary"] and "INC-7" in event["payload"]["summary"]
    assert out.data["dedup_key"] == "remediate-INC-7"


def test_same_incident_keeps_one_dedup_key_and_a_request_runs_once(pagerduty: JsonReceiver) -> None:
    pd = executor(pagerduty.url)
    first = pd.execute(escalation("req-1"), dry_run=False)
    assert pd.execute(escalation("req-1"), dry_run=False) == first  # idempotent by request id
    pd.execute(escalation("req-2"), dry_run=False)
    assert [r["body"]["dedup_key"] for r in pagerduty.received] == ["remediate-INC-7", "remediate-INC-7"]


def test_without_incident_the_request_is_the_dedup_key(pagerduty: JsonReceiver) -> None:
    executor(pagerduty.url).execute(escalation("req-9", incident=None), dry_run=False)
    assert pagerduty.received[0]["body"]["dedup_key"] == "remediate-req-9"


def test_dry_run_sends_nothing_and_masks_the_key(pagerduty: JsonReceiver) -> None:
    out = executor(pagerduty.url).execute(escalation(), dry_run=True)
    assert out.status == "dry_run" and pagerduty.received == []
    assert KEY not in out.detail and '"routing_key": "***"' in out.detail


def test_429_is_retried_then_accepted(pagerduty: JsonReceiver) -> None:
    pagerduty.statuses = [429, 202]
    sleeps: list[float] = []
    out = executor(pagerduty.url, sleeps).execute(escalation(), dry_run=False)
    assert out.status == "succeeded" and len(pagerduty.received) == 2 and sleeps == [0.25]


def test_a_400_fails_at_once_with_pagerdutys_reason(pagerduty: JsonReceiver) -> None:
    pagerduty.statuses = [400]
    out = executor(pagerduty.url).execute(escalation(), dry_run=False)
    assert out.status == "failed" and "400" in out.detail and len(pagerduty.received) == 1


def test_unreachable_is_failed_after_retries() -> None:
    sleeps: list[float] = []
    out = executor("http://127.0.0.1:9/v2/enqueue", sleeps).execute(escalation(), dry_run=False)
    assert out.status == "failed" and "gave up after 3 attempts" in out.detail and len(sleeps) == 2


def test_needs_a_routing_key() -> None:
    with pytest.raises(ExecutorConfigError, match="REMEDIATE_PAGERDUTY_ROUTING_KEY"):
        PagerDutyExecutor(PagerDutySettings(routing_key=""))


def test_catalog_severity_is_checked() -> None:
    escalate = builtin_catalog().get("escalate")
    assert check_spec(escalate, {"severity": "warning"}) == []
    assert check_spec(escalate, {"severity": "loud"}) == [
        ("severity", "expected one of critical, error, warning, info")
    ]
