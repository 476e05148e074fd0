"""Property tests of every alert form and /snapshots: whatever arrives, no 5xx, refusals name the problem,
what is accepted is stored, and every card it touches renders within Block Kit's limits, escaped.

The requests go straight into the WSGI callable (`Server`) of the running app, for speed; the app, its
store (SQLite and PostgreSQL) and its outbox are the real ones. The reproductions over real HTTP are in
test_hostile_input.py. `REMEDIATE_FUZZ_EXAMPLES=N` scales the example counts (tests/fuzz.py).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.notify.cards import MAX_FALLBACK, render_card, timeline_text
from bot.notify.suggest import rank
from bot.sandbox.blockkit import check_blocks
from bot.server import Server
from incidents_db import outbox
from incidents_db.service import get_record
from tests.bot.conftest import TOKEN, Harness
from tests.bot.sandbox.conftest import wait_for
from tests.fuzz import JSON_VALUES, examples

FUZZ = settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
HOSTILE = (
    "<!channel>",
    "<!here|here>",
    "<@U0BOB00002>",
    "<https://evil.example|Click to re-auth>",
    "a\x00b",
    "\ud800",
    "&amp; &lt;",
    "*bold* _it_ `code`",
    " ",
    "",
    "ü🔥\u202e",
    "s" * 2500,
)
UNESCAPED = re.compile(r"<!channel>|<!here|<@U0BOB|<https://")
# the one place a card links on purpose: an alert's own http(s) links, each a whole <url|name>
LINK = re.compile(r"<(https?://[^\s<>|]+)\|(runbook|source|dashboard|silence)>")
URLS = st.one_of(
    st.just("https://runbooks.example.com/x?a=1&b=<2>"),
    st.just("javascript:alert(1)"),
    st.just("http://"),
    st.just("https://evil.example|Click to re-auth"),
    st.text(max_size=30).map(lambda t: "https://h.example/" + t),
    st.text(max_size=30),
)
SERVICE_LABELS = (
    "service",
    "app",
    "job",
    "container",
    "pod",
    "deployment",
    "statefulset",
    "persistentvolumeclaim",
)
SERVICES = ("checkoutservice", "cartservice", "frontend")


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Ordinary names, hostile strings and long ones around the 200-character limit."""
    ordinary = st.sampled_from(SERVICES)
    return st.one_of(
        ordinary,
        ordinary,
        ordinary,
        st.sampled_from(HOSTILE),
        st.text(min_size=1, max_size=max_size),
        st.text(alphabet="ab<>&", min_size=195, max_size=205),
    )


