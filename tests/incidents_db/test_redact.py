"""Credentials in URLs are masked wherever a URL reaches a person or a log."""

from __future__ import annotations

import logging
import sys

import pytest

from incidents_db.redact import RedactingFormatter, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://u:hunter2@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql+psycopg://u@db/x?password=hunter2", "postgresql+psycopg://u@db/x?password=***"),
        ("sqlite:////var/lib/remediate/store.sqlite", "sqlite:////var/lib/remediate/store.sqlite"),
        ("https://slack.com/api/", "https://slack.com/api/"),
        (
            "https://u:hunter2@api.example/x?token=hunter2&n=1#f",
            "https://u:***@api.example/x?token=***&n=1#f",
        ),
        ("https://hunter2@api.example/x", "https://***@api.example/x"),
        (
            "https://api.example/x?api_key=hunter2&X-Sig=hunter2",
            "https://api.example/x?api_key=***&X-Sig=***",
        ),
        ("https://hooks.slack.com/services/T1/B2/hunter2", "https://hooks.slack.com/services/***"),
        ("mysql://root:hunter2@db/x", "mysql://root:***@db/x"),
        ("root:hunter2@db/x", "***@db/x"),
    ],
)
def test_redact_url(url: str, masked: str) -> None:
    assert redact_url(url) == masked


def test_redact_text_masks_every_url_in_a_message() -> None:
    text = "cannot open 'postgresql+psycopg://u:hunter2@db/x'; retry https://a.example/?token=hunter2 later"
    assert (
        redact_text(text)
        == "cannot open 'postgresql+psycopg://u:***@db/x'; retry https://a.example/?token=*** later"
    )


def test_log_lines_and_tracebacks_are_masked() -> None:
    try:
        raise RuntimeError("lost postgresql+psycopg://u:hunter2@db/x")
    except RuntimeError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "to %s", ("https://h/?token=hunter2",), None
        )
        record.exc_info = sys.exc_info()
    line = RedactingFormatter("%(message)s").format(record)
    assert "hunter2" not in line and "token=***" in line and "u:***@db" in line
