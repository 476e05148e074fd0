"""The monitoring stack of the end-to-end test: a real Prometheus and a real Alertmanager, as a cluster runs them.

`ClusterPrometheus` scrapes a `WorldServer` with the jobs kube-prometheus-stack defines
(``kube-state-metrics``, ``kubelet`` with ``metrics_path="/metrics/cadvisor"``, Istio's ``envoy-stats``),
every second, evaluates a rules file every second and sends its alerts to an Alertmanager.
`shortened_rules` writes the shipped rules with their ``for:`` and range windows shortened to seconds, so a
test sees alerts fire and resolve in seconds instead of quarter hours. `ClusterAlertmanager` routes
everything to the bot's Alertmanager webhook except ``Watchdog``, which goes to a null receiver, as a
team's Alertmanager does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.bot.feeds.promserver import RealPrometheus, free_port, stop_process
from tests.bot.sandbox.conftest import wait_for

AM_OPT_OUT = "REMEDIATE_TEST_ALERTMANAGER"


def shortened_rules(
    shipped: Path,
    out: Path,
    *,
    hold: str = "2s",
    window: str = "10s",
    keep: tuple[str, ...] = ("TargetDown",),
) -> Path:
    """Write ``shipped`` with every ``for:`` set to ``hold`` and every range window to ``window``.

    The rules in ``keep`` keep their ``for:``: a scrape that misses its one-second deadline on a busy
    machine must not page, as it does not in a cluster (TargetDown waits 10 minutes).
    """
    rules = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[\d+[smhd]\]", f"[{window}]", rule["expr"])
            if "for" in rule and rule.get("alert") not in keep:
                rule["for"] = hold
    out.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return out


def _scrape_configs(target: str) -> str:
    jobs = [
        {
            "job_name": "kube-state-metrics",
            "honor_labels": True,
            "metrics_path": "/metrics/kube-state",
            "static_configs": [
                {"targets": [target], "labels": {"service": "kube-prometheus-stack-kube-state-metrics"}}
            ],
        },
        {
            "job_name": "kubelet",
            "honor_labels": True,
            "metrics_path": "/metrics/cadvisor",
            "static_configs": [
                {
                    "targets": [target],
                    "labels": {
                        "service": "kube-prometheus-stack-kubelet",
                        "metrics_path": "/metrics/cadvisor",
                    },
                }
            ],
        },
        {
            "job_name": "envoy-stats",
            "metrics_path": "/metrics/istio",
            "static_configs": [{"targets": [target]}],
        },
    ]
    return json.dumps(jobs)


class ClusterPrometheus(RealPrometheus):
    """A prometheus process scraping the world's three jobs and alerting to ``alertmanager``."""

    def __init__(self, directory: Path, target: str, *, rules: Path, alertmanager: str) -> None:
        # YAML is a superset of JSON: each section is written as JSON, so nothing needs quoting by hand.
        self._launch(
            directory,
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{json.dumps(str(rules))}]\n"
            "alerting:\n  alertmanagers:\n"
            f"    - static_configs: [{{targets: [{json.dumps(alertmanager)}]}}]\n"
            f"scrape_configs: {_scrape_configs(target)}\n",
            "--rules.alert.resend-delay=1s",
        )

    def alerts(self) -> list[dict[str, object]]:
        """Return the alerts Prometheus holds now (pending and firing), empty when it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/api/v1/alerts", timeout=5) as resp:
                return list(json.loads(resp.read())["data"]["alerts"])
        except (OSError, ValueError, KeyError):
            return []


def alertmanager_binary() -> str:
    """Return Alertmanager's path; skip on opt-out, fail with the install instruction when it is missing."""
    if os.environ.get(AM_OPT_OUT, "").lower() == "off":
        pytest.skip(f"{AM_OPT_OUT}=off")
    path = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if path is None:
        pytest.fail(
            "prometheus-alertmanager is not installed: run `sudo bash deploy/ci/install-system-deps.sh` "
            f"(or set {AM_OPT_OUT}=off to skip this test)"
        )
    return path


def alertmanager_config(bot_url: str, token: str) -> str:
    """Return an Alertmanager config that sends every alert but Watchdog to the bot (README's receiver)."""
    return f"""
route:
  receiver: remediate
  group_by: [namespace, alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: "null"
      matchers: ['alertname = "Watchdog"']
receivers:
  - name: "null"
  - name: remediate
    webhook_configs:
      - url: {bot_url}/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


class ClusterAlertmanager:
    """A prometheus-alertmanager process delivering to the bot; stop() ends it."""

    def __init__(self, directory: Path, bot_url: str, token: str) -> None:
        binary = alertmanager_binary()
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "alertmanager.yml"
        config.write_text(alertmanager_config(bot_url, token), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "alertmanager.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--web.external-url={self.url}",  # the bot's silence links point here
                    "--cluster.listen-address=",  # no gossip port: a single local instance
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        """Wait until /-/ready answers; fail with the log when the process exits."""

        def ready() -> bool:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(ready)

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and reap it."""
        stop_process(self.proc, timeout_s=10)
