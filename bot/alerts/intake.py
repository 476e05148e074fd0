"""Group incoming alerts into incidents and commit them (with their outbox rows) before the ack.

An alert joins, in order: the open incident that already holds its fingerprint; else, for alerts of one
delivery (an Alertmanager group), the incident the delivery's earlier alerts joined; else the open
incident on the same service updated within the grouping window; else a new incident. A repeat of an
alert's current status adds nothing, so a re-sent storm changes nothing; a resolved alert joins the
timeline, and an alert-born incident resolves itself when all its alerts have resolved.

A delivery costs the same however many incidents are open and however long they are: it reads only its
own fingerprints, by key (`incidents_db.fingerprints`), and writes its events in a few statements
(`incidents_db.timeline`). An alert with no incident yet costs the same however many the store holds:
the open incident of its service is one query over the open incidents of the window (by index), and a
new incident's id one index step (`incidents.open_for_service`, `incidents.next_incident_id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from bot.alerts.models import AlertIn
from bot.notify import postmortem_cards
from bot.notify.delivery import announce
from bot.services import Services
from incidents_db import incidents
from incidents_db.fingerprints import states_of, statuses_of
from incidents_db.locks import lock_incidents
from incidents_db.timeline import Appender

AHEAD = timedelta(minutes=5)  # an alert dated later than this after now is stamped now + AHEAD


class ReadStates(Protocol):
    """Reads fingerprint -> (incident id, status) for (at least) the given fingerprints."""

    def __call__(self, *, db_session: Session, fingerprints: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Return the states an open incident holds."""
        ...


@dataclass(frozen=True)
class IntakeResult:
    """What one delivery did: incidents touched, alerts recorded and alerts ignored as repeats."""

    incidents: tuple[str, ...]
    created: tuple[str, ...]
    recorded: int
    ignored: int

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON body of the webhook's answer."""
        return {
            "incidents": list(self.incidents),
            "created": list(self.created),
            "recorded": self.recorded,
            "ignored": self.ignored,
        }


def ingest(
    services: Services,
    alerts: list[AlertIn],
    *,
    _read_states: ReadStates = states_of,
    _open_for_service: incidents.OpenForService = incidents.open_for_service,
    _next_id: Callable[..., str] = incidents.next_incident_id,
) -> IntakeResult:
    """Record the alerts of one delivery in incidents and commit; return what was done.

    The ``_`` arguments are for the reference runs only (`benchmarks/bench_intake.py`,
    `tests/bot/alerts/test_intake_index.py`), which pass the old full scans; intake reads the delivery's
    fingerprints by key, an alert's open incident by its service and the next id by index.
    """
    touched: dict[str, None] = {}
    created: list[str] = []
    recorded = ignored = 0
    with services.sessions() as s:
        # Deliveries run concurrently (threads, replicas): read-then-create must run alone, or two
        # deliveries for one service could both open an incident.
        lock_incidents(db_session=s)
        states = _read_states(db_session=s, fingerprints=[a.fingerprint for a in alerts])
        by_group: dict[str, str] = {}
        now = services.clock()
        timeline = Appender(s)  # the delivery's events in a few statements, written before _settle reads
        for alert in alerts:
            known = states.get(alert.fingerprint)
            if known is not None and known[1] == alert.status:
                ignored += 1
                continue
            incident_id = known[0] if known else None
            if incident_id is None and alert.group is not None:
                incident_id = by_group.get(alert.group)
            if incident_id is None:
                window = timedelta(seconds=services.settings.group_window_s)
                recent = _open_for_service(
                    db_session=s, service=alert.service, since=services.clock() - window
                )
                incident_id = recent.id if recent is not None else None
            if incident_id is None:
                if alert.status == "resolved":
                    ignored += 1  # nothing open to resolve
                    continue
                title = alert.summary or f"{alert.name} on {alert.service}"
                incident = incidents.create(
                    db_session=s,
                    title=title,
                    services=[alert.service],
                    severity=alert.severity,
                    source="alert",
                    now=now,
                    topology=services.topology.name if services.topology else None,
                    _next_id=_next_id,
                )
                incident_id = incident.id
                created.append(incident_id)
            timeline.append(
                incident_id=incident_id,
                type_="alert",
                # a sender's clock far off (or hostile) must not move the timeline to another year
                at=min(max(alert.at, now - timedelta(days=1)), now + AHEAD) if alert.at else now,
                service=alert.service,
                status=alert.status,
                name=alert.name,
                labels=alert.labels or None,
                value=alert.value,
                fingerprint=alert.fingerprint,
                source=alert.source,
                links=alert.links or None,
            )
            states[alert.fingerprint] = (incident_id, alert.status)
            if alert.group is not None:
                by_group[alert.group] = incident_id
            recorded += 1
            touched[incident_id] = None
        timeline.flush()
        _settle(services, s, now, created, touched)
        s.commit()
    return IntakeResult(tuple(touched), tuple(created), recorded, ignored)


def _settle(
    services: Services,
    s: Session,
    now: datetime,
    created: list[str],
    touched: dict[str, None],
) -> None:
    """Give new incidents the recent snapshots, resolve those whose alerts all resolved, announce each."""
    graph = services.topology.services if services.topology is not None else ()
    for incident_id in created:
        incidents.attach_recent_snapshots(
            db_session=s,
            incident_id=incident_id,
            now=now,
            also=graph,
            max_age_s=services.settings.snapshot_max_age_s,
        )
    for incident_id in touched:
        mine = statuses_of(db_session=s, incident_id=incident_id)
        incident = incidents.get(db_session=s, incident_id=incident_id)
        if incident.source == "alert" and mine and all(st == "resolved" for st in mine):
            incidents.resolve(
                db_session=s,
                incident_id=incident_id,
                actor="remediate",
                now=now,
                note="all alerts resolved",
            )
            postmortem_cards.resolved(services, db_session=s, incident_id=incident_id, now=now)
        announce(db_session=s, incident_id=incident_id, now=now)
