"""The grammar of the Slack-native commands: a bare declare, roles, switches with a reason."""

from __future__ import annotations

import pytest

from bot.app.errors import UsageError
from bot.app.grammar import Command, parse


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("declare", Command("declare")),
        ("role INC-7 commander <@U0CAROL003>", Command("role", ("INC-7", "commander", "U0CAROL003"))),
        ("role INC-7 Scribe <@U0BOB00002|bob>", Command("role", ("INC-7", "scribe", "U0BOB00002"))),
        ("freeze on", Command("freeze", ("on", "", ""))),
        ("freeze off checkoutservice", Command("freeze", ("off", "checkoutservice", ""))),
        ("freeze on all release night", Command("freeze", ("on", "", "release night"))),
        (
            "killswitch ON redis-cart bad failover",
            Command("killswitch", ("on", "redis-cart", "bad failover")),
        ),
    ],
)
def test_parses(text: str, command: Command) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    "text",
    [
        "role INC-7 boss <@U0CAROL003>",
        "role INC-7 commander carol",
        "role INC-7",
        "killswitch",
        "killswitch maybe",
        "freeze on ;drop",
    ],
)
def test_refuses_with_the_usage_line(text: str) -> None:
    with pytest.raises(UsageError, match="Usage: `"):
        parse(text)
