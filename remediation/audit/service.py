"""Append to, read and verify the audit log.

Each entry's hash is sha256 over the canonical JSON of its fields plus the previous entry's hash, so
editing, deleting, inserting or reordering entries breaks the chain at the first touched entry. The
single `audit_head` row serialises writers: `lock_chain` updates it first thing in the transaction,
which takes its row lock on PostgreSQL and the database write lock on SQLite, so two writers never
fork the chain; `verify` compares it with the newest entry to catch a deleted tail. Whoever can write
the database can also cut the tail and edit that row to match, so `verify` also takes heads published
elsewhere (`Checkpoint`): the entry with that hash must still be on the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session

from incidents_db.models import AuditEntry, AuditHead
from remediation.errors import AuditError, CheckpointError

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


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(fields: Mapping[str, Any]) -> str:
    """Return sha256 hex over the canonical JSON (sorted keys, no spaces) of the hashed fields."""
    body = {name: fields[name] for name in HASHED_FIELDS}
    if fields.get("trace_id"):  # hashed when present, so entries written before it keep their hashes
        body["trace_id"] = fields["trace_id"]
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
        "trace_id": _trace_id(),
    }
    digest = entry_hash(fields)
    entry = AuditEntry(**fields, hash=digest)
    db_session.add(entry)
    db_session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=fields["seq"], hash=digest))
    db_session.flush()
    return entry


@dataclass(frozen=True)
class Checkpoint:
    """A head published elsewhere: the hash of an entry and, when known, its seq."""

    hash: str
    seq: int | None = None

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read ``HASH`` or ``SEQ:HASH`` (64 hex digits); raise `CheckpointError` saying what was expected."""
        seq_text, _, digest = text.strip().rpartition(":")
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise CheckpointError(f"{text!r}: expected a 64-digit sha256 hex hash, optionally as SEQ:HASH")
        if not seq_text:
            return cls(digest)
        if not seq_text.isdigit() or int(seq_text) < 1:
            raise CheckpointError(f"{text!r}: expected SEQ:HASH with SEQ a positive entry number")
        return cls(digest, int(seq_text))

    def __str__(self) -> str:
        return self.hash if self.seq is None else f"{self.seq}:{self.hash}"


