"""Property tests of POST /events/deploy: whatever arrives in any of the four forms, no 5xx, refusals say
what is wrong, what is accepted is stored once and joins the open incident's timeline, and its card
renders within Block Kit's limits, escaped.

The requests go straight into the WSGI callable (`Server`) of the running app, for speed; the app and
its store are the real ones. `REMEDIATE_FUZZ_EXAMPLES=N` scales the example count (tests/fuzz.py).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.notify.cards import render_card, timeline_text
from bot.notify.suggest import rank
from bot.sandbox.blockkit import check_blocks
from bot.server import Server
from incidents_db import incidents
from incidents_db.changes import recent
from tests.bot.alerts.test_change_events import GITHUB_SECRET
from tests.bot.conftest import TOKEN, Harness, generic
from tests.fuzz import JSON_VALUES, examples

HOSTILE = ("<!channel>", "<@U0BOB00002>", "<https://evil.example|re-auth>", "a\x00b", "\ud800", "*b* _i_ `c`",
           " ", "", "ü🔥\u202e", "s" * 2500, "<no value>", "Synced", "success", "Deployment/shop/x configured")  # fmt: skip
UNESCAPED = re.compile(r"<!channel>|<!here|<@U0BOB|<https://")
FUZZ = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
VALUES = st.sampled_from(HOSTILE) | st.text(max_size=30) | JSON_VALUES
TIMES = st.sampled_from(("2026-12-01T10:00:00Z", "2026-12-01T10:00:00", "<no value>", "", "yesterday", None))
FORMS: dict[str, dict[str, Any]] = {
    "generic": {"service": "cartservice", "kind": "deploy", "version": "v1", "source": "ci", "url": "https://x"},
    "argocd": {"app": "cartservice", "revision": "abc", "sync_status": "Synced", "operation_phase": "Succeeded",
               "namespace": "shop", "service": "<no value>"},
    "flux": {"involvedObject": {"kind": "Kustomization", "name": "apps", "namespace": "flux-system"},
             "severity": "info", "reason": "ReconciliationSucceeded", "message": "Deployment/shop/cartservice configured",
             "metadata": {"revision": "main@sha1:1"}},
    "github": {"deployment_status": {"id": 1, "state": "success"}, "deployment": {"id": 2, "sha": "abc", "ref": "v1"},
               "repository": {"name": "cartservice", "full_name": "shop/cartservice"}},
}  # fmt: skip


def call(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    seen: dict[str, Any] = {}

    def start(status: str, _headers: list[tuple[str, str]]) -> None:
        seen["status"] = int(status.split()[0])

    environ = {
        "PATH_INFO": "/events/deploy",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    }
    answer = b"".join(server(environ, start))
    return seen["status"], json.loads(answer)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """One of the four forms with a few fields replaced by hostile values, dropped or added."""
    form = draw(st.sampled_from(sorted(FORMS)))
    body = json.loads(json.dumps(FORMS[form]))
    for _ in range(draw(st.integers(0, 3))):
        target = body
        nested = sorted(k for k, v in body.items() if isinstance(v, dict))
        if draw(st.booleans()) and nested:
            target = body[draw(st.sampled_from(nested))]
        extra = ("at", "finished_at", "timestamp", "extra")
        key = draw(st.sampled_from(sorted(target) or extra) | st.sampled_from(extra))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            target.pop(key, None)
        else:
            target[key] = draw(TIMES) if key in ("at", "finished_at", "timestamp") else draw(VALUES)
    return form, body


@FUZZ
@given(delivery=deliveries())
def test_any_change_event_is_answered_and_what_is_kept_joins_and_renders(
    harness: Harness, delivery: tuple[str, dict[str, Any]]
) -> None:
    form, body = delivery
    server = Server(harness.app, alerts_token=TOKEN)
    with harness.services.sessions() as s:
        open_now = incidents.open_incidents(db_session=s)
    if not open_now:
        harness.post_alert("generic", generic("HighErrorRate", "cartservice", fingerprint="fuzz-1"))
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if form == "github":
        digest = hmac.new(GITHUB_SECRET.encode(), data, hashlib.sha256).hexdigest()
        headers = {"X-GitHub-Event": "deployment_status", "X-Hub-Signature-256": f"sha256={digest}"}
    with harness.services.sessions() as s:
        before = len(recent(db_session=s, limit=10_000))
    status, answer = call(server, data, headers)
    event(f"{form} {status}")
    assert status in (200, 400, 422), answer
    if status != 200:
        assert answer["ok"] is False and answer["error"].strip()
        return
    assert answer["recorded"] + answer["duplicates"] == len(answer["changes"]) or answer.get("ignored")
    with harness.services.sessions() as s:
        assert len(recent(db_session=s, limit=10_000)) == before + answer["recorded"]
        for incident_id in answer["incidents"]:
            ranking = rank(harness.services, db_session=s, incident_id=incident_id)
            _fallback, blocks = render_card(ranking, policy_name="fuzz", now=harness.services.clock())
            assert check_blocks(blocks) == []
            shown = json.dumps(blocks) + timeline_text(ranking.record["events"])
            assert not UNESCAPED.search(shown)
        s.rollback()
