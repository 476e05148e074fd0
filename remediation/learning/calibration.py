"""Calibration of the learned policy: held-out logits of different topologies made comparable, then temperature scaling.

A network's flat action axis is ``n * A + G`` (``n`` services of that topology, then the ``G`` global
actions), so logits of topologies of different sizes are widened to one width before they are stacked,
with the global columns kept last.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from remediation.learning.algorithms import expected_calibration_error, fit_temperature
from remediation.learning.policy import NetConfig


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it did on the other half of the held-out states."""

    temperature: float
    """Softmax temperature fitted on the first half of the held-out states."""
    ece_uncalibrated: float
    """Expected calibration error of the raw softmax on the second half."""
    ece: float
    """Expected calibration error after dividing the logits by ``temperature``."""
    top1: float
    """Share of second-half states whose argmax is the oracle's action."""


def calibrate(logits: torch.Tensor, labels: torch.Tensor) -> Calibration:
    """Fit the temperature on the first half of the labelled states and measure ECE on the second half.

    ``logits`` is (S, W) and ``labels`` (S,) oracle action indices, -1 where a state has no label.
    """
    keep = labels >= 0
    logits, labels = logits[keep], labels[keep]
    half = logits.shape[0] // 2
    temperature = fit_temperature(logits[:half], labels[:half])
    probs_raw = torch.softmax(logits[half:], dim=1)
    probs_cal = torch.softmax(logits[half:] / temperature, dim=1)
    correct = probs_raw.argmax(1) == labels[half:]
    return Calibration(
        temperature=temperature,
        ece_uncalibrated=expected_calibration_error(probs_raw.max(1).values, correct),
        ece=expected_calibration_error(probs_cal.max(1).values, correct),
        top1=float(correct.float().mean()),
    )


def align(logits: torch.Tensor, width: int, cfg: NetConfig) -> torch.Tensor:
    """Widen (S, n*A+G) logits to (S, width) keeping the G global columns last."""
    if logits.shape[1] == width:
        return logits
    g = cfg.n_global_actions
    pad = torch.full((logits.shape[0], width - logits.shape[1]), -1e9)
    return torch.cat([logits[:, :-g], pad, logits[:, -g:]], dim=1)


def align_labels(labels: torch.Tensor, old: int, width: int, cfg: NetConfig) -> torch.Tensor:
    """Move labels of global actions from an ``old``-wide action axis to a ``width``-wide one."""
    g = cfg.n_global_actions
    return torch.where(labels >= old - g, labels + (width - old), labels)
