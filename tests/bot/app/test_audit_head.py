"""The audit head published outside the database by the running bot: file, Slack channel and webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app.audit_head import HeadPublisher, PublishResult
from bot.app.jobs import publish_audit_head, start_jobs
from bot.settings import SettingsError, load_settings
from incidents_db.models import AuditEntry
from remediation.audit.published import read_last
from remediation.audit.service import append, verify
from tests.bot.conftest import Harness
from tests.bot.sandbox.conftest import control, wait_for

GENERAL = "C0GENERAL1"  # the sandbox's #general, where the bot is a member


class Webhook:
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/audit-head"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def write_entries(h: Harness, n: int) -> None:
    with h.services.sessions() as session:
        for i in range(n):
            append(
                db_session=session, actor="U0CAROL003", event="freeze_on", decision="allowed", reason=f"{i}"
            )
        session.commit()


def publisher(h: Harness, tmp_path: Path, **settings: Any) -> HeadPublisher:
    """Build the publisher as `remediate serve` does: from the settings (environment names in the README)."""
    values = load_settings(**settings)
    return HeadPublisher.from_settings(values, sessions=h.services.sessions, clock=h.services.clock)


def run(job: HeadPublisher) -> PublishResult:
    """Run the scheduled job's function once, as the scheduler would."""
    result = publish_audit_head(job)
    assert result is not None, "the job raised (see the log)"
    return result


def channel_texts(h: Harness) -> list[str]:
    found = control(h.sandbox, f"messages?channel={GENERAL}", method="GET")
    items = found.get("messages", found) if isinstance(found, dict) else found
    return [str(m.get("text", "")) for m in items]


def test_the_scheduled_job_publishes_to_the_file_the_channel_and_the_webhook(
    db_harness: Harness, tmp_path: Path, webhook: Webhook
) -> None:
    h = db_harness
    path = tmp_path / "heads.jsonl"
    job = publisher(
        h, tmp_path, audit_head_file=path, audit_head_channel="general", audit_head_webhook=webhook.url
    )
    assert job.every_s == 300.0
    scheduler = start_jobs(h.services, audit_head=job)
    try:  # `serve` registers the job; the test runs it itself instead of waiting on the scheduler
        registered = scheduler.get_job("publish-audit-head")
        assert registered is not None and registered.trigger.interval.total_seconds() == 300.0
    finally:
        scheduler.shutdown(wait=False)
    write_entries(h, 3)
    result = run(job)
    assert result.ok, result
    head = read_last(path)
    assert head is not None and (head.seq, head.entries) == (3, 3)
    with h.services.sessions() as session:
        newest = session.get(AuditEntry, 3)
        assert newest is not None and head.hash == newest.hash
    assert webhook.bodies == [{"ok": True, **head.as_dict(), "text": webhook.bodies[0]["text"]}]
    h.app.worker.wake()
    text = wait_for(lambda: next((t for t in channel_texts(h) if head.hash in t), None))
    assert f"--expect-head 3:{head.hash}" in text


def test_the_file_grows_only_when_the_head_changes_and_never_rewrites_a_line(
    db_harness: Harness, tmp_path: Path, webhook: Webhook
) -> None:
    h = db_harness
    path = tmp_path / "heads.jsonl"
    job = publisher(h, tmp_path, audit_head_file=path, audit_head_webhook=webhook.url)
    write_entries(h, 2)
    assert run(job).sent_to
    first = path.read_bytes()
    assert first.count(b"\n") == 1
    for _ in range(3):
        assert run(job).unchanged
    # a fresh process (the one-shot CLI) reads the file's last line and publishes nothing new either
    assert run(publisher(h, tmp_path, audit_head_file=path)).unchanged
    assert path.read_bytes() == first and len(webhook.bodies) == 1
    write_entries(h, 1)
    assert run(job).ok
    second = path.read_bytes()
    assert second.startswith(first) and second.count(b"\n") == 2
    assert [json.loads(line)["seq"] for line in second.splitlines()] == [2, 3]
    assert [b["seq"] for b in webhook.bodies] == [2, 3]


def test_a_cut_and_reheaded_log_is_refused_reported_and_caught_by_the_published_head(
    db_harness: Harness, tmp_path: Path
) -> None:
    h = db_harness
    path = tmp_path / "heads.jsonl"
    job = publisher(h, tmp_path, audit_head_file=path, audit_head_channel="general")
    write_entries(h, 5)
    assert run(job).ok
    published = read_last(path)
    assert published is not None and published.seq == 5
    with h.services.sessions() as session:  # the database admin cuts entries 4..5 and re-heads the log
        survivor = session.get(AuditEntry, 3)
        assert survivor is not None
        session.execute(sa.delete(AuditEntry).where(AuditEntry.seq > 3))
        session.execute(
            sa.text("UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1"), {"h": survivor.hash}
        )
        session.commit()
        assert verify(db_session=session).ok  # the store alone cannot tell
    with h.services.sessions() as session:
        caught = verify(db_session=session, expect=[published.checkpoint])
    assert not caught.ok and "entries 4..5 are missing" in caught.problem
    before = path.read_bytes()
    refused = run(job)
    assert not refused.ok and "entries 4..5" in refused.problem
    assert run(job).problem == refused.problem
    assert path.read_bytes() == before  # the cut head is never published over the real one
    h.app.worker.wake()
    wait_for(lambda: any("check FAILED" in t and "entries 4..5" in t for t in channel_texts(h)))
    assert sum("check FAILED" in t for t in channel_texts(h)) == 1  # reported once per problem


def test_the_settings_come_from_the_environment_and_bad_values_name_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REMEDIATE_AUDIT_HEAD_FILE", str(tmp_path / "heads.jsonl"))
    monkeypatch.setenv("REMEDIATE_AUDIT_HEAD_CHANNEL", "audit")
    monkeypatch.setenv("REMEDIATE_AUDIT_HEAD_WEBHOOK", "https://hooks.example/T0/B0/s3cr3t")
    monkeypatch.setenv("REMEDIATE_AUDIT_HEAD_EVERY_S", "60")
    settings = load_settings()
    assert settings.audit_head_file == tmp_path / "heads.jsonl" and settings.audit_head_channel == "audit"
    assert settings.audit_head_every_s == 60.0
    assert "s3cr3t" not in str(settings.model_dump(mode="json"))
    monkeypatch.setenv("REMEDIATE_AUDIT_HEAD_EVERY_S", "0")
    with pytest.raises(SettingsError, match="REMEDIATE_AUDIT_HEAD_EVERY_S"):
        load_settings()
    monkeypatch.delenv("REMEDIATE_AUDIT_HEAD_EVERY_S")
    monkeypatch.setenv("REMEDIATE_AUDIT_HEAD_WEBHOOK", "ftp://example")
    with pytest.raises(SettingsError, match=r"REMEDIATE_AUDIT_HEAD_WEBHOOK.*http"):
        load_settings()