@dataclass(frozen=True)
class Verdict:
    """The result of verifying the chain: ok, how many entries were checked, the first bad one and why.

    ``head_seq`` and ``head_hash`` name the newest entry that passed (None when none did).
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    head_seq: int | None = None
    head_hash: str | None = None


def _read_snapshot(db_session: Session) -> None:
    """Read the log and its head row in one snapshot, so an append committed meanwhile is no false alarm.

    PostgreSQL's default (read committed) gives each statement its own snapshot, and pysqlite does not
    open a transaction for reads; both would let the head row run ahead of the entries just walked.
    """
    connection = db_session.connection()
    raw = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite":
        if raw is not None and not getattr(raw, "in_transaction", True):
            connection.exec_driver_sql("BEGIN")
    elif connection.dialect.name == "postgresql":
        info = getattr(raw, "info", None)
        if info is not None and int(info.transaction_status) == 0:  # idle: no statement run yet
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def verify(*, db_session: Session, expect: Iterable[Checkpoint] = ()) -> Verdict:
    """Walk the chain from the first entry and name the first entry that was edited, deleted, inserted or moved.

    Each of ``expect`` (heads published elsewhere) must be an entry on the chain, at its seq when given:
    a log cut below one fails even when the head row was edited to match the cut.
    """
    _read_snapshot(db_session)
    rows = db_session.execute(sa.select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    return _walk(db_session, rows, prev=GENESIS, first_seq=1, expect=list(expect))


def verify_since(*, db_session: Session, checkpoint: Checkpoint) -> Verdict:
    """Check that the chain runs on unchanged from a published head (with its seq) to the newest entry.

    Only the entries from ``checkpoint.seq`` on are read, so a publisher can check each new head
    against its previous publication without walking the whole log.
    """
    if checkpoint.seq is None:
        return verify(db_session=db_session, expect=[checkpoint])
    _read_snapshot(db_session)
    rows = iter(
        db_session.execute(
            sa.select(AuditEntry).where(AuditEntry.seq >= checkpoint.seq).order_by(AuditEntry.seq)
        ).scalars()
    )
    first = next(rows, None)
    short = checkpoint.hash[:12] + "..."
    if first is None:
        end = db_session.execute(sa.select(sa.func.max(AuditEntry.seq))).scalar_one_or_none() or 0
        return Verdict(
            False,
            0,
            end + 1,
            f"the log ends at entry {end} but entry {checkpoint.seq} ({short}) was published as its head: "
            f"entries {end + 1}..{checkpoint.seq} are missing (the tail was cut)",
        )
    if first.seq != checkpoint.seq:
        return Verdict(
            False,
            0,
            checkpoint.seq,
            f"entry {checkpoint.seq}, the published head ({short}), is missing (deleted?); the next entry is {first.seq}",
        )
    if first.hash != checkpoint.hash or entry_hash(_fields(first)) != first.hash:
        return Verdict(
            False,
            0,
            checkpoint.seq,
            f"entry {checkpoint.seq} is not the published head ({short}): it was rewritten",
        )
    return _walk(db_session, rows, prev=first.hash, first_seq=first.seq + 1, expect=[], done=first.seq)


def _fields(row: AuditEntry) -> dict[str, Any]:
    return {**{name: getattr(row, name) for name in HASHED_FIELDS}, "trace_id": row.trace_id}


def _trace_id() -> str | None:
    """Return the trace id of the decision being recorded (the bot's OpenTelemetry trace), if one records."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


@dataclass
class _Walk:
    """Where a walk along the chain stands: the last good entry, and the published heads met so far."""

    prev: str
    expected_seq: int
    checked: int = 0
    last_seq: int | None = None
    last_hash: str | None = None
    seen: dict[str, int] = field(
        default_factory=dict
    )  # hash -> seq of the published heads found on the chain
    at_seq: dict[int, str] = field(
        default_factory=dict
    )  # seq -> hash on the chain, for the published heads with a seq

    @property
    def end(self) -> int:
        """Return the seq of the last entry that passed (0 when none did)."""
        return self.last_seq or 0

    def failed(self, first_bad: int | None, problem: str) -> Verdict:
        """Return a failing verdict that names what the walk had checked."""
        return Verdict(False, self.checked, first_bad, problem, self.last_seq, self.last_hash)


def _walk(
    db_session: Session,
    rows: Iterable[AuditEntry],
    *,
    prev: str,
    first_seq: int,
    expect: list[Checkpoint],
    done: int = 0,
) -> Verdict:
    """Check the links from ``first_seq`` on (``prev`` is the hash before it), then the head row and ``expect``."""
    walk = _Walk(prev, first_seq, last_seq=done or None, last_hash=prev if done else None)
    return (
        _follow_links(walk, rows, expect)
        or _find_published(walk, expect)
        or _match_head_row(walk, db_session)
        or Verdict(True, walk.checked, None, "", walk.last_seq, walk.last_hash)
    )


def _follow_links(walk: _Walk, rows: Iterable[AuditEntry], expect: list[Checkpoint]) -> Verdict | None:
    """Walk the rows in order, noting the published heads met; return the first broken link, if any."""
    wanted_seqs = {c.seq for c in expect if c.seq is not None}
    wanted_hashes = {c.hash for c in expect}
    for row in rows:
        broken = _broken_link(walk, row)
        if broken is not None:
            return broken
        if row.hash in wanted_hashes:
            walk.seen[row.hash] = row.seq
        if row.seq in wanted_seqs:
            walk.at_seq[row.seq] = row.hash
        walk.prev, walk.expected_seq, walk.checked = row.hash, walk.expected_seq + 1, walk.checked + 1
        walk.last_seq, walk.last_hash = row.seq, row.hash
    return None


def _broken_link(walk: _Walk, row: AuditEntry) -> Verdict | None:
    """Return why ``row`` does not continue the chain where the walk stands (None when it does)."""
    if row.seq != walk.expected_seq:
        what = "missing (deleted?)" if row.seq > walk.expected_seq else "out of order"
        return walk.failed(
            walk.expected_seq, f"entry {walk.expected_seq} is {what}; the next entry is {row.seq}"
        )
    if row.prev_hash != walk.prev:
        return walk.failed(
            row.seq,
            f"entry {row.seq} does not follow entry {row.seq - 1} (inserted, reordered or the previous one was edited)",
        )
    if entry_hash(_fields(row)) != row.hash:
        return walk.failed(row.seq, f"entry {row.seq} was edited: its content no longer matches its hash")
    return None


def _find_published(walk: _Walk, expect: list[Checkpoint]) -> Verdict | None:
    """Return the first published head that is not on the walked chain (at its seq when given), if any."""
    end = walk.end
    for published in expect:
        short = published.hash[:12] + "..."
        if published.seq is not None and published.seq > end:
            return walk.failed(
                end + 1,
                f"the log ends at entry {end} but entry {published.seq} ({short}) was published as its head: "
                f"entries {end + 1}..{published.seq} are missing (the tail was cut)",
            )
        if published.seq is not None and walk.at_seq.get(published.seq) != published.hash:
            return walk.failed(
                published.seq,
                f"entry {published.seq} is not the published head ({short}): the log was rewritten "
                f"at or before entry {published.seq}",
            )
        if published.hash not in walk.seen:
            return walk.failed(
                end + 1,
                f"no entry has the published head hash {short}: the log (ending at entry {end}) was cut "
                "below it or rewritten",
            )
    return None


def _match_head_row(walk: _Walk, db_session: Session) -> Verdict | None:
    """Return how the writer's head row disagrees with the walked chain's end (None when it agrees)."""
    end = walk.end
    head = db_session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    if head is None:
        return walk.failed(
            None,
            "the audit_head row is missing (deleted?), so a cut tail cannot be ruled out; "
            "check against a published head with --expect-head or --head-file",
        )
    if head.seq > end:
        return walk.failed(
            end + 1,
            f"the log ends at entry {end} but {head.seq} were written: entries after {end} were deleted",
        )
    if head.seq < end:
        return walk.failed(
            head.seq + 1, f"entry {head.seq + 1} was added behind the writer's back ({head.seq} were written)"
        )
    if head.hash != walk.prev:
        return walk.failed(end, f"entry {end} is not the entry the writer last wrote (replaced?)")
    return None


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
    out["trace_id"] = entry.trace_id
    out["at"] = _iso(entry.at)
    out["hash"] = entry.hash
    return out
