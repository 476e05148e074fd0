"""/metrics of `remediate serve` in two processes: the front merges the work process's series into its own.

Real processes (the `served` fixture of test_handoff): a click handled in the work process shows on the
front's /metrics, each family once, the output parses (and passes promtool's lint where it is
installed); with the work process killed /metrics still answers, the work process marked down.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from tests.bot.app import test_handoff
from tests.bot.app.test_handoff import Served
from tests.bot.cli.test_serve_executors import _cards
from tests.bot.conftest import ALICE
from tests.bot.observe.conftest import get, samples
from tests.bot.sandbox.conftest import WAIT_S, wait_for

served = test_handoff.served  # the fixture: `remediate serve`, front and work process


def _scrape(served: Served) -> str:
    status, body, _ = get(served.base + "/metrics")
    assert status == 200
    return body.decode()


def _down(text: str) -> str | None:
    return text if samples(text)["remediate_work_process_up"] == 0.0 else None


def _families_once(text: str) -> set[str]:
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                              timeout=120, check=False)  # fmt: skip
        assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()
    return set(names)


def test_the_work_process_series_are_on_the_front_s_metrics(served: Served) -> None:
    card = served.alert()  # intake in the front; rendered, posted (outbox) in the work process
    served.driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id="approve:1")
    assert served.hook.arrived.wait(WAIT_S), "the approved action never reached the receiver"
    wait_for(lambda: any("executed" in str(c["blocks"]) for c in _cards(served.sandbox)))
    approved = 'remediate_approvals_total{decision="approve"}'
    found = wait_for(lambda: (s := samples(_scrape(served))).get(approved) and s)
    assert found[approved] == 1.0  # counted in the work process
    assert found['remediate_alerts_received_total{source="generic"}'] == 1.0  # counted in the front
    assert any(k.startswith("remediate_outbox_deliveries_total{") and 'result="sent"' in k for k in found)
    assert found["remediate_work_process_up"] == 1.0 and found["remediate_store_up"] == 1.0
    assert found["remediate_incidents_open"] == 1.0  # the store collector, read once (the front's)
    names = _families_once(_scrape(served))
    assert {"remediate_approvals", "remediate_slack_ack_seconds", "remediate_store_up"} <= names


def test_with_the_work_process_killed_metrics_still_answers(served: Served) -> None:
    work = served.health()["work_process"]
    wait_for(lambda: samples(_scrape(served)).get("remediate_work_process_up") == 1.0)
    os.kill(work["pid"], signal.SIGKILL)
    text = wait_for(lambda: _down(_scrape(served)))
    found = samples(text)
    assert found["remediate_store_up"] == 1.0 and "remediate_slack_ack_seconds_count" in found
    _families_once(text)
    # the restarted process answers again
    wait_for(lambda: samples(_scrape(served)).get("remediate_work_process_up") == 1.0)
