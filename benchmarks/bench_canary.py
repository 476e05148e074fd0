"""Canaries in the simulator: does a canary of the right fix pass, and a canary of a wrong one fail?

Run: ``.venv/bin/python benchmarks/bench_canary.py [--incidents 50] [--seed 7] [--share 0.25]``. For each
built-in topology it seeds single-fault incidents (crash loop, bad deploy, config error, in turn) on a
service with several replicas, runs a canary of the fix for the fault (restart, rollback, config revert)
and, in a copy of the same incident, a canary of a wrong fix, each judged after 3 minutes as the bot
judges a canary (docs/verification.md, "Canary first"). It prints how many right-fix canaries passed
(effective or partial) and how many wrong-fix canaries failed (ineffective or harmful), with the
verdicts of those that went the other way. A measurement, not a timed test.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from remediation.verification.simview import canary_in_sim, step_action
from sim.core import BatchCore
from sim.faults import sample_scenario
from sim.topology import Topology, builtin_topology

FIX = {"crash_loop": "restart_service", "bad_deploy": "rollback_deploy", "config_error": "revert_config"}
WRONG = {"crash_loop": "revert_config", "bad_deploy": "restart_service", "config_error": "restart_service"}


def verdict(topology: Topology, seed: int, kind: str, target: str, action: str, share: float) -> str:
    """Return the verdict of a canary of ``action`` on a fresh incident (one ``kind`` fault on ``target``)."""
    core = BatchCore(topology, 1, seed=seed)
    scenario = sample_scenario(
        topology, np.random.default_rng(seed), faults=[{"kind": kind, "target": target}], herring_p=0,
        missing_telemetry_p=0,
    )  # fmt: skip
    core.reset(scenarios=[scenario])
    step_action(core, "wait", None)  # the incident develops: its alerts fire
    judged, _ = canary_in_sim(core, action, target, share=share, settle_s=180)
    return judged.verdict


def measure(name: str, incidents: int, seed: int, share: float) -> None:
    """Print the canary figures of one topology."""
    topology = builtin_topology(name)
    several = [s for i, s in enumerate(topology.services) if topology.replicas[i] > 1]
    rng = np.random.default_rng(seed)
    passed, failed, odd = 0, 0, Counter[str]()
    for k in range(incidents):
        kind, target = list(FIX)[k % len(FIX)], several[int(rng.integers(len(several)))]
        right = verdict(topology, seed + k, kind, target, FIX[kind], share)
        wrong = verdict(topology, seed + k, kind, target, WRONG[kind], share)
        passed += right in ("effective", "partial")
        failed += wrong in ("ineffective", "harmful")
        if right not in ("effective", "partial"):
            odd[f"right fix {right}"] += 1
        if wrong not in ("ineffective", "harmful"):
            odd[f"wrong fix {wrong}"] += 1
    print(f"{name}: right-fix canaries passed {passed}/{incidents}, wrong-fix canaries failed "
          f"{failed}/{incidents}" + (f"; otherwise: {dict(odd)}" if odd else ""))  # fmt: skip


def main() -> None:
    """Measure every built-in topology."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--share", type=float, default=0.25)
    args = parser.parse_args()
    for name in ("online-boutique", "hotel-reservation"):
        measure(name, args.incidents, args.seed, args.share)


if __name__ == "__main__":
    main()
