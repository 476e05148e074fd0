"""Every rule of remediate.incident/v1, table-driven: a bad record names the field and the rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from incidents_db.schema import format_error, iso, parse_line
from tests.incidents_db.factories import incident, line, with_event

BASE = incident()

CASES = [
    ("malformed JSON", '{"format": "remediate.incident/v1", "id": ', "malformed JSON"),
    ("not an object", "[1, 2]", "expected a JSON object"),
    ("wrong format", line({**BASE, "format": "remediate.incident/v2"}), "format: expected exactly"),
    (
        "zone-less opened_at",
        line({**BASE, "opened_at": "2026-03-02T10:14:00"}),
        "opened_at: timestamp has no time zone",
    ),
    (
        "zone-less event",
        line(with_event(BASE, 2, at="2026-03-02T10:14:00")),
        "events[2].at: timestamp has no time zone",
    ),
    ("epoch number", line({**BASE, "opened_at": 1772446440}), "opened_at: expected an RFC 3339"),
    ("resolved before opened", line({**BASE, "resolved_at": "2026-03-02T10:00:00Z"}), "is before opened_at"),
    ("out of order", line(with_event(BASE, 5, at="2026-03-02T10:00:00Z")), "events must be in time order"),
    (
        "unknown event type",
        line(with_event(BASE, 0, type="page")),
        "events[0].type: unknown event type 'page'",
    ),
    ("event without type", line(with_event(BASE, 0, type=None)), "event needs a 'type'"),
    ("bad severity", line({**BASE, "severity": "critical"}), "severity: expected 'sev1'"),
    ("bad outcome", line(with_event(BASE, 4, outcome="ok")), "events[4].outcome: expected 'succeeded'"),
    ("bad alert status", line(with_event(BASE, 2, status="pending")), "events[2].status: expected 'firing'"),
    ("empty title", line({**BASE, "title": ""}), "title: must not be empty"),
    ("blank id", line({**BASE, "id": "   "}), "id: must not be blank"),
    ("missing id", line({k: v for k, v in BASE.items() if k != "id"}), "id: required field is missing"),
    ("empty alert name", line(with_event(BASE, 2, name="")), "events[2].name: must not be empty"),
    ("metric not a number", line(with_event(BASE, 3, values={"cpu": "high"})), "events[3].values.cpu"),
    ("label not a string", line(with_event(BASE, 2, labels={"n": 1})), "events[2].labels.n"),
    ("id too long", line({**BASE, "id": "x" * 201}), "id: is longer than 200 characters"),
    ("action without outcome", line(with_event(BASE, 4, outcome=None)), "events[4].outcome: required field"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in CASES], ids=[n for n, _, _ in CASES])
def test_bad_records_name_the_rule(text: str, expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_line(text)
    assert expected in format_error(info.value)


def test_valid_record_with_unknown_keys_and_unicode() -> None:
    record = parse_line(
        line(
            {
                **BASE,
                "title": "Zahlungsfehler – ünïcödé ✅",
                "vendor_field": {"x": 1},
                "events": BASE["events"],
            }
        )
    )
    assert record.title == "Zahlungsfehler – ünïcödé ✅"
    assert not hasattr(record, "vendor_field")
    assert [e.type for e in record.events][:3] == ["deploy", "config_change", "alert"]


def test_open_incident_and_offsets_are_normalised_to_utc() -> None:
    record = parse_line(
        line({**BASE, "opened_at": "2026-03-02T12:14:00+02:00", "resolved_at": None, "events": []})
    )
    assert record.resolved_at is None
    assert iso(record.opened_at) == "2026-03-02T10:14:00Z"
