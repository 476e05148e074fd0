"""Simulator throughput: IncidentEnv and the batched core against a plain per-step networkx reference.

Run: ``.venv/bin/python benchmarks/bench_sim.py [--quick]``. For each topology (online-boutique, a
40-service and a 200-service generated one) it measures env-steps per second of

* ``single env``: ``IncidentEnv.step`` with random actions (reset when an episode ends),
* ``batch N``: ``BatchCore.step`` on N environments at once with random actions and autoreset,

and, in the same run, a reference that computes the same model the obvious way: a networkx graph,
a Python loop over services per step, propagation by walking successors. Targets (issue 3): 20,000
single-env steps/s and 200,000 batched env-steps/s at N = 256 on 40 services; time per env-step
should grow no worse than linearly with the number of services.

``--cpu`` counts this process's CPU seconds instead of wall time (``time.process_time``), for every
row and the reference alike: on a machine shared with other work the wall clock mostly measures the
others.
"""

from __future__ import annotations

import os

# one BLAS thread: the batched core's small matrix products lose badly to thread hand-offs on a busy
# machine (measured: 20x slower at N=64 on 200 services with two threads on two shared cores)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from sim.core import BatchCore
from sim.dynamics import RETRY_GAIN, TIMEOUT_MS, Statics, statics
from sim.env import IncidentEnv
from sim.faults import FAULT_KINDS, sample_scenario
from sim.resolve import resolve_topology
from sim.topology import Topology

TOPOLOGIES = ("online-boutique", "generated:40:1", "generated:200:1")
BATCHES = (1, 64, 256)


class NetworkxReference:
    """The same dynamics written plainly: dicts per service, loops over a networkx graph every step."""

    def __init__(self, topology: Topology, seed: int) -> None:
        self.st: Statics = statics(topology)
        self.g = topology.graph()
        self.names = topology.services
        self.rng = np.random.default_rng(seed)
        self.fixes = {k.id: k.fix for k in FAULT_KINDS}
        self.effects = {k.id: k.effect for k in FAULT_KINDS}
        self.order = list(self.g.nodes)
        self.reset()

    def reset(self) -> None:
        scenario = sample_scenario(self._topo(), self.rng)
        self.faults = {(f.kind, f.target) for f in scenario.faults}
        self.fail = dict.fromkeys(self.order, 0.0)
        self.steps = 0

    def _topo(self) -> Topology:
        return self.st.topology

    def step(self, action: str, target: str | None) -> bool:
        """One step: apply the action, evaluate every service, propagate, alert, encode features."""
        if target is not None:
            self.faults = {(k, t) for k, t in self.faults if not (t == target and self.fixes[k] == action)}
        st, idx = self.st, self._topo().index
        own_ok, own_lat, seen = {}, {}, {}
        for name in self.order:
            i = idx[name]
            err = lat = cap_loss = load = avloss = seen_f = 0.0
            for kind, t in self.faults:
                if t == name:
                    effect = self.effects[kind]
                    err += effect.get(0, 0.0)
                    lat += effect.get(1, 0.0)
                    cap_loss += effect.get(2, 0.0)
                    load += effect.get(3, 0.0)
                    avloss += effect.get(4, 0.0)
                    seen_f += effect.get(6, 0.0)
            ready = st.base_replicas[i] * (1 - min(avloss, 1.0))
            cap = ready * st.cap_per_replica[i] * (1 - min(cap_loss, 0.95))
            demand = st.base_load[i] * (1 + load) * (1 + RETRY_GAIN * self.fail[name])
            util = min(demand / max(cap, 1e-6), 50.0)
            over = max(util - 1, 0) / max(util, 1)
            ok = (1 - min(err, 1)) * (1 - over) if ready > 1e-3 else 0.0
            q = min(util, 0.95)
            own_ok[name] = math.log(max(ok, 1e-3))
            own_lat[name] = st.base_lat[i] * (1 + 2 * q / (1 - q)) + lat + TIMEOUT_MS * over
            seen[name] = min(seen_f, 1.0)
        ok_total, lat_total = dict(own_ok), dict(own_lat)
        for _ in range(st.depth):
            ok_next, lat_next = {}, {}
            for name in self.order:
                acc_ok, acc_lat = own_ok[name], own_lat[name]
                for callee in self.g.successors(name):
                    w = self.g.edges[name, callee]["weight"]
                    acc_ok += w * (ok_total[callee] + math.log(max(1 - seen[callee], 1e-3)))
                    acc_lat += w * lat_total[callee]
                ok_next[name], lat_next[name] = acc_ok, acc_lat
            ok_total, lat_total = ok_next, lat_next
        features = []
        for name in self.order:
            err = 1 - math.exp(ok_total[name])
            self.fail[name] = min(err + seen[name], 1.0)
            noisy = [v * (1 + 0.05 * self.rng.standard_normal()) for v in (err, lat_total[name])]
            alerts = [noisy[0] > 0.05, noisy[1] > 2.5 * st.healthy_p99[idx[name]]]
            features.append([*noisy, *map(float, alerts)])
        self.steps += 1
        return not self.faults or self.steps >= 30


