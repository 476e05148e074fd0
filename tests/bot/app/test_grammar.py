"""The command grammar and the button ids the app listens to refuse look-alikes."""

from __future__ import annotations

import pytest

from bot.app.app import BUTTONS
from bot.app.errors import UsageError
from bot.app.grammar import _one_id, parse


def test_button_ids_with_a_trailing_newline_are_not_ours() -> None:
    assert BUTTONS.search("approve:1") is not None
    assert BUTTONS.search("approve:1\n") is None


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    # parse() splits on whitespace, so this guards the id check itself for any other caller.
    assert parse("status INC-1").args == ("INC-1",)
    with pytest.raises(UsageError, match="is not a incident id"):
        _one_id("status", ["INC-1\n"], "incident")
