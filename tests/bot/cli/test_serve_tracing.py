"""`remediate serve` exporting traces over OTLP/HTTP to a real local receiver (docs/observability.md, Traces).

One connected trace runs from the Alertmanager webhook through ranking, the card post, the approval
click and the execution, and the webhook receiver got its ``traceparent``. Disabled or by default,
nothing is exported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bot.sandbox import SandboxOptions, SlackSandbox
from incidents_db.db import make_engine
from remediation.audit.service import entries, verify
from tests.bot.cli.test_serve_cli import _free_port, _health
from tests.bot.cli.test_serve_executors import HOOK_SECRET, _cards, _clean_env
from tests.bot.conftest import ALICE, SECRET
from tests.bot.otlp_receiver import SERVER, OtlpReceiver, ReceivedSpan
from tests.bot.sandbox.conftest import WAIT_S, wait_for
from tests.remediation.executors.receivers import JsonReceiver

ALERT = {
    "version": "4",
    "groupKey": '{}:{alertname="HighErrorRate"}',
    "status": "firing",
    "receiver": "remediate",
    "externalURL": "http://alertmanager.example.com:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": "checkoutservice", "severity": "critical"},
            "annotations": {"summary": "checkout errors"},
            "startsAt": "2026-12-01T10:14:00Z",
            "fingerprint": "trace-fp-1",
        }
    ],
}


@pytest.fixture
def receivers() -> Iterator[tuple[OtlpReceiver, JsonReceiver]]:
    otlp, hook = OtlpReceiver(), JsonReceiver("webhook", secret=HOOK_SECRET)
    yield otlp, hook
    otlp.close()
    hook.close()


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _env(
    tmp_path: Path, sqlite_url: str, sandbox: SlackSandbox, hook: JsonReceiver, **otel: str
) -> dict[str, str]:
    """The serve environment with a webhook executor and only the OTEL_* variables the test sets."""
    env = _clean_env(
        tmp_path,
        sqlite_url,
        SLACK_BOT_TOKEN=sandbox.bot_token,
        SLACK_API_URL=sandbox.api_url,
        REMEDIATE_EXECUTOR="webhook",
        REMEDIATE_WEBHOOK_URL=hook.url,
        REMEDIATE_WEBHOOK_SECRET=HOOK_SECRET,
        REMEDIATE_POLICY="runbook",  # a known top suggestion (restart) that one approval runs
    )
    return {k: v for k, v in env.items() if not k.startswith("OTEL_")} | otel


def _post_alert(base: str) -> dict[str, Any]:
    req = urllib.request.Request(
        base + "/alerts/alertmanager",
        data=json.dumps(ALERT).encode(),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
        return dict(json.loads(resp.read()))


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()  # SIGTERM: serve stops cleanly and flushes its spans
    out, _ = proc.communicate(timeout=60)
    return out


def _one(spans: list[ReceivedSpan], name: str, **attributes: Any) -> ReceivedSpan:
    found = [
        s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert found, f"no span {name} {attributes}; got {sorted({s.name for s in spans})}"
    return found[0]


def test_one_connected_trace_from_alert_to_execution(
    tmp_path: Path, sqlite_url: str, receivers: tuple[OtlpReceiver, JsonReceiver]
) -> None:
    otlp, hook = receivers
    with SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S)) as sandbox:
        env = _env(
            tmp_path, sqlite_url, sandbox, hook,
            OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_BSP_SCHEDULE_DELAY="200",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        )  # fmt: skip
        port = _free_port()
        proc = _serve(env, port)
        try:
            base = f"http://127.0.0.1:{port}"
            _health(base)
            assert _post_alert(base)["created"] == ["INC-1"]
            driver = sandbox.connect_app(base + "/slack/events", SECRET)
            card = wait_for(lambda: next(iter(_cards(sandbox)), None))
            driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id="approve:1")
            assert hook.arrived.wait(WAIT_S), "the approved action never reached the receiver"
            wait_for(lambda: any("executed" in json.dumps(c["blocks"]) for c in _cards(sandbox)))
        finally:
            out = _stop(proc)
    assert proc.returncode in (0, -15), out
    assert otlp.paths and set(otlp.paths) == {"/v1/traces"}
    spans = list(otlp.spans)
    assert {s.service for s in spans} == {"remediate"}

    webhook = next(
        s for s in spans if s.kind == SERVER and "/alerts/alertmanager" in json.dumps(s.attributes)
    )
    trace = [s for s in spans if s.trace_id == webhook.trace_id]
    ids = {s.span_id for s in trace}
    # connected: every span of the trace hangs from another of it, up to the webhook request
    assert [s.name for s in trace if s.parent_id and s.parent_id not in ids] == []
    assert [s for s in trace if not s.parent_id] == [webhook]

    intake = _one(trace, "alerts.intake", **{"remediate.source": "alertmanager"})
    assert (
        intake.attributes["remediate.incident_ids"] == ["INC-1"]
        and intake.attributes["remediate.alerts"] == 1
    )
    ranking = _one(trace, "ranking", **{"remediate.incident_id": "INC-1"})
    assert ranking.attributes["remediate.policy"] and ranking.attributes["remediate.k"] >= 1
    assert ranking.attributes["remediate.top_action"] and 0 <= ranking.attributes["remediate.confidence"] <= 1
    assert "remediate.rank_ms" in ranking.attributes
    _one(trace, "slack chat.postMessage", **{"remediate.answer": "ok"})  # the card
    _one(trace, "guardrails.decide", **{"remediate.stage": "plan"})
    click = _one(trace, "card.approve", **{"remediate.user": ALICE})
    [(click_trace, click_parent)] = click.links  # the click's own request, in its own trace
    assert click_trace != webhook.trace_id
    assert any(s.span_id == click_parent and s.kind == SERVER for s in spans)
    approve = _one(trace, "approval.approve", **{"remediate.actor": ALICE, "remediate.state": "approved"})
    assert approve.parent_id == click.span_id
    _one(trace, "guardrails.decide", **{"remediate.stage": "execute", "remediate.verdict": "allowed"})
    execution = _one(
        trace, "execution", **{"remediate.executor": "webhook", "remediate.outcome": "succeeded"}
    )
    assert execution.attributes["remediate.target"] == hook.received[0]["body"]["target"]
    runner = _one(trace, "action.run", **{"remediate.actor": ALICE})  # the action runner's thread
    assert execution.parent_id == runner.span_id and runner.parent_id == click.span_id
    assert any(s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in trace)  # SQL
    # the automation endpoint's trace joins the bot's: the traceparent of the execution span
    headers = {k.lower(): v for k, v in hook.received[0]["headers"].items()}
    with Session(make_engine(sqlite_url)) as s:  # the audit log names the trace of each decision
        audited = {e.event: e.trace_id for e in entries(db_session=s)}
        assert verify(db_session=s).ok  # the trace ids are hashed with the rest
    assert audited["approve"] == audited["execute"] == audited["outcome"] == webhook.trace_id
    version, trace_id, parent, flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent) == ("00", webhook.trace_id, execution.span_id)
    assert int(flags, 16) & 1  # sampled


@pytest.mark.parametrize(
    "otel",
    [
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
        {},  # OTEL_TRACES_EXPORTER defaults to none
    ],
    ids=["disabled", "default"],
)
def test_nothing_is_exported_unless_asked(
    tmp_path: Path, sqlite_url: str, receivers: tuple[OtlpReceiver, JsonReceiver], otel: dict[str, str]
) -> None:
    otlp, hook = receivers
    with SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S)) as sandbox:
        env = _env(
            tmp_path, sqlite_url, sandbox, hook,
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint, OTEL_BSP_SCHEDULE_DELAY="100", **otel,
        )  # fmt: skip
        port = _free_port()
        proc = _serve(env, port)
        try:
            base = f"http://127.0.0.1:{port}"
            _health(base)
            assert _post_alert(base)["created"] == ["INC-1"]
            wait_for(lambda: next(iter(_cards(sandbox)), None))
        finally:
            _stop(proc)  # a provider would flush every span here
    assert otlp.requests == 0 and otlp.spans == []
    assert hook.received == []  # nothing was approved
