"""The similar-incident memory: a topology-free signature per incident, its fix, nearest by cosine.

A signature is read from the incident's first observation (before anyone acted), so it compares
incidents on different service graphs and needs no network: the runbook baseline, the bundled and a
promoted learned policy show the same memory. Per dynamic signal, the worst value over the services
(error rate, latency, saturation, lost availability, missing telemetry, each alert, recent deploys and
config changes, workload); the kinds of the services that alert; and the share of services alerting.
Entries come from a policy artifact (simulated incidents it trained on) and from the store (the team's
own resolved incidents, added as they resolve; see ``remediation.similar.service``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from playbooks.models import SERVICE_KINDS
from sim.observation import ALERTS, FEATURES, GLOBALS, Observation

_DYNAMIC = [FEATURES.index(f) for f in (
    "error_rate", "latency_p99", "cpu", "memory", "saturation", "telemetry_missing", *(f"alert_{a}" for a in ALERTS),
    "recent_deploy", "recent_config_change", "replica_deficit", "traffic_excess",
)]  # fmt: skip
_AVAILABILITY = FEATURES.index("availability")
_ALERTS = [FEATURES.index(f"alert_{a}") for a in ALERTS]
_KINDS = [FEATURES.index(f"kind_{k}") for k in SERVICE_KINDS]
_SHARE = GLOBALS.index("share_alerting")
SIGNATURE_SIZE = len(_DYNAMIC) + 1 + len(_KINDS) + 1


def signature(nodes: Any, glob: Any) -> npt.NDArray[np.float32]:
    """Return the unit-norm signature of one observation: ``nodes`` (N, F) features, ``glob`` (G,) globals."""
    x = np.asarray(nodes, dtype=np.float32).reshape(-1, len(FEATURES))
    g = np.asarray(glob, dtype=np.float32).reshape(-1)
    if not x.shape[0]:
        return np.zeros(SIGNATURE_SIZE, dtype=np.float32)
    worst = x[:, _DYNAMIC].max(axis=0)
    lost = 1.0 - x[:, _AVAILABILITY].min()
    alerting = x[:, _ALERTS].max(axis=1) > 0
    kinds = x[alerting][:, _KINDS].mean(axis=0) if alerting.any() else np.zeros(len(_KINDS), np.float32)
    vec = np.concatenate([worst, [lost], kinds, [g[_SHARE] if g.size > _SHARE else 0.0]]).astype(np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def signature_of(observation: Observation) -> npt.NDArray[np.float32]:
    """Return the signature of a live or simulated observation."""
    return signature(observation.nodes, observation.globals)


class Similar(NamedTuple):
    """One past incident like the current one."""

    incident: str  # what it was: an incident id and title, or a simulated fault
    fix: str  # what fixed it
    similarity: float  # cosine of the signatures, in [-1, 1]
    key: str  # the incident id (store) or a position in the artifact's memory


@dataclass
class SimilarMemory:
    """Past incidents and their fixes; thread-safe, grows while the bot runs (no retraining)."""

    keys: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    rows: list[npt.NDArray[np.float32]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    """Keys looked at, added or not (a resolved incident nothing fixed is not read again)."""
    _matrix: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    seeded_from: str = ""
    """The policy version whose artifact memory was added ("" when none)."""

    def __len__(self) -> int:
        return len(self.keys)

    def known(self, key: str) -> bool:
        """Return whether this key was looked at already (added, or marked as having no fix)."""
        with self._lock:
            return key in self.seen

    def mark(self, key: str) -> None:
        """Remember a key that has nothing to add, so a refresh skips it."""
        with self._lock:
            self.seen.add(key)

    def add(self, key: str, incident: str, fix: str, sig: npt.NDArray[np.float32]) -> bool:
        """Add one past incident (a key already present is kept as it is); return whether it was new."""
        with self._lock:
            if key in self.keys or sig.shape != (SIGNATURE_SIZE,):
                return False
            self.seen.add(key)
            self.keys.append(key)
            self.incidents.append(incident)
            self.fixes.append(fix)
            self.rows.append(sig.astype(np.float32))
            self._matrix = None
            return True

    def add_many(self, entries: Iterable[tuple[str, str, str, npt.NDArray[np.float32]]]) -> int:
        """Add several entries; return how many were new."""
        return sum(self.add(*entry) for entry in entries)

    def nearest(self, observation: Observation, k: int = 2, *, exclude: str | None = None) -> list[Similar]:
        """Return the ``k`` most similar past incidents (never ``exclude``), most similar first."""
        sig = signature_of(observation)
        with self._lock:
            if not self.keys:
                return []
            if self._matrix is None:
                self._matrix = np.stack(self.rows)
            sims = self._matrix @ sig
            keys, incidents, fixes = list(self.keys), list(self.incidents), list(self.fixes)
        order = np.argsort(-sims, kind="stable")
        out = []
        for i in order.tolist():
            if keys[i] == exclude:
                continue
            out.append(Similar(incidents[i], fixes[i], round(float(sims[i]), 4), keys[i]))
            if len(out) == k:
                break
        return out
