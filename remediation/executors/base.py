"""The executor interface, its request and outcome values, and the errors executors raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from playbooks.models import Action
from remediation.errors import ExecutorError

Status = Literal["succeeded", "failed", "unknown", "dry_run"]


@dataclass(frozen=True)
class Canary:
    """A canary run: the action on ``share`` of the target's replicas only, or (``undo``) that run undone.

    ``of`` is the canary's own request id (an undo names the run it takes back). Executors that cannot
    run a canary refuse it (`supports_canary`); docs/verification.md, "Canary first".
    """

    share: float
    undo: bool = False
    of: str = ""


@dataclass(frozen=True)
class ExecRequest:
    """What to run: the approved request's id (the idempotency key), the action, its target, parameters and incident."""

    request_id: str
    action: Action
    target: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    incident_id: str | None = None
    canary: Canary | None = None  # None: the whole workload, as always


def supports_canary(executor: object, action_id: str) -> bool:
    """Return whether the executor that runs ``action_id`` runs canaries (it sets ``supports_canary``)."""
    chosen: object = executor
    for _ in range(4):  # through wrappers (``inner``: a timeout) and routes (``pick``: per action)
        pick = getattr(chosen, "pick", None)
        chosen = pick(action_id) if callable(pick) else getattr(chosen, "inner", chosen)
    return bool(getattr(chosen, "supports_canary", False))


@dataclass(frozen=True)
class Outcome:
    """What happened (or, in a dry run, exactly what would run)."""

    status: Status
    detail: str
    commands: tuple[str, ...] = ()
    output: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready values."""
        return {
            "status": self.status,
            "detail": self.detail,
            "commands": list(self.commands),
            "output": self.output,
            "data": dict(self.data),
        }


class Executor(Protocol):
    """Performs catalog actions somewhere; idempotent by request id."""

    kind: str

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Run the request (or describe it when ``dry_run``); a repeated request id never runs twice."""
        ...


def spec_of(request: ExecRequest, kind: str) -> Mapping[str, Any]:
    """Return the action's config for executor ``kind`` or raise ExecutorError saying which executors it has."""
    spec = request.action.executors.get(kind)
    if spec is None:
        have = ", ".join(sorted(request.action.executors)) or "none"
        raise ExecutorError(f"action {request.action.id} cannot run on the {kind} executor; it has: {have}")
    return spec


class OutcomeMemo:
    """Remembers outcomes by request id so a repeated call returns the first outcome instead of acting again."""

    def __init__(self) -> None:
        self._seen: dict[str, Outcome] = {}

    def get(self, request_id: str) -> Outcome | None:
        """Return the remembered outcome of a request id, if any."""
        return self._seen.get(request_id)

    def put(self, request_id: str, outcome: Outcome) -> Outcome:
        """Remember and return an outcome."""
        self._seen[request_id] = outcome
        return outcome
