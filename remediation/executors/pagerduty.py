"""The PagerDuty executor: an approved action (``escalate``) becomes a PagerDuty Events API v2 trigger.

One event per approved request, ``event_action: trigger``, with the dedup key ``remediate-<incident>``:
escalating the same incident twice updates one PagerDuty alert instead of paging twice. 429, 5xx and
network errors are retried with backoff; 2xx (PagerDuty answers 202) ends it; other 4xx fail at once.
A request that never got an answer leaves the outcome ``unknown``: PagerDuty may have paged.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from incidents_db.redact import redact_url
from playbooks.models import Action
from remediation.errors import ExecutorConfigError
from remediation.executors.base import ExecRequest, Outcome, OutcomeMemo, Status

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")


@dataclass(frozen=True)
class PagerDutySettings:
    """Where to send events: the integration's routing key, the Events API URL, timeout and retries."""

    routing_key: str
    url: str = EVENTS_URL
    source: str = "remediate"
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 0.5


def dedup_key(request: ExecRequest) -> str:
    """Return the event's dedup key: one per incident (per request when it has none)."""
    return f"remediate-{request.incident_id or request.request_id}"


def event_for(request: ExecRequest, settings: PagerDutySettings) -> dict[str, Any]:
    """Return the Events API v2 trigger body for a request."""
    spec = request.action.executors.get("pagerduty") or {}
    severity = str(spec.get("severity", "critical"))
    what = f"{request.action.id} on {request.target}" if request.target else request.action.id
    where = f"incident {request.incident_id}" if request.incident_id else f"request {request.request_id}"
    payload: dict[str, Any] = {
        "summary": f"remediate: {what} approved for {where}; a person is needed"[:1024],
        "source": settings.source,
        "severity": severity,
        "custom_details": {
            "action": request.action.id,
            "target": request.target,
            "params": dict(request.params),
            "incident_id": request.incident_id,
            "request_id": request.request_id,
        },
    }
    if request.target:
        payload["component"] = request.target
    return {
        "routing_key": settings.routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(request),
        "client": "remediate",
        "payload": payload,
    }


class PagerDutyExecutor:
    """Sends one trigger event per request id (retrying transient failures with the same dedup key)."""

    kind = "pagerduty"

    def __init__(self, settings: PagerDutySettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.routing_key:
            raise ExecutorConfigError(
                "the pagerduty executor needs REMEDIATE_PAGERDUTY_ROUTING_KEY (an Events API v2 integration key)"
            )
        if not settings.url.startswith(("http://", "https://")):
            raise ExecutorConfigError(
                f"REMEDIATE_PAGERDUTY_EVENTS_URL {redact_url(settings.url)!r} must start with http:// or https://"
            )
        self.settings = settings
        self._sleep = sleep
        self._memo = OutcomeMemo()

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Send the trigger event (dry run: show it, routing key masked, without sending)."""
        event = event_for(request, self.settings)
        shown_event = {**event, "routing_key": "***"}
        shown = f"POST {redact_url(self.settings.url)} {json.dumps(shown_event, sort_keys=True)}"
        if dry_run:
            return Outcome("dry_run", f"would {shown}", (shown,), data={"event": shown_event})
        seen = self._memo.get(request.request_id)
        if seen is not None:
            return seen
        body = json.dumps(event, sort_keys=True).encode("utf-8")
        return self._memo.put(request.request_id, self._post(body, shown, event["dedup_key"]))

    def _post(self, body: bytes, shown: str, key: str) -> Outcome:
        where = redact_url(self.settings.url)
        maybe_sent, last = False, ""
        for attempt in range(1, self.settings.attempts + 1):
            req = urllib.request.Request(
                self.settings.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
                    text = resp.read(4000).decode("utf-8", "replace")
                    detail = (
                        f"PagerDuty accepted the trigger (dedup key {key}; {resp.status}, attempt {attempt})"
                    )
                    return Outcome(
                        "succeeded", detail, (shown,), text, {"dedup_key": key, "attempts": attempt}
                    )
            except urllib.error.HTTPError as exc:
                text = exc.read(4000).decode("utf-8", "replace")
                last = f"{where} answered {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    data = {"dedup_key": key, "attempts": attempt}
                    return Outcome("failed", f"{last}; not retried: {text[:300]}", (shown,), text, data)
            except TimeoutError:
                maybe_sent, last = True, f"{where} did not answer within {self.settings.timeout_s:g}s"
            except urllib.error.URLError as exc:
                maybe_sent = maybe_sent or isinstance(exc.reason, TimeoutError)
                last = f"cannot reach {where}: {exc.reason}"
            if attempt < self.settings.attempts:
                self._sleep(self.settings.backoff_s * 2 ** (attempt - 1))
        status: Status = "unknown" if maybe_sent else "failed"
        detail = f"{last}; gave up after {self.settings.attempts} attempts"
        return Outcome(status, detail, (shown,), data={"dedup_key": key, "attempts": self.settings.attempts})


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's pagerduty config: an optional ``severity`` PagerDuty knows."""
    severity = spec.get("severity", "critical")
    return [] if severity in SEVERITIES else [("severity", f"expected one of {', '.join(SEVERITIES)}")]
