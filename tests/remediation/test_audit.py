"""The audit chain: appends link up, and `verify` names the first bad entry for every kind of tampering."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from incidents_db.models import AuditEntry
from remediation.audit.service import GENESIS, HASHED_FIELDS, append, entries, entry_hash, verify
from tests.remediation.conftest import Store


def fill(store: Store, n: int = 6) -> None:
    with store.factory() as s:
        for i in range(n):
            append(
                db_session=s,
                actor="U024BE7LH",
                event="request",
                decision="allowed",
                reason=f"entry {i + 1}",
                action="restart_service",
                target="svc",
                params={"i": i, "ü": "ö"},
            )
            s.commit()


def check(store: Store) -> tuple[bool, int | None, str]:
    with store.factory() as s:
        v = verify(db_session=s)
    return v.ok, v.first_bad_seq, v.problem


def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_chain_links_and_verifies(store: Store) -> None:
    fill(store)
    with store.factory() as s:
        rows = entries(db_session=s)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
        assert rows[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
        assert verify(db_session=s).ok
    assert check(store) == (True, None, "")


@pytest.mark.parametrize("column", ["reason", "actor", "decision", "target"])
def test_edited_entry(store: Store, column: str) -> None:
    fill(store)
    sql(store, f"UPDATE audit_log SET {column} = 'forged' WHERE seq = 3")
    ok, bad, problem = check(store)
    assert (ok, bad) == (False, 3) and "edited" in problem


def test_edited_params(store: Store) -> None:
    fill(store)
    with store.factory() as s:
        row = s.get(AuditEntry, 4)
        assert row is not None
        row.params = {"i": 99}
        s.commit()
    assert check(store)[:2] == (False, 4)


def test_edit_with_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    fill(store)
    with store.factory() as s:
        row = s.get(AuditEntry, 3)
        assert row is not None
        row.reason = "forged"
        row.hash = entry_hash({c: getattr(row, c) for c in HASHED_FIELDS})
        s.commit()
    assert check(store)[:2] == (False, 4)


def test_deleted_entry(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE seq = 3")
    ok, bad, problem = check(store)
    assert (ok, bad) == (False, 3) and "missing" in problem


def test_deleted_tail(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE seq >= 5")
    ok, bad, problem = check(store)
    assert (ok, bad) == (False, 5) and "deleted" in problem


def test_deleted_first_entry(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE seq = 1")
    assert check(store)[:2] == (False, 1)


def test_inserted_entry(store: Store) -> None:
    fill(store)
    sql(store, "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 4")
    sql(store, "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100")
    sql(
        store,
        "INSERT INTO audit_log (seq, at, actor, event, decision, reason, action, target, params, incident_id, request_id, policy_version, prev_hash, hash) "
        "SELECT 4, at, actor, event, decision, 'inserted', action, target, params, incident_id, request_id, policy_version, prev_hash, hash FROM audit_log WHERE seq = 3",
    )
    ok, bad, _ = check(store)
    assert (ok, bad) == (False, 4)


def test_reordered_entries(store: Store) -> None:
    fill(store)
    sql(store, "UPDATE audit_log SET seq = 100 WHERE seq = 2")
    sql(store, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    sql(store, "UPDATE audit_log SET seq = 3 WHERE seq = 100")
    ok, bad, _ = check(store)
    assert (ok, bad) == (False, 2)


def test_appended_forgery_without_the_lock_row(store: Store) -> None:
    fill(store)
    with store.factory() as s:
        last = s.get(AuditEntry, 6)
        assert last is not None
        fields = {c: getattr(last, c) for c in HASHED_FIELDS if c not in ("seq", "reason", "prev_hash")}
        fields.update(seq=7, reason="forged", prev_hash=last.hash)
        s.add(AuditEntry(**fields, hash=entry_hash(fields)))
        s.commit()
    ok, bad, problem = check(store)
    assert (ok, bad) == (False, 7) and "behind" in problem


def test_entries_filter_by_incident(store: Store) -> None:
    with store.factory() as s:
        append(db_session=s, actor="a", event="request", decision="info", reason="x", incident_id="INC-1")
        append(db_session=s, actor="a", event="request", decision="info", reason="y", incident_id="INC-2")
        s.commit()
        assert [e.reason for e in entries(db_session=s, incident_id="INC-2")] == ["y"]
        assert [e.reason for e in entries(db_session=s, limit=1)] == ["y"]
