"""Which test files `pytest -n N --dist loadfile` hands out first: the longest ones.

pytest-xdist queues whole files, most tests first. The slowest files here have few tests (each drives
real subprocesses, servers or a Ray cluster), so they came last and one worker ran them alone at the
end while the other sat idle. Handing them out first (longest-processing-time first) lets the many
short files fill the gaps. Only the order changes: every file still runs whole on one worker.
"""

from __future__ import annotations

from collections import OrderedDict

from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

SLOW_FIRST = (
    # the longest files of a full run (pytest --durations, 2026-12-01), longest first
    "tests/bot/cli/test_train_and_policy_cmds.py",
    "tests/bot/cli/test_ray_cmds.py",
    "tests/bot/cli/test_safety_cmds.py",
    "tests/e2e/test_replicas.py",
    "tests/bot/cli/test_store_cmds.py",
    "tests/remediation/learning/test_policy.py",
    "tests/bot/cli/test_serve_cli.py",
    "tests/bot/cli/test_doctor.py",
    "tests/bot/cli/test_jobs_cmds.py",
    "tests/bot/cli/test_postmortem_cmds.py",
    "tests/remediation/learning/test_ray_workers.py",
    "tests/bot/cli/test_sim_cmds.py",
    "tests/bot/feeds/test_discover.py",
    "tests/e2e/test_cluster_to_fix.py",
)
"""Files handed out first, in this order; the rest follow in xdist's own order (most tests first)."""


def rank(scope: str) -> int:
    """Return a file's place in the hand-out order (files not named share the last place)."""
    return SLOW_FIRST.index(scope) if scope in SLOW_FIRST else len(SLOW_FIRST)


class SlowFirstScheduling(LoadFileScheduling):
    """`--dist loadfile`, with the files of ``SLOW_FIRST`` at the front of the queue."""

    ordered = False

    def _assign_work_unit(self, node: WorkerController) -> None:
        if not self.ordered:  # the queue is complete when the first unit is handed out
            self.ordered = True
            units = sorted(self.workqueue.items(), key=lambda unit: rank(unit[0]))  # stable: ties keep order
            self.workqueue = OrderedDict(units)
        super()._assign_work_unit(node)
