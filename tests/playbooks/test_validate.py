"""`validate_playbooks` reports every problem at once, each with its file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playbooks.models import Action
from playbooks.validate import validate_playbooks

BAD_ACTIONS = """\
version: 1
actions:
  - id: restart_service
    description: duplicate of a built-in
    applies_to: [service]
    risk: low
    executors: {sim: {}}
  - id: purge_queue
    description: Purge a queue.
    applies_to: [queue]
    risk: extreme
  - id: resize_volume
    description: Grow a volume.
    applies_to: [database]
    risk: low
    rollback: shrink_volume
    params:
      gib: {type: int, min: 1, max: 100, default: 500}
    executors: {shell: {argv: [resize, "{target}", "{gib}"]}, teleport: {}}
  - id: ping
    description: Ping.
    applies_to: [service]
    risk: low
    executors: {kubernetes: {operation: levitate}}
"""

BAD_RUNBOOKS = """\
version: 1
runbooks:
  - id: r1
    fault: f
    description: d
    when: {alerts_any: [A]}
    steps:
      - {action: reboot_world}
      - {action: scale_out, params: {replicas: many}}
  - id: r1
    fault: f
    description: again
    when: {alerts_any: [B]}
    steps: [{action: wait}]
  - id: r3
    fault: f
    description: no symptoms
    when: {}
    steps: [{action: wait}]
fallback:
  - {action: restart_service}
"""


def k8s_checker(action: Action, spec: Any) -> list[tuple[str, str]]:
    if spec.get("operation") not in {"rollout_restart", "scale", "rollout_undo"}:
        return [("operation", f"unknown operation {spec.get('operation')!r}")]
    return []


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "actions.yaml").write_text(BAD_ACTIONS)
    (tmp_path / "runbooks.yaml").write_text(BAD_RUNBOOKS)
    checkers = {
        "sim": lambda a, s: [],
        "shell": lambda a, s: [],
        "webhook": lambda a, s: [],
        "kubernetes": k8s_checker,
    }
    problems = validate_playbooks([tmp_path], checkers=checkers)
    text = "\n".join(str(p) for p in problems)
    actions_file, runbooks_file = str(tmp_path / "actions.yaml"), str(tmp_path / "runbooks.yaml")
    expected = [
        (actions_file, "actions.0.id", "duplicate action id 'restart_service'"),
        (actions_file, "actions.1.risk", "Input should be"),
        (actions_file, "actions.2.params.gib", "above the maximum"),
        (actions_file, "actions.2.executors", "unknown executor(s) teleport"),
        (actions_file, "actions.3.executors.kubernetes.operation", "unknown operation 'levitate'"),
        (runbooks_file, "runbooks.0.steps.0.action", "unknown action 'reboot_world'"),
        (runbooks_file, "runbooks.0.steps.1.params", "expected an integer"),
        (runbooks_file, "runbooks.1.id", "duplicate runbook id 'r1'"),
        (runbooks_file, "runbooks.2.when", "at least one symptom"),
        (runbooks_file, "fallback.0.action", "must be global"),
    ]
    for file, key, fragment in expected:
        assert any(p.file == file and p.key == key and fragment in p.message for p in problems), (
            f"missing {file} {key} {fragment}\n{text}"
        )
    builtin = [p for p in problems if not p.file.startswith(str(tmp_path))]
    assert builtin == []  # the built-ins themselves are clean


def test_missing_executor_handler(tmp_path: Path) -> None:
    problems = validate_playbooks([], checkers={"sim": lambda a, s: []})
    keys = {(p.key, p.message) for p in problems}
    assert any(k.endswith(".executors.webhook") and "no executor handler" in m for k, m in keys)


def test_builtins_are_clean_without_checkers() -> None:
    assert validate_playbooks() == []


def test_missing_directory_is_a_problem(tmp_path: Path) -> None:
    problems = validate_playbooks([tmp_path / "nope"])
    assert [p.key for p in problems] == ["(dir)"]
