"""History from where it lives: incidents and their events read from another SQL database, or a PagerDuty export.

Each source is turned into `remediate.incident/v1` records, one per incident, and those go through the
JSON Lines import (`importer.import_lines`) unchanged: the same validation and refusals (a record that
breaks a rule is refused with the field and the rule, the rest still import) and the same idempotency
(an id already in the store is skipped). Refusals are numbered by the incident's position in the source
(the row of the incidents query, the incident in the export) and name its id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from incidents_db.errors import MappingError
from incidents_db.import_mapping import Mapping, Section, check_columns, to_time
from incidents_db.import_rows import ImportReport, Refusal
from incidents_db.importer import DEFAULT_BATCH, import_lines
from incidents_db.redact import redact_url
from incidents_db.schema import FORMAT

Record = tuple[str, dict[str, Any] | str]  # (incident id, the record, or why the row could not be read)
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql", "sqlite": "sqlite"}  # fmt: skip
JSON_FIELDS = ("labels", "params", "values")
TIME_FIELDS = ("opened_at", "resolved_at", "at")


def source_url(url: str) -> str:
    """Return the SQLAlchemy URL with the driver we ship; refuse other databases."""
    scheme, sep, rest = url.partition("://")
    driver = DRIVERS.get(scheme.split("+", 1)[0].lower())
    if not sep or driver is None:
        raise MappingError(
            f"{redact_url(url)}: expected a postgresql://, mysql:// (MariaDB too) or sqlite:/// URL"
        )
    return f"{driver}://{rest}"


def _value(section: Section, field: str, raw: Any) -> Any:
    """Return one field's value: the source's, translated by ``values``, else the default."""
    if raw is None or raw == "":
        return section.defaults.get(field)
    table = section.values.get(field)
    if table is not None:
        raw = table.get(str(raw).strip(), raw)
    if field in TIME_FIELDS:
        return to_time(raw, section.time_of(field))
    if field in JSON_FIELDS and isinstance(raw, str | bytes):
        return json.loads(raw)
    if field == "value":
        return float(raw)
    if field == "services":
        return [s.strip() for s in raw.split(",") if s.strip()] if isinstance(raw, str) else list(raw)
    return raw if isinstance(raw, str | list | dict) else str(raw)


def _fields(section: Section, row: sa.RowMapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in {*section.columns, *section.defaults}:
        column = section.columns.get(field)
        try:
            value = _value(section, field, row[column] if column else None)
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            got = row[column] if column else None
            raise ValueError(f"{field}: cannot read {got!r} from column {column!r} ({exc})") from None
        if value is not None:
            out[field] = value
    return out


def _incident(mapping: Mapping, fields: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": FORMAT,
        **{k: v for k, v in fields.items() if not k.startswith("root_")},
    }
    record["id"] = f"{mapping.id_prefix}{fields.get('id', '')}"
    cause = {k[len("root_cause_") :]: v for k, v in fields.items() if k.startswith("root_cause_")}
    if cause:
        record["root_cause"] = cause
    record["events"] = events
    return record


def _events(conn: sa.Connection, mapping: Mapping) -> dict[str, list[dict[str, Any] | str]]:
    """Read every event, grouped by incident id (a row that cannot be read is kept as its reason)."""
    grouped: dict[str, list[dict[str, Any] | str]] = {}
    if mapping.events is None:
        return grouped
    result = conn.execute(sa.text(mapping.events.query))
    check_columns("events", mapping.events, list(result.keys()))
    for number, row in enumerate(result.mappings(), start=1):
        column = mapping.events.columns.get("incident_id")
        incident = (
            f"{mapping.id_prefix}{row[column] if column else mapping.events.defaults.get('incident_id')}"
        )
        try:
            fields = _fields(mapping.events, row)
        except ValueError as exc:
            grouped.setdefault(incident, []).append(f"event row {number}: {exc}")
            continue
        fields.pop("incident_id", None)
        grouped.setdefault(incident, []).append(fields)
    return grouped


def read_sql(url: str, mapping: Mapping) -> Iterator[Record]:
    """Yield (incident id, record or reason) for every row of the mapping's incidents query, with its events."""
    engine = sa.create_engine(source_url(url))
    try:
        with engine.connect() as conn:
            events = _events(conn, mapping)
            result = conn.execute(sa.text(mapping.incidents.query))
            check_columns("incidents", mapping.incidents, list(result.keys()))
            for row in result.mappings():
                yield _one(mapping, row, events)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise MappingError(f"{redact_url(url)}: {reason}") from None
    finally:
        engine.dispose()


def _one(mapping: Mapping, row: sa.RowMapping, events: dict[str, list[dict[str, Any] | str]]) -> Record:
    column = mapping.incidents.columns.get("id")
    ident = f"{mapping.id_prefix}{row[column] if column else ''}"
    try:
        fields = _fields(mapping.incidents, row)
    except ValueError as exc:
        return ident, str(exc)
    mine = events.get(ident, [])
    broken = [e for e in mine if isinstance(e, str)]
    if broken:
        return ident, broken[0]
    return ident, _incident(mapping, fields, [e for e in mine if isinstance(e, dict)])


def import_records(*, engine: sa.Engine, records: Iterable[Record], source: str, batch_size: int = DEFAULT_BATCH,
                   on_commit: Callable[[Any], None] | None = None) -> ImportReport:  # fmt: skip
    """Import records through the JSON Lines import; refusals name the incident id."""
    ids: list[str] = []
    unreadable: list[Refusal] = []

    def lines() -> Iterator[bytes]:
        for ident, record in records:
            ids.append(ident)
            if isinstance(record, str):
                unreadable.append(Refusal(len(ids), record))
                yield b"\n"  # counted as a line, never parsed: the numbers stay the source's
            else:
                yield json.dumps(record, default=str).encode() + b"\n"

    report = import_lines(
        engine=engine, lines=lines(), batch_size=batch_size, source=source, on_commit=on_commit
    )
    refused = sorted(report.refused + unreadable, key=lambda r: r.line)
    named = [Refusal(r.line, f"incident {ids[r.line - 1]!r}: {r.error}") for r in refused]
    return ImportReport(report.imported, report.skipped_existing, named, report.lines)
