"""Appending to timelines: many events of one unit of work written in a few statements.

`incidents.append` writes one event; intake writes a delivery's alerts through one `Appender`, so a
delivery of fifty alerts costs one read of each timeline's end, one insert of the events and one write
of their fingerprints (`incidents_db.fingerprints`), instead of fifty of each. Both are the same code:
``seq`` one above the timeline's last, the time no earlier than its last event, the incident's services
and last-update time moved by events that affect it, and every fingerprinted alert noted.

What an `Appender` has not flushed is not in the database yet: the incident's header (services, last
update) is, as the session's pending changes, but its events and fingerprints are not. Flush it before
reading a timeline or the fingerprints, and before anything else appends to the incidents it wrote to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import fingerprints
from incidents_db.locks import lock_incidents
from incidents_db.models import Incident, IncidentEvent


class Appender:
    """Appends events to timelines within one transaction; `flush` writes them."""

    def __init__(self, db_session: Session) -> None:
        self.db_session = db_session
        self._ends: dict[str, tuple[int, datetime | None]] = {}  # incident id -> (next seq, last at)
        self._incidents: dict[str, Incident] = {}  # held, so the session's identity map keeps them
        self._events: list[dict[str, Any]] = []
        self._noted: dict[str, dict[str, Any]] = {}  # fingerprint -> its row, the latest write wins
        self._locked = False  # the lock is held to the end of the transaction: take it once

    def _end(self, incident_id: str) -> tuple[int, datetime | None]:
        end = self._ends.get(incident_id)
        if end is None:
            # A timeline is in time order (stamped so here, validated so on import), so its last event
            # by seq is also its latest: one step down the (incident_id, seq) index, however long it is.
            last = self.db_session.execute(
                sa.select(IncidentEvent.seq, IncidentEvent.at)
                .where(IncidentEvent.incident_id == incident_id)
                .order_by(IncidentEvent.seq.desc())
                .limit(1)
            ).first()
            end = (0, None) if last is None else (int(last.seq) + 1, last.at)
        return end

    def append(
        self,
        *,
        incident_id: str,
        type_: str,
        at: datetime,
        service: str | None = None,
        affects: bool = True,
        **payload: Any,
    ) -> int:
        """Queue one event (see `incidents.append`) and return its seq; the header changes at once."""
        if not self._locked:
            lock_incidents(db_session=self.db_session)
            self._locked = True
        seq, last_at = self._end(incident_id)
        if last_at is not None:
            at = max(at, last_at)
        self._ends[incident_id] = (seq + 1, at)
        clean = {k: v for k, v in payload.items() if v is not None}
        self._events.append(
            {
                "incident_id": incident_id,
                "seq": seq,
                "at": at,
                "type": type_,
                "service": service,
                "payload": clean,
            }
        )
        if type_ == "alert" and clean.get("fingerprint"):
            fp = str(clean["fingerprint"])
            self._noted[fp] = fingerprints.row(fp, incident_id=incident_id, status=clean.get("status"), at=at)
        if affects:
            incident = self._incidents.get(incident_id) or self.db_session.get(Incident, incident_id)
            if incident is not None:
                self._incidents[incident_id] = incident
                incident.updated_at = at
                if service and service not in (incident.services or []):
                    incident.services = sorted({*incident.services, service})
        return seq

    def flush(self) -> None:
        """Write the queued events and fingerprints, and the incidents' headers; nothing is committed."""
        self.db_session.flush()
        if self._events:
            self.db_session.execute(sa.insert(IncidentEvent), self._events)
        if self._noted:
            fingerprints.write(db_session=self.db_session, rows=list(self._noted.values()))
        self._events, self._noted = [], {}
        self._ends.clear()  # others may append after this: read each timeline's end again
