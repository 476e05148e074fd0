"""Real alert conventions through the running app: service labels, the alert vocabulary, card links.

The payloads are what Alertmanager sends for kube-prometheus-stack's rules (tests/bot/alerts/payloads);
the app, its store, its outbox and the Slack sandbox are the real ones (tests/bot/conftest.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.blockkit import check_blocks
from incidents_db.service import get_record
from remediation.policies.observe import observation_from_record
from sim.observation import FEATURES
from tests.bot.conftest import ALICE, Harness, _running

PAYLOADS = Path(__file__).parent / "payloads"
CRASHLOOP = json.loads((PAYLOADS / "kube-pod-crashlooping.json").read_text(encoding="utf-8"))
TEAM_VOCABULARY = """
version: 1
monitoring_components:
  names: [otel-collector]
rules:
  - alert: CartsQueueBacklog
    signal: Saturated
  - alert: KubePodCrashLooping
    labels: {namespace: batch}
    signal: Saturated
"""


def alertmanager(*alerts: dict[str, Any], group: str = "g") -> dict[str, Any]:
    """An Alertmanager v4 body holding these alerts, as Alertmanager sends it."""
    return {
        "version": "4",
        "groupKey": group,
        "status": "firing",
        "receiver": "remediate",
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": list(alerts),
    }


def alert(name: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "severity": "warning", **labels},
        "annotations": {},
        "startsAt": "2026-12-01T10:14:00Z",
        "fingerprint": fingerprint,
    }


def post(harness: Harness, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = harness.post_alert("alertmanager", body)
    assert status == 200, answer
    assert answer["refused"] == [], answer
    return answer


def record_of(harness: Harness, incident_id: str) -> dict[str, Any]:
    with harness.services.sessions() as s:
        return get_record(db_session=s, incident_id=incident_id)


def alert_services(harness: Harness, incident_id: str) -> dict[str, str]:
    """Alert name -> the service its timeline event is pinned on."""
    events = record_of(harness, incident_id)["events"]
    return {e["name"]: e["service"] for e in events if e["type"] == "alert"}


def card_text(harness: Harness, incident_id: str, contains: str) -> str:
    card = harness.wait_card(incident_id, lambda blocks: contains in blocks)
    assert check_blocks(card["blocks"]) == []
    return json.dumps(card["blocks"])


def test_the_kube_pod_crashlooping_alert_is_pinned_on_carts_with_its_links(harness: Harness) -> None:
    answer = post(harness, CRASHLOOP)
    (incident_id,) = answer["incidents"]
    # service: kube-prometheus-stack-kube-state-metrics and job: kube-state-metrics name the monitoring
    # stack; container: carts names the workload
    pinned = alert_services(harness, incident_id)
    assert pinned["KubePodCrashLooping"] == "carts"
    blocks = card_text(harness, incident_id, "Links")
    assert "KubePodCrashLooping* on `carts`" in blocks
    runbook = "<https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping|runbook>"
    assert runbook in blocks
    assert "<http://kube-prometheus-stack-prometheus.monitoring:9090/graph?g0.expr=" in blocks
    assert "|dashboard>" in blocks and "<https://grafana.example.com/d/" in blocks
    silence = (
        "<http://alertmanager.example.com:9093/#/silences/new?filter=%7Balertname%3D%22KubePodCrashLooping%22"
    )
    assert silence in blocks
    assert "pod%3D%22carts-7d9f8b6c5-x2x9z%22" in blocks  # the silence matches exactly this alert's labels
    # the second alert's runbook_url and generatorURL are javascript: URLs: not linked, not even shown
    assert "javascript" not in blocks.lower()


def test_an_unknown_alert_is_kept_and_shown_as_not_understood_by_the_policy(harness: Harness) -> None:
    answer = post(harness, CRASHLOOP)
    (incident_id,) = answer["incidents"]
    blocks = card_text(harness, incident_id, "not understood by the policy")
    job_line = next(line for line in blocks.split("\\n") if "KubeJobFailed" in line)
    assert "not understood by the policy" in job_line
    crash_line = next(line for line in blocks.split("\\n") if "KubePodCrashLooping" in line)
    assert "not understood" not in crash_line
    # it stays on the timeline; with every label naming kube-state-metrics, the alert is about that component
    assert alert_services(harness, incident_id)["KubeJobFailed"] == "kube-state-metrics"
    # and /remediate status says so too
    harness.command(ALICE, f"status {incident_id}")
    status = harness.wait_ephemeral(ALICE, "Latest timeline")
    assert "KubeJobFailed* on `kube-state-metrics` · _not understood by the policy_" in status


def test_a_label_naming_a_monitoring_component_is_skipped(harness: Harness) -> None:
    body = alertmanager(
        alert("TargetDown", "t1", service="kube-prometheus-stack-kubelet", job="kubelet", app="frontend"),
        alert("TargetDown", "t2", service="prometheus", job="checkoutservice"),
    )
    answer = post(harness, {**body, "groupKey": ""})
    pinned = {
        e["fingerprint"]: e["service"]
        for incident_id in answer["incidents"]
        for e in record_of(harness, incident_id)["events"]
        if e["type"] == "alert"
    }
    assert pinned == {"t1": "frontend", "t2": "checkoutservice"}


def test_a_pod_name_maps_to_its_workload(harness: Harness) -> None:
    body = alertmanager(
        alert("KubePodNotReady", "p1", pod="checkoutservice-7d9f8b6c5-x2x9z", namespace="shop"),
        alert("KubePodNotReady", "p2", pod="redis-cart-0", namespace="shop"),  # a StatefulSet's pod
        group="",
    )
    answer = post(harness, body)
    services = {tuple(record_of(harness, i)["services"]) for i in answer["incidents"]}
    assert services == {("checkoutservice",), ("redis-cart",)}


def test_a_value_naming_a_graph_node_wins_over_one_that_does_not(harness: Harness) -> None:
    # container comes before app in the order, but "server" is no node of the graph; cartservice is
    answer = post(harness, alertmanager(alert("HighCPU", "g1", container="server", app="cartservice")))
    (incident_id,) = answer["incidents"]
    assert alert_services(harness, incident_id) == {"HighCPU": "cartservice"}


def test_the_configured_label_order_is_read(tmp_path: Path, sqlite_url: str) -> None:
    for h in _running(tmp_path, sqlite_url, alert_service_labels="app,container"):
        answer = post(h, alertmanager(alert("HighCPU", "o1", container="frontend", app="checkoutservice")))
        assert alert_services(h, answer["incidents"][0]) == {"HighCPU": "checkoutservice"}


def test_a_mapped_real_alert_reaches_the_policy_as_its_signal(harness: Harness) -> None:
    # KubePodCrashLooping carries ServiceDown: the runbook restarts the crashing service. The same alert
    # under a name no rule knows reaches the policy as nothing: only the fallback (wait, escalate) is left.
    mapped = post(harness, alertmanager(alert("KubePodCrashLooping", "m1", container="cartservice")))
    blocks = card_text(harness, mapped["incidents"][0], "restart_service on cartservice")
    assert "not understood" not in blocks
    # the policy's input itself: the observation of the stored incident, with and without the vocabulary
    record = record_of(harness, mapped["incidents"][0])
    now = harness.services.clock()
    row = FEATURES.index("alert_ServiceDown")
    for signal_of, fired in ((harness.services.vocabulary.signal_of, 1.0), (None, 0.0)):
        observation, _ = observation_from_record(
            record, topology=harness.services.topology, now=now, signal_of=signal_of
        )
        assert observation.nodes[observation.services.index("cartservice"), row] == fired
    unmapped = post(harness, alertmanager(alert("CartPodsLookUnwell", "u1", container="frontend"), group="u"))
    blocks = card_text(harness, unmapped["incidents"][0], "not understood by the policy")
    assert "restart_service" not in blocks
    assert "1. wait" in blocks or "1. escalate" in blocks


@pytest.fixture
def team_harness(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The running app with a team vocabulary file beside the built-in one."""
    vocabulary = tmp_path / "team-vocabulary.yaml"
    vocabulary.write_text(TEAM_VOCABULARY, encoding="utf-8")
    yield from _running(tmp_path, migrated_sqlite_url, alert_vocabulary_file=vocabulary)


