"""`remediate alerts explain` as a real subprocess on real webhook bodies; a bad file or vocabulary refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.services import build_services
from bot.settings import load_settings
from playbooks.errors import VocabularyError

CRASHLOOP = Path(__file__).parents[1] / "alerts" / "payloads" / "kube-pod-crashlooping.json"


def explain(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_"))}
    env.update({"REMEDIATE_DATA_DIR": str(tmp_path), "HOME": str(tmp_path), "COLUMNS": "250", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "alerts", "explain", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_explain_says_which_label_won_which_were_skipped_and_which_rule_matched(tmp_path: Path) -> None:
    result = explain(tmp_path, str(CRASHLOOP), "--topology", "online-boutique")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "alertmanager webhook, 2 alert(s); graph: online-boutique" in out
    assert "service: carts  (label container; the first usable label in order)" in out
    assert "service=kube-prometheus-stack-kube-state-metrics: skipped, names a monitoring component" in out
    assert "job=kube-state-metrics: skipped, names a monitoring component" in out
    assert "pod=carts-7d9f8b6c5-x2x9z (workload carts)" in out
    assert "signal: ServiceDown  (alert name KubePodCrashLooping (built-in rules." in out
    assert (
        "link runbook: https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
        in out
    )
    assert "link silence: http://alertmanager.example.com:9093/#/silences/new?filter=" in out
    job = out[out.index("alert 1: KubeJobFailed") :]
    assert "signal: none, not understood by the policy" in job
    assert "every label names a monitoring component" in job
    assert "javascript" not in out


def test_explain_json_and_a_team_vocabulary(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("rules: [{alert: KubeJobFailed, signal: ServiceDown}]", encoding="utf-8")
    result = explain(tmp_path, str(CRASHLOOP), "--json", REMEDIATE_ALERT_VOCABULARY_FILE=str(team))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "alertmanager"
    crash, job = doc["alerts"]
    assert (crash["service"], crash["service_label"], crash["signal"]) == (
        "carts",
        "container",
        "ServiceDown",
    )
    assert crash["links"]["runbook"].startswith("https://runbooks.prometheus-operator.dev/")
    assert job["signal"] == "ServiceDown"
    assert job["signal_why"] == f"alert name KubeJobFailed ({team} rules.0)"


def test_explain_reads_the_configured_label_order_and_other_forms(tmp_path: Path) -> None:
    body = tmp_path / "grafana.json"
    body.write_text(
        json.dumps(
            {
                "status": "firing",
                "orgId": 1,
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {
                            "alertname": "Checkout p99 latency high",
                            "app": "checkoutservice",
                            "pod": "x-0",
                        },
                        "annotations": {},
                        "silenceURL": "https://grafana.example.com/alerting/silence/new?matcher=app%3Dcheckoutservice",
                        "dashboardURL": "https://grafana.example.com/d/abc",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    result = explain(tmp_path, str(body), "--json", REMEDIATE_ALERT_SERVICE_LABELS="app,pod")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "grafana"
    (item,) = doc["alerts"]
    assert (item["service"], item["service_label"], item["signal"]) == (
        "checkoutservice",
        "app",
        "HighLatency",
    )
    assert item["links"] == {
        "dashboard": "https://grafana.example.com/d/abc",
        "silence": "https://grafana.example.com/alerting/silence/new?matcher=app%3Dcheckoutservice",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"version": "4", "status": "firing", "alerts": []}', "not a valid alertmanager payload: alerts"),
    ],
)
def test_explain_refuses_a_bad_file_in_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(content)
    result = explain(tmp_path, str(body))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_refuses_a_missing_file_and_a_bad_vocabulary(tmp_path: Path) -> None:
    missing = explain(tmp_path, str(tmp_path / "absent.json"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    bad = tmp_path / "team.yaml"
    bad.write_text("rules: [{alert: X, signal: Slow}]", encoding="utf-8")
    refused = explain(tmp_path, str(CRASHLOOP), REMEDIATE_ALERT_VOCABULARY_FILE=str(bad))
    assert refused.returncode == 1
    assert f"{bad}: rules.0.signal: unknown signal 'Slow'; the policy reads HighErrorRate" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_bot_refuses_to_build_its_services_with_a_bad_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("rules: [{alert: X, signal: Slow}]", encoding="utf-8")
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 's.sqlite'}", alert_vocabulary_file=path)
    with pytest.raises(VocabularyError, match=r"rules\.0\.signal: unknown signal 'Slow'"):
        build_services(settings)


def test_explain_a_pagerduty_incident_links_its_page(tmp_path: Path) -> None:
    body = tmp_path / "pagerduty.json"
    data = {"id": "Q1", "title": "Checkout 5xx error rate high", "service": {"summary": "checkoutservice"}}
    body.write_text(
        json.dumps(
            {
                "event": {
                    "id": "e1",
                    "event_type": "incident.triggered",
                    "resource_type": "incident",
                    "occurred_at": "2026-12-01T10:14:00Z",
                    "data": {**data, "html_url": "https://acme.pagerduty.com/incidents/Q1"},
                }
            }
        ),
        encoding="utf-8",
    )
    result = explain(tmp_path, str(body), "--json")
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)["alerts"]
    assert (item["service"], item["signal"]) == ("checkoutservice", "HighErrorRate")
    assert item["service_why"] == "the payload names the service"
    assert item["links"] == {"source": "https://acme.pagerduty.com/incidents/Q1"}


def test_the_settings_come_from_the_yaml_config_file_too(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("rules: [{alert: KubeJobFailed, signal: ServiceDown}]", encoding="utf-8")
    config = tmp_path / "remediate.yaml"
    config.write_text(
        f"alert_service_labels: [service, container]\nalert_vocabulary_file: {team}\n", encoding="utf-8"
    )
    result = explain(tmp_path, str(CRASHLOOP), "--json", REMEDIATE_CONFIG=str(config))
    assert result.returncode == 0, result.stderr
    crash, job = json.loads(result.stdout)["alerts"]
    assert (crash["service"], crash["service_label"]) == ("carts", "container")
    assert crash["labels_read"][0].startswith("service=kube-prometheus-stack-kube-state-metrics: skipped")
    assert job["signal"] == "ServiceDown"
