"""What an imported line becomes: the store's rows, or a refusal; and the reports of an import.

Parsing runs in the importing thread or in a worker process (`Rows` is picklable), so the writer
thread only talks to the database and the Python work of parsing overlaps with the driver's inserts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from incidents_db.models import utcnow
from incidents_db.schema import EVENT_MODELS, IncidentRecord, format_error, parse_line
from incidents_db.service import EVENT_COLUMNS

MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Refusal:
    """A line that was not imported: its 1-based line number and the rule it broke."""

    line: int
    error: str


@dataclass(frozen=True)
class Progress:
    """What is durably in the store so far (sent after every committed batch)."""

    imported: int
    skipped_existing: int
    refused: int
    last_line: int
    bytes_read: int


@dataclass
class ImportReport:
    """The outcome of one import."""

    imported: int = 0
    skipped_existing: int = 0
    refused: list[Refusal] = field(default_factory=list)
    lines: int = 0

    def as_json(self) -> dict[str, Any]:
        """Return the report in the shape `remediate import --json` prints."""
        return {
            "imported": self.imported,
            "skipped_existing": self.skipped_existing,
            "refused": [{"line": r.line, "error": r.error} for r in self.refused],
        }


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=12).digest()


def _sqlite_ts(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DateTime reads back: naive UTC with microseconds.
    if value is None:
        return None
    if value.utcoffset() == _ZERO:
        # Already UTC (the usual `Z`): dropping the "+00:00" tail saves two datetime copies.
        return value.isoformat(sep=" ", timespec="microseconds")[:26]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _pg_ts(value: datetime | None) -> str | None:
    # ISO text with the value's own offset: PostgreSQL stores the same instant as for the UTC spelling
    # (and the offset is +00:00 anyway for the usual `Z`), without a converted copy of the datetime.
    return None if value is None else value.isoformat()


_ZERO = timedelta(0)


# Per event type, the keys that go to `payload` (everything of the event but at/type/service).
_PAYLOAD_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(k for k in model.model_fields if k not in EVENT_COLUMNS)
    for name, model in EVENT_MODELS.items()
}


def _encode(value: Any) -> str:
    # pydantic-core's Rust encoder: a third of the time of json.dumps for the same compact JSON (floats
    # may be spelled differently, e.g. 0.00001 for 1e-05, but parse back to the same value).
    return to_json(value).decode()


# Characters that COPY's text format escapes with a backslash.
_COPY_SPECIAL = re.compile(r"[\\\n\r\t]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text(value: str) -> str:
    """Return `value` as a field of COPY's text format (backslash, newline, CR and tab escaped)."""
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


@dataclass(frozen=True)
class Prepared:
    """One valid incident as the rows the store receives (built in the parsing thread).

    `events` are the event rows, or on PostgreSQL already the lines of a text-format COPY of them:
    built where the parsing runs (a worker process for a large import), they travel to the importing
    process as one bytes object instead of ~100 small objects an incident, and the writer hands them
    to the COPY as they are.
    """

    line: int
    id: str
    incident: tuple[Any, ...]
    events: list[tuple[Any, ...]] | bytes


@dataclass(frozen=True)
class Item:
    """What parsing made of one non-blank line: store rows, or the rule it broke."""

    line: int
    end: int  # bytes read up to the end of this line
    id: str
    digest: bytes
    prepared: Prepared | None
    refusal: Refusal | None


class Rows:
    """Turns lines into store rows (validation, payloads, timestamps); picklable, so workers can run it.

    It runs in the parsing thread or a worker process, so the writer thread only talks to the
    database and the Python work of parsing overlaps with the driver's inserts.
    """

    def __init__(self, postgres: bool, source: str) -> None:
        self.postgres = postgres
        self.source = source

    @property
    def ts(self) -> Callable[[datetime | None], str | None]:
        """Return the timestamp formatter of the backend."""
        return _pg_ts if self.postgres else _sqlite_ts

    def parse(self, chunk: list[tuple[int, int, bytes]]) -> list[Item]:
        """Validate and convert a chunk of (line number, end offset, stripped line) in order."""
        now = self.ts(utcnow())
        stamps: dict[datetime, str | None] = {}
        texts: dict[str | None, str] = {None: "\\N"}  # services as COPY text (PostgreSQL)
        items = []
        for number, end, line in chunk:
            try:
                record = parse_line(line)
            except ValidationError as exc:
                refusal = Refusal(number, format_error(exc)[:MAX_ERROR_CHARS])
                items.append(Item(number, end, "", b"", None, refusal))
                continue
            incident, events = self._rows(record, now, stamps, texts)
            prepared = Prepared(number, record.id, incident, events)
            items.append(Item(number, end, record.id, _digest(line), prepared, None))
        return items

    def _rows(
        self,
        record: IncidentRecord,
        now: str | None,
        stamps: dict[datetime, str | None],
        texts: dict[str | None, str],
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]] | bytes]:
        ts = self.ts
        root = record.root_cause
        incident = (
            record.id,
            record.title,
            record.severity,
            "resolved" if record.resolved_at is not None else "open",
            record.topology,
            _encode(list(record.services or ())),
            root.service if root else None,
            root.fault if root else None,
            self.source,
            ts(record.opened_at),
            ts(record.resolved_at),
            now,
            now,
        )
        if self.postgres:
            return incident, _copy_lines(record, stamps, texts)
        events: list[tuple[Any, ...]] = []
        for seq, event in enumerate(record.events):
            # Validated values are plain JSON types (str, float, dict), so the fields go out as they are;
            # reading __dict__ skips model_dump, which costs more than the rest of the row.
            fields = event.__dict__
            payload = {k: fields[k] for k in _PAYLOAD_KEYS[event.type] if fields[k] is not None}
            # Events of an incident share few distinct times (alerts and metrics land together), so each
            # time is formatted once per batch.
            at = stamps.get(event.at)
            if at is None:
                at = stamps[event.at] = ts(event.at)
            events.append((record.id, seq, at, event.type, fields.get("service"), _encode(payload)))
        return incident, events


def _copy_lines(
    record: IncidentRecord, stamps: dict[datetime, str | None], texts: dict[str | None, str]
) -> bytes:
    """Return the incident's events as lines of a text-format COPY (PostgreSQL).

    `texts` caches services in COPY's escaping (None as COPY's null), `stamps` formatted times; both live
    for a chunk. The payload is compact JSON from pydantic-core, whose strings escape every control
    character, so of COPY's four special characters only the backslash can occur in it.
    """
    copy_id = _copy_text(record.id)
    lines: list[str] = []
    for seq, event in enumerate(record.events):
        fields = event.__dict__  # see Rows._rows
        kind = fields["type"]
        payload = {k: fields[k] for k in _PAYLOAD_KEYS[kind] if fields[k] is not None}
        at = stamps.get(fields["at"])
        if at is None:
            at = stamps[fields["at"]] = _pg_ts(fields["at"])
        service = fields.get("service")
        svc = texts.get(service)
        if svc is None:
            svc = texts[service] = _copy_text(service)  # type: ignore[arg-type]  # None is in `texts`
        body = to_json(payload).decode()
        if "\\" in body:
            body = body.replace("\\", "\\\\")
        # at (ISO text) and type (one of ours) never hold a character COPY escapes
        lines.append(f"{copy_id}\t{seq}\t{at}\t{kind}\t{svc}\t{body}\n")
    return "".join(lines).encode()
