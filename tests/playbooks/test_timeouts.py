"""Each action's `timeout_s`: how long the bot waits for an executor before recording `unknown`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from playbooks.catalog import builtin_catalog
from playbooks.models import DEFAULT_TIMEOUT_S, Action

BASE: dict[str, Any] = {
    "id": "restart_it",
    "description": "Restart it.",
    "applies_to": ["service"],
    "risk": "low",
}


def test_timeout_defaults_and_every_builtin_action_has_one() -> None:
    assert Action.model_validate(BASE).timeout_s == DEFAULT_TIMEOUT_S
    assert all(0 < a.timeout_s <= 3600 for a in builtin_catalog().actions.values())


@pytest.mark.parametrize("bad", [0, -1, 3601, "soon"])
def test_a_timeout_of_0_or_less_or_over_an_hour_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(ValidationError, match="timeout_s"):
        Action.model_validate({**BASE, "timeout_s": bad})
