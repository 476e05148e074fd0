"""Big graphs: simulator throughput, ranking latency and peak memory at 200, 1,000 and 2,000 services.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--quick] [--sizes 200,1000,2000]``. Each size runs
in its own subprocess (``--worker N``), so its peak memory (``ru_maxrss``) is its own. Per size, on a
generated topology (``generated:N:1``):

* ``build s``: generating the graph and the simulator's per-topology constants (``BatchCore``),
* ``steps/s 1`` and ``steps/s 64``: ``BatchCore.step`` env-steps per second with 1 and 64 environments
  (random actions, autoreset), what ``remediate sim`` and training rollouts run on,
* ranking with the bundled policy: production alone (``rank(obs, 3)`` with reasons: one forward and
  one batched backward) and production plus a shadow (the same network ranking again without reasons,
  as ``bot/notify/shadow.py`` does), wall p50 / p99 in ms over 200 rankings, and the CPU time of the
  ranking thread (``time.thread_time``) beside it: on a shared, loaded machine the wall-clock tail is
  mostly time spent waiting for a core, which the CPU figure leaves out,
* ``peak MB``: the worker's peak resident memory, and ``growth MB``: the peak less what the worker
  held after importing torch and loading the policy (the part that depends on the graph).

Targets (issue 17): ranking p99 < 100 ms at 2,000 services; memory linear in services. Issue 13:
ranking p99 < 20 ms at 200 services with a shadow running. Every figure is printed with the load
average of the machine, since other processes share its cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (200, 1000, 2000)
RANKINGS = 200


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _latency(call: Callable[[], object], reps: int) -> dict[str, float]:
    """Return wall and thread-CPU p50 / p99 in ms of ``call`` over ``reps`` runs (after 10 warm-ups)."""
    for _ in range(10):
        call()
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.thread_time()
        call()
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return {
        "p50": float(np.percentile(wall, 50)),
        "p99": float(np.percentile(wall, 99)),
        "cpu_p50": float(np.percentile(cpu, 50)),
        "cpu_p99": float(np.percentile(cpu, 99)),
    }


def _steps_per_s(core: Any, seconds: float) -> float:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, core.action_space_size, size=(64, core.n_envs))
    core.step(actions[0], autoreset=True)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        core.step(actions[done % 64], autoreset=True)
        done += 1
    return done * core.n_envs / (time.perf_counter() - start)


def worker(n: int, seconds: float, reps: int) -> dict[str, Any]:
    """Measure one size in this process; return the row."""
    import torch

    from remediation.learning.encoding import observation_from_core
    from remediation.learning.ranking import LearnedPolicy
    from remediation.registry.bundle import load_bundled
    from sim.core import BatchCore
    from sim.generator import generate_topology

    torch.set_num_threads(1)
    artifact = load_bundled()
    production = LearnedPolicy(artifact.net, temperature=artifact.temperature)
    shadow = LearnedPolicy(artifact.net, temperature=artifact.temperature, explain=False)
    # compile the numba kernels and warm torch on a small graph first: the growth is then the graph's
    warm = BatchCore(generate_topology(20, seed=1), 2, seed=1)
    warm.reset()
    _steps_per_s(warm, 0.1)
    production.rank(observation_from_core(warm, 0), 3)
    del warm
    base = _rss_mb()
    start = time.perf_counter()
    topology = generate_topology(n, seed=1)
    single = BatchCore(topology, 1, seed=1)
    single.reset()
    build_s = time.perf_counter() - start
    steps1 = _steps_per_s(single, seconds)
    batch = BatchCore(topology, 64, seed=1)
    batch.reset()
    steps64 = _steps_per_s(batch, seconds)
    del batch
    observation = observation_from_core(single, 0)
    alone = _latency(lambda: production.rank(observation, 3), reps)
    both = _latency(lambda: (production.rank(observation, 3), shadow.rank(observation, 3)), reps)
    peak = _rss_mb()
    return {"services": n, "edges": topology.n_edges, "build_s": build_s, "steps1": steps1, "steps64": steps64,
            "alone": alone, "shadow": both, "base_mb": base, "peak_mb": peak, "growth_mb": peak - base}  # fmt: skip


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    """Run each size in a subprocess, print the table, the targets and whether memory grows linearly."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements (50 rankings)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated service counts")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds, reps = (1.0, 50) if args.quick else (3.0, RANKINGS)
    if args.worker:
        print(json.dumps(worker(args.worker, seconds, reps)))
        return 0
    rows = []
    print(f"cores {os.cpu_count()}, load average before: {_load()}", flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--worker", str(n)] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {n} services done, load average {_load()}", flush=True)
    print(f"\n{'services':>8} {'edges':>6} {'build s':>8} {'steps/s 1':>10} {'steps/s 64':>11} "
          f"{'rank p50':>9} {'rank p99':>9} {'+shadow p50':>12} {'+shadow p99':>12} {'peak MB':>8} {'growth MB':>10}")  # fmt: skip
    for r in rows:
        a, s = r["alone"], r["shadow"]
        print(f"{r['services']:>8} {r['edges']:>6} {r['build_s']:>8.1f} {r['steps1']:>10,.0f} {r['steps64']:>11,.0f} "
              f"{a['p50']:>9.1f} {a['p99']:>9.1f} {s['p50']:>12.1f} {s['p99']:>12.1f} {r['peak_mb']:>8.0f} "
              f"{r['growth_mb']:>10.1f}")  # fmt: skip
    print("ranking CPU time of the ranking thread (ms), the same runs:")
    for r in rows:
        a, s = r["alone"], r["shadow"]
        print(f"{r['services']:>8} services: alone p50 {a['cpu_p50']:.1f} / p99 {a['cpu_p99']:.1f}, "
              f"with shadow p50 {s['cpu_p50']:.1f} / p99 {s['cpu_p99']:.1f}")  # fmt: skip
    by = {r["services"]: r for r in rows}
    print(f"load average after: {_load()}")
    if 2000 in by:
        p99 = by[2000]["shadow"]["p99"]
        print(f"target ranking p99 < 100 ms at 2,000 services (with a shadow): {p99:.1f} ms "
              f"({'met' if p99 < 100 else 'MISSED'})")  # fmt: skip
    if 200 in by:
        p99 = by[200]["shadow"]["p99"]
        print(f"target ranking p99 < 20 ms at 200 services with a shadow: {p99:.1f} ms "
              f"({'met' if p99 < 20 else 'MISSED'}; CPU p99 {by[200]['shadow']['cpu_p99']:.1f} ms)")  # fmt: skip
    sizes = sorted(by)
    if len(sizes) >= 2:
        lo, hi = by[sizes[0]], by[sizes[-1]]
        ratio = hi["growth_mb"] / max(lo["growth_mb"], 1e-6)
        scale = hi["services"] / lo["services"]
        verdict = "linear or better" if ratio <= scale * 1.25 else "worse than linear"
        print(f"memory growth {sizes[0]} -> {sizes[-1]} services: {lo['growth_mb']:.1f} -> {hi['growth_mb']:.1f} MB, "
              f"{ratio:.1f}x for {scale:.0f}x the services ({verdict}); "
              f"per service {lo['growth_mb'] / lo['services'] * 1024:.0f} -> {hi['growth_mb'] / hi['services'] * 1024:.0f} KB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
