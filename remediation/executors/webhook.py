"""The webhook executor: POSTs the action as signed JSON to an automation endpoint.

Headers: ``X-Remediate-Timestamp`` (unix seconds), ``X-Remediate-Signature: sha256=<hex>`` where the
hex is HMAC-SHA256 with the shared secret over ``"<timestamp>.<body>"``, and ``Idempotency-Key`` (the
request id, identical on every retry so the receiver can drop duplicates), and the W3C ``traceparent``
of the bot's trace when one is recording, so the endpoint's own trace joins it. 5xx answers, 429 and
network errors are retried with exponential backoff; 2xx ends it; other 4xx fail at once. A timeout
that never got an answer leaves the outcome ``unknown``: the receiver may have acted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate

from incidents_db.redact import redact_url
from playbooks.models import Action
from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest, Outcome, OutcomeMemo, Status, spec_of

SIGNATURE_HEADER = "X-Remediate-Signature"
TIMESTAMP_HEADER = "X-Remediate-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """Return whether a received signature header matches (constant-time), for receivers and tests."""
    return hmac.compare_digest(sign(secret, timestamp, body), header)


@dataclass(frozen=True)
class WebhookSettings:
    """Where and how to POST: URL, shared secret, per-attempt timeout, attempts, first backoff."""

    url: str
    secret: str
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 0.5


class WebhookExecutor:
    """POSTs each request once (retrying transient failures with the same idempotency key)."""

    kind = "webhook"

    def __init__(self, settings: WebhookSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.url.startswith(("http://", "https://")):
            raise ExecutorError(
                f"webhook URL {redact_url(settings.url)!r} must start with http:// or https://"
            )
        if not settings.secret:
            raise ExecutorError("the webhook executor needs a shared secret to sign requests")
        self.settings = settings
        self._sleep = sleep
        self._memo = OutcomeMemo()

    def _body(self, request: ExecRequest, dry_run: bool) -> bytes:
        payload = {
            "request_id": request.request_id,
            "action": request.action.id,
            "target": request.target,
            "params": dict(request.params),
            "dry_run": dry_run,
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """POST the action (dry run: show the exact request without sending it)."""
        spec = spec_of(request, self.kind)
        url = str(spec.get("url") or self.settings.url)
        body = self._body(request, dry_run)
        stamp = str(int(datetime.now(UTC).timestamp()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.settings.secret, stamp, body),
            IDEMPOTENCY_HEADER: request.request_id,
        }
        shown = f"POST {redact_url(url)} {body.decode()}"  # shown on cards and in the timeline
        if dry_run:
            return Outcome(
                "dry_run", f"would {shown}", (shown,), data={"url": redact_url(url), "headers": headers}
            )
        seen = self._memo.get(request.request_id)
        if seen is not None:
            return seen
        return self._memo.put(request.request_id, self._post(url, body, headers, shown))

    def _post(self, url: str, body: bytes, headers: Mapping[str, str], shown: str) -> Outcome:
        maybe_delivered = False
        last = ""
        where = redact_url(url)
        for attempt in range(1, self.settings.attempts + 1):
            sent = dict(headers)
            propagate.inject(sent)  # traceparent of the execution span: the receiver's trace joins ours
            req = urllib.request.Request(url, data=body, headers=sent, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
                    text = resp.read(4000).decode("utf-8", "replace")
                    return Outcome(
                        "succeeded",
                        f"{where} answered {resp.status} (attempt {attempt})",
                        (shown,),
                        text,
                        {"attempts": attempt},
                    )
            except urllib.error.HTTPError as exc:
                text = exc.read(4000).decode("utf-8", "replace")
                last = f"{where} answered {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    return Outcome(
                        "failed",
                        f"{last}; not retried (attempt {attempt})",
                        (shown,),
                        text,
                        {"attempts": attempt},
                    )
            except TimeoutError:
                maybe_delivered, last = True, f"{where} did not answer within {self.settings.timeout_s:g}s"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    maybe_delivered = True
                last = f"cannot reach {where}: {exc.reason}"
            if attempt < self.settings.attempts:
                self._sleep(self.settings.backoff_s * 2 ** (attempt - 1))
        status: Status = "unknown" if maybe_delivered else "failed"
        return Outcome(
            status,
            f"{last}; gave up after {self.settings.attempts} attempts",
            (shown,),
            data={"attempts": self.settings.attempts},
        )


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's webhook config: an optional ``url`` override."""
    url = spec.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return [("url", "expected an http:// or https:// URL")]
    return []