def test_a_team_vocabulary_extends_the_built_in_one(team_harness: Harness) -> None:
    h = team_harness
    own = post(h, alertmanager(alert("CartsQueueBacklog", "q1", app="cartservice")))
    blocks = card_text(h, own["incidents"][0], "CartsQueueBacklog")
    assert "not understood" not in blocks
    assert h.services.vocabulary.signal_of("CartsQueueBacklog", {}) == "Saturated"
    # the built-in rules still hold; the team's rule with a label condition is tried first
    assert h.services.vocabulary.signal_of("KubePodCrashLooping", {}) == "ServiceDown"
    assert h.services.vocabulary.signal_of("KubePodCrashLooping", {"namespace": "batch"}) == "Saturated"
    # and its monitoring components are skipped like the built-in ones
    skipped = post(
        h, alertmanager(alert("HighCPU", "c1", service="otel-collector", job="frontend"), group="c")
    )
    assert alert_services(h, skipped["incidents"][0]) == {"HighCPU": "frontend"}


def test_silence_links_only_for_http_external_urls(harness: Harness) -> None:
    body = copy.deepcopy(alertmanager(alert("HighCPU", "s1", app="frontend")))
    body["externalURL"] = "javascript:alert(1)//"
    answer = post(harness, body)
    events = record_of(harness, answer["incidents"][0])["events"]
    assert all("links" not in e for e in events if e["type"] == "alert")
