"""PNG plots: training curves and policies side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np

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
    """Bar charts per policy: success beside automated success (no human paged), escalation rate, TTM, top-1."""
    names = list(results)
    x = np.arange(len(names))
    fig, ax = plt.subplots(1, 4, figsize=(14, 3.4))
    ax[0].bar(x - 0.2, [results[n].success_rate for n in names], width=0.4, label="success")
    ax[0].bar(x + 0.2, [results[n].automated_success_rate for n in names], width=0.4, label="automated")
    ax[0].set(title="success / automated success", ylim=(0, 1))
    ax[0].legend(fontsize="small", loc="lower right")
    ax[1].bar(x, [results[n].escalation_rate for n in names], color="tab:red")
    ax[1].set(title="escalation rate (human paged)", ylim=(0, 1))
    ax[2].bar(x, [results[n].mean_ttm_s for n in names], color="tab:orange")
    ax[2].set(title="mean time to mitigate (s)")
    ax[3].bar(x, [results[n].top1 for n in names], color="tab:green")
    ax[3].set(title="top-1 agreement with oracle", ylim=(0, 1))
    for a in ax:
        a.set_xticks(x, names)
        a.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
