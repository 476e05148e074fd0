"""Load runbooks (built-ins plus user directories) and match symptoms to ordered candidate actions.

The matcher is the rule-based baseline policy: given the alerts firing per service, recent changes
and metrics, it returns (action, target) candidates, best first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from playbooks.catalog import BUILTIN_DIR, Catalog
from playbooks.errors import RunbookError
from playbooks.models import Runbook, RunbookFile, RunbookStep
from playbooks.yamlfiles import data_files, load_yaml_model


def read_runbooks_file(path: Path) -> RunbookFile:
    """Parse one runbooks YAML file; raise RunbookError naming the file and key of each problem."""
    return load_yaml_model(path, RunbookFile, RunbookError)


def runbook_files(extra_dirs: Iterable[Path] = ()) -> list[Path]:
    """List the built-in runbooks file(s) then ``runbooks*.yaml`` in each extra directory."""
    return data_files(BUILTIN_DIR, "runbooks*.yaml", extra_dirs, RunbookError)


@dataclass(frozen=True)
class RunbookSet:
    """Every runbook in file order, plus the fallback steps used when nothing matches."""

    runbooks: tuple[Runbook, ...]
    fallback: tuple[RunbookStep, ...] = ()

    def get(self, runbook_id: str) -> Runbook:
        """Return the runbook with this id or raise RunbookError listing what exists."""
        for runbook in self.runbooks:
            if runbook.id == runbook_id:
                return runbook
        known = ", ".join(r.id for r in self.runbooks)
        raise RunbookError(f"unknown runbook {runbook_id!r}; known runbooks: {known}")


def build_runbooks(files: Iterable[Path], catalog: Catalog) -> RunbookSet:
    """Merge runbooks from files and check them against the catalog; raise on the first problem."""
    runbooks: list[Runbook] = []
    fallback: list[RunbookStep] = []
    origin: dict[str, Path] = {}
    for path in files:
        parsed = read_runbooks_file(path)
        for runbook in parsed.runbooks:
            if runbook.id in origin:
                raise RunbookError(
                    f"{path}: runbook {runbook.id!r} is already defined in {origin[runbook.id]}"
                )
            origin[runbook.id] = path
            for i, step in enumerate(runbook.steps):
                _check_step(catalog, step, f"{path}: {runbook.id}.steps.{i}")
            runbooks.append(runbook)
        for i, step in enumerate(parsed.fallback):
            _check_step(catalog, step, f"{path}: fallback.{i}")
            if catalog.get(step.action).scope != "global":
                raise RunbookError(
                    f"{path}: fallback.{i}.action: {step.action!r} needs a target; use a global action"
                )
        fallback = list(parsed.fallback) or fallback
    return RunbookSet(runbooks=tuple(runbooks), fallback=tuple(fallback))


def _check_step(catalog: Catalog, step: RunbookStep, where: str) -> None:
    if step.action not in catalog:
        raise RunbookError(f"{where}.action: unknown action {step.action!r}")
    try:
        catalog.get(step.action).validate_params(step.params)
    except ValueError as exc:
        raise RunbookError(f"{where}.params: {exc}") from None


@cache
def builtin_runbooks() -> RunbookSet:
    """Return the built-in runbooks, loaded once and checked against the built-in catalog."""
    from playbooks.catalog import builtin_catalog

    return build_runbooks(runbook_files(), builtin_catalog())


def load_runbooks(catalog: Catalog, extra_dirs: Iterable[Path] = ()) -> RunbookSet:
    """Return the built-in runbooks merged with those of user playbook directories."""
    return build_runbooks(runbook_files(tuple(extra_dirs)), catalog)


class Candidate(NamedTuple):
    """One suggested (action, target) pair with the runbook that produced it and why."""

    action: str
    target: str | None
    params: dict[str, Any]
    score: float
    runbook: str | None
    reason: str


@dataclass(frozen=True)
class Signals:
    """What is known about the services right now; every mapping is keyed by service name."""

    alerts: Mapping[str, Iterable[str]]
    changes: Mapping[str, Iterable[str]] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)


def _symptoms_hold(runbook: Runbook, service: str, signals: Signals) -> bool:
    when = runbook.when
    alerts = set(signals.alerts.get(service, ()))
    if when.alerts_any and not alerts.intersection(when.alerts_any):
        return False
    if not alerts.issuperset(when.alerts_all):
        return False
    metrics = signals.metrics.get(service, {})
    for cond in when.metrics:
        if cond.metric not in metrics or not cond.holds(float(metrics[cond.metric])):
            return False
    if when.recent_change is not None:
        changes = set(signals.changes.get(service, ()))
        wanted = {"deploy", "config_change"} if when.recent_change == "any" else {when.recent_change}
        if not changes & wanted:
            return False
    return not (when.kinds and signals.kinds.get(service) not in when.kinds)


def match_runbooks(runbooks: RunbookSet, catalog: Catalog, signals: Signals) -> list[Candidate]:
    """Return ordered (action, target) candidates for the signals; never empty while a fallback exists.

    Order: the first step of every matching (runbook, service) pair before any second step; among equal
    steps the more specific runbook first, then the service with more alerts, then by name. A step whose
    action does not apply to the service's kind is skipped. Duplicated (action, target) pairs keep their
    best place. The fallback (global) steps always close the list.
    """
    services = sorted(set(signals.alerts) | set(signals.changes) | set(signals.metrics))
    matches: list[tuple[int, int, str, int, Runbook]] = []
    for position, runbook in enumerate(runbooks.runbooks):
        for service in services:
            if _symptoms_hold(runbook, service, signals):
                n_alerts = len(set(signals.alerts.get(service, ())))
                matches.append((-runbook.when.specificity, -n_alerts, service, position, runbook))
    ranked: list[tuple[tuple[int, int, int, str, int], RunbookStep, str, Runbook]] = []
    for spec, n_alerts, service, position, runbook in matches:
        for step_index, step in enumerate(runbook.steps):
            ranked.append(((step_index, spec, n_alerts, service, position), step, service, runbook))
    ranked.sort(key=lambda item: item[0])
    out: list[Candidate] = []
    seen: set[tuple[str, str | None]] = set()
    for _, step, service, runbook in ranked:
        action = catalog.get(step.action)
        kind = signals.kinds.get(service)
        target = service if action.scope == "service" else None
        if kind is not None and action.scope == "service" and kind not in action.applies_to:
            continue
        if (step.action, target) in seen:
            continue
        seen.add((step.action, target))
        reason = f"{runbook.id} on {service}: {step.why or runbook.description}"
        out.append(
            Candidate(step.action, target, action.validate_params(step.params), 0.0, runbook.id, reason)
        )
    for step in runbooks.fallback:
        if (step.action, None) not in seen:
            seen.add((step.action, None))
            params = catalog.get(step.action).validate_params(step.params)
            out.append(Candidate(step.action, None, params, 0.0, None, step.why or "fallback"))
    n = len(out)
    return [c._replace(score=round((n - i) / n, 6)) for i, c in enumerate(out)]
