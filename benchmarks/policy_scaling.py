"""Rollout workers side by side (``bench_policy.py --scaling``): env steps per second and time to a score.

For the in-process path and 1, 2 and 4 Ray rollout workers (on ``--address``, or the local two-CPU
cluster ``remediate train --ray`` starts, where 4 workers share the 2 CPUs):
1. env steps per second: the same network collects ``--rounds`` iterations of rollouts (2 training
   topologies x 48 incidents, as training does), after one warm-up round (actor start, numba compile);
2. wall time to a fixed evaluation score: a quick training run (``args.QUICK``, 48 incidents per graph,
   escalation after 4 actions) that stops once the greedy policy mitigates ``--target`` of 40 seeded
   incidents on a held-out topology without escalating (automated success; checked after every iteration;
   the checks' own time is left out of the wall time), capped at ``--max-iterations``.
The machine's load average is printed beside every row: other work on the cores skews every figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from playbooks.catalog import builtin_catalog
from remediation.evaluation.sim_eval import run_policy
from remediation.guardrails.config import load_rbac
from remediation.learning.args import QUICK, TrainArgs
from remediation.learning.cluster import ray_cluster
from remediation.learning.policy import GraphPolicy
from remediation.learning.ranking import LearnedPolicy
from remediation.learning.rollout import TRAIN_SEED_LIMIT, collect_rollout, training_topology
from remediation.learning.train import guardrails_of, new_net, train
from sim.generator import generate_topology

WORKERS = (0, 1, 2, 4)
"""0: rollouts in the driver process (the default path); N: N Ray actors."""


def load() -> str:
    """Return the 1-minute load average and the CPU count, for the row it is printed beside."""
    return f"{os.getloadavg()[0]:.1f}/{os.cpu_count()}"


def steps_per_second(workers: int, args: TrainArgs, rounds: int) -> dict[str, Any]:
    """Collect ``rounds`` training iterations' rollouts with a fixed network; return steps/s and round times."""
    from remediation.learning.workers import RolloutWorkers

    torch.manual_seed(args.seed)
    net = new_net(args, builtin_catalog())
    guardrails = guardrails_of(args)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    pool = RolloutWorkers(workers, net.config, guardrails, seed=args.seed) if workers else None
    times, steps = [], 0.0
    try:
        for round_ in range(rounds + 1):
            topos = [training_topology(rng, min_services=args.min_services, max_services=args.max_services)
                     for _ in range(args.topologies_per_iteration)]  # fmt: skip
            began = time.perf_counter()
            if pool is None:
                out = [collect_rollout(net, t, n_envs=args.envs, rng=rng, generator=gen, gamma=0.97, lam=0.9,
                                       guardrails=guardrails) for t in topos]  # fmt: skip
            else:
                out = pool.collect(
                    net, topos, envs=args.envs, iteration=round_, gamma=0.97, lam=0.9, escalate_after=0
                )
            if round_ > 0:  # round 0 warms up: actors start, numba compiles
                times.append(time.perf_counter() - began)
                steps += sum(s["steps"] for _, s in out)
    finally:
        if pool is not None:
            pool.close()
    return {"steps_per_s": steps / sum(times), "round_s": float(np.mean(times)), "load": load()}


def time_to_score(workers: int, args: TrainArgs, target: float) -> dict[str, Any]:
    """Train until the greedy policy reaches ``target`` success on the held-out check; return the wall time."""
    held_out = generate_topology(20, seed=TRAIN_SEED_LIMIT + 21, name="heldout-20")
    rbac = load_rbac(None)
    checks = {"seconds": 0.0, "score": 0.0}

    def reached(net: GraphPolicy, row: dict[str, float]) -> bool:
        began = time.perf_counter()
        policy = LearnedPolicy(net, explain=False)
        result, _ = run_policy(held_out, policy, episodes=40, seed=7, rbac=rbac, catalog=builtin_catalog(),
                               calibrated=False)  # fmt: skip
        net.train()  # LearnedPolicy put it in eval mode for ranking
        checks["seconds"] += time.perf_counter() - began
        # automated success: an escalation (a person fixing it) does not count, or one iteration would do
        checks["score"] = result.automated_success_rate
        return result.automated_success_rate >= target

    started = time.perf_counter()
    result = train(args, rollout_workers=workers, stop=reached)
    wall = time.perf_counter() - started - checks["seconds"]
    return {"wall_s": wall, "iterations": result.metrics["iterations"], "reached": result.stopped_by == "target",
            "score": checks["score"], "load": load()}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Measure every worker count and print the two tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--max-iterations", type=int, default=12)
    parser.add_argument("--address", default=None, help="a Ray cluster to use instead of a local one")
    parser.add_argument("--part", choices=("both", "steps", "score"), default="both")
    parser.add_argument(
        "--workers", default=",".join(map(str, WORKERS)), help="worker counts, 0 = the driver"
    )
    opts = parser.parse_args(argv)
    torch.set_num_threads(2)
    preset = {**QUICK, "escalate_after": 4}
    with tempfile.TemporaryDirectory() as runs:
        args = TrainArgs(seed=opts.seed, iterations=opts.max_iterations, minutes=600, run_root=runs, envs=48, **{
            k: v for k, v in preset.items() if k != "envs"})  # fmt: skip
        with ray_cluster(opts.address):
            counts = [int(w) for w in opts.workers.split(",")]
            if opts.part != "score":
                _steps_table(args, opts.rounds, counts)
            if opts.part != "steps":
                _score_table(args, opts.target, opts.max_iterations, counts)


def _steps_table(args: TrainArgs, rounds: int, counts: list[int]) -> None:
    """Print env steps per second per worker count."""
    print(f"env steps per second ({args.topologies_per_iteration} topologies x {args.envs} incidents a round, "
          f"{rounds} rounds after a warm-up; load = 1-minute load average / CPUs)")  # fmt: skip
    print(f"{'workers':>8} {'steps/s':>9} {'round s':>8} {'load':>8}")
    for w in counts:
        row = steps_per_second(w, args, rounds)
        print(f"{_name(w):>8} {row['steps_per_s']:9.0f} {row['round_s']:8.2f} {row['load']:>8}", flush=True)


def _score_table(args: TrainArgs, target: float, max_iterations: int, counts: list[int]) -> None:
    """Print the wall time to the target score per worker count."""
    print(f"\nwall time to {target:.0%} automated success on a held-out 20-service topology (40 incidents, "
          f"checked after every iteration, at most {max_iterations} iterations)")  # fmt: skip
    print(f"{'workers':>8} {'wall s':>8} {'iters':>6} {'reached':>8} {'score':>6} {'load':>8}")
    for w in counts:
        row = time_to_score(w, args, target)
        print(f"{_name(w):>8} {row['wall_s']:8.1f} {row['iterations']:6d} {row['reached']!s:>8} "
              f"{row['score']:6.2f} {row['load']:>8}", flush=True)  # fmt: skip


def _name(workers: int) -> str:
    return "driver" if workers == 0 else str(workers)


if __name__ == "__main__":
    main()
