"""Training uses its budget: the whole run's minutes decide unless ``iterations`` binds first."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from remediation.learning.budget import Budget
from remediation.learning.train import QUICK, TrainArgs, train

torch.set_num_threads(1)


def test_another_iteration_only_while_it_and_calibration_fit() -> None:
    # 95 s of a 100 s budget spent, iterations take 10 s: the next one would overrun
    late = Budget(100.0, None, time.perf_counter() - 95.0)
    assert late.another()  # always at least one iteration
    late.record(10.0)
    assert not late.another() and late.stopped_by == "budget"
    # early in the budget, iterations go on with no cap
    early = Budget(3600.0, None, time.perf_counter())
    for _ in range(50):
        assert early.another()
        early.record(1.0)
    assert early.total() == 0 and early.stopped_by == ""
    # the cap binds first
    capped = Budget(3600.0, 2, time.perf_counter())
    for _ in range(2):
        assert capped.another()
        capped.record(1.0)
    assert not capped.another() and capped.stopped_by == "iterations"
    # calibration's share counts: 80 s spent, 8 s per iteration, 2 more iterations' worth after it
    reserve = Budget(100.0, None, time.perf_counter() - 80.0, after_share=2.0)
    reserve.record(8.0)
    assert not reserve.another()


def test_summary_holds_iterations_wall_time_and_the_learning_curve(tmp_path: Path) -> None:
    # a budget far too small for even one iteration still trains one, then stops by the budget
    by_budget = train(TrainArgs(minutes=0.001, iterations=None, run_root=str(tmp_path), name="b", **QUICK))
    assert by_budget.stopped_by == "budget" and by_budget.metrics["iterations"] == 1
    summary = json.loads((by_budget.run_dir / "summary.json").read_text())
    assert summary["stopped_by"] == "budget" and summary["iterations_cap"] is None
    assert summary["budget_s"] == 0.1 and summary["train_wall_s"] > 0
    assert [row["iteration"] for row in summary["curve"]] == [1.0]
    assert {"train_success_rate", "elapsed_s"} <= set(summary["curve"][0])
    by_cap = train(TrainArgs(minutes=30.0, iterations=2, run_root=str(tmp_path), name="c", **QUICK))
    assert by_cap.stopped_by == "iterations" and len(by_cap.curve) == by_cap.metrics["iterations"] == 2
