"""bot/tracing.py's hand-overs and the trace id in error replies and audit entries, in one process.

Spans come from a local SDK provider (never installed globally, so other tests stay untraced); the
bot's own helpers read the current context, whoever made it. The whole path through `remediate serve`
and an OTLP receiver is tests/bot/cli/test_serve_tracing.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_trace_id

from bot import tracing
from bot.app.listeners import error_text
from bot.errors import BotError
from bot.settings import load_settings
from incidents_db.db import make_sessionmaker, open_store
from remediation.audit.service import append, verify

TRACER = TracerProvider().get_tracer("test")


def test_an_unexpected_error_names_the_current_trace() -> None:
    with TRACER.start_as_current_span("request") as span:
        text = error_text(RuntimeError("boom"))
    assert f"trace id {format_trace_id(span.get_span_context().trace_id)}" in text
    assert "trace id" in error_text(RuntimeError("untraced"))  # a random id outside a trace
    assert error_text(BotError("known")) == "⚠️ known"


def test_bound_work_runs_in_the_trace_that_queued_it() -> None:
    seen: list[str | None] = []
    with TRACER.start_as_current_span("ack") as span:
        job = tracing.bound(lambda: seen.append(tracing.trace_id()))
    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    assert seen == [format_trace_id(span.get_span_context().trace_id)]


def test_a_stored_carrier_continues_its_trace() -> None:
    assert tracing.carrier() == {} and tracing.tagged({"text": "hi"}) == {"text": "hi"}  # untraced: as is
    with TRACER.start_as_current_span("intake") as span:
        payload = tracing.tagged({"text": "hi"})
    origin = format_trace_id(span.get_span_context().trace_id)
    assert payload["text"] == "hi" and payload["trace"]["traceparent"].split("-")[1] == origin
    with tracing.restored("outbox.deliver", payload["trace"]):
        assert tracing.trace_id() == origin
    with tracing.restored("outbox.deliver", {}):
        assert tracing.trace_id() is None  # nothing stored: nothing to continue


def test_nothing_is_installed_unless_asked(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, otel_traces_exporter="none")
    assert tracing.setup_tracing(settings) is None
    disabled = load_settings(data_dir=tmp_path, otel_traces_exporter="otlp", otel_sdk_disabled=True)
    assert tracing.setup_tracing(disabled) is None
    assert not tracing.enabled()


def test_audit_entries_name_their_trace_and_still_verify(sqlite_url: str) -> None:
    sessions = make_sessionmaker(open_store(sqlite_url))
    with sessions() as s:
        untraced = append(db_session=s, actor="U1", event="request", decision="allowed", reason="r")
        with TRACER.start_as_current_span("click") as span:
            traced = append(db_session=s, actor="U1", event="approve", decision="allowed", reason="r")
        s.commit()
        assert untraced.trace_id is None
        assert traced.trace_id == format_trace_id(span.get_span_context().trace_id)
        assert verify(db_session=s).ok
        traced.trace_id = "0" * 32  # the trace id is hashed: editing it breaks the chain
        s.commit()
        assert not verify(db_session=s).ok
