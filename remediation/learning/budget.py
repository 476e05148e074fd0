"""When a training run stops: its wall-clock budget (the whole run, not only the simulator phase) or its iterations.

``remediate train --minutes M`` means "use M minutes": simulator fine-tuning keeps going while the next
iteration, plus what is left to do after it (calibration on held-out topologies), still fits in M
minutes. ``iterations`` (when set) is a hard cap that binds first; only then is a run repeatable bit for
bit, since how many iterations fit in a budget depends on the machine and its load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

QUICK_MINUTES = 0.6
"""``remediate train --quick``: the budget of the whole run (under a minute with start-up and saving)."""
QUICK_ITERATIONS = 30
"""``remediate train --quick``: the most PPO iterations it takes when the machine is fast."""


@dataclass
class Budget:
    """Track a run's wall clock and decide, after each iteration, whether another one fits."""

    seconds: float
    """The whole run's budget."""
    iterations: int | None
    """Most iterations (None: the budget alone decides)."""
    started: float
    """``time.perf_counter()`` at the start of the run."""
    after_share: float = 1.0
    """What follows fine-tuning (calibration), in iterations' worth of time."""
    durations: list[float] = field(default_factory=list)
    """Wall seconds of each finished iteration."""
    stopped_by: str = ""
    """``iterations``, ``budget`` or ``target`` (``train(stop=...)`` said so) once the loop ended ("" while it runs)."""

    def elapsed(self) -> float:
        """Return seconds since the run started."""
        return time.perf_counter() - self.started

    def total(self) -> int:
        """Return the iteration count a progress bar shows (0 when only the budget decides)."""
        return self.iterations or 0

    def record(self, seconds: float) -> None:
        """Note how long the iteration that just finished took."""
        self.durations.append(seconds)

    def another(self) -> bool:
        """Return whether one more iteration fits (always at least one); note why the loop stops otherwise."""
        done = len(self.durations)
        if self.iterations is not None and done >= self.iterations:
            self.stopped_by = "iterations"
            return False
        if not done:
            return True
        # recent iterations predict the next one best (rollouts grow as the policy acts longer)
        recent = self.durations[-3:]
        per_iteration = sum(recent) / len(recent)
        if self.elapsed() + per_iteration * (1.0 + self.after_share) > self.seconds:
            self.stopped_by = "budget"
            return False
        return True

    def summary(self) -> dict[str, Any]:
        """Return what the run's summary reports about its budget."""
        return {
            "budget_s": round(self.seconds, 1),
            "iterations_cap": self.iterations,
            "stopped_by": self.stopped_by,
            "mean_iteration_s": round(sum(self.durations) / len(self.durations), 2)
            if self.durations
            else 0.0,
        }
