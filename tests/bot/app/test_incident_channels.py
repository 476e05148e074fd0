"""Incident channels through the real app and the sandbox: created, invited, carded, summarised, archived."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.notify.channels import IncidentChannels, archive_due, channel_name
from incidents_db import channels, incidents
from incidents_db.models import AuditEntry
from incidents_db.outbox import OutboxMessage
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, Harness, _running, generic
from tests.bot.sandbox.conftest import control, wait_for


@pytest.fixture
def on(tmp_path: Path, migrated_sqlite_url: str) -> Iterator[Harness]:
    """The app with incident channels on, archived a day after resolution."""
    yield from _running(
        tmp_path, migrated_sqlite_url, incident_channels=True, incident_channel_archive_after="24h"
    )


def _channel(harness: Harness, prefix: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        ws = harness.sandbox.workspace
        with ws.lock:
            return next((dict(c) for c in ws.channels.values() if c["name"].startswith(prefix)), None)

    return dict(wait_for(found))


def _top(harness: Harness, channel: str) -> list[dict[str, Any]]:
    found = control(harness.sandbox, f"messages?channel={channel}", method="GET")["messages"]
    return [m for m in found if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")]


def _members(harness: Harness, channel_id: str) -> set[str]:
    with harness.sandbox.workspace.lock:
        return set(harness.sandbox.workspace.channels[channel_id]["members"])


def _calls(harness: Harness, method: str) -> list[dict[str, Any]]:
    return list(control(harness.sandbox, f"calls?method={method}", method="GET")["calls"])


def test_channel_names_follow_slacks_rules() -> None:
    assert channel_name("INC-12", "Checkout: 5xx on /pay — Café!") == "inc-12-checkout-5xx-on-pay-cafe"
    assert channel_name("INC-12", "Checkout", 3) == "inc-12-checkout-3"
    assert channel_name("INC-7", "!!!") == "inc-7"
    long = channel_name("INC-123", "x" * 200, 12)
    assert len(long) == 80 and long.startswith("inc-123-x") and long.endswith("-12")


def test_alert_opens_a_channel_with_its_card_and_people_then_archives_it_once(on: Harness) -> None:
    status, _ = on.post_alert("generic", generic("HighErrorRate", "paymentservice"))
    assert status == 200
    chan = _channel(on, "inc-1-")
    cid = chan["id"]
    assert chan["creator"] == "U0REMBOT01" and not chan["is_private"]
    # the leads may approve on paymentservice (alice and bob own other services): they are invited
    wait_for(lambda: {CAROL, DAVE} <= _members(on, cid))
    assert ALICE not in _members(on, cid) and BOB not in _members(on, cid)
    card = wait_for(lambda: next((m for m in _top(on, cid) if m["text"].startswith("INC-1 ")), None))
    summary = wait_for(lambda: next((m for m in _top(on, "C0INCIDENT") if "INC-1" in m["text"]), None))
    assert f"<#{cid}>" in summary["text"] and "HighErrorRate" in summary["text"]
    assert not [m for m in _top(on, "C0INCIDENT") if m["text"].startswith("INC-1 ")]  # the card is not there

    # a commander named later is invited at the next card update; the thread follows the card
    on.command(CAROL, f"role INC-1 commander <@{ALICE}>")
    wait_for(lambda: ALICE in _members(on, cid))
    on.command(CAROL, "resolve INC-1")
    wait_for(lambda: [m for m in on.sandbox.workspace.messages[cid] if m.thread_ts == card["ts"]])

    def resolved() -> Any:
        with on.services.sessions() as s:
            return incidents.get(db_session=s, incident_id="INC-1").resolved_at

    resolved_at = wait_for(resolved)  # the command runs after its ack

    assert archive_due(on.services, now=resolved_at + timedelta(hours=23)) == []
    assert archive_due(on.services, now=resolved_at + timedelta(hours=24, seconds=1)) == ["INC-1"]
    assert archive_due(on.services, now=resolved_at + timedelta(hours=48)) == []  # chosen once
    wait_for(lambda: on.sandbox.workspace.channels[cid]["is_archived"])

    def archived() -> bool:
        with on.services.sessions() as s:
            row = channels.get(db_session=s, incident_id="INC-1")
            return row is not None and row.state == channels.ARCHIVED and row.archived_at is not None

    wait_for(archived)  # recorded once the worker's delivery commits
    assert len([c for c in _calls(on, "conversations.archive") if c["ok"]]) == 1
    on.command(CAROL, "reopen INC-1")  # its card lives in an archived channel: it stays resolved
    assert "channel is archived, so it stays resolved" in on.wait_ephemeral(CAROL, "stays resolved")


def test_a_name_in_use_gets_a_suffix(on: Harness) -> None:
    control(on.sandbox, "faults", {"method": "conversations.create", "kind": "error", "error": "name_taken"})
    on.post_alert("generic", generic("HighErrorRate", "paymentservice"))
    chan = _channel(on, "inc-1-")
    assert chan["name"].endswith("-2")
    wait_for(lambda: next((m for m in _top(on, chan["id"]) if m["text"].startswith("INC-1 ")), None))


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "conversations.create", "kind": "error", "error": "missing_scope"},
        {"method": "conversations.create", "kind": "rate_limited", "retry_after": 30},
    ],
)
def test_creation_failure_puts_the_card_in_the_main_channel(on: Harness, fault: dict[str, Any]) -> None:
    control(on.sandbox, "faults", fault)
    on.post_alert("generic", generic("HighErrorRate", "paymentservice"))
    card = on.card_for("INC-1")  # in the main channel, at once
    assert card["ts"]
    with on.services.sessions() as s:
        row = channels.get(db_session=s, incident_id="INC-1")
        assert row is not None and row.state == channels.FAILED
        audited = s.execute(
            sa.select(AuditEntry).where(
                AuditEntry.event == "incident_channel", AuditEntry.decision == "failed"
            )
        ).scalars()
        assert [a.incident_id for a in audited] == ["INC-1"]
    with on.sandbox.workspace.lock:
        assert not [c for c in on.sandbox.workspace.channels.values() if c["name"].startswith("inc-")]
    # later updates stay with the card in the main channel
    on.command(CAROL, "resolve INC-1")
    on.wait_card("INC-1", lambda blocks: "Resolved" in blocks)


def test_off_by_default(harness: Harness) -> None:
    harness.post_alert("generic", generic("HighErrorRate", "paymentservice"))
    harness.card_for("INC-1")
    assert _calls(harness, "conversations.create") == []


def test_resolving_updates_the_main_channels_summary_in_place(on: Harness) -> None:
    on.post_alert("generic", generic("HighErrorRate", "paymentservice"))
    cid = _channel(on, "inc-1-")["id"]

    def summary() -> dict[str, Any] | None:
        return next((m for m in _top(on, "C0INCIDENT") if f"<#{cid}>" in m["text"]), None)

    first = wait_for(summary)
    assert first["text"].startswith("🔴 INC-1 ") and f"<#{cid}>" in first["text"]
    on.command(CAROL, "resolve INC-1")
    updated = wait_for(lambda: (m := summary()) is not None and "resolved after" in m["text"] and m)
    assert updated["ts"] == first["ts"] and updated["text"].startswith("✅ INC-1 ")
    assert f"<#{cid}>" in updated["text"]
    summaries = [m for m in _top(on, "C0INCIDENT") if f"<#{cid}>" in m["text"]]
    assert len(summaries) == 1  # updated, not posted again
    assert [c for c in _calls(on, "chat.update") if c["ok"] and c.get("args", {}).get("ts") == first["ts"]]


def test_severity_title_and_reopening_update_the_summary_in_place(on: Harness) -> None:
    on.post_alert("generic", generic("HighErrorRate", "paymentservice"))
    cid = _channel(on, "inc-1-")["id"]

    def summary() -> dict[str, Any] | None:
        return next((m for m in _top(on, "C0INCIDENT") if f"<#{cid}>" in m["text"]), None)

    def says(text: str) -> dict[str, Any]:
        return dict(wait_for(lambda: (m := summary()) is not None and text in m["text"] and m))

    first = wait_for(summary)
    assert first["text"].startswith("🔴 INC-1 [sev3] ")
    on.command(CAROL, "severity INC-1 sev1")
    assert says("[sev1]")["ts"] == first["ts"]
    on.command(CAROL, "title INC-1 Payments are failing")
    assert says("[sev1] Payments are failing")["ts"] == first["ts"]
    on.command(CAROL, "resolve INC-1")
    assert says("resolved after")["text"].startswith("✅ INC-1 [sev1] Payments are failing")
    on.command(CAROL, "reopen INC-1")
    reopened = says("🔴 INC-1 [sev1] Payments are failing")
    assert reopened["ts"] == first["ts"] and "resolved after" not in reopened["text"]
    assert [m["ts"] for m in _top(on, "C0INCIDENT") if f"<#{cid}>" in m["text"]] == [first["ts"]]
    with on.services.sessions() as s:
        incident = incidents.get(db_session=s, incident_id="INC-1")
        assert (incident.status, incident.resolved_at) == ("open", None)
        notes = [e for e in incidents.record(db_session=s, incident_id="INC-1")["events"]
                 if e.get("changed") or e.get("reopened")]  # fmt: skip
        assert [(e.get("changed"), e.get("after")) for e in notes] == [
            ("severity", "sev1"),
            ("title", "Payments are failing"),
            (None, None),
        ]
        # a burst of changes before the worker sends queues one update (one row, coalesced by key)
        channels_ = IncidentChannels(on.services)
        before = s.execute(sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one()
        assert channels_.resummarise(s, "INC-1", on.services.clock())
        assert channels_.resummarise(s, "INC-1", on.services.clock())
        s.flush()
        assert s.execute(sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one() == before + 1
        s.rollback()
