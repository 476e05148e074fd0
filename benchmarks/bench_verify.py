"""Verified remediation in the simulator: re-ranking after a failed fix, and first suggestions judged effective.

Run: ``.venv/bin/python benchmarks/bench_verify.py [--incidents 100] [--seed 7]``. For each built-in
topology and policy (the runbook baseline; the bundled learned policy when it is installed) it prints

* ``next fix first``: of ``incidents`` seeded two-fault incidents in which a plausible wrong fix ran first
  and was judged (ineffective, partial or harmful, as the bot judges it live), the share whose re-ranked
  first suggestion fixes one of the faults still active (issue 19: at least 80 %);
* ``first effective``: the share of seeded incidents whose first suggestion, run and judged after its
  settle time, was ``effective``.

Figures are reported in docs/verification.md; this is a measurement, not a timed test.
"""

from __future__ import annotations

import argparse

from remediation.evaluation.verified import first_suggestion_effective, rerank_after_failure
from remediation.learning.ranking import LearnedPolicy
from remediation.policies.base import Policy
from remediation.policies.runbook import RunbookPolicy
from sim.topology import builtin_topology


def policies() -> dict[str, Policy]:
    """Return the runbook baseline and, when installed, the bundled learned policy."""
    out: dict[str, Policy] = {"runbook": RunbookPolicy()}
    try:
        from remediation.registry.bundle import load_bundled

        artifact = load_bundled()
    except Exception as exc:  # no bundled artifact in this checkout
        print(f"(bundled policy not measured: {exc})")
        return out
    out["bundled"] = LearnedPolicy(artifact.net, temperature=artifact.temperature, explain=False)
    return out


def main() -> None:
    """Measure and print one row per topology and policy."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--first-episodes", type=int, default=50)
    args = parser.parse_args()
    print(f"{'topology':<20} {'policy':<10} {'next fix first':>22} {'first effective':>16}")
    for name in ("online-boutique", "hotel-reservation"):
        topology = builtin_topology(name)
        for label, policy in policies().items():
            rr = rerank_after_failure(topology, policy, incidents=args.incidents, seed=args.seed)
            first = first_suggestion_effective(topology, policy, episodes=args.first_episodes, seed=args.seed)
            figure = f"{rr.rate:.0%} ({rr.next_fix_first}/{rr.incidents})"
            print(f"{name:<20} {label:<10} {figure:>22} {first:>16.0%}")


if __name__ == "__main__":
    main()
