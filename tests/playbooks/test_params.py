"""Typed action parameters: every value is checked against its type and bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from playbooks.models import ParamSpec


@pytest.mark.parametrize("value", ["nan", "NaN", float("nan"), "inf", "-inf", float("inf"), "1e309"])
def test_float_param_refuses_non_finite_numbers_by_name(value: Any) -> None:
    spec = ParamSpec(type="float", min=0.0, max=10.0)
    with pytest.raises(ValueError, match="parameter ratio: expected a finite number"):
        spec.check("ratio", value)


def test_float_param_without_bounds_still_refuses_nan() -> None:
    with pytest.raises(ValueError, match="parameter ratio"):
        ParamSpec(type="float").check("ratio", "nan")


def test_finite_float_param_is_checked_against_bounds() -> None:
    spec = ParamSpec(type="float", min=0.0, max=10.0)
    assert spec.check("ratio", "2.5") == 2.5
    with pytest.raises(ValueError, match="above the maximum"):
        spec.check("ratio", 11)


def test_non_finite_bounds_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="max"):
        ParamSpec(type="float", max=math.nan)
