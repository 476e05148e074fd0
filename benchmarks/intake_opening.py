"""bench_intake.py's second case: every delivery opens a new incident, with 10 to 10,000 already stored.

An alert with no incident yet asks two things the fingerprint table cannot answer: which open incident
of its service was updated within the grouping window (`incidents.open_for_service`) and, when none,
the next id (`incidents.next_incident_id`). Since migration 0019 both are index lookups; before, one
read up to 200 open incidents and the other every ``INC-`` id of the store.

Each size starts from a fresh store filled by the importer (COPY / executemany, seconds even at 10,000):
incidents ``INC-1``... (every 100th with a PagerDuty-style id instead), each with one alert event, on 40
services, all resolved but the last `OPEN_KEPT`. Each measured delivery is one Alertmanager group of
`ALERTS` firing alerts on a service never seen, so it opens an incident; after it, untimed, the same
alerts resolved close that incident again, so the store keeps its size and its few open incidents.
The stores of every size are filled first; then rounds go over every store and both paths in turn (the
order flipping each round), so the machine's load swings every size and path alike. The paths: ``indexed`` (what intake does) and ``scans (before)``, the same `ingest` with the old reads
(`incidents.open_for_service_scan`, `incidents.next_incident_id_scan`) passed in, as the fingerprint
case passes its old scan. The old open-incidents read runs on the new schema, where its status filter
can use `ix_incidents_status_updated_at`; the old store had no index for it (full table scan and sort).
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from tables import markdown_table

OPEN_KEPT = 3  # open incidents in the store at every size (the rest resolved)
ALERTS = 10  # firing alerts per measured delivery
HEADER = ("backend", "stored incidents", "path", "deliveries", "alerts/s", "alerts/cpu-s", "p50 ms", "p99 ms")


def history(n: int, now: datetime) -> bytes:
    """``n`` incidents in `remediate.incident/v1` JSON Lines: all resolved but the last `OPEN_KEPT`."""
    out = []
    for k in range(n):
        opened = now - timedelta(minutes=2 * (n - k))
        service = f"old-{k % 40:02d}"
        record: dict[str, Any] = {
            "format": "remediate.incident/v1",
            "id": f"PD-{k:06d}" if k % 100 == 99 else f"INC-{k + 1}",
            "title": f"{service} errors",
            "severity": "sev3",
            "services": [service],
            "opened_at": opened.isoformat(),
            "events": [
                {"at": opened.isoformat(), "type": "alert", "status": "firing", "name": "Errors",
                 "service": service, "fingerprint": f"old-{k}"},
            ],
        }  # fmt: skip
        if k < n - OPEN_KEPT:
            record["resolved_at"] = (opened + timedelta(minutes=1)).isoformat()
        out.append(json.dumps(record))
    return ("\n".join(out) + "\n").encode()


def fill(engine: sa.Engine, n: int) -> float:
    """Import ``n`` incidents; return the seconds it took."""
    from incidents_db.importer import import_lines
    from incidents_db.models import Incident

    start = time.perf_counter()
    report = import_lines(engine=engine, lines=io.BytesIO(history(n, datetime.now(UTC))), workers=0)
    took = time.perf_counter() - start
    with engine.connect() as conn:
        opened = conn.execute(sa.select(sa.func.count()).where(Incident.status == "open")).scalar_one()
    assert report.imported == n and opened == min(n, OPEN_KEPT), (report.imported, opened)
    return took


def delivery(k: int, status: str) -> bytes:
    """An Alertmanager group of `ALERTS` alerts on service ``new-<k>``, all in ``status``."""
    alerts = [
        {
            "status": status,
            "labels": {"alertname": f"Alert{a % 3}", "service": f"new-{k:05d}", "severity": "warning"},
            "annotations": {"summary": f"new service {k} alert {a}"},
            "fingerprint": f"new-{k}-{a}",
        }
        for a in range(ALERTS)
    ]
    return json.dumps({"version": "4", "groupKey": f"new-{k}", "status": status, "alerts": alerts}).encode()


def _sender(services: Any, **reads: Any) -> Any:
    """The webhook's work without the socket (decode, parse, ingest, commit); returns intake's result."""
    from bot.alerts.intake import ingest
    from bot.alerts.models import decode_json, parse_alerts
    from bot.alerts.resolve import resolver_for

    resolver = resolver_for(services)

    def send(body: bytes) -> Any:
        return ingest(services, parse_alerts("alertmanager", decode_json(body), resolver).accepted, **reads)

    return send


def paths() -> list[tuple[str, dict[str, Any]]]:
    """The two paths: intake as it is, and with the reads of an alert with no incident before 0019."""
    from incidents_db import incidents

    before = {
        "_open_for_service": incidents.open_for_service_scan,
        "_next_id": incidents.next_incident_id_scan,
    }
    return [("indexed", {}), ("scans (before)", before)]


def run_sizes(
    stores: list[tuple[int, Any, sa.Engine]], backend: str, deliveries: int
) -> list[tuple[str, ...]]:
    """Fill each store (size, services, engine) and measure both paths on all; return the table rows.

    Rounds go over every store and both paths in turn (the order flipping each round), so a change in
    the machine's load lands on every size and path alike.
    """
    for n, _, engine in stores:
        took = fill(engine, n)
        print(
            f"{backend}, {n:,} stored incidents ({min(n, OPEN_KEPT)} open): imported in {took:.1f} s",
            flush=True,
        )
    named = paths()
    cells = [(n, name, _sender(services, **reads)) for n, services, _ in stores for name, reads in named]
    times: list[list[float]] = [[] for _ in cells]
    cpu = [0.0 for _ in cells]
    for j in range(deliveries + 1):  # the first round warms up (not counted)
        order = range(len(cells)) if j % 2 else reversed(range(len(cells)))
        for c in order:
            send, k = cells[c][2], j * len(cells) + c
            t0, c0 = time.perf_counter(), time.process_time()
            opened = send(delivery(k, "firing"))
            wall, used = time.perf_counter() - t0, time.process_time() - c0
            assert len(opened.created) == 1 and opened.recorded == ALERTS, opened
            closed = send(delivery(k, "resolved"))  # untimed: the store keeps its size and open incidents
            assert closed.recorded == ALERTS and not closed.created, closed
            if j:
                times[c].append(wall)
                cpu[c] += used
    rows = []
    for (n, name, _), spent, cpu_s in zip(cells, times, cpu, strict=True):
        spent.sort()
        alerts = len(spent) * ALERTS

        def ms(q: float, spent: list[float] = spent) -> str:
            return f"{spent[min(len(spent) - 1, int(q * len(spent)))] * 1000.0:.1f}"

        rate, cpu_rate = alerts / sum(spent), alerts / cpu_s
        rows.append(
            (backend, f"{n:,}", name, str(len(spent)), f"{rate:,.0f}", f"{cpu_rate:,.0f}", ms(0.5), ms(0.99))
        )
        print("  " + " | ".join(rows[-1][1:]), flush=True)
    return rows


def verdict(rows: list[tuple[str, ...]], sizes: list[int]) -> list[str]:
    """The target lines: the indexed path flat within 20 % from the smallest to the largest store."""
    figure = {(r[0], r[1], r[2], col): float(r[col].replace(",", "")) for r in rows for col in (4, 5, 7)}
    first, last = f"{sizes[0]:,}", f"{sizes[-1]:,}"
    lines = []
    for backend in dict.fromkeys(r[0] for r in rows):
        for col, unit in ((4, "alerts/s"), (5, "alerts/cpu-s")):
            change = figure[(backend, last, "indexed", col)] / figure[(backend, first, "indexed", col)] - 1.0
            lines.append(
                f"{backend}, new incidents, indexed, {unit}: {first} -> {last} stored incidents {change:+.0%}"
                f" (flat, at most 20 % slower: {'met' if change >= -0.20 else 'missed'})"
            )
        p99 = figure[(backend, last, "indexed", 7)] / figure[(backend, first, "indexed", 7)] - 1.0
        lines.append(f"{backend}, new incidents, indexed, p99: {first} -> {last} stored incidents {p99:+.0%}")
        for size in (first, last):
            ratio = figure[(backend, size, "indexed", 4)] / figure[(backend, size, "scans (before)", 4)]
            lines.append(
                f"{backend}: at {size} stored incidents indexed / scans (before) = x{ratio:.2f} alerts/s"
            )
    return lines


def print_report(rows: list[tuple[str, ...]], sizes: list[int]) -> None:
    """Print the Markdown table and the target lines of this case."""
    print("\n" + markdown_table(HEADER, rows))
    print(
        f"\nEach delivery: {ALERTS} firing alerts on a service never seen, opening one incident (closed again,"
        f" untimed); {OPEN_KEPT} open incidents in every store, the rest resolved. Every size and path take"
        " turns delivery by delivery; alerts/cpu-s = alerts per CPU second of this process during the"
        " timed deliveries. Target: indexed flat within 20 % from the smallest to the largest store."
    )
    for line in verdict(rows, sizes):
        print("target: " + line)