NUMBERS = st.one_of(
    *[st.floats(min_value=-1e6, max_value=1e6)] * 4,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    st.just(-(10**400)),
)
RECENT = datetime.now(UTC) - timedelta(minutes=1)
TIMES = st.one_of(
    *[st.none()] * 6,
    st.just(RECENT.isoformat()),
    st.just(RECENT.isoformat().replace("+00:00", "Z")),
    st.just("2026-03-02T10:14:00Z"),
    st.just("2026-03-02T10:14:00"),  # no zone
    st.just("9999-12-31T23:59:59-14:00"),
    st.just("0001-01-01T00:00:00+14:00"),
    st.just("not a time"),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value, or now and then any JSON value in its place (a wrong type)."""
    return st.one_of(*[value] * 9, JSON_VALUES)


LABELS = st.dictionaries(text(20), maybe(text()), max_size=5)


@st.composite
def generic_alert(draw: st.DrawFn) -> dict[str, Any]:
    alert = {
        "name": draw(maybe(text())),
        "service": draw(maybe(text())),
        "status": draw(st.sampled_from(("firing", "resolved", "firing", "firing", "bogus"))),
        "summary": draw(maybe(text(80))),
        "value": draw(maybe(NUMBERS)),
        "labels": draw(maybe(LABELS)),
        "at": draw(TIMES),
        "fingerprint": draw(maybe(text())),
    }
    drop = draw(st.sets(st.sampled_from(sorted(alert))))
    return {k: v for k, v in alert.items() if k not in drop or k in ("name", "service")}


@st.composite
def prom_alert(draw: st.DrawFn) -> dict[str, Any]:
    labels = {
        "alertname": draw(maybe(text())),
        draw(st.sampled_from(SERVICE_LABELS)): draw(text()),
        draw(st.sampled_from(SERVICE_LABELS)): draw(
            st.sampled_from(("kube-state-metrics", "x-7d9f8b6c5-x2x9z", "db-0"))
        ),
    }
    labels.update(draw(LABELS))
    return {
        "status": draw(st.sampled_from(("firing", "resolved", "firing", "firing", "nope"))),
        "labels": draw(maybe(st.just(labels))),
        "annotations": draw(
            maybe(
                st.dictionaries(
                    st.sampled_from(("summary", "description", "runbook_url", "dashboard_url")), text(80)
                )
            )
        ),
        "generatorURL": draw(maybe(URLS)),
        "startsAt": draw(TIMES),
        "endsAt": draw(TIMES),
        "fingerprint": draw(maybe(text())),
        "values": draw(maybe(st.dictionaries(text(10), NUMBERS, max_size=2))),
    }


ALERTMANAGER = st.builds(
    lambda alerts, group, version, external: {
        "version": version,
        "externalURL": external,
        "groupKey": group,
        "status": "firing",
        "alerts": alerts,
    },
    st.lists(prom_alert(), min_size=1, max_size=4),
    maybe(text()),
    st.sampled_from(("4", "4", "4", "4", "3")),
    maybe(URLS),
)
GRAFANA = st.builds(
    lambda alerts, group: {"status": "firing", "alerts": alerts, "groupKey": group, "orgId": 1},
    st.lists(prom_alert(), min_size=1, max_size=4),
    maybe(text()),
)
PAGERDUTY = st.builds(
    lambda kind, pid, title, service, urgency: {
        "event": {
            "id": "ev",
            "event_type": kind,
            "occurred_at": "2026-03-02T10:14:00Z",
            "data": {"id": pid, "title": title, "service": {"summary": service}, "urgency": urgency},
        }
    },
    st.sampled_from(("incident.triggered", "incident.resolved", "incident.acknowledged")),
    maybe(text()),
    maybe(text(300)),
    maybe(text()),
    maybe(text()),
)
GENERIC = st.builds(lambda alerts: {"alerts": alerts}, st.lists(generic_alert(), min_size=1, max_size=4))


@st.composite
def snapshot(draw: st.DrawFn) -> dict[str, Any]:
    metric = st.one_of(*[st.sampled_from(("error_rate", "cpu", "latency_p99_ms"))] * 4, text(20))
    values = draw(maybe(st.dictionaries(metric, NUMBERS, min_size=1, max_size=3)))
    return {"service": draw(maybe(text())), "values": values, **({"at": at} if (at := draw(TIMES)) else {})}


SNAPSHOTS = st.builds(lambda snaps: {"snapshots": snaps}, st.lists(snapshot(), min_size=1, max_size=4))


def call(server: Server, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST a JSON body (NaN, infinities and lone surrogates as Python's json writes them) to the app."""
    data = json.dumps(body).encode()
    seen: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = int(status.split()[0])

    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(data)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {TOKEN}",
        "wsgi.input": io.BytesIO(data),
    }
    answer = b"".join(server(environ, start))
    return seen["status"], json.loads(answer)


def check_answer(status: int, answer: dict[str, Any], sent: int) -> int:
    """Assert the answer's shape; return how many items were accepted."""
    event(f"HTTP {status}" + (" with refusals" if answer.get("refused") else ""))
    assert status < 500, answer
    if status != 200:
        assert status == 422 and answer["ok"] is False and answer["error"].strip(), answer
        for refusal in answer.get("refused", []):
            assert 0 <= refusal["index"] < sent and refusal["error"].strip()
        return 0
    refused = {r["index"] for r in answer["refused"]}
    assert refused <= set(range(sent)) and all(r["error"].strip() for r in answer["refused"])
    return sent - len(refused)


