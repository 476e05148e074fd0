"""Append to, read and verify the audit log.

Each entry's hash is sha256 over the canonical JSON of its fields plus the previous entry's hash, so
editing, deleting, inserting or reordering entries breaks the chain at the first touched entry. The
single `audit_head` row serialises writers: `lock_chain` updates it first thing in the transaction,
which takes its row lock on PostgreSQL and the database write lock on SQLite, so two writers never
fork the chain; `verify` compares it with the newest entry to catch a deleted tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from incidents_db.models import AuditEntry, AuditHead
from remediation.errors import RemediationError

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "event",
    "decision",
    "reason",
    "action",
    "target",
    "params",
    "incident_id",
    "request_id",
    "policy_version",
    "prev_hash",
)


class AuditError(RemediationError):
    """The audit log cannot be written (its head row is missing: run the store migrations)."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(fields: Mapping[str, Any]) -> str:
    """Return sha256 hex over the canonical JSON (sorted keys, no spaces) of the hashed fields."""
    body = {name: fields[name] for name in HASHED_FIELDS}
    body["at"] = _iso(body["at"]) if isinstance(body["at"], datetime) else body["at"]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lock_chain(*, db_session: Session) -> None:
    """Take the audit chain's write lock for the rest of the transaction (call it first).

    On SQLite a transaction not yet begun is opened with ``BEGIN IMMEDIATE``, so it holds the write lock
    before it reads anything (a deferred one could read a stale snapshot and then fail to upgrade).
    """
    connection = db_session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    result = db_session.execute(
        sa.update(AuditHead).where(AuditHead.id == 1).values(touched=AuditHead.touched + 1)
    )
    if getattr(result, "rowcount", 1) != 1:
        raise AuditError(
            "the audit log's head row is missing; run the store migrations (remediate db upgrade)"
        )


def append(
    *,
    db_session: Session,
    actor: str,
    event: str,
    decision: str,
    reason: str,
    action: str | None = None,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    incident_id: str | None = None,
    request_id: str | None = None,
    policy_version: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (taking the chain lock) and return it; commit is the caller's."""
    lock_chain(db_session=db_session)
    head = db_session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": (at or datetime.now(UTC)).astimezone(UTC),
        "actor": actor,
        "event": event,
        "decision": decision,
        "reason": reason,
        "action": action,
        "target": target,
        "params": json.loads(json.dumps(dict(params or {}), default=str)),
        "incident_id": incident_id,
        "request_id": request_id,
        "policy_version": policy_version,
        "prev_hash": head.hash,
    }
    digest = entry_hash(fields)
    entry = AuditEntry(**fields, hash=digest)
    db_session.add(entry)
    db_session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=fields["seq"], hash=digest))
    db_session.flush()
    return entry


@dataclass(frozen=True)
class Verdict:
    """The result of verifying the chain: ok, how many entries were checked, the first bad one and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify(*, db_session: Session) -> Verdict:
    """Walk the chain from the first entry and name the first entry that was edited, deleted, inserted or moved."""
    prev, expected_seq, checked = GENESIS, 1, 0
    rows = db_session.execute(sa.select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    for row in rows:
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        if row.seq != expected_seq:
            what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
            return Verdict(
                False, checked, expected_seq, f"entry {expected_seq} is {what}; the next entry is {row.seq}"
            )
        if row.prev_hash != prev:
            return Verdict(
                False,
                checked,
                row.seq,
                f"entry {row.seq} does not follow entry {row.seq - 1} (inserted, reordered or the previous one was edited)",
            )
        if entry_hash(fields) != row.hash:
            return Verdict(
                False, checked, row.seq, f"entry {row.seq} was edited: its content no longer matches its hash"
            )
        prev, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    head = db_session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    if head is not None and head.seq > checked:
        return Verdict(
            False,
            checked,
            checked + 1,
            f"the log ends at entry {checked} but {head.seq} were written: entries after {checked} were deleted",
        )
    if head is not None and head.seq < checked:
        return Verdict(
            False,
            checked,
            head.seq + 1,
            f"entry {head.seq + 1} was added behind the writer's back ({head.seq} were written)",
        )
    if head is not None and head.hash != prev:
        return Verdict(
            False, checked, checked, f"entry {checked} is not the entry the writer last wrote (replaced?)"
        )
    return Verdict(True, checked)


def entries(
    *,
    db_session: Session,
    incident_id: str | None = None,
    request_id: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Return audit entries in order, optionally only those of one incident or request (newest ``limit``)."""
    query = sa.select(AuditEntry)
    if incident_id is not None:
        query = query.where(AuditEntry.incident_id == incident_id)
    if request_id is not None:
        query = query.where(AuditEntry.request_id == request_id)
    if limit is not None:
        rows = list(db_session.execute(query.order_by(AuditEntry.seq.desc()).limit(limit)).scalars())
        return rows[::-1]
    return list(db_session.execute(query.order_by(AuditEntry.seq)).scalars())


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    """Return an entry as JSON-ready values."""
    out = {name: getattr(entry, name) for name in HASHED_FIELDS}
    out["at"] = _iso(entry.at)
    out["hash"] = entry.hash
    return out
