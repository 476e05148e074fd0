"""Times on cards are Slack date tokens with a readable UTC fallback; durations read "4 min"."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.notify.cards import postmortem_text, render_card, timeline_line
from bot.notify.suggest import Ranking
from bot.notify.times import CLOCK, duration, slack_date
from remediation.postmortem.models import Draft

TOKEN = re.compile(r"<!date\^(\d+)\^([^|>]+)\|([^|>]+)>")


def test_slack_date_carries_epoch_format_and_fallback() -> None:
    token = slack_date("2026-12-01T10:36:30.737539Z")
    found = TOKEN.fullmatch(token)
    assert found, token
    assert int(found.group(1)) == int(datetime(2026, 12, 1, 10, 36, 30, tzinfo=UTC).timestamp())
    assert found.group(2) == "{date_short_pretty} {time}" and found.group(3) == "2026-12-01 10:36 UTC"
    assert TOKEN.fullmatch(slack_date("2026-12-01T11:36:30+01:00", CLOCK)).group(3) == "10:36:30 UTC"  # type: ignore[union-attr]
    assert slack_date("not a time <!here>") == "not a time &lt;!here&gt;" and slack_date(None) == "unknown"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (-5, "unknown"),
        (10, "under 1 min"),
        (240, "4 min"),
        (269, "4 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
    ],
)
def test_durations_read_in_minutes(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_cards_timelines_and_postmortems_show_date_tokens_not_raw_stamps() -> None:
    record: dict[str, Any] = {
        "id": "INC-1",
        "title": "t",
        "severity": "sev2",
        "services": [],
        "opened_at": "2026-12-01T10:36:30.737539Z",
        "resolved_at": "2026-12-01T10:40:30Z",
        "events": [{"at": "2026-12-01T10:36:30Z", "type": "resolved"}],
    }
    _, blocks = render_card(Ranking(record, "U0ALICE", ()), policy_name="runbook", now=datetime.now(UTC))
    text = str(blocks)
    assert "2026-12-01T10:36:30.737539Z" not in text
    assert "*Opened*\\n<!date^" in text and "|2026-12-01 10:36 UTC>" in text
    assert "updated <!date^" in text
    assert timeline_line(record["events"][0]).startswith("<!date^")
    draft = postmortem_text(Draft(record=record, actions=()))
    assert "2026-12-01T10" not in draft and draft.count("<!date^") >= 3
