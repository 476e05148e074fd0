"""Check playbook files and report every problem at once, each with its file and key.

`load_catalog` and `load_runbooks` stop at the first problem; this module keeps going so a person
fixes a whole directory in one pass (`remediate playbooks validate [PATH]`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from playbooks.catalog import action_files
from playbooks.models import Action, CatalogFile, Runbook, RunbookFile, RunbookStep
from playbooks.runbooks import runbook_files
from playbooks.yamlfiles import key_text, parse_yaml_file

SpecChecker = Callable[[Action, Mapping[str, Any]], list[tuple[str, str]]]
"""Checks one action's config for one executor; returns (key below ``executors.KIND``, message) pairs."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a playbook file."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


def _load_yaml(path: Path, problems: list[Problem]) -> Any:
    data, reason = parse_yaml_file(path)
    if reason is not None:
        problems.append(Problem(str(path), "(file)", reason))
    return data


def _errors(path: Path, prefix: str, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = ".".join(
            [prefix, *(key_text(p) for p in err["loc"])] if prefix else [key_text(p) for p in err["loc"]]
        )
        out.append(Problem(str(path), loc or "(top)", err["msg"]))
    return out


def _items(path: Path, raw: Any, list_key: str, problems: list[Problem]) -> list[tuple[str, Any]]:
    """Return (key, raw item) for each entry of the file's list, reporting a broken top level."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.append(Problem(str(path), "(top)", f"expected a mapping with '{list_key}'"))
        return []
    top_model = CatalogFile if list_key == "actions" else RunbookFile
    allowed = set(top_model.model_fields)
    for key in sorted(set(map(str, raw)) - allowed):
        problems.append(
            Problem(str(path), key_text(key), f"unknown key; expected some of {', '.join(sorted(allowed))}")
        )
    if raw.get("version", 1) != 1:
        problems.append(Problem(str(path), "version", f"expected 1, got {raw.get('version')!r}"))
    items = raw.get(list_key) or []
    if not isinstance(items, list):
        problems.append(Problem(str(path), list_key, "expected a list"))
        return []
    return [(f"{list_key}.{i}", item) for i, item in enumerate(items)]


def _check_actions(
    files: Iterable[Path], checkers: Mapping[str, SpecChecker] | None, problems: list[Problem]
) -> dict[str, tuple[Action, Path, str]]:
    actions: dict[str, tuple[Action, Path, str]] = {}
    for path in files:
        for key, item in _items(path, _load_yaml(path, problems), "actions", problems):
            try:
                action = Action.model_validate(item)
            except ValidationError as exc:
                problems.extend(_errors(path, key, exc))
                continue
            if action.id in actions:
                first = actions[action.id]
                problems.append(
                    Problem(
                        str(path),
                        f"{key}.id",
                        f"duplicate action id {action.id!r} (first in {first[1]} {first[2]})",
                    )
                )
                continue
            actions[action.id] = (action, path, key)
            if not action.executors:
                problems.append(Problem(str(path), f"{key}.executors", "no executor can perform this action"))
            if checkers is None:
                continue
            for kind, spec in action.executors.items():
                checker = checkers.get(kind)
                if checker is None:
                    problems.append(
                        Problem(str(path), f"{key}.executors.{kind}", f"no executor handler for {kind!r}")
                    )
                    continue
                for sub, message in checker(action, spec):
                    where = f"{key}.executors.{kind}" + (f".{sub}" if sub else "")
                    problems.append(Problem(str(path), where, message))
    for action, path, key in actions.values():
        if action.rollback is not None and action.rollback not in actions:
            problems.append(Problem(str(path), f"{key}.rollback", f"unknown action {action.rollback!r}"))
    return actions


def _check_step(
    step: RunbookStep, actions: Mapping[str, tuple[Action, Path, str]], path: Path, key: str
) -> list[Problem]:
    if step.action not in actions:
        return [Problem(str(path), f"{key}.action", f"unknown action {step.action!r}")]
    try:
        actions[step.action][0].validate_params(step.params)
    except ValueError as exc:
        return [Problem(str(path), f"{key}.params", str(exc))]
    return []


def _check_runbooks(
    files: Iterable[Path], actions: Mapping[str, tuple[Action, Path, str]], problems: list[Problem]
) -> None:
    seen: dict[str, str] = {}
    for path in files:
        raw = _load_yaml(path, problems)
        for key, item in _items(path, raw, "runbooks", problems):
            try:
                runbook = Runbook.model_validate(item)
            except ValidationError as exc:
                problems.extend(_errors(path, key, exc))
                continue
            if runbook.id in seen:
                problems.append(
                    Problem(
                        str(path),
                        f"{key}.id",
                        f"duplicate runbook id {runbook.id!r} (first in {seen[runbook.id]})",
                    )
                )
            seen.setdefault(runbook.id, f"{path} {key}")
            for i, step in enumerate(runbook.steps):
                problems.extend(_check_step(step, actions, path, f"{key}.steps.{i}"))
                found = actions.get(step.action)
                if found and runbook.when.kinds and found[0].scope == "service":
                    bad = sorted(set(runbook.when.kinds) - set(found[0].applies_to))
                    if len(bad) == len(runbook.when.kinds):
                        problems.append(
                            Problem(
                                str(path),
                                f"{key}.steps.{i}.action",
                                f"{step.action} applies to none of {bad}",
                            )
                        )
        if isinstance(raw, dict) and raw.get("fallback") is not None:
            for i, item in enumerate(raw["fallback"] if isinstance(raw["fallback"], list) else []):
                try:
                    step = RunbookStep.model_validate(item)
                except ValidationError as exc:
                    problems.extend(_errors(path, f"fallback.{i}", exc))
                    continue
                problems.extend(_check_step(step, actions, path, f"fallback.{i}"))
                if step.action in actions and actions[step.action][0].scope != "global":
                    problems.append(
                        Problem(str(path), f"fallback.{i}.action", "fallback steps must be global actions")
                    )


def validate_playbooks(
    extra_dirs: Iterable[Path] = (),
    *,
    checkers: Mapping[str, SpecChecker] | None = None,
    include_builtin: bool = True,
) -> list[Problem]:
    """Return every problem in the built-in and user playbook files, sorted by file and key.

    Args:
        extra_dirs: user playbook directories, checked together with the built-ins.
        checkers: per executor kind, a function checking an action's config for it; when given, an
            executor named by an action without a checker is reported as a missing handler.
        include_builtin: also check (and resolve references against) the built-in files.
    """
    dirs = tuple(extra_dirs)
    problems: list[Problem] = []
    for directory in dirs:
        if not directory.is_dir():
            problems.append(Problem(str(directory), "(dir)", "playbook directory does not exist"))
    dirs = tuple(d for d in dirs if d.is_dir())
    a_files = action_files(dirs)
    r_files = runbook_files(dirs)
    if not include_builtin:
        a_files = [f for d in dirs for f in sorted(d.glob("actions*.yaml"))]
        r_files = [f for d in dirs for f in sorted(d.glob("runbooks*.yaml"))]
    actions = _check_actions(a_files, checkers, problems)
    _check_runbooks(r_files, actions, problems)
    return problems
