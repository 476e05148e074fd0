"""The demo's incident resolves by an approved action; its postmortem is drafted, reviewed and published.

With ``REMEDIATE_SAMPLE_DIR`` set, the published report is written there as ``postmortem-sample.md``
and ``postmortem-sample.html`` (``REMEDIATE_SAMPLE_DIR=docs`` refreshes the samples in docs/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.demo.stack import DemoStack
from remediation.postmortem import service as postmortems
from remediation.postmortem import workflow
from remediation.postmortem.export_html import render_html
from remediation.postmortem.export_md import render_markdown
from tests.bot.demo.conftest import approve_id, replies, wait_card
from tests.bot.sandbox.conftest import wait_for

ALICE, BOB, CAROL = "U0ALICE001", "U0BOB00002", "U0CAROL003"


def test_the_demo_incident_gets_a_postmortem_from_resolve_to_publish(
    demo_factory: Callable[..., DemoStack],
) -> None:
    stack = demo_factory(tick_s=3600.0)  # the world stands still after the fault: the ranking cannot drift
    assert stack.sandbox is not None and stack.sandbox.driver is not None and stack.app is not None
    driver = stack.sandbox.driver
    card = wait_card(stack, lambda b: "restart_service on cartservice" in b)
    restart = approve_id(card, "restart_service on cartservice")
    # People take their time: the bot's clock moves on before each of their steps, as a day would pass.
    shift = [timedelta(0)]
    stack.app.services.clock = lambda: datetime.now(UTC) + shift[0]
    shift[0] += timedelta(minutes=4)
    assert driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id=restart).ok
    wait_card(stack, lambda b: "Resolved" in b)
    wait_for(lambda: [r for r in replies(stack, card["ts"]) if r.startswith("Postmortem drafted: INC-1")])

    services = stack.app.services

    def state() -> dict[str, Any]:
        with services.sessions() as s:
            return {**postmortems.report(db_session=s, incident_id="INC-1"),
                    "comments": len(workflow.comments(db_session=s, incident_id="INC-1"))}  # fmt: skip

    # Each command runs on the app's pool after its ack, so the next is sent once the last one took effect.
    for later, user, text, done in (
        (timedelta(hours=2), ALICE, f"postmortem INC-1 review <@{BOB}>", lambda r: r["reviewers"] == [BOB]),
        (
            timedelta(hours=5),
            BOB,
            "postmortem INC-1 comment restart was enough; the crash loop came from a bad pod",
            lambda r: r["comments"] == 1,
        ),
        (timedelta(minutes=2), BOB, "postmortem INC-1 signoff", lambda r: r["signed_off_by"] == [BOB]),
        (timedelta(hours=18), CAROL, "postmortem INC-1 publish", lambda r: r["status"] == "published"),
    ):
        shift[0] += later
        assert driver.slash_command(user=user, channel="incidents", text=text).ok
        wait_for(lambda done=done: done(state()))  # type: ignore[misc]
    wait_for(lambda: [r for r in replies(stack, card["ts"]) if "published the postmortem (version 1)" in r])

    with stack.app.services.sessions() as s:
        report = postmortems.report(db_session=s, incident_id="INC-1")
    assert (report["status"], report["version"], report["signed_off_by"]) == ("published", 1, [BOB])
    restarted = next(a for a in report["actions"] if a["action"] == "restart_service")
    assert (
        restarted["approved_by"] == [ALICE] and restarted["outcome"] == "succeeded" and restarted["mitigated"]
    )
    assert restarted["suggested_rank"] is not None and restarted["policy"]
    assert report["root_cause"]["inferred"]["service"] == "cartservice"
    assert report["figures"]["time_to_mitigate_s"] is not None
    assert any(i["kind"] == "suggestion" for i in report["timeline"])
    json.dumps(report)
    if os.environ.get("REMEDIATE_SAMPLE_DIR"):
        out = Path(os.environ["REMEDIATE_SAMPLE_DIR"])
        (out / "postmortem-sample.md").write_text(render_markdown(report), encoding="utf-8")
        (out / "postmortem-sample.html").write_text(render_html(report), encoding="utf-8")
