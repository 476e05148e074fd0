"""PNG plots: training curves and policies side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from remediation.evaluation.sim_eval import PolicyResult


def plot_training(curve: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Plot success rate (sampling policy) and imitation loss per PPO iteration."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    it = [row["iteration"] for row in curve]
    ax[0].plot(it, [row["train_success_rate"] for row in curve])
    ax[0].set(title="training success rate (sampling)", xlabel="iteration", ylim=(0, 1))
    ax[1].plot(it, [row.get("imitation_loss", 0.0) for row in curve], color="tab:orange")
    ax[1].set(title="oracle imitation loss", xlabel="iteration")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_policies(results: Mapping[str, PolicyResult], path: Path, title: str) -> Path:
    """Bar charts of success rate, mean time to mitigate and top-1 agreement per policy."""
    names = list(results)
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.2))
    ax[0].bar(names, [results[n].success_rate for n in names])
    ax[0].set(title="success rate", ylim=(0, 1))
    ax[1].bar(names, [results[n].mean_ttm_s for n in names], color="tab:orange")
    ax[1].set(title="mean time to mitigate (s)")
    ax[2].bar(names, [results[n].top1 for n in names], color="tab:green")
    ax[2].set(title="top-1 agreement with oracle", ylim=(0, 1))
    for a in ax:
        a.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
