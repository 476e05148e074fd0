"""`POST /events/deploy`: authenticate a change event, map it to a service, keep it, join open incidents.

Authentication: a GitHub delivery signed with ``X-Hub-Signature-256`` is checked against
``github_webhook_secret`` (GitHub cannot send a bearer token); everything else presents
``Authorization: Bearer <deploy_webhook_token>``, which falls back to the alerts token, so one secret
opens both intakes unless a team wants two.

A change names a service through candidate names (`bot.alerts.deploys.ChangeIn.names`): the first that
is a node of the bot's graph wins, else the first. It is kept in the store (`incidents_db.changes`) until
its time plus ``change_window_s``, so an incident opening within that window starts with it on its
timeline; a change within the window also joins, at once, every open incident that names its service
or is observed on the graph it belongs to; their cards are re-ranked and their threads told.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.alerts.deploys import ChangeIn, Parsed, parse_changes
from bot.alerts.errors import BadPayloadError, UnauthorizedError
from bot.alerts.models import decode_json
from bot.notify.delivery import announce
from bot.services import Services
from incidents_db import changes as store
from incidents_db import incidents
from incidents_db.locks import lock_incidents

FUTURE_SLACK_S = 300.0  # clocks disagree a little; a change dated further ahead is refused
TOKEN_SETTING = "REMEDIATE_DEPLOY_WEBHOOK_TOKEN"


def github_signature_ok(body: bytes, header: str, secret: str) -> bool:
    """Return whether ``sha256=<hex>`` in X-Hub-Signature-256 is the HMAC-SHA256 of the body."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header.isascii() and hmac.compare_digest(header.strip().encode(), expected.encode())


def authenticate_change(
    headers: Mapping[str, str], body: bytes, *, token: str | None, github_secret: str | None
) -> str:
    """Return how the request proved itself ("signature" or "bearer"), or raise UnauthorizedError.

    Args:
        headers: request headers, names lower-cased.
        body: the raw body (the signature covers the exact bytes).
        token: the bearer token change events need (deploy token, else the alerts token); None: none.
        github_secret: the GitHub webhook's secret; None when unset.
    """
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        if not github_secret:
            raise UnauthorizedError(
                "a signed GitHub delivery arrived but no secret is set to check it: set "
                "REMEDIATE_GITHUB_WEBHOOK_SECRET (github_webhook_secret) to the webhook's secret"
            )
        if github_signature_ok(body, signature, github_secret):
            return "signature"
        raise UnauthorizedError(
            "X-Hub-Signature-256 does not match the body; check that the GitHub webhook's secret is "
            "REMEDIATE_GITHUB_WEBHOOK_SECRET"
        )
    if token is None:
        raise UnauthorizedError(
            f"change events are closed: set {TOKEN_SETTING} (or REMEDIATE_ALERTS_TOKEN) to open them, or "
            "REMEDIATE_GITHUB_WEBHOOK_SECRET for signed GitHub webhooks"
        )
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise UnauthorizedError(f"missing credentials: send 'Authorization: Bearer <{TOKEN_SETTING}>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise UnauthorizedError("the bearer token is wrong")
    return "bearer"


def service_of(change: ChangeIn, graph: tuple[str, ...]) -> str:
    """Return the service a change concerns: its first candidate name the graph knows, else the first."""
    known = set(graph)
    return next((name for name in change.names if name in known), change.names[0])


@dataclass(frozen=True)
class ChangeResult:
    """What one delivery did."""

    source: str
    changes: tuple[dict[str, Any], ...]
    recorded: int
    duplicates: int
    incidents: tuple[str, ...]
    ignored: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON body of the answer."""
        body: dict[str, Any] = {
            "ok": True,
            "source": self.source,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "changes": list(self.changes),
            "incidents": list(self.incidents),
        }
        if self.ignored:
            body["ignored"] = self.ignored
        return body


def _when(change: ChangeIn, now: datetime) -> datetime:
    if change.at is None:
        return now
    if change.at - now > timedelta(seconds=FUTURE_SLACK_S):
        raise BadPayloadError(f"at: {change.at.isoformat()} is in the future; check the sender's clock")
    return min(change.at, now)


def _keep(services: Services, db_session: Session, change: ChangeIn, at: datetime) -> dict[str, Any]:
    """Store one change (unless it is a duplicate); return its line of the answer, ``stored`` included."""
    graph = services.topology.services if services.topology is not None else ()
    service = service_of(change, graph)
    in_graph = service in graph
    details = {**({"version": change.version} if change.kind == "deploy" else {}), **change.details}
    stored = store.keep(
        db_session=db_session,
        key=change.key,
        service=service,
        kind=change.kind,
        at=at,
        now=services.clock(),
        keep_until=at + timedelta(seconds=services.settings.change_window_s),
        topology=services.topology.name if services.topology is not None and in_graph else None,
        source=change.source,
        details=details,
    )
    return {
        "service": service, "kind": change.kind, "version": change.version, "at": at.isoformat(),
        "in_graph": in_graph, "duplicate": not stored, "details": details,
    }  # fmt: skip


def ingest_changes(services: Services, parsed: Parsed) -> ChangeResult:
    """Keep each new change, add it to the open incidents it concerns, queue their cards; commit."""
    now = services.clock()
    window = timedelta(seconds=services.settings.change_window_s)
    dated = [(change, _when(change, now)) for change in parsed.changes]  # refuse before storing any
    shown: list[dict[str, Any]] = []
    touched: dict[str, None] = {}
    with services.sessions() as s:
        # Alert intake opens incidents under this lock and copies the kept changes into them: holding it
        # here, a change is either kept before an incident opens or finds that incident open.
        lock_incidents(db_session=s)
        open_now = incidents.open_incidents(db_session=s, limit=1000)
        for change, at in dated:
            line = _keep(services, s, change, at)
            details = line.pop("details")
            line["recent"] = now - at <= window
            shown.append(line)
            if line["duplicate"] or not line["recent"]:
                continue  # already joined; or older than the window: kept as a record, says nothing about now
            for incident in open_now:
                if not line["in_graph"] and line["service"] not in (incident.services or ()):
                    continue
                incidents.append(
                    db_session=s, incident_id=incident.id, type_=change.kind, at=at, service=line["service"],
                    affects=False, source=change.source, **details,
                )  # fmt: skip
                touched[incident.id] = None
        for incident_id in touched:
            announce(db_session=s, incident_id=incident_id, now=now)
        s.commit()
    duplicates = sum(1 for line in shown if line["duplicate"])
    return ChangeResult(
        parsed.source, tuple(shown), len(shown) - duplicates, duplicates, tuple(touched), parsed.ignored
    )


def handle_change_event(
    services: Services, headers: Mapping[str, str], body: bytes, *, alerts_token: str | None
) -> ChangeResult:
    """Authenticate, parse and commit one delivery to `POST /events/deploy`; raise AlertError to refuse."""
    settings = services.settings
    deploy_token = settings.deploy_webhook_token
    secret = settings.github_webhook_secret
    authenticate_change(
        headers,
        body,
        token=deploy_token.get_secret_value() if deploy_token is not None else alerts_token,
        github_secret=secret.get_secret_value() if secret is not None else None,
    )
    return ingest_changes(services, parse_changes(headers, decode_json(body)))
