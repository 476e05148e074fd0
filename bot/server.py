"""The HTTP face: Slack, health, alert webhooks (/alerts/<source>), metric snapshots (/snapshots), changes.

Deploys and config changes arrive at /events/deploy (`bot.alerts.change_intake`).

Slack's requests arrive at /slack/events and health at /healthz, /livez and /readyz; Prometheus scrapes
/metrics (docs/observability.md). With OAuth on, /slack/install starts an install into a workspace and
/slack/oauth_redirect is where Slack sends the person back (docs/slack.md).

In Socket Mode Slack's requests arrive over the websocket instead, so /slack/events answers 404 with
a message saying so; health and alert intake are served the same in both modes.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import trigger, wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from bot import tracing
from bot.alerts.auth import authenticate
from bot.alerts.change_intake import handle_change_event
from bot.alerts.errors import AlertError, AllRefusedError
from bot.alerts.intake import IntakeResult, ingest
from bot.alerts.models import Delivery, decode_json, parse_alerts
from bot.alerts.resolve import resolver_for
from bot.alerts.snapshots import SnapshotResult, ingest_snapshots, parse_snapshots
from bot.app.app import RemediateApp, error_text
from bot.observe.collect import exposition
from bot.observe.health import Readiness, telemetry_health
from bot.observe.merge import merged
from bot.services import Services
from incidents_db import db, outbox
from incidents_db.snapshots import kept_summary
from remediation.executors.routing import describe
from remediation.registry.live import LivePolicy

log = logging.getLogger("remediate.http")
SOURCES = ("alertmanager", "pagerduty", "grafana", "generic")
OAUTH_PATHS = ("/slack/install", "/slack/oauth_redirect")  # Bolt's defaults, as in the app's Redirect URLs
SNAPSHOTS = "snapshots"  # POST /snapshots: metric snapshots, authenticated like the alert sources
Intake = Callable[[Services, str, Any], tuple[IntakeResult | SnapshotResult, Delivery[Any]]]


def _alerts(services: Services, source: str, body: Any) -> tuple[IntakeResult, Delivery[Any]]:
    delivery = parse_alerts(source, body, resolver_for(services))
    return ingest(services, delivery.accepted), delivery


def _snapshots(services: Services, _source: str, body: Any) -> tuple[SnapshotResult, Delivery[Any]]:
    delivery = parse_snapshots(body, now=services.clock())
    return ingest_snapshots(services, delivery.accepted), delivery


# what each delivery goes through once authenticated and decoded: (services, source, body) -> (result,
# the parsed delivery with its refused items); the accepted items are committed, the refused named
_INTAKES: dict[str, Intake] = {**dict.fromkeys(SOURCES, _alerts), SNAPSHOTS: _snapshots}
MAX_BODY = 1_000_000
HTTP_THREADS = 8
SWITCH_INTERVAL_S = 0.001
StartResponse = Callable[..., Any]


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(start: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


_REASONS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
            405: "405 Method Not Allowed", 413: "413 Payload Too Large", 415: "415 Unsupported Media Type",
            422: "422 Unprocessable Entity", 500: "500 Internal Server Error", 503: "503 Service Unavailable"}  # fmt: skip


class Server:
    """A WSGI application routing Slack, health and alert requests; one per process."""

    def __init__(self, app: RemediateApp, *, alerts_token: str | None, socket_mode: bool = False) -> None:
        self.app = app
        self.slack = SlackRequestHandler(app.bolt)
        self.alerts_token = alerts_token
        self.socket_mode = socket_mode
        token = app.services.settings.metrics_token
        self.metrics_token = token.get_secret_value() if token is not None else None
        self.work_series: bytes | None = None  # the work process's last /metrics answer (bot.observe.merge)
        self.readiness = Readiness(app.services, app.bolt.client.auth_test if app.bolt.client.token else None)

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        """Route one request."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events":
            if self.socket_mode:
                return _json(
                    start,
                    _REASONS[404],
                    {"ok": False, "error": "this app runs in Socket Mode: Slack's requests come over the "
                     "websocket, not to /slack/events"},
                )  # fmt: skip
            return self.slack_request(environ, start)
        if path in OAUTH_PATHS:  # the install flow (docs/slack.md): Bolt's OAuthFlow, GET only
            if self.app.bolt.oauth_flow is None:
                return _json(start, _REASONS[404], {"ok": False, "error": "OAuth install is off: set "
                             "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (single-token mode)"})  # fmt: skip
            if method != "GET":
                return _json(start, _REASONS[405], {"ok": False, "error": f"GET {path}"})
            return self.slack(environ, start)  # type: ignore[no-any-return]
        if path == "/healthz":
            return self.health(start)
        if path in _PROBES:
            return _PROBES[path](self, environ, start)
        if path.startswith("/alerts/"):
            if method != "POST":
                return _json(start, _REASONS[405], {"ok": False, "error": "POST the alert payload"})
            return self.intake(path.removeprefix("/alerts/").strip("/"), environ, start)
        if path.rstrip("/") == "/snapshots":
            if method != "POST":
                return _json(start, _REASONS[405], {"ok": False, "error": "POST the metric snapshots"})
            return self.intake(SNAPSHOTS, environ, start)
        if path.rstrip("/") == "/events/deploy":
            if method != "POST":
                return _json(start, _REASONS[405], {"ok": False, "error": "POST the change event"})
            return self.change_event(environ, start)
        return _json(start, _REASONS[404], {"ok": False, "error": f"no route {path}"})

    def slack_request(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        """Hand a request to Bolt; a body Bolt cannot even read (a forged shape) is a 400, not a 500."""
        began = time.perf_counter()
        try:
            # process_before_response: the HTTP answer is the ack, so its time is the ack's
            return self.slack(environ, start)  # type: ignore[no-any-return]
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # Bolt reads ids out of the payload (channel, user, team) before it checks the signature and
            # before any listener runs, and fails on shapes Slack never sends ("channel": false).
            log.warning("malformed Slack request refused: %s: %s", type(exc).__name__, exc)
            return _json(start, _REASONS[400], {"ok": False, "error": "malformed Slack request"})
        finally:
            self.app.services.metrics.slack_ack.observe(time.perf_counter() - began)

    def metrics(self, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        """Answer GET /metrics in the Prometheus text format; 401 without the bearer token when one is set."""
        if self.metrics_token is not None:
            given = str(environ.get("HTTP_AUTHORIZATION", ""))
            if not hmac.compare_digest(given.encode(), f"Bearer {self.metrics_token}".encode()):
                return _json(
                    start, _REASONS[401], {"ok": False, "error": "GET /metrics needs the bearer token"}
                )
        data = exposition(self.app.services)
        if self.app.handoff is not None:  # the front: the work process's series too (bot.observe.merge)
            fresh = self.app.handoff.scrape()
            self.work_series = fresh if fresh is not None else self.work_series
            data = merged(data, self.work_series, answered=fresh is not None)
        start(_REASONS[200], [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))])
        return [data]

    def livez(self, _environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        """Answer 200 while the process serves requests."""
        return _json(start, _REASONS[200], {"ok": True})

    def readyz(self, _environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        """Answer 200 when store, schema and Slack token check out; 503 naming what does not."""
        ready, checks = self.readiness.check()
        return _json(start, _REASONS[200 if ready else 503], {"ok": ready, "checks": checks})

    def health(self, start: StartResponse) -> list[bytes]:
        """Answer 200 with outbox counts, dead letters and the oldest undelivered age; 503 without a store."""
        try:
            with self.app.services.sessions() as s:
                db.ping(db_session=s)
                counts: dict[str, Any] = dict(outbox.counts(db_session=s))
                oldest = outbox.oldest_pending(db_session=s)
                kept, newest = kept_summary(db_session=s)
            telemetry = telemetry_health(self.app.services)
        except Exception as exc:
            return _json(
                start, _REASONS[503], {"ok": False, "error": f"store unavailable: {type(exc).__name__}"}
            )
        policy = self.app.services.policy
        # dead letters stay until delivered (retried on a schedule and when Slack answers again)
        age = (self.app.services.clock() - oldest).total_seconds() if oldest is not None else None
        counts["oldest_pending_age_s"] = round(max(0.0, age), 1) if age is not None else None
        handoff = self.app.handoff  # split in two processes: the work process's pid, restarts, queue
        return _json(
            start,
            _REASONS[200],
            {
                "ok": True,
                **({"work_process": handoff.status()} if handoff is not None else {}),
                "outbox": counts,
                "dead_letters": counts["dead"],
                # what ranks (promoted / bundled / runbook), shadow, canary, the last reload check and why it failed
                "policy": policy.status()
                if isinstance(policy, LivePolicy)
                else {"name": policy.name, "version": policy.version},
                "executor": describe(self.app.services.executor),  # kind and per-action routes
                # a feeder that stopped shows as an old newest_received_at
                "snapshots": {"services": int(kept), "newest_received_at": _iso(newest)},
                "topology": _graph_health(self.app.services),  # size, source, last refresh and change
                "telemetry": telemetry,  # services whose snapshots went stale (F7), completeness (M9)
            },
        )

    def intake(self, source: str, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        """Authenticate, parse and commit one delivery of alerts or snapshots; answer what it did."""
        handle = _INTAKES.get(source)
        if handle is None:
            return _json(
                start,
                _REASONS[404],
                {"ok": False, "error": f"unknown alert source {source!r}; use one of {', '.join(SOURCES)}"},
            )
        body, headers = _request(environ)
        if body is None:
            return _json(start, _REASONS[413], {"ok": False, "error": f"body must be 1 to {MAX_BODY} bytes"})
        services = self.app.services
        try:
            authenticate(source, headers, body, token=self.alerts_token, secrets=services.alert_secrets)
            with tracing.span("alerts.intake", source=source) as span:
                result, delivery = handle(services, source, decode_json(body))
                _traced_intake(span, result, delivery)
        except AllRefusedError as exc:
            return _json(start, _REASONS[422], {"ok": False, "error": str(exc), "refused": exc.refused})
        except AlertError as exc:
            return _json(start, _REASONS.get(exc.status, "400 Bad Request"), {"ok": False, "error": str(exc)})
        except Exception as exc:
            return _json(start, _REASONS[500], {"ok": False, "error": error_text(exc)})
        if source in SOURCES:
            services.metrics.alerts_received.labels(source=source).inc(len(delivery.accepted))
        self.app.worker.wake()
        # 200 once anything was accepted (and committed), so a sender does not retry the good ones forever
        return _json(start, _REASONS[200], {"ok": True, **result.as_dict(), **delivery.answer()})

    def change_event(self, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        """Authenticate, parse and commit one deploy or config change (docs/change-events.md)."""
        body, headers = _request(environ)
        if body is None:
            return _json(start, _REASONS[413], {"ok": False, "error": f"body must be 1 to {MAX_BODY} bytes"})
        try:
            result = handle_change_event(self.app.services, headers, body, alerts_token=self.alerts_token)
        except AlertError as exc:
            return _json(start, _REASONS.get(exc.status, "400 Bad Request"), {"ok": False, "error": str(exc)})
        except Exception as exc:
            return _json(start, _REASONS[500], {"ok": False, "error": error_text(exc)})
        self.app.worker.wake()
        return _json(start, _REASONS[200], result.as_dict())


_PROBES: dict[str, Callable[[Server, dict[str, Any], StartResponse], list[bytes]]] = {
    "/metrics": Server.metrics,
    "/livez": Server.livez,
    "/readyz": Server.readyz,
}


def _traced_intake(span: Span, result: IntakeResult | SnapshotResult, delivery: Delivery[Any]) -> None:
    """Name on the intake span what a delivery brought: alerts (or snapshots) accepted, incidents touched."""
    span.set_attribute("remediate.alerts", len(delivery.accepted))
    if isinstance(result, IntakeResult):
        span.set_attribute("remediate.incident_ids", list(result.incidents))
        span.set_attribute("remediate.created", list(result.created))


def _request(environ: dict[str, Any]) -> tuple[bytes | None, dict[str, str]]:
    """Return the body (None when longer than MAX_BODY or of a bad length) and the headers, lower-cased."""
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > MAX_BODY:
        return None, headers
    return (environ["wsgi.input"].read(length) if length else b""), headers


def http_server(
    app: RemediateApp,
    *,
    alerts_token: str | None,
    host: str,
    port: int,
    threads: int = HTTP_THREADS,
    socket_mode: bool = False,
) -> BaseWSGIServer | MultiSocketServer:
    """Return a bound (not yet running) waitress server for the app; `.run()` serves, `.close()` stops.

    The ``threads`` request threads only verify, route and ack (Slack) or ingest (alerts); the work
    after a Slack ack runs on the app's own pool, so it never holds a request thread. With
    ``socket_mode`` it serves health and alerts only (Slack's requests come over the websocket).
    """
    wsgi = Server(app, alerts_token=alerts_token, socket_mode=socket_mode)
    return create_server(tracing.wsgi(wsgi), host=host, port=port, threads=threads)


def stop_server(
    server: BaseWSGIServer | MultiSocketServer,
    *,
    loop: threading.Thread | None = None,
    timeout_s: float = 5.0,
) -> None:
    """Let the requests in service finish (up to ``timeout_s``), then close the server.

    waitress' single-socket ``close()`` closes its wake-up pipe without waiting for its request
    threads, so a request finishing just after (an alert, a snapshot, a Slack retry) hit a closed file
    descriptor and printed a traceback on the way out. When ``server.run()`` still runs in another
    thread (``loop``), the sockets are closed from that thread, through the wake-up pipe, so its
    ``select()`` never sees a descriptor vanish; then the thread is joined.
    """
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_s)
    if loop is None or not loop.is_alive():
        server.close()
        return
    sockets = server.map if isinstance(server, MultiSocketServer) else server._map
    wake = next((d for d in list(sockets.values()) if isinstance(d, trigger.trigger)), None)
    try:
        if wake is None:
            raise OSError("no wake-up pipe")
        wake.pull_trigger(lambda: wasyncore.close_all(sockets))
    except OSError:
        server.close()
    loop.join(timeout_s)


def settle_heap() -> None:
    """Collect once, move every object built so far out of the collector's view, shorten GIL turns.

    Call once, after the app is built and before serving. The long-lived startup objects (catalog,
    topology, policy, ORM mappings) otherwise make every full collection walk all of them: a pause of
    about 100 ms, during which no ack in flight is answered.
    """
    gc.collect()
    gc.freeze()
    # A thread holding the GIL (ranking, rendering after an ack) hands it over after 1 ms instead of
    # Python's default 5 ms, so a request thread with an ack to send waits less: measured with
    # benchmarks/bench_bot.py, click-ack p99 187 -> 131 ms at 50 concurrent requests on 2 shared cores.
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _graph_health(services: Services) -> dict[str, Any]:
    """Return the service graph's name and size plus its refresh status (docs/topology.md)."""
    graph = services.topology
    size = {"name": graph.name, "services": graph.n_services, "edges": graph.n_edges} if graph else None
    return {**(size or {"name": None, "services": 0, "edges": 0}), **services.topology_status}
