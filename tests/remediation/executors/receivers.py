"""Real local HTTP receivers for executor tests: a PagerDuty Events API v2 stand-in and a webhook endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from remediation.executors.pagerduty import SEVERITIES
from remediation.executors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


def pagerduty_problems(event: Any) -> list[str]:
    """Return what is wrong with an Events API v2 body, as PagerDuty's own 400 answer would say."""
    if not isinstance(event, dict):
        return ["body is not a JSON object"]
    problems = [
        f"missing {key}" for key in ("routing_key", "event_action", "dedup_key") if not event.get(key)
    ]
    if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        problems.append("event_action must be trigger, acknowledge or resolve")
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return [*problems, "missing payload"]
    problems += [
        f"missing payload.{key}" for key in ("summary", "source", "severity") if not payload.get(key)
    ]
    if payload.get("severity") not in SEVERITIES:
        problems.append("payload.severity must be critical, error, warning or info")
    if len(str(payload.get("summary", ""))) > 1024:
        problems.append("payload.summary is longer than 1024 characters")
    return problems


class JsonReceiver:
    """A real HTTP server on 127.0.0.1 that records JSON POSTs and answers with scripted statuses.

    ``mode="pagerduty"`` checks each body like the Events API v2 (400 with the problems, else 202);
    ``mode="webhook"`` checks the remediate signature with ``secret`` (401 when it does not match).
    """

    def __init__(self, mode: str, *, secret: str = "", statuses: list[int] | None = None) -> None:
        self.mode, self.secret = mode, secret
        self.statuses = list(statuses or [])
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = receiver.answer(body, dict(self.headers.items()))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Record one request and return (status, JSON answer)."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        record: dict[str, Any] = {"body": parsed, "headers": headers, "problems": []}
        if self.mode == "pagerduty":
            record["problems"] = pagerduty_problems(parsed)
        else:
            ok = verify_signature(
                self.secret, headers.get(TIMESTAMP_HEADER, ""), body, headers.get(SIGNATURE_HEADER, "")
            )
            record["problems"] = [] if ok else ["bad signature"]
        self.received.append(record)
        if record["problems"]:
            return (400 if self.mode == "pagerduty" else 401), {
                "status": "invalid",
                "errors": record["problems"],
            }
        status = self.statuses.pop(0) if self.statuses else (202 if self.mode == "pagerduty" else 200)
        key = parsed.get("dedup_key") if isinstance(parsed, dict) else None
        return status, {"status": "success" if status < 300 else "error", "dedup_key": key}

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
