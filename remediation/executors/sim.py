"""The sim executor: performs actions on a running simulator world through a small protocol.

A canary (docs/verification.md) reaches the world as two extra parameters: ``canary_share`` (the share
of the target's replicas to act on, at least one) and, for the canary's undo, ``canary_undo: True``
(take back what the canary run did). A world that cannot run a canary answers ``ok: False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from playbooks.models import Action
from remediation.executors.base import ExecRequest, Outcome, OutcomeMemo, spec_of


@runtime_checkable
class SimWorld(Protocol):
    """What a simulator world must offer the sim executor."""

    def apply(self, action_id: str, target: str | None, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Apply a catalog action (by its sim handler name) and return at least ``{"ok": bool}``."""
        ...


class SimExecutor:
    """Acts on a simulator world; the handler name comes from the catalog (``executors.sim.handler``)."""

    kind = "sim"
    supports_canary = True

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self._memo = OutcomeMemo()

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Apply the action to the world once per request id (dry run: describe the call only)."""
        spec = spec_of(request, self.kind)
        handler = str(spec.get("handler", request.action.id))
        params = dict(request.params)
        if request.canary is not None:
            params["canary_share"] = request.canary.share
            if request.canary.undo:
                params["canary_undo"] = True
        call = f"world.apply({handler!r}, {request.target!r}, {params!r})"
        if dry_run:
            return Outcome("dry_run", f"would call {call}{_canary_said(request)}", (call,))
        seen = self._memo.get(request.request_id)
        if seen is not None:
            return seen
        result = dict(self.world.apply(handler, request.target, params))
        ok = bool(result.get("ok", False))
        detail = str(result.get("detail", "applied" if ok else "the world refused the action"))
        return self._memo.put(
            request.request_id, Outcome("succeeded" if ok else "failed", detail, (call,), data=result)
        )


def _canary_said(request: ExecRequest) -> str:
    """Say what a canary run would do, for the dry run (nothing for a whole-workload run)."""
    c = request.canary
    if c is None:
        return ""
    if c.undo:
        return f" (undo of canary {c.of}: takes back its change on the canary replicas only)"
    return f" (canary: on {c.share:.0%} of {request.target}'s replicas, at least one; the rest waits for its verdict)"


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's sim config: an optional text ``handler``."""
    handler = spec.get("handler", action.id)
    return [] if isinstance(handler, str) and handler else [("handler", "expected a handler name")]
