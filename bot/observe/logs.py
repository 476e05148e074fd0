"""Log lines as text or as JSON objects (``REMEDIATE_LOG_FORMAT=json``), credentials masked either way.

A JSON line holds ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, ``exception`` when one
was logged, and ``trace_id`` / ``span_id`` (hex) when an OpenTelemetry span is active: the current
span comes from ``opentelemetry.trace.get_current_span()``, an invalid one while tracing is off, in
which case the two keys are left out.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from incidents_db.redact import log_to_stderr, redact_text


def span_ids() -> dict[str, str]:
    """Return the active span's trace and span ids as hex, or nothing when no valid span is active."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, every text masked like the text format's."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            **span_ids(),
        }
        if record.exc_info:
            line["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str | int, log_format: str = "text") -> None:
    """Configure the root logger on stderr in the chosen format (``text`` or ``json``)."""
    log_to_stderr(level)
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
