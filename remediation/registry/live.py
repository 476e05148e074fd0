"""The serving policy of a running process, kept in step with the registry (the store is the truth).

``LivePolicy`` satisfies the ``Policy`` protocol and delegates to the policy it holds now. With
``auto`` it serves the promoted version, else the bundled policy shipped in the package, else the
runbook baseline; its ``name`` says which ("promoted policy policy-…", "bundled policy bundled-s0-i40",
"runbook baseline"), so /healthz and every card name it. It also holds the shadow version (ranks every incident
beside production, never shown) and the canary version with its share of incidents (shown, labelled,
on a deterministic share: a hash of the incident id).

``check`` reads the registry's active versions (one small query) and loads what changed, each artifact
only after its SHA-256 matched the registry's; a load that fails keeps what serves now and records why
(``status()["error"]``, and a warning in the log). A scheduler calls it every few seconds
(``REMEDIATE_POLICY_RELOAD_S``), so a promote, rollback, shadow or canary change reaches every replica
without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from incidents_db.db import make_sessionmaker, session_scope
from incidents_db.models import PolicyVersion
from incidents_db.rankings import PolicyCanary
from remediation.errors import ArtifactError, RemediationError
from remediation.policies.base import Policy, RankedAction, rank_avoiding
from sim.observation import Observation

log = logging.getLogger("remediate.policy")

Loader = Callable[[Path, str | None, str], Policy]
"""(artifact path, expected SHA-256 or None for the record's, version) -> a ready policy; raises ArtifactError."""


@dataclass(frozen=True)
class Slot:
    """One loaded policy and where it came from."""

    policy: Policy
    source: str  # promoted | bundled | runbook | pinned | shadow | canary
    version: str
    sha256: str | None = None

    @property
    def label(self) -> str:
        """Return how a card and /healthz name it."""
        if self.source == "runbook":
            return "runbook baseline"
        return f"{self.source} policy {self.version}"


@dataclass(frozen=True)
class Active:
    """What the registry says should run: (version, path, sha256) per role; canary with its share."""

    promoted: tuple[str, str, str] | None
    shadow: tuple[str, str, str] | None
    canary: tuple[str, str, str] | None = None
    canary_share: float = 0.0


def in_canary(incident_id: str, share: float) -> bool:
    """Return whether an incident falls in the canary's share (the same answer on every replica)."""
    digest = hashlib.sha256(incident_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def read_active(engine: sa.Engine) -> Active:
    """Return the registry's promoted, shadow and canary versions (two small queries)."""
    with session_scope(make_sessionmaker(engine)) as session:
        rows = session.execute(
            sa.select(PolicyVersion.id, PolicyVersion.path, PolicyVersion.sha256, PolicyVersion.status).where(
                PolicyVersion.status.in_(("promoted", "shadow"))
            )
        ).all()
        canary = session.execute(
            sa.select(PolicyVersion.id, PolicyVersion.path, PolicyVersion.sha256, PolicyCanary.share)
            .join(PolicyCanary, PolicyCanary.version == PolicyVersion.id)
            # promoting the canary ends it: production serves that version to every incident
            .where(PolicyVersion.status != "promoted")
        ).first()
    found = {status: (version, path, digest) for version, path, digest, status in rows}
    if canary is None:
        return Active(found.get("promoted"), found.get("shadow"))
    want = (str(canary[0]), str(canary[1]), str(canary[2]))
    return Active(found.get("promoted"), found.get("shadow"), want, float(canary[3]))


class LivePolicy:
    """The policy a process serves, its shadow and its canary; swapped in place, thread-safe."""

    def __init__(self, *, engine: sa.Engine | None, mode: str, runbook: Policy, loader: Loader,
                 bundled: Path | None, pinned: Policy | None = None) -> None:  # fmt: skip
        self._engine, self._mode, self._loader, self._bundled = engine, mode, loader, bundled
        self._pinned = pinned  # the version or artifact ``mode`` names, loaded by the caller
        self._failed: dict[str, str] = {}  # sha256 -> why it did not load (not retried every check)
        self._lock = threading.Lock()
        self._runbook = Slot(runbook, "runbook", getattr(runbook, "version", "runbook"))
        self._current = self._runbook
        self.name: str = self._runbook.label  # what ranks now, as cards and /healthz name it
        self.version: str = self._runbook.version
        self.shadow: Slot | None = None
        self.canary: Slot | None = None
        self.canary_share = 0.0
        self.error: str | None = None
        self.checked_at: datetime | None = None
        self._fallback: Slot | None = None  # the bundled policy, loaded once

    # --- the Policy protocol ------------------------------------------------------------------
    @property
    def current(self) -> Slot:
        """Return the slot that serves now."""
        return self._current

    @current.setter
    def current(self, slot: Slot) -> None:
        # name and version are plain attributes (the protocol's), kept in step with the slot
        self._current, self.name, self.version = slot, slot.label, slot.version

    @property
    def memory(self) -> Any:
        """Return the serving policy's similar-incident memory (None for the runbook)."""
        return getattr(self.current.policy, "memory", None)

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Rank with the serving policy."""
        return self.current.policy.rank(observation, k)

    def rank_avoiding(
        self, observation: Observation, k: int, targets: Collection[str], pool: int
    ) -> list[RankedAction]:
        """Rank with the serving policy, on no service of ``targets`` (``policies.base.rank_avoiding``)."""
        return rank_avoiding(self.current.policy, observation, k, targets, pool)

    def for_incident(self, incident_id: str) -> Slot:
        """Return the slot that ranks this incident's card: the canary on its share, else production."""
        canary, share = self.canary, self.canary_share
        if canary is not None and in_canary(incident_id, share):
            return canary
        return self.current

    # --- keeping in step with the registry ---------------------------------------------------
    def start(self) -> None:
        """Choose the first policy: pinned, or promoted > bundled > runbook (``auto``)."""
        if self._mode == "runbook":
            return
        if self._mode != "auto":
            if self._pinned is not None:
                self.current = Slot(self._pinned, "pinned", self._pinned.version)
            return
        try:
            self.check()
        except RemediationError as exc:
            self.error = str(exc)
        if self.current.source == "runbook":
            self.current = self._bundled_or_runbook()

    def check(self) -> bool:
        """Read the registry and load what changed; return whether anything did. A failed load keeps the old."""
        if self._engine is None:
            return False
        active = read_active(self._engine)
        with self._lock:
            changed = self._apply(active)
            self.checked_at = datetime.now(UTC)
        return changed

    def _apply(self, active: Active) -> bool:
        changed = False
        errors = []
        if self._mode == "auto":
            want = active.promoted
            if want is None and self.current.source == "promoted":
                self.current, changed = self._bundled_or_runbook(), True
            elif want is not None and (self.current.source, self.current.sha256) != ("promoted", want[2]):
                slot, why = self._try(want, "promoted")
                if slot is not None:
                    self.current, changed = slot, True
                else:
                    errors.append(why)
        for role in ("shadow", "canary"):
            want = getattr(active, role)
            have: Slot | None = getattr(self, role)
            if want is None:
                changed |= have is not None
                setattr(self, role, None)
            elif have is None or have.sha256 != want[2]:
                slot, why = self._try(want, role)
                setattr(self, role, slot if slot is not None else have)
                changed |= slot is not None
                if slot is None:
                    errors.append(why)
        changed |= self.canary_share != active.canary_share
        self.canary_share = active.canary_share if self.canary is not None else 0.0
        self.error = "; ".join(errors) or None
        return changed

    def _try(self, want: tuple[str, str, str], role: str) -> tuple[Slot | None, str]:
        version, path, digest = want
        if digest in self._failed:
            return None, self._failed[digest]
        try:
            policy = self._loader(Path(path), digest, version)
        except ArtifactError as exc:
            why = f"{role} {version} not loaded, keeping {self.current.label}: {exc}"
            log.warning("%s", why)
            self._failed[digest] = why
            return None, why
        if role == "shadow" and hasattr(policy, "explain"):
            policy.explain = False  # a shadow's reasons are never shown: one forward pass, no backward
        log.info("policy %s %s loaded (sha256 %s)", role, version, digest[:12])
        return Slot(policy, role, version, digest), ""

    def _bundled_or_runbook(self) -> Slot:
        if self._fallback is None and self._bundled is not None:
            try:
                policy = self._loader(self._bundled, None, "bundled")
                self._fallback = Slot(policy, "bundled", policy.version, None)
            except ArtifactError as exc:
                self.error = f"the bundled policy cannot load ({exc}): the runbook serves"
                log.warning("%s", self.error)
        return self._fallback or self._runbook

    def status(self) -> dict[str, Any]:
        """Return what /healthz shows: what serves, from where, shadow, canary, the last check and error."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.current.source,
            "sha256": self.current.sha256,
            "mode": self._mode,
            "shadow": self.shadow.version if self.shadow else None,
            "canary": self.canary.version if self.canary else None,
            "canary_share": self.canary_share,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "error": self.error,
        }
