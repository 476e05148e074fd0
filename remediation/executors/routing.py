"""One executor per action: a default for every action, and routes that send some actions elsewhere.

``escalate`` routed to PagerDuty pages a person while the rest go to the webhook; a route to nothing
(``none``) keeps that action advisory even when the default runs things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest, Executor, Outcome

ADVISORY = "approving records the decision and nothing runs"


class RoutedExecutor:
    """Sends each request to its action's route, or to the default; None (either) means advisory."""

    def __init__(self, default: Executor | None, routes: Mapping[str, Executor | None]) -> None:
        self.default = default
        self.routes = dict(routes)
        self.kind = default.kind if default is not None else "none"

    def pick(self, action_id: str) -> Executor | None:
        """Return the executor that runs ``action_id``, or None when it is advisory only."""
        return self.routes.get(action_id, self.default)

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Hand the request to the executor its action routes to; refuse an advisory-only action."""
        chosen = self.pick(request.action.id)
        if chosen is None:
            raise ExecutorError(f"no executor runs {request.action.id}: {ADVISORY}")
        return chosen.execute(request, dry_run)


def runs(executor: Executor | None, action_id: str) -> bool:
    """Return whether approving ``action_id`` runs anything with this executor (False: advisory only)."""
    if executor is None:
        return False
    return not isinstance(executor, RoutedExecutor) or executor.pick(action_id) is not None


def describe(executor: Executor | None) -> dict[str, Any]:
    """Return what runs actions, for /healthz and the start line: ``{"kind", "routes"}``."""
    if isinstance(executor, RoutedExecutor):
        routes = {a: (e.kind if e is not None else "none") for a, e in sorted(executor.routes.items())}
        return {"kind": executor.kind, "routes": routes}
    return {"kind": executor.kind if executor is not None else "none", "routes": {}}


def describe_text(executor: Executor | None) -> str:
    """Return `describe` as one line: ``webhook (escalate -> pagerduty)`` or ``none (advisory only)``."""
    info = describe(executor)
    routes = ", ".join(f"{a} -> {k}" for a, k in info["routes"].items())
    head = "none (advisory only)" if info["kind"] == "none" else info["kind"]
    return f"{head} ({routes})" if routes else head


def advisory(executor: Executor | None) -> str | None:
    """Return the sentence a card leads with when approving (some) actions runs nothing; None when all run."""
    if executor is None:
        return f"Advisory mode: no executor is configured, so {ADVISORY}."
    if not isinstance(executor, RoutedExecutor):
        return None
    running = sorted(a for a, e in executor.routes.items() if e is not None)
    idle = sorted(a for a, e in executor.routes.items() if e is None)
    if executor.default is None:
        but = ", ".join(f"{a} ({executor.routes[a].kind})" for a in running)  # type: ignore[union-attr]
        return f"Advisory mode: no executor is configured, so {ADVISORY}" + (
            f", except {but}." if but else "."
        )
    if idle:
        return f"Approving {', '.join(idle)} records the decision and nothing runs (routed to none)."
    return None
