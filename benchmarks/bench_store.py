"""Import and mining throughput of the incident store, on SQLite and PostgreSQL, against naive baselines.

    .venv/bin/python benchmarks/bench_store.py [--incidents 100000] [--baseline 3000] [--skip-postgres]

Generates `--incidents` synthetic incidents (about 20 events each, deterministic by seed) and a tenth of
that, imports and mines each size on a fresh SQLite file and a fresh PostgreSQL database, and prints
incidents/s and peak memory (ru_maxrss of a child process that does only that step). The baseline, in
the same run, is the obvious code: one ORM object per row (`session.add`, a commit per incident) for
import, and one query per incident with ORM-decoded JSON for mining; ratios are ours / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("REMEDIATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def generate(path: Path, count: int) -> None:
    from incidents_db.synthetic import generate_incidents

    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as out:
        for record in generate_incidents(count, seed=42, open_fraction=0.05):
            out.write(encode(record) + "\n")


def importer_workers() -> int:
    from incidents_db.importer import default_workers

    return default_workers()


def mining_workers() -> int:
    from incidents_db.mining_workers import default_workers

    return default_workers()


def children_cpu() -> float:
    """CPU seconds of finished child processes, the worker processes of import and mining included.

    The workers are children of multiprocessing's forkserver, so their time reaches this process only
    once the forkserver (which reaps them) has exited: stop it first (private API, benchmark only).
    """
    import multiprocessing.forkserver

    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peak_mib() -> float:
    # this process plus its largest child (an import's parsing worker; 0 when there was none)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0


def server_cpu(engine: sa.Engine) -> float:
    """CPU seconds of the PostgreSQL server processes serving this database's open connections.

    The PostgreSQL server shares this machine's cores, so its work is part of what an import or a mine
    costs. Read from /proc (a local server only; 0 where unreadable, and for SQLite). The engine's pool
    still holds the connections the step used, so their backends are the ones counted.
    """
    if engine.dialect.name != "postgresql":
        return 0.0
    with engine.connect() as conn:
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# ---- work done in a child process (so ru_maxrss is this step's alone) -------------------------------


def child_import(url: str, path: str) -> dict[str, float]:
    from incidents_db import db, importer

    engine = db.open_store(url)
    start, cpu = time.perf_counter(), time.process_time() + children_cpu()
    with open(path, "rb") as lines:
        report = importer.import_lines(engine=engine, lines=lines)
    elapsed = time.perf_counter() - start
    assert not report.refused, report.refused[:3]
    # the parsing workers' CPU counts too (they have exited when import_lines returns)
    cpu = time.process_time() + children_cpu() - cpu
    return {"n": report.imported, "seconds": elapsed, "cpu": cpu, "server": server_cpu(engine)}


def child_mine(url: str, out: str) -> dict[str, float]:
    from incidents_db import db, mining

    engine = db.open_store(url)
    engine.dispose()  # the upgrade check's connection: count only the mining's own server work
    start, cpu = time.perf_counter(), time.process_time() + children_cpu()
    chosen = os.environ.get("REMEDIATE_BENCH_MINE_WORKERS", "")
    workers = int(chosen) if chosen else None
    summary = mining.mine(engine=engine, out_dir=Path(out), full=True, workers=workers)
    elapsed = time.perf_counter() - start
    return {
        "n": summary.incidents,
        "seconds": elapsed,
        "steps": summary.steps,
        "cpu": time.process_time() + children_cpu() - cpu,
        "server": server_cpu(engine),
    }


def child_naive_import(url: str, path: str) -> dict[str, float]:
    """The obvious importer: parse, one ORM object per row, one commit per incident."""
    from incidents_db import db
    from incidents_db.models import Incident, IncidentEvent
    from incidents_db.schema import parse_line
    from incidents_db.service import event_rows, incident_row

    engine = db.open_store(url)
    factory = db.make_sessionmaker(engine)
    count = 0
    start = time.perf_counter()
    with open(path, "rb") as lines:
        for raw in lines:
            record = parse_line(raw)
            with factory() as session:
                if session.get(Incident, record.id) is None:
                    session.add(Incident(**incident_row(record)))
                    session.flush()
                    for row in event_rows(record):
                        session.add(IncidentEvent(**row))
                    session.commit()
                    count += 1
    return {"n": count, "seconds": time.perf_counter() - start}


def child_naive_mine(url: str, _out: str) -> dict[str, float]:
    """The obvious miner: list resolved incidents, then one ORM query per incident for its events."""
    from incidents_db import db, trajectories
    from incidents_db.models import Incident, IncidentEvent
    from playbooks.catalog import builtin_catalog

    engine = db.open_store(url)
    factory = db.make_sessionmaker(engine)
    catalog, reward = builtin_catalog(), trajectories.RewardConfig()
    count = steps = 0
    start = time.perf_counter()
    with factory() as session:
        for incident in session.scalars(sa.select(Incident).where(Incident.status == "resolved")):
            events = session.scalars(
                sa.select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident.id)
                .order_by(IncidentEvent.seq)
            ).all()
            assert incident.resolved_at is not None
            header = argparse.Namespace(
                id=incident.id,
                severity=incident.severity,
                root_cause_service=incident.root_cause_service,
                root_cause_fault=incident.root_cause_fault,
                opened_s=incident.opened_at.timestamp(),
                resolved_s=incident.resolved_at.timestamp(),
            )
            timeline = [
                (e.incident_id, e.at.timestamp(), e.type, e.service, json.dumps(e.payload)) for e in events
            ]
            steps += len(trajectories.build_trajectory(header, timeline, catalog, reward).steps)
            count += 1
    return {"n": count, "seconds": time.perf_counter() - start, "steps": steps}


CHILDREN = {
    "import": child_import,
    "mine": child_mine,
    "naive_import": child_naive_import,
    "naive_mine": child_naive_mine,
}


def run_child(op: str, url: str, arg: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", op, url, arg], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{op} on {url} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---- databases -------------------------------------------------------------------------------------


class Databases:
    """Fresh stores: SQLite files in the work directory, PostgreSQL databases dropped at the end."""

    def __init__(self, workdir: Path, postgres: bool, prefix: str = "bench") -> None:
        self.workdir = workdir
        self.prefix = prefix
        self.postgres = postgres
        self.created: list[str] = []
        self.admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT") if postgres else None

    def fresh(self, backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.workdir / f'{self.prefix}-{uuid.uuid4().hex[:8]}.sqlite'}"
        assert self.admin is not None
        name = f"remediate_{self.prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


HEADER = (
    "backend",
    "incidents",
    "code",
    "import inc/s",
    "import inc/cpu-s",
    "import MiB",
    "mine inc/s",
    "mine inc/cpu-s",
    "mine MiB",
    "steps",
    "import srv cpu-s",
    "mine srv cpu-s",
)


@dataclass
class Bench:
    """One run of the benchmark: its scratch directory and databases, the input files, the rows measured so far."""

    workdir: Path
    dbs: Databases
    sizes: list[int]  # history sizes our code imports and mines
    baseline: int  # history size the naive code imports and mines
    files: dict[int, Path] = field(default_factory=dict)  # size -> generated JSON lines
    rows: list[tuple[str, ...]] = field(default_factory=list)  # the table, HEADER's columns
    # (backend, "import" or "mine") -> incidents/s of our code on the largest size
    ours: dict[tuple[str, str], float] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=100_000, help="large history size")
    parser.add_argument("--baseline", type=int, default=3_000, help="incidents for the naive baselines")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--mine-workers",
        type=int,
        default=None,
        help="mining worker processes (default: mining's own choice)",
    )
    parser.add_argument("--child", nargs=3, metavar=("OP", "URL", "ARG"), help=argparse.SUPPRESS)
    return parser.parse_args()


def generate_inputs(bench: Bench) -> None:
    """Write one history file per size (the naive baseline's size included), each once."""
    for size in [*bench.sizes, bench.baseline]:
        path = bench.workdir / f"history-{size}.jsonl"
        if path not in bench.files.values():
            start = time.perf_counter()
            generate(path, size)
            print(
                f"generated {size} incidents ({path.stat().st_size / 2**20:.0f} MiB) "
                f"in {time.perf_counter() - start:.1f}s",
                file=sys.stderr,
            )
        bench.files[size] = path


def measure_ours(bench: Bench, backend: str) -> None:
    """Import and mine each size with our code on a fresh database of the backend; add a row per size."""
    for size in bench.sizes:
        url = bench.dbs.fresh(backend)
        imp = run_child("import", url, str(bench.files[size]))
        mine = run_child("mine", url, str(bench.workdir / f"mined-{backend}-{size}"))
        imp_rate, mine_rate = imp["n"] / imp["seconds"], mine["n"] / mine["seconds"]
        bench.ours[(backend, "import")] = imp_rate
        bench.ours[(backend, "mine")] = mine_rate
        bench.rows.append(
            (
                backend,
                f"{size:,}",
                "ours",
                f"{imp_rate:,.0f}",
                f"{imp['n'] / imp['cpu']:,.0f}",
                f"{imp['peak_mib']:.0f}",
                f"{mine_rate:,.0f}",
                f"{mine['n'] / mine['cpu']:,.0f}",
                f"{mine['peak_mib']:.0f}",
                f"{mine['steps']:,.0f}",
                f"{imp['server']:.2f}" if backend == "postgresql" else "",
                f"{mine['server']:.2f}" if backend == "postgresql" else "",
            )
        )
        print(f"done {backend} {size}", file=sys.stderr)


def measure_naive(bench: Bench, backend: str) -> None:
    """Import and mine the baseline size with the naive code; add its row and the ratio row."""
    url = bench.dbs.fresh(backend)
    naive_imp = run_child("naive_import", url, str(bench.files[bench.baseline]))
    naive_mine = run_child("naive_mine", url, "-")
    ni, nm = naive_imp["n"] / naive_imp["seconds"], naive_mine["n"] / naive_mine["seconds"]
    bench.rows.append(
        (
            backend,
            f"{bench.baseline:,}",
            "naive ORM",
            f"{ni:,.0f}",
            "",
            f"{naive_imp['peak_mib']:.0f}",
            f"{nm:,.0f}",
            "",
            f"{naive_mine['peak_mib']:.0f}",
            f"{naive_mine['steps']:,.0f}",
            "",
            "",
        )
    )
    bench.rows.append(
        (
            backend,
            "",
            "ratio",
            f"x{bench.ours[(backend, 'import')] / ni:.1f}",
            "",
            "",
            f"x{bench.ours[(backend, 'mine')] / nm:.1f}",
            "",
            "",
            "",
            "",
            "",
        )
    )


def print_report(rows: list[tuple[str, ...]], mine_workers: int | None) -> None:
    """Print the Markdown table, what its columns mean, and the load the machine was under."""
    print(markdown_table(HEADER, rows))
    print(
        "\nMiB = peak resident memory (ru_maxrss) of the child process doing that step plus its largest"
        " worker (import and mining run worker processes on large inputs); ratio = ours / naive (measured in this run)."
        " inc/cpu-s = incidents per CPU second of our processes (all threads and worker processes; the"
        " PostgreSQL server's CPU not included): what the code costs, whatever else the machine runs."
        " srv cpu-s = CPU seconds of the PostgreSQL backends that served the step (from /proc; a local"
        " server only), which share the same cores."
        " Targets: import >= 5,000 inc/s, mining >= 20,000 inc/s, < 1 GiB, flat."
        f" Import workers: {importer_workers()}; mining workers: "
        f"{mine_workers if mine_workers is not None else mining_workers()}."
    )
    load = os.getloadavg()
    print(
        f"Load average after the run (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs."
    )


def main() -> None:
    args = parse_args()
    if args.child:
        op, url, arg = args.child
        result = CHILDREN[op](url, arg)
        result["peak_mib"] = peak_mib()
        print(json.dumps(result))
        return

    if args.mine_workers is not None:
        os.environ["REMEDIATE_BENCH_MINE_WORKERS"] = str(args.mine_workers)  # read by the mining children
    backends = ["sqlite"] + ([] if args.skip_postgres else ["postgresql"])
    workdir = Path(tempfile.mkdtemp(prefix="remediate-bench-"))
    dbs = Databases(workdir, postgres=not args.skip_postgres)
    bench = Bench(workdir, dbs, sorted({max(args.incidents // 10, 1), args.incidents}), args.baseline)
    try:
        generate_inputs(bench)
        for backend in backends:
            measure_ours(bench, backend)
            measure_naive(bench, backend)
    finally:
        dbs.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(bench.rows, args.mine_workers)


if __name__ == "__main__":
    main()
