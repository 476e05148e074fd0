"""The shell spec checker (`remediate playbooks validate`): read_replicas, direction, known placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from playbooks.catalog import builtin_catalog
from remediation.executors.shell import check_spec

READ = ["kubectl", "get", "deployment/{target}", "--output=jsonpath={{.spec.replicas}}"]
SCALE = ["kubectl", "scale", "deployment/{target}", "--replicas={new_replicas}"]


def test_every_builtin_shell_spec_passes() -> None:
    for action in builtin_catalog().actions.values():
        if "shell" in action.executors:
            assert check_spec(action, action.executors["shell"]) == [], action.id


@pytest.mark.parametrize(
    ("action_id", "spec", "problem"),
    [
        ("scale_out", {"argv": SCALE}, ("argv.3", "{new_replicas} is not a parameter of scale_out")),
        ("scale_out", {"argv": SCALE, "read_replicas": READ}, ("direction", "read_replicas needs direction: up or down")),
        ("restart_service", {"argv": SCALE, "read_replicas": READ, "direction": "up"},
         ("read_replicas", "needs restart_service to have a 'replicas' parameter")),
        ("scale_out", {"argv": SCALE, "read_replicas": [], "direction": "up"},
         ("read_replicas", "expected a non-empty list of strings")),
        ("restart_service", {"argv": ["kubectl", "--ns={nmespace}"]}, ("argv.1", "{nmespace} is not a parameter of restart_service")),
        ("restart_service", {"argv": ["{target}"]}, ("argv.0", "the program must be fixed text, not a placeholder")),
    ],
)  # fmt: skip
def test_a_bad_shell_spec_is_named(action_id: str, spec: dict[str, Any], problem: tuple[str, str]) -> None:
    assert problem in check_spec(builtin_catalog().get(action_id), spec)
