"""Postmortems in the store: draft on resolve, the report of any version, the list; keyword-only.

The review steps (reviewers, edits, comments, sign-off, publish) are in `remediation.postmortem.workflow`.
A draft's report is built from the store each time it is asked for (`report`), so it always shows the
current truth; a published version is frozen as JSON in ``postmortem_versions`` and shown as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import networkx as nx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db import incidents
from incidents_db.models import AuditEntry, Incident, Postmortem
from incidents_db.postmortems import PostmortemVersion
from remediation.audit.service import append, lock_chain
from remediation.errors import PostmortemError, PostmortemNotReadyError
from remediation.postmortem.facts import gather_facts
from remediation.postmortem.models import Draft
from remediation.postmortem.report import BOTS, Review, build_report
from sim.errors import SimError
from sim.topology import builtin_names, builtin_topology

STATUSES = ("draft", "in_review", "published")


@dataclass(frozen=True)
class Listed:
    """One postmortem in a list: incident, status, version, reviewers and who signed off."""

    incident_id: str
    title: str
    status: str
    version: int
    reviewers: tuple[str, ...]
    signed_off: tuple[str, ...]
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form of the list row."""
        return {
            "incident": self.incident_id,
            "title": self.title,
            "status": self.status,
            "version": self.version,
            "reviewers": list(self.reviewers),
            "signed_off_by": list(self.signed_off),
            "updated_at": self.updated_at.isoformat(),
        }


def gather(*, db_session: Session, incident_id: str) -> Draft:
    """Return the incident's record and its actions (raises if the incident is unknown)."""
    record = incidents.record(db_session=db_session, incident_id=incident_id)
    actions = tuple(e for e in record["events"] if e.get("type") == "action")
    return Draft(record, actions)


def graph_for(record: dict[str, Any], fallback: nx.DiGraph | None) -> nx.DiGraph | None:
    """Return the service graph the incident happened on: its built-in topology by name, else ``fallback``."""
    name = record.get("topology")
    if isinstance(name, str) and name in builtin_names():
        try:
            return builtin_topology(name).graph()
        except SimError:
            return fallback
    return fallback


def signed_off(row: Postmortem) -> tuple[str, ...]:
    """Return the reviewers who signed off the current version."""
    marks = row.signoffs or {}
    return tuple(u for u in row.reviewers or [] if marks.get(u) == row.version)


def find(*, db_session: Session, incident_id: str) -> Postmortem | None:
    """Return the incident's postmortem row (fresh from the store), or None."""
    query = sa.select(Postmortem).where(Postmortem.incident_id == incident_id)
    return db_session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def _resolved(db_session: Session, incident_id: str) -> Incident:
    incident = incidents.get(db_session=db_session, incident_id=incident_id)
    if incident.status != "resolved":
        raise PostmortemNotReadyError(
            f"{incident.id} is still open; its postmortem is drafted when it resolves (`resolve {incident.id}`)"
        )
    return incident


def ensure_draft(*, db_session: Session, incident_id: str, now: datetime, audited: bool = True) -> Postmortem:
    """Return the postmortem of a resolved incident, drafting it (flushed) when there is none.

    ``audited`` (the review steps, which hold the audit chain's lock anyway) records the draft in the
    audit log now. The resolve paths hold the incidents' lock and must not take the chain's after it
    (others take them the other way round), so they draft unaudited, and `record_draft` writes the
    entry before the first review step.
    """
    incident = _resolved(db_session, incident_id)
    if audited:
        lock_chain(db_session=db_session)
    row = find(db_session=db_session, incident_id=incident.id)
    if row is None:
        row = Postmortem(
            incident_id=incident.id, status="draft", body="", reviewers=[], version=1, fields={},
            signoffs={}, created_at=now, updated_at=now,
        )  # fmt: skip
        db_session.add(row)
        db_session.flush()
    if audited:
        record_draft(db_session=db_session, row=row, now=now)
    return row


def record_draft(*, db_session: Session, row: Postmortem, now: datetime) -> None:
    """Write the draft's audit entry unless the log has it (call under the audit chain's lock)."""
    seen = db_session.execute(
        sa.select(AuditEntry.seq)
        .where(AuditEntry.incident_id == row.incident_id, AuditEntry.event == "postmortem_draft")
        .limit(1)
    ).first()
    if seen is None:
        append(
            db_session=db_session, actor="remediate", event="postmortem_draft", decision="allowed",
            reason=f"drafted from the store when the incident resolved ({row.created_at:%Y-%m-%d %H:%M:%S} UTC)",
            incident_id=row.incident_id, params={"version": 1}, at=now,
        )  # fmt: skip


def review_of(row: Postmortem) -> Review:
    """Return the review state a report shows."""
    status = "published" if row.status == "approved" else row.status
    return Review(status, row.version, tuple(row.reviewers or []), signed_off(row), dict(row.fields or {}))


def report(
    *,
    db_session: Session,
    incident_id: str,
    graph: nx.DiGraph | None = None,
    version: int | None = None,
    bots: Iterable[str] = BOTS,
) -> dict[str, Any]:
    """Return the report of a resolved incident: a kept published version, or the current one built now."""
    incident = _resolved(db_session, incident_id)
    row = find(db_session=db_session, incident_id=incident.id)
    current = row.version if row is not None else 1
    wanted = current if version is None else version
    if row is not None and (wanted != current or row.status == "published"):
        kept = db_session.execute(
            sa.select(PostmortemVersion.report).where(
                PostmortemVersion.incident_id == incident.id, PostmortemVersion.version == wanted
            )
        ).scalar_one_or_none()
        if kept is not None:
            return dict(kept)
    if wanted != current:
        raise PostmortemError(
            f"{incident.id} has no postmortem version {wanted}; the current one is {current}"
        )
    facts = gather_facts(db_session=db_session, incident_id=incident.id)
    review = review_of(row) if row is not None else Review()
    return build_report(facts, graph=graph_for(facts.record, graph), review=review, bots=frozenset(bots))


def list_postmortems(*, db_session: Session, status: str | None = None, limit: int = 50) -> list[Listed]:
    """Return postmortems, most recently changed first, optionally of one status."""
    if status is not None and status not in STATUSES:
        raise PostmortemError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
    query = sa.select(Postmortem, Incident.title).join(Incident, Incident.id == Postmortem.incident_id)
    if status is not None:
        query = query.where(
            Postmortem.status.in_((status, "approved") if status == "published" else (status,))
        )
    rows = db_session.execute(query.order_by(Postmortem.updated_at.desc(), Postmortem.id.desc()).limit(limit))
    return [
        Listed(
            row.incident_id,
            title,
            review_of(row).status,
            row.version,
            tuple(row.reviewers or []),
            signed_off(row),
            row.updated_at,
        )
        for row, title in rows
    ]
