"""`views.publish` in the sandbox checks a home view as Slack does; the page's UI state carries it."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sandbox import SlackSandbox
from tests.bot.sandbox.conftest import control

ALICE = "U0ALICE001"


def _home(blocks: int) -> dict[str, object]:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    return {"type": "home", "blocks": [section] * blocks}


def test_publish_stores_the_home_and_replaces_it(client: WebClient, sandbox: SlackSandbox) -> None:
    first = client.views_publish(user_id=ALICE, view=_home(1))
    second = client.views_publish(user_id=ALICE, view=_home(100), hash=first["view"]["hash"])
    assert second["view"]["id"] == first["view"]["id"] and second["view"]["type"] == "home"
    assert len(sandbox.workspace.homes[ALICE]["blocks"]) == 100
    ui = control(sandbox, f"ui?user={ALICE}", method="GET")
    assert ui["home"]["id"] == first["view"]["id"]


@pytest.mark.parametrize(
    ("user", "view", "error"),
    [
        (ALICE, _home(101), "invalid_arguments"),  # more than 100 blocks
        (
            ALICE,
            {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []},
            "invalid_arguments",
        ),
        ("U0NOBODY01", _home(1), "user_not_found"),
    ],
)
def test_publish_refuses_what_slack_refuses(
    client: WebClient, user: str, view: dict[str, object], error: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        client.views_publish(user_id=user, view=view)
    assert refused.value.response["error"] == error


def test_a_stale_hash_is_refused(client: WebClient) -> None:
    client.views_publish(user_id=ALICE, view=_home(1))
    client.views_publish(user_id=ALICE, view=_home(2))
    with pytest.raises(SlackApiError) as refused:
        client.views_publish(user_id=ALICE, view=_home(3), hash="stale")
    assert refused.value.response["error"] == "hash_conflict"
