"""Alert intake with 10, 100 and 1,000 open incidents of 50 alerts each: alerts/s and p99 per delivery.

    .venv/bin/python benchmarks/bench_intake.py [--sizes 10,100,1000] [--deliveries 200]
        [--reference-deliveries 30] [--skip-postgres]

For each backend (a SQLite file, a fresh PostgreSQL database) and each size, the store is filled through
intake itself: one Alertmanager delivery of 50 firing alerts per incident, each incident on its own
service. Then each measured delivery is an Alertmanager group of one incident (drawn by seed): 10 of
its alerts changing status (firing <-> resolved; 40 stay firing, so no incident closes), so every alert
of a delivery is written to a timeline. Three paths, one after another on the same store:

- ``keyed, HTTP``: POST /alerts/alertmanager to the bot's own WSGI server (waitress, in this process),
  bearer token, JSON answer: end to end, what a sender waits for;
- ``keyed``: the webhook's work without the socket (JSON decode, parse, `ingest`, commit);
- ``scan (before)``: the same, with the read intake did before `incidents_db.fingerprints` (every alert
  event of every open incident, `incidents.alert_states`) in place of the keyed read: the same-run
  reference; fewer deliveries, since at 1,000 incidents each one reads 50,000 events.

Targets (issue 18): keyed alerts/s flat within 20 % from 10 to 1,000 open incidents, and >= 500
alerts/s end to end.

A second case (``--cases new``; `intake_opening.py`): every delivery opens a new incident, with 10, 1,000
and 10,000 incidents already stored (3 open): the indexed lookups of migration 0019 against the old
scans, alternating in one run. Target: flat within 20 % from the smallest to the largest store.

    .venv/bin/python benchmarks/bench_intake.py --cases new [--new-sizes 10,1000,10000]
        [--new-deliveries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import intake_opening  # benchmarks/ is on sys.path
import sqlalchemy as sa
from bench_store import Databases
from sqlalchemy.orm import Session
from tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-intake-token"
ALERTS_PER_INCIDENT = 50
FLAPPING = range(40, 50)  # the alerts a measured delivery changes; the other 40 keep their incident open
HEADER = ("backend", "open incidents", "path", "deliveries", "alerts/s", "alerts/cpu-s", "p50 ms", "p99 ms")


def scan(*, db_session: Session, fingerprints: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The read intake did before the fingerprint table: every alert event of every open incident."""
    from incidents_db import incidents

    return incidents.alert_states(db_session=db_session)


def delivery(incident: int, keys: Iterable[int], status: str) -> bytes:
    """An Alertmanager (version 4) group of one incident's alerts, all in ``status``."""
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": f"Alert{k % 7}",
                "service": f"svc-{incident:04d}",
                "severity": "warning",
                "k": str(k),
            },
            "annotations": {"summary": f"alert {k} of incident {incident}"},
            "fingerprint": f"{incident:04d}-{k:02d}",
        }
        for k in keys
    ]
    body = {"version": "4", "groupKey": f"group-{incident}", "status": status, "alerts": alerts}
    return json.dumps(body).encode()


@dataclass
class Store:
    """One store under test: its services, its app's WSGI server and the incidents' flapping state."""

    services: Any
    server: Any
    thread: threading.Thread
    url: str
    engine: sa.Engine
    flipped: list[bool]


