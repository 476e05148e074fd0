"""The sim executor: performs actions on a running simulator world through a small protocol."""

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

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self._memo = OutcomeMemo()

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Apply the action to the world once per request id (dry run: describe the call only)."""
        spec = spec_of(request, self.kind)
        handler = str(spec.get("handler", request.action.id))
        call = f"world.apply({handler!r}, {request.target!r}, {dict(request.params)!r})"
        if dry_run:
            return Outcome("dry_run", f"would call {call}", (call,))
        seen = self._memo.get(request.request_id)
        if seen is not None:
            return seen
        result = dict(self.world.apply(handler, request.target, dict(request.params)))
        ok = bool(result.get("ok", False))
        detail = str(result.get("detail", "applied" if ok else "the world refused the action"))
        return self._memo.put(
            request.request_id, Outcome("succeeded" if ok else "failed", detail, (call,), data=result)
        )


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's sim config: an optional text ``handler``."""
    handler = spec.get("handler", action.id)
    return [] if isinstance(handler, str) and handler else [("handler", "expected a handler name")]
