"""Where the live world's alerts go: the bot's Alertmanager webhook, or a real Alertmanager's API.

Both sinks speak the wire formats of the real thing, so the demo and the tests exercise the same intake
path an operator's Prometheus would: the webhook version 4 body (``POST /alerts/alertmanager`` on the
bot, bearer token) or Alertmanager's own ``POST /api/v2/alerts`` (it then groups and calls the bot).
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

log = logging.getLogger("remediate.demo.alerts")


class SimAlert(NamedTuple):
    """One alert of the simulated world as it is sent: name, service, status and when."""

    name: str
    service: str
    status: str  # firing | resolved
    severity: str
    summary: str
    starts_at: datetime
    ends_at: datetime | None
    topology: str
    incident: int
    error_rate: float

    @property
    def labels(self) -> dict[str, str]:
        """Return the Prometheus labels of the alert."""
        return {
            "alertname": self.name,
            "service": self.service,
            "severity": self.severity,
            "topology": self.topology,
            "source": "remediate-sim",
        }

    @property
    def fingerprint(self) -> str:
        """Return a fingerprint stable for this alert within one simulated incident."""
        raw = f"{self.topology}\x1f{self.incident}\x1f{self.name}\x1f{self.service}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


class AlertSink(Protocol):
    """Receives the alerts that started or stopped firing; answers whether they were delivered."""

    def send(self, alerts: Sequence[SimAlert], *, group: str) -> bool:
        """Deliver one batch (one group); return False to have the world try again later."""
        ...


def _post(url: str, body: Any, headers: dict[str, str], timeout: float) -> bool:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except urllib.error.HTTPError as exc:
        log.warning(
            "POST to %s refused: HTTP %s %s", url, exc.code, exc.read()[:300].decode(errors="replace")
        )
    except (OSError, urllib.error.URLError) as exc:
        log.warning("POST to %s not delivered: %s", url, exc)
    return False


def _iso(at: datetime | None) -> str:
    return at.isoformat().replace("+00:00", "Z") if at is not None else "0001-01-01T00:00:00Z"


def webhook_body(alerts: Sequence[SimAlert], *, group: str, receiver: str = "remediate") -> dict[str, Any]:
    """Return an Alertmanager webhook (version 4) body for one group of alerts."""
    firing = any(a.status == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": f'{{}}:{{group="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": {"group": group},
        "commonLabels": {"source": "remediate-sim"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1/remediate-sim",
        "alerts": [
            {
                "status": a.status,
                "labels": a.labels,
                "annotations": {"summary": a.summary, "error_rate": f"{a.error_rate:.3f}"},
                "startsAt": _iso(a.starts_at),
                "endsAt": _iso(a.ends_at),
                "generatorURL": f"http://127.0.0.1/remediate-sim/{a.topology}",
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }


class SnapshotSink(Protocol):
    """Receives metric snapshots (the `POST /snapshots` form); answers whether they were delivered."""

    def send_snapshots(self, snapshots: Sequence[Mapping[str, Any]]) -> bool:
        """Deliver the snapshots; return False to have the world try again later."""
        ...


class SnapshotWebhook:
    """Posts metric snapshots to the bot (``<bot>/snapshots``) with the alerts bearer token."""

    def __init__(self, url: str, *, token: str | None, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send_snapshots(self, snapshots: Sequence[Mapping[str, Any]]) -> bool:
        """Post ``{"snapshots": [...]}``; True on a 2xx answer (nothing to send counts as sent)."""
        if not snapshots:
            return True
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return _post(self.url, {"snapshots": list(snapshots)}, headers, self.timeout)


class WebhookSink:
    """Posts Alertmanager webhook bodies to the bot (``<bot>/alerts/alertmanager``) with a bearer token."""

    def __init__(self, url: str, *, token: str | None, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send(self, alerts: Sequence[SimAlert], *, group: str) -> bool:
        """Post one webhook body; True on a 2xx answer."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return _post(self.url, webhook_body(alerts, group=group), headers, self.timeout)


class AlertmanagerApiSink:
    """Posts alerts to a real Alertmanager (``<alertmanager>/api/v2/alerts``), which notifies the bot."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.timeout = timeout

    def send(self, alerts: Sequence[SimAlert], *, group: str) -> bool:
        """Post the alerts (resolved ones with ``endsAt`` now); True on a 2xx answer."""
        body = [
            {
                "labels": {**a.labels, "group": group},
                "annotations": {"summary": a.summary},
                "startsAt": _iso(a.starts_at),
                **({"endsAt": _iso(a.ends_at)} if a.status == "resolved" else {}),
                "generatorURL": f"http://127.0.0.1/remediate-sim/{a.topology}",
            }
            for a in alerts
        ]
        return _post(self.url, body, {}, self.timeout)
