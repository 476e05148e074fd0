"""Streaming export of the store as `remediate.incident/v1` JSON Lines (what `import` reads back)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

import sqlalchemy as sa

from incidents_db.perf import relaxed_gc
from incidents_db.service import EVENTS, INCIDENTS, event_to_dict, incident_to_dict

DEFAULT_PAGE = 1000


def iter_records(*, engine: sa.Engine, page_size: int = DEFAULT_PAGE) -> Iterator[dict[str, Any]]:
    """Yield every incident with its timeline, ordered by id, reading one page of incidents at a time."""
    after: str | None = None
    with engine.connect() as conn:
        while True:
            query = sa.select(INCIDENTS).order_by(INCIDENTS.c.id).limit(page_size)
            if after is not None:
                query = query.where(INCIDENTS.c.id > after)
            page = conn.execute(query).all()
            if not page:
                return
            timelines: dict[str, list[dict[str, Any]]] = {row.id: [] for row in page}
            events = conn.execute(
                sa.select(
                    EVENTS.c.incident_id, EVENTS.c.at, EVENTS.c.type, EVENTS.c.service, EVENTS.c.payload
                )
                .where(EVENTS.c.incident_id.in_(list(timelines)))
                .order_by(EVENTS.c.incident_id, EVENTS.c.seq)
            )
            for ev in events:
                timelines[ev.incident_id].append(
                    event_to_dict(at=ev.at, type_=ev.type, service=ev.service, payload=ev.payload)
                )
            for row in page:
                yield incident_to_dict(row, timelines[row.id])
            after = page[-1].id


def export_lines(*, engine: sa.Engine, out: IO[str], on_progress: Callable[[int], None] | None = None) -> int:
    """Write the whole store to `out` as JSON Lines and return how many incidents were written."""
    written = 0
    with relaxed_gc():
        for record in iter_records(engine=engine):
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            written += 1
            if on_progress is not None and written % DEFAULT_PAGE == 0:
                on_progress(written)
    if on_progress is not None:
        on_progress(written)
    return written