CLOCK: list[Callable[[], float]] = [time.perf_counter]  # time.process_time with --cpu


def rate(run: Callable[[int], int], seconds: float) -> float:
    """Return env-steps per second of ``run(n)`` (which returns env-steps done), warmed up, best of two."""
    clock = CLOCK[0]
    run(2)
    n, best = 4, 0.0
    while True:
        start = clock()
        done = run(n)
        took = clock() - start
        if took > seconds / 4:
            best = max(best, done / took)
            start = clock()
            done = run(n)
            return max(best, done / (clock() - start))
        n *= 2


def single_env(topology: Topology, seconds: float) -> float:
    env = IncidentEnv(topology)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=4096).tolist()

    def run(n: int) -> int:
        for i in range(n):
            _, _, terminated, truncated, _ = env.step(actions[i % 4096])
            if terminated or truncated:
                env.reset()
        return n

    return rate(run, seconds)


def batched(topology: Topology, n_envs: int, seconds: float) -> float:
    core = BatchCore(topology, n_envs, seed=0)
    core.reset()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, core.action_space_size, size=(64, n_envs))

    def run(n: int) -> int:
        for i in range(n):
            core.step(actions[i % 64], autoreset=True)
        return n * n_envs

    return rate(run, seconds)


def reference(topology: Topology, n_envs: int, seconds: float) -> float:
    refs = [NetworkxReference(topology, seed) for seed in range(min(n_envs, 8))]
    rng = np.random.default_rng(0)
    names = topology.services
    ids = [k.fix for k in FAULT_KINDS]

    def run(n: int) -> int:
        for _ in range(n):
            for ref in refs:
                if ref.step(ids[int(rng.integers(len(ids)))], names[int(rng.integers(len(names)))]):
                    ref.reset()
        return n * len(refs)

    return rate(run, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument(
        "--cpu", action="store_true", help="rates per CPU second of this process, not wall time"
    )
    args = parser.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    print(
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {'CPU' if args.cpu else 'wall'} time"
    )
    seconds = 0.6 if args.quick else 2.0
    rows: list[tuple[str, int, str, float, float]] = []
    for name in TOPOLOGIES:
        topology = resolve_topology(name)
        ref = reference(topology, 1, seconds)  # a per-step loop: N envs cost N times one env
        rows.append((name, topology.n_services, "single env", single_env(topology, seconds), ref))
        for n in BATCHES:
            rows.append((name, topology.n_services, f"batch N={n}", batched(topology, n, seconds), ref))
    print(
        f"{'topology':<18}{'services':>9}  {'mode':<13}{'sim steps/s':>14}{'networkx steps/s':>18}{'ratio':>9}"
    )
    for name, services, mode, sim_rate, ref_rate in rows:
        print(
            f"{name:<18}{services:>9}  {mode:<13}{sim_rate:>14,.0f}{ref_rate:>18,.0f}{sim_rate / ref_rate:>8.0f}x"
        )
    by = {(name, mode): sim_rate for name, _, mode, sim_rate, _ in rows}
    single40, batch40 = by[("generated:40:1", "single env")], by[("generated:40:1", "batch N=256")]
    growth = by[("generated:40:1", "batch N=256")] / by[("generated:200:1", "batch N=256")]
    print()
    ref40 = next(ref for name, _, _, _, ref in rows if name == "generated:40:1")
    for label, got, target, times in (
        ("single env", single40, 20000, 16),
        ("batch N=256", batch40, 200000, 150),
    ):
        met = got >= target or got >= times * ref40
        print(
            f"target {label} on 40 services >= {target:,}/s or >= {times}x the reference: {got:,.0f} "
            f"({got / ref40:.0f}x) ({'met' if met else 'MISSED'})"
        )
    print(
        f"time per env-step, 200 vs 40 services (batch 256): {growth:.1f}x for 5x the services "
        f"({'linear or better' if growth <= 5.0 else 'worse than linear'})"
    )


if __name__ == "__main__":
    main()
