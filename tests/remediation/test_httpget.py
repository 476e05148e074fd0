"""`get_json`, the one GET-for-JSON of the Opsgenie reader and the Prometheus feeds, and each caller's wording."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.feeds.discover import PrometheusClient
from bot.feeds.errors import DiscoveryError, FeedError
from bot.feeds.prometheus import PrometheusFeed, QueryFile
from remediation.errors import JsonGetError, MembershipSourceError
from remediation.guardrails.oncall import ScheduleApi, opsgenie_oncall
from remediation.httpget import get_json

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ANSWERS: dict[str, tuple[int, bytes]] = {
    "fine": (200, b'{"status": "success", "data": {"resultType": "vector", "result": []}}'),
    "refused": (400, b'{"status": "error", "error": "parse error at char 3"}'),
    "broken": (503, b"upstream down"),
    "garbled": (200, b"<html>not json</html>"),
}


class Answers(BaseHTTPRequestHandler):
    """Answers by the first word of the path or of the query (``?query=refused``); records headers."""

    seen: list[str] = []

    def do_GET(self) -> None:
        Answers.seen.append(self.headers.get("Authorization", ""))
        key = next((k for k in ANSWERS if k in self.path), "fine")
        status, body = ANSWERS[key]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


CLOSED = "http://127.0.0.1:9"  # the discard port: nobody listens


def test_a_json_answer_comes_back_decoded_with_the_headers_sent(base: str) -> None:
    assert get_json(f"{base}/fine", timeout=10, headers={"Authorization": "k"})["status"] == "success"
    assert Answers.seen[-1] == "k"


@pytest.mark.parametrize(
    ("path", "kind", "status", "error"),
    [
        ("/refused", "http", 400, "parse error at char 3"),
        ("/broken", "http", 503, None),
        ("/garbled", "not_json", None, None),
    ],
)
def test_failures_are_told_apart(
    base: str, path: str, kind: str, status: int | None, error: str | None
) -> None:
    with pytest.raises(JsonGetError) as caught:
        get_json(f"{base}{path}", timeout=10)
    assert (caught.value.kind, caught.value.status, caught.value.error) == (kind, status, error)


def test_no_listener_is_a_network_failure_with_its_reason() -> None:
    with pytest.raises(JsonGetError) as caught:
        get_json(f"{CLOSED}/x", timeout=10)
    assert caught.value.kind == "network" and "refused" in caught.value.reason.lower()


def _opsgenie(url: str, what: str) -> None:
    opsgenie_oncall(ScheduleApi("key", url), what, now=T0)


def _feed(url: str, what: str) -> None:
    feed = PrometheusFeed(QueryFile(metrics={"m": what}), prometheus=url, bot=url, token=None)
    feed._instant(what, T0)


def _discover(url: str, what: str) -> None:
    PrometheusClient(url, at=T0).promql(what)


# Each caller keeps its own words for its own reader (the CLI's stderr, a feed round, an approval refusal).
@pytest.mark.parametrize(
    ("call", "error", "what", "message"),
    [
        (_opsgenie, MembershipSourceError, "refused", "Opsgenie schedule refused: HTTP 400"),
        (_opsgenie, MembershipSourceError, "garbled", "Opsgenie schedule garbled: the answer is not JSON"),
        (_opsgenie, MembershipSourceError, "closed", "Opsgenie schedule closed: <urlopen error"),
        (_feed, FeedError, "refused", "HTTP 400: parse error at char 3"),
        (_feed, FeedError, "broken", "HTTP 503: Service Unavailable"),
        (_feed, FeedError, "garbled", "the answer is not JSON"),
        (_feed, FeedError, "closed", f"cannot reach {CLOSED}: [Errno"),
        (_discover, DiscoveryError, "refused", "Prometheus at {base} refused a query: HTTP 400 Bad Request"),
        (_discover, DiscoveryError, "garbled", "Prometheus at {base} answered something that is not JSON"),
        (_discover, DiscoveryError, "closed", f"cannot reach Prometheus at {CLOSED}: [Errno"),
    ],
)
def test_each_caller_words_its_failures(
    base: str, call: Callable[[str, str], None], error: type[Exception], what: str, message: str
) -> None:
    url = CLOSED if what == "closed" else base
    with pytest.raises(error) as caught:
        call(url, what)
    assert str(caught.value).startswith(message.format(base=base)), str(caught.value)