def open_bench_store(url: str, workdir: Path) -> Store:
    from waitress.server import create_server

    from bot.app.app import build_app
    from bot.server import Server
    from bot.services import build_services
    from bot.settings import load_settings
    from incidents_db.db import open_store

    settings = load_settings(
        database_url=url,
        data_dir=workdir,
        alerts_token=TOKEN,
        slack_signing_secret="bench-secret",
        slack_bot_token="xoxb-bench",
        slack_api_url="http://127.0.0.1:9/api/",  # never called: the outbox worker does not run here
    )
    engine = open_store(url)
    services = build_services(settings, engine=engine)
    server = create_server(
        Server(build_app(settings, services), alerts_token=TOKEN), host="127.0.0.1", port=0
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return Store(services, server, thread, f"http://127.0.0.1:{server.effective_port}", engine, [])


def direct(store: Store, read: Callable[..., dict[str, tuple[str, str]]] | None) -> Callable[[bytes], None]:
    """The webhook's work without the socket: decode, parse, ingest (keyed, or with ``read``), commit."""
    from bot.alerts.intake import ingest
    from bot.alerts.models import decode_json, parse_alerts
    from bot.alerts.resolve import resolver_for

    resolver = resolver_for(store.services)

    def send(body: bytes) -> None:
        accepted = parse_alerts("alertmanager", decode_json(body), resolver).accepted
        if read is None:
            ingest(store.services, accepted)
        else:
            ingest(store.services, accepted, _read_states=read)

    return send


def over_http(store: Store) -> Callable[[bytes], None]:
    """POST the delivery to the bot's server, as Alertmanager does, and read its answer."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def send(body: bytes) -> None:
        request = urllib.request.Request(store.url + "/alerts/alertmanager", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as resp:
            answer = json.loads(resp.read())
        assert answer.get("ok") and answer.get("recorded") == len(FLAPPING), answer

    return send


def fill(store: Store, n: int) -> float:
    """Open ``n`` incidents of 50 firing alerts through intake; return the seconds it took."""
    send = direct(store, None)
    start = time.perf_counter()
    for i in range(n):
        send(delivery(i, range(ALERTS_PER_INCIDENT), "firing"))
    store.flipped = [False] * n
    return time.perf_counter() - start


def measure(store: Store, send: Callable[[bytes], None], deliveries: int, seed: int) -> tuple[float, ...]:
    """Send ``deliveries`` status changes to incidents drawn by seed; return the figures of one row.

    alerts/s (wall), alerts per CPU second of this process (all its threads, the server's included; a
    figure the machine's other load does not skew), and p50 and p99 per delivery in ms.
    """
    rng = random.Random(seed)
    bodies = []
    for _ in range(deliveries):
        i = rng.randrange(len(store.flipped))
        store.flipped[i] = not store.flipped[i]
        bodies.append(delivery(i, FLAPPING, "resolved" if store.flipped[i] else "firing"))
    send(bodies[0])  # warm-up (not counted): first statements planned, caches filled
    times = []
    cpu0 = time.process_time()
    for body in bodies[1:]:
        t0 = time.perf_counter()
        send(body)
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    times.sort()
    alerts = len(times) * len(FLAPPING)

    def ms(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))] * 1000.0

    return alerts / sum(times), alerts / cpu, ms(0.5), ms(0.99)


def check_open(store: Store, n: int) -> None:
    from incidents_db.fingerprints import AlertFingerprint
    from incidents_db.models import Incident

    with store.services.sessions() as s:
        open_ = s.execute(sa.select(sa.func.count()).where(Incident.status == "open")).scalar_one()
        held = s.execute(sa.select(sa.func.count()).select_from(AlertFingerprint)).scalar_one()
    assert (open_, held) == (n, n * ALERTS_PER_INCIDENT), (open_, held)


def run_size(dbs: Databases, backend: str, n: int, args: argparse.Namespace) -> list[tuple[str, ...]]:
    """Fill a fresh store with ``n`` open incidents and measure the three paths on it."""
    from bot.server import stop_server

    store = open_bench_store(dbs.fresh(backend), dbs.workdir)
    try:
        filled = fill(store, n)
        check_open(store, n)
        print(f"{backend}, {n} open incidents: filled in {filled:.1f} s", flush=True)
        paths = (
            ("keyed", direct(store, None), args.deliveries),
            ("scan (before)", direct(store, scan), args.reference_deliveries),
            ("keyed, HTTP", over_http(store), args.deliveries),
        )
        rows: list[tuple[str, ...]] = []
        for seed, (name, send, count) in enumerate(paths):
            rate, cpu_rate, p50, p99 = measure(store, send, count, seed=n * 10 + seed)
            figures = (f"{rate:,.0f}", f"{cpu_rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}")
            rows.append((backend, f"{n:,}", name, str(count - 1), *figures))
            print("  " + " | ".join(rows[-1][2:]), flush=True)
        check_open(store, n)
        return rows
    finally:
        stop_server(store.server, loop=store.thread)
        store.engine.dispose()


def run_new_sizes(
    dbs: Databases, backend: str, sizes: list[int], args: argparse.Namespace
) -> list[tuple[str, ...]]:
    """Fresh stores of each size; each measured delivery opens a new incident (`intake_opening`)."""
    from bot.server import stop_server

    stores = [open_bench_store(dbs.fresh(backend), dbs.workdir) for _ in sizes]
    try:
        cases = [(n, store.services, store.engine) for n, store in zip(sizes, stores, strict=True)]
        return intake_opening.run_sizes(cases, backend, args.new_deliveries)
    finally:
        for store in stores:
            stop_server(store.server, loop=store.thread)
            store.engine.dispose()


def verdict(rows: list[tuple[str, ...]], sizes: list[int]) -> list[str]:
    """The target lines: flatness of the keyed paths from the smallest to the largest size, and 500/s.

    Each on wall time and on CPU time: on a loaded machine the wall figures swing with what else runs.
    """
    figure = {(r[0], r[1], r[2], col): float(r[col].replace(",", "")) for r in rows for col in (4, 5)}
    first, last = f"{sizes[0]:,}", f"{sizes[-1]:,}"
    lines = []
    for backend in dict.fromkeys(r[0] for r in rows):
        for path in ("keyed, HTTP", "keyed"):
            for col, unit in ((4, "alerts/s"), (5, "alerts/cpu-s")):
                change = figure[(backend, last, path, col)] / figure[(backend, first, path, col)] - 1.0
                slowest = min(figure[(backend, f"{n:,}", path, col)] for n in sizes)
                # flat = no slower at the largest size than 20 % below the smallest (faster is run-to-run noise)
                lines.append(
                    f"{backend}, {path}, {unit}: {first} -> {last} open incidents {change:+.0%} (flat, at most "
                    f"20 % slower: {'met' if change >= -0.20 else 'missed'}); slowest {slowest:,.0f} (>= 500: "
                    f"{'met' if slowest >= 500 else 'missed'})"
                )
        ratio = figure[(backend, last, "keyed", 4)] / figure[(backend, last, "scan (before)", 4)]
        lines.append(f"{backend}: at {last} open incidents keyed / scan (before) = x{ratio:.1f} alerts/s")
    return lines


def print_report(rows: list[tuple[str, ...]], sizes: list[int]) -> None:
    """Print the Markdown table, the target lines and the load the machine was under."""
    print("\n" + markdown_table(HEADER, rows))
    print(
        f"\nEach delivery: one incident's Alertmanager group, {len(FLAPPING)} alerts changing status, all recorded;"
        " alerts/s = alerts / summed delivery time, one delivery at a time; p50/p99 per delivery."
        " scan (before) = intake reading every alert event of every open incident (same run)."
        " alerts/cpu-s = alerts per CPU second of this process (the PostgreSQL server's CPU not included)."
        " Target: keyed flat within 20 % from the smallest to the largest size, >= 500 alerts/s end to end."
    )
    for line in verdict(rows, sizes):
        print("target: " + line)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="open incidents, comma-separated")
    parser.add_argument(
        "--deliveries", type=int, default=201, help="measured deliveries per keyed path (+1 warm-up)"
    )
    parser.add_argument(
        "--reference-deliveries", type=int, default=31, help="measured deliveries of the scan"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--cases", default="open,new", help="open: alerts of open incidents; new: new incidents"
    )
    parser.add_argument("--new-sizes", default="10,1000,10000", help="stored incidents of the new case")
    parser.add_argument("--new-deliveries", type=int, default=200, help="measured deliveries per path (new)")
    args, _ = parser.parse_known_args()  # run_all.py hands every benchmark the same arguments
    return args


def main() -> int:
    args = parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    new_sizes = sorted(int(s) for s in args.new_sizes.split(","))
    cases = set(args.cases.split(","))
    backends = ["sqlite"] + ([] if args.skip_postgres else ["postgresql"])
    workdir = Path(tempfile.mkdtemp(prefix="remediate-bench-intake-"))
    dbs = Databases(workdir, postgres=not args.skip_postgres, prefix="intake")
    rows: list[tuple[str, ...]] = []
    new_rows: list[tuple[str, ...]] = []
    try:
        for backend in backends:
            for n in sizes if "open" in cases else ():
                rows.extend(run_size(dbs, backend, n, args))
            if "new" in cases:
                new_rows.extend(run_new_sizes(dbs, backend, new_sizes, args))
    finally:
        dbs.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    if rows:
        print_report(rows, sizes)
    if new_rows:
        intake_opening.print_report(new_rows, new_sizes)
    load = os.getloadavg()
    print(
        f"Load average after the run (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        f" on {os.cpu_count()} CPUs."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
