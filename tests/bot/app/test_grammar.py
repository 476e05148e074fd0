"""The command grammar and the button ids the app listens to refuse look-alikes."""

from __future__ import annotations

import pytest

from bot.app.errors import UsageError
from bot.app.grammar import _one_id, parse, suggestion_number
from bot.app.listeners import BUTTONS


def test_button_ids_with_a_trailing_newline_are_not_ours() -> None:
    assert BUTTONS.search("approve:1") is not None
    assert BUTTONS.search("approve:1\n") is None


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    # parse() splits on whitespace, so this guards the id check itself for any other caller.
    assert parse("status INC-1").args == ("INC-1",)
    with pytest.raises(UsageError, match="is not a incident id"):
        _one_id("status", ["INC-1\n"], "incident")


@pytest.mark.parametrize("raw", ["0", "11", "99", "x", ""])
def test_a_why_button_and_the_why_command_refuse_the_same_numbers(raw: str) -> None:
    # the why button calls why() directly (no command text): both go through suggestion_number
    with pytest.raises(UsageError) as button:
        suggestion_number(raw)
    if raw:
        with pytest.raises(UsageError) as command:
            parse(f"why INC-1 {raw}")
        assert str(button.value) == str(command.value)
    assert "Usage: `why <incident> [n]`" in str(button.value)
    assert suggestion_number("10") == 10 and parse("why INC-1").args == ("INC-1", "1")
