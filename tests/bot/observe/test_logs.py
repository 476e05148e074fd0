"""REMEDIATE_LOG_FORMAT=json: one JSON object per line, trace and span ids inside a span, credentials masked."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from bot.observe.logs import JsonFormatter
from bot.sandbox import SandboxOptions, SlackSandbox
from tests.bot.feeds.promserver import free_port
from tests.bot.sandbox.conftest import wait_for


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("remediate.test-json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, out
    log.removeHandler(handler)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_object_without_ids_outside_a_span(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    log.info("posting to %s", "https://user:hunter2@hooks.example.com/x")
    (line,) = _lines(out)
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["level"] == "INFO" and line["logger"] == "remediate.test-json"
    assert "hunter2" not in str(line["message"]) and str(line["time"]).endswith("Z")


def test_ids_of_the_active_span_and_the_exception(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    tracer = TracerProvider().get_tracer("test")  # a local provider: the global one stays untouched
    with tracer.start_as_current_span("work") as span:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    (line,) = _lines(out)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert "ValueError: boom" in str(line["exception"])


def test_serve_logs_json(tmp_path: Path, sqlite_url: str) -> None:
    with SlackSandbox(SandboxOptions()) as sandbox:
        port = free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": sandbox.bot_token,
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": sandbox.api_url,
            "REMEDIATE_ALERTS_TOKEN": "t",
            "REMEDIATE_DATABASE_URL": sqlite_url,
            "REMEDIATE_DATA_DIR": str(tmp_path),
            "REMEDIATE_TOPOLOGY": "online-boutique",
            "REMEDIATE_LOG_FORMAT": "json",
            "REMEDIATE_LOG_LEVEL": "DEBUG",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            err = proc.stderr
            assert err is not None
            first = wait_for(lambda: err.readline() if proc.poll() is None else "exited")
            line = json.loads(first)
            assert {"time", "level", "logger", "message"} <= set(line)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
