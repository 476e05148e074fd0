"""A real Prometheus Alertmanager delivers the issue's KubePodCrashLooping alert: pinned on carts, linked.

Alertmanager adds what only it knows (``externalURL``, the group); the card's silence link starts at
that URL and matches exactly the alert's labels. Needs ``prometheus-alertmanager`` (see
test_alertmanager.py for the install hint and ``REMEDIATE_TEST_ALERTMANAGER=off``).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

from incidents_db import incidents
from tests.bot.alerts.test_alertmanager import alertmanager
from tests.bot.alerts.test_conventions import CRASHLOOP, alert_services, card_text
from tests.bot.conftest import TOKEN, Harness
from tests.bot.sandbox.conftest import wait_for

__all__ = ["alertmanager"]  # the fixture


def test_alertmanager_delivers_a_kube_prometheus_alert_pinned_on_its_workload(
    harness: Harness, alertmanager: Callable[[str, str], str]
) -> None:
    am_url = alertmanager(harness.url, TOKEN)
    sent = [{k: a[k] for k in ("labels", "annotations", "generatorURL")} for a in CRASHLOOP["alerts"]]
    request = urllib.request.Request(
        am_url + "/api/v2/alerts",
        data=json.dumps(sent).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200

    def incident() -> str | None:
        with harness.services.sessions() as s:
            found = incidents.open_for_service(db_session=s, service="carts")
            return found.id if found is not None else None

    incident_id = str(wait_for(incident))
    wait_for(lambda: len(alert_services(harness, incident_id)) == 2)
    assert alert_services(harness, incident_id) == {
        "KubePodCrashLooping": "carts",
        "KubeJobFailed": "kube-state-metrics",
    }
    blocks = card_text(harness, incident_id, "/#/silences/new?filter=")
    assert "/#/silences/new?filter=%7Balertname%3D%22KubePodCrashLooping%22" in blocks
    assert (
        "<https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping|runbook>" in blocks
    )
    assert "not understood by the policy" in blocks
    assert "javascript" not in blocks.lower()