def check_cards(harness: Harness, incident_ids: list[str]) -> None:
    """Each incident's card and thread timeline render within Block Kit's limits, outside text escaped."""
    services = harness.services
    with services.sessions() as s:
        for incident_id in incident_ids:
            ranking = rank(services, db_session=s, incident_id=incident_id)
            text, blocks = render_card(ranking, policy_name=services.policy.name, now=services.clock())
            assert check_blocks(blocks) == [], blocks
            assert len(text) <= MAX_FALLBACK and not UNESCAPED.search(text), text
            shown = LINK.sub("", json.dumps([b for b in blocks if b["type"] != "header"]))
            assert not UNESCAPED.search(shown), blocks  # links: only an alert's own, whole <url|name>
            timeline = timeline_text(get_record(db_session=s, incident_id=incident_id)["events"])
            assert len(timeline) < 40_000 and not UNESCAPED.search(timeline), timeline
        s.rollback()


def alert_form(path: str, strategy: st.SearchStrategy[dict[str, Any]]) -> Callable[[Harness], None]:
    @FUZZ
    @given(body=strategy)
    def check(db_harness: Harness, body: dict[str, Any]) -> None:
        server = Server(db_harness.app, alerts_token=TOKEN)
        status, answer = call(server, path, body)
        items = body.get("alerts") if isinstance(body.get("alerts"), list) else [body]
        accepted = check_answer(status, answer, len(items))
        if status == 200 and path != "/alerts/pagerduty":
            assert answer["recorded"] + answer["ignored"] == accepted, answer
        if status == 200:
            check_cards(db_harness, answer["incidents"])

    return check


test_generic_alerts = alert_form("/alerts/generic", GENERIC)
test_alertmanager_alerts = alert_form("/alerts/alertmanager", ALERTMANAGER)
test_grafana_alerts = alert_form("/alerts/grafana", GRAFANA)
test_pagerduty_alerts = alert_form("/alerts/pagerduty", PAGERDUTY)


@FUZZ
@given(body=SNAPSHOTS)
def test_snapshots(db_harness: Harness, body: dict[str, Any]) -> None:
    server = Server(db_harness.app, alerts_token=TOKEN)
    status, answer = call(server, "/snapshots", body)
    accepted = check_answer(status, answer, len(body["snapshots"]))
    if status == 200:
        assert answer["stored"] + answer["stale"] == accepted, answer


def test_cards_posted_from_fuzzed_alerts_were_accepted_by_slack(harness: Harness) -> None:
    """After a burst of hostile deliveries, no outbox row died of invalid_blocks (the sandbox validates)."""
    server = Server(harness.app, alerts_token=TOKEN)
    bodies = [
        {"alerts": [{"name": n, "service": f"svc-{i}", "summary": n * 3} for i, n in enumerate(HOSTILE[:4])]},
        {"alerts": [{"name": "HighErrorRate", "service": "a" * 200, "summary": "<" * 2000}]},
    ]
    for body in bodies:
        assert call(server, "/alerts/generic", body)[0] == 200
    # one group of 30 alerts on 30 long service names: one incident whose fields and signals overflow
    group = [
        {
            "status": "firing",
            "labels": {"alertname": "<" * 200, "service": f"{'<' * 195}{i}"},
            "fingerprint": str(i),
        }
        for i in range(30)
    ]
    status, answer = call(
        server, "/alerts/alertmanager", {"version": "4", "groupKey": "g", "status": "firing", "alerts": group}
    )
    assert status == 200 and answer["recorded"] == 30, answer
    with harness.services.sessions() as s:
        ids = [i for (i,) in s.execute(sa.text("SELECT id FROM incidents"))]

    def settled() -> bool:
        with harness.services.sessions() as s:
            return outbox.counts(db_session=s).get("pending", 0) == 0

    wait_for(settled)
    for incident_id in ids:
        card = harness.card_for(incident_id)
        assert check_blocks(card["blocks"]) == [] and not UNESCAPED.search(card["text"])
    with harness.services.sessions() as s:
        rows = list(s.execute(sa.select(outbox.OutboxMessage)).scalars())
    assert not [r for r in rows if "invalid_blocks" in (r.last_error or "")]
