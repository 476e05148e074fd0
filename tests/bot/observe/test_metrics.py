"""GET /metrics of a running app after a scripted incident: the series, promtool's lint, the token, Prometheus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.conftest import Harness, _running
from tests.bot.feeds.promserver import RealPrometheus
from tests.bot.observe.conftest import get, run_promtool, samples, scripted_incident

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "remediate-dashboard.json"
METRICS_TOKEN = "scrape-me-token"


@pytest.fixture
def guarded(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The running app with a bearer token on /metrics."""
    yield from _running(tmp_path, migrated_sqlite_url, metrics_token=METRICS_TOKEN)


def test_metrics_after_a_scripted_incident(db_harness: Harness) -> None:
    harness = db_harness  # the store-derived series are SQL: on SQLite and PostgreSQL
    scripted_incident(harness)
    status, body, kind = get(f"{harness.url}/metrics")
    assert status == 200 and kind.startswith("text/plain")
    found = samples(body.decode())
    policy = harness.services.policy.version
    expected = {
        'remediate_alerts_received_total{source="generic"}': 2.0,  # firing, then resolved
        'remediate_approvals_total{decision="approve"}': 1.0,
        'remediate_executions_total{action="restart_service",outcome="succeeded"}': 1.0,
        "remediate_incidents_open": 0.0,
        "remediate_incidents_suggested": 1.0,
        'remediate_suggestion_acceptance_ratio{top="1"}': 1.0,
        'remediate_suggestion_acceptance_ratio{top="3"}': 1.0,
        "remediate_override_ratio": 0.0,
        f'remediate_policy_success_ratio{{policy="{policy}"}}': 1.0,
        f'remediate_policy_runs_finished{{policy="{policy}"}}': 1.0,
        "remediate_time_to_mitigate_seconds_count": 1.0,
        "remediate_outbox_dead": 0.0,
        "remediate_store_up": 1.0,
    }
    for key, value in expected.items():
        assert found.get(key) == value, (key, found.get(key))
    assert found[f'remediate_suggestions_total{{policy="{policy}"}}'] >= 3
    assert found["remediate_slack_ack_seconds_count"] >= 1  # the approve click was acked
    assert found[f'remediate_policy_info{{name="{harness.services.policy.name}",version="{policy}"}}'] == 1
    assert any(k.startswith('remediate_outbox_deliveries_total{kind="card",result="sent"}') for k in found)


def test_promtool_lints_a_scrape(harness: Harness) -> None:
    scripted_incident(harness)
    _, body, _ = get(f"{harness.url}/metrics")
    done = run_promtool("check", "metrics", stdin=body)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_metrics_token_is_required_when_set(guarded: Harness) -> None:
    assert get(f"{guarded.url}/metrics")[0] == 401
    assert get(f"{guarded.url}/metrics", token="wrong")[0] == 401
    status, body, _ = get(f"{guarded.url}/metrics", token=METRICS_TOKEN)
    assert status == 200 and b"remediate_incidents_open" in body
    assert get(f"{guarded.url}/healthz")[0] == 200  # only /metrics is guarded


def _exported(text: str) -> set[str]:
    """Return every series name a scrape can carry (TYPE lines, with the suffixes of their kinds)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "counter":
            names.add(name if name.endswith("_total") else name + "_total")
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def test_the_dashboard_reads_only_exported_series(harness: Harness) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    _, body, _ = get(f"{harness.url}/metrics")
    exported = _exported(body.decode())
    used = {name for e in exprs for name in re.findall(r"\bremediate_[a-z0-9_]+", e)}
    assert used and not used - exported, sorted(used - exported)
    issue = {"remediate_alerts_received_total", "remediate_incidents_open", "remediate_suggestions_total",
             "remediate_approvals_total", "remediate_executions_total", "remediate_guardrail_denials_total",
             "remediate_outbox_pending", "remediate_outbox_dead", "remediate_policy_info",
             "remediate_snapshot_age_seconds", "remediate_slack_ack_seconds_bucket",
             "remediate_time_to_mitigate_seconds_bucket"}  # fmt: skip
    assert issue <= exported, sorted(issue - exported)


def test_a_real_prometheus_scrapes_the_bot(harness: Harness, tmp_path: Path) -> None:
    target = harness.url.removeprefix("http://")
    prometheus = RealPrometheus(tmp_path / "prometheus", [target])
    try:
        prometheus.wait_for("remediate_store_up == 1")
        scripted_incident(harness)
        found = prometheus.wait_for('remediate_executions_total{outcome="succeeded"} == 1')
        assert found[0]["metric"]["action"] == "restart_service"
        assert prometheus.wait_for('remediate_approvals_total{decision="approve"} == 1')
        assert prometheus.wait_for('remediate_suggestion_acceptance_ratio{top="1"} == 1')
        assert prometheus.wait_for("remediate_time_to_mitigate_seconds_count == 1")
        ack = prometheus.wait_for(
            "histogram_quantile(0.99, sum by (le) (remediate_slack_ack_seconds_bucket)) > 0"
        )
        assert float(ack[0]["value"][1]) > 0
    finally:
        prometheus.stop()
