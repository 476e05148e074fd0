"""The audit chain: appends link up, and `verify` names the first bad entry for every kind of tampering."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from incidents_db.models import AuditEntry
from remediation.audit.published import append as append_line
from remediation.audit.published import check_head, read_last
from remediation.audit.service import (
    GENESIS,
    HASHED_FIELDS,
    Checkpoint,
    append,
    entries,
    entry_hash,
    verify,
    verify_since,
)
from remediation.errors import CheckpointError
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


# --- the head: a missing head row, heads published elsewhere, the published-head file -------------


def head_of(store: Store, seq: int) -> Checkpoint:
    with store.factory() as s:
        row = s.get(AuditEntry, seq)
        assert row is not None
        return Checkpoint(row.hash, seq)


def cut_and_reheal(store: Store, keep: int) -> None:
    """What a database admin does to hide the last entries: cut the tail, point the head row at the cut."""
    survivor = head_of(store, keep)
    sql(store, "DELETE FROM audit_log WHERE seq > :keep", keep=keep)
    sql(store, "UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1", seq=keep, hash=survivor.hash)


def check_against(store: Store, *published: Checkpoint) -> tuple[bool, int | None, str]:
    with store.factory() as s:
        v = verify(db_session=s, expect=published)
    return v.ok, v.first_bad_seq, v.problem


def test_cut_tail_with_the_head_row_edited_to_match_fails_against_the_published_head(store: Store) -> None:
    fill(store)
    published = head_of(store, 6)
    cut_and_reheal(store, keep=4)
    assert check(store) == (True, None, "")  # the store alone cannot tell: why the head is published
    ok, bad, problem = check_against(store, published)
    assert (ok, bad) == (False, 5)
    assert "ends at entry 4" in problem and "entries 5..6 are missing" in problem
    ok, bad, problem = check_against(store, Checkpoint(published.hash))  # hash only
    assert (ok, bad) == (False, 5) and "no entry has the published head hash" in problem


def test_a_missing_head_row_fails(store: Store) -> None:
    fill(store)
    sql(store, "DELETE FROM audit_head")
    ok, bad, problem = check(store)
    assert (ok, bad) == (False, None) and "audit_head row is missing" in problem


def test_cut_tail_with_the_head_row_deleted_fails(store: Store) -> None:
    fill(store)
    published = head_of(store, 6)
    sql(store, "DELETE FROM audit_log WHERE seq >= 5")
    sql(store, "DELETE FROM audit_head")
    ok, bad, problem = check(store)
    assert (ok, bad) == (False, None) and "audit_head row is missing" in problem
    ok, bad, problem = check_against(store, published)
    assert (ok, bad) == (False, 5) and "entries 5..6 are missing" in problem


def test_a_rewritten_chain_with_recomputed_hashes_and_head_fails_against_the_published_head(
    store: Store,
) -> None:
    fill(store)
    published = head_of(store, 6)
    with store.factory() as s:  # rewrite entry 3 and recompute every later hash, and the head row
        rows = entries(db_session=s)
        rows[2].reason = "forged"
        prev = rows[1].hash
        for row in rows[2:]:
            row.prev_hash = prev
            row.hash = prev = entry_hash({c: getattr(row, c) for c in HASHED_FIELDS})
        s.commit()
    sql(store, "UPDATE audit_head SET hash = :hash WHERE id = 1", hash=prev)
    assert check(store) == (True, None, "")
    ok, bad, problem = check_against(store, published)
    assert (ok, bad) == (False, 6) and "entry 6 is not the published head" in problem


def test_a_published_head_passes_while_the_log_grows_past_it(store: Store) -> None:
    fill(store, 4)
    published = head_of(store, 4)
    fill(store, 2)
    with store.factory() as s:
        v = verify(db_session=s, expect=[published, Checkpoint(published.hash)])
    assert (v.ok, v.checked, v.head_seq) == (True, 6, 6)
    with store.factory() as s:
        since = verify_since(db_session=s, checkpoint=published)
    assert (since.ok, since.checked, since.head_seq, since.head_hash) == (True, 2, 6, head_of(store, 6).hash)


def test_verify_since_refuses_a_cut_below_the_published_head(store: Store) -> None:
    fill(store)
    published = head_of(store, 6)
    cut_and_reheal(store, keep=4)
    with store.factory() as s:
        v = verify_since(db_session=s, checkpoint=published)
    assert (v.ok, v.first_bad_seq) == (False, 5) and "entries 5..6 are missing" in v.problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ab" * 32, Checkpoint("ab" * 32)),
        (" 7:" + "AB" * 32 + "\n", Checkpoint("ab" * 32, 7)),
    ],
)
def test_checkpoint_parse(text: str, expected: Checkpoint) -> None:
    assert Checkpoint.parse(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "0:" + "ab" * 32, "x:" + "ab" * 32, "zz" * 32, "1:" + "ab" * 31])
def test_checkpoint_parse_refuses(text: str) -> None:
    with pytest.raises(CheckpointError, match="expected"):
        Checkpoint.parse(text)


def test_the_published_head_file_is_append_only(store: Store, tmp_path: Path) -> None:
    fill(store, 3)
    path = tmp_path / "heads.jsonl"
    assert read_last(path) is None
    with store.factory() as s:
        verdict, first = check_head(db_session=s, since=None)
    assert verdict.ok and first is not None and (first.seq, first.entries) == (3, 3)
    append_line(path, first)
    before = path.read_bytes()
    fill(store, 1)
    with store.factory() as s:
        verdict, second = check_head(db_session=s, since=first.checkpoint)
    assert verdict.ok and second is not None and second.seq == 4
    append_line(path, second)
    after = path.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 2
    assert read_last(path) == second
    assert json.loads(after.splitlines()[0]) == {
        "seq": 3,
        "hash": first.hash,
        "at": first.at,
        "entries": 3,
    }
    cut_and_reheal(store, keep=3)
    with store.factory() as s:
        verdict, refused = check_head(db_session=s, since=second.checkpoint)
    assert not verdict.ok and refused is None


def test_read_last_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "heads.jsonl"
    path.write_text('{"seq": 1, "hash": "' + "ab" * 32 + '"}\nnot json\n')
    with pytest.raises(CheckpointError, match="last line"):
        read_last(path)


def test_verify_during_concurrent_appends_is_no_false_alarm(store: Store) -> None:
    """The log and its head row are read in one snapshot: an append committed mid-walk is not a cut tail."""
    fill(store, 20)
    done = threading.Event()

    def writer() -> None:
        try:
            while not done.is_set():
                fill(store, 1)
        finally:
            done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    verdicts = []
    try:
        for _ in range(40):
            with store.factory() as s:
                verdicts.append(verify(db_session=s))
    finally:
        done.set()
        thread.join(60)
    assert [v.problem for v in verdicts if not v.ok] == []
    assert verdicts[-1].checked > 20  # the writer did append while the checks ran
