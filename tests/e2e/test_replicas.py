"""Three `remediate serve` replicas on one PostgreSQL database behave as one bot (issue 17, docs/operations.md).

Behind the Slack sandbox, with deliveries spread round-robin over the replicas: an alert storm of 100
alerts over 10 services makes exactly one incident and one card per service; 30 concurrent Approve
clicks on one card run the action once on a real webhook receiver; `kill -9` of the replica running an
action hands the request to recovery (``unknown``, never re-run) only once its lease has run out; a
rolling restart while alerts keep coming loses no alert and posts no card twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.sandbox import SandboxOptions, SlackSandbox
from bot.sandbox.driver import AppDriver
from incidents_db import incidents, outbox
from incidents_db.db import open_store
from incidents_db.models import ApprovalRequest, Execution
from tests.bot.cli.test_serve_cli import _free_port, _health
from tests.bot.cli.test_serve_executors import HOOK_SECRET, _cards, _clean_env
from tests.bot.conftest import ALICE, SECRET
from tests.bot.sandbox.conftest import WAIT_S, wait_for
from tests.remediation.executors.receivers import JsonReceiver

pytestmark = pytest.mark.postgres
SERVICES = (
    "adservice", "cartservice", "checkoutservice", "currencyservice", "emailservice", "frontend",
    "paymentservice", "productcatalogservice", "recommendationservice", "shippingservice",
)  # fmt: skip
REPLICAS = 3
ALICE_OWNS = ("checkoutservice", "cartservice", "redis-cart", "frontend")  # RBAC in tests/bot/conftest.py


@dataclass
class Replica:
    """One `serve` process: its base URL and the sandbox driver that delivers Slack's requests to it."""

    base: str
    proc: subprocess.Popen[str]
    driver: AppDriver


@dataclass
class Cluster:
    """The sandbox, the webhook receiver and the replicas, all on one PostgreSQL database."""

    sandbox: SlackSandbox
    hook: JsonReceiver
    replicas: list[Replica]
    url: str


def _start(
    tmp_path: Path, url: str, sandbox: SlackSandbox, hook: JsonReceiver, i: int, **extra: str
) -> Replica:
    data = tmp_path / f"replica-{i}"  # replicas share the database, never a disk
    data.mkdir()
    env = _clean_env(
        data, url, SLACK_BOT_TOKEN=sandbox.bot_token, SLACK_API_URL=sandbox.api_url,
        REMEDIATE_EXECUTOR="webhook", REMEDIATE_WEBHOOK_URL=hook.url, REMEDIATE_WEBHOOK_SECRET=HOOK_SECRET, **extra,
    )  # fmt: skip
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data / "serve.log").open("w"),
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    driver = AppDriver(
        sandbox.workspace,
        app_url=base + "/slack/events",
        signing_secret=SECRET,
        sandbox_url=sandbox.url,
        ack_timeout_s=WAIT_S,
    )
    return Replica(base, proc, driver)


@contextmanager
def _running(tmp_path: Path, url: str, hook: JsonReceiver, n: int, **extra: str) -> Iterator[Cluster]:
    """Start ``n`` replicas on one database behind a fresh sandbox; stop them (and the receiver) after."""
    with SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S)) as sandbox:
        replicas: list[Replica] = []
        try:
            replicas.append(_start(tmp_path, url, sandbox, hook, 0, **extra))
            _health(replicas[0].base)  # the first one migrates the empty database; then the others
            replicas += [_start(tmp_path, url, sandbox, hook, i, **extra) for i in range(1, n)]
            for replica in replicas:
                _health(replica.base)
            yield Cluster(sandbox, hook, replicas, url)
        finally:
            for replica in replicas:
                if replica.proc.poll() is None:
                    replica.proc.terminate()
            for replica in replicas:
                replica.proc.wait(timeout=60)
            hook.close()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    with _running(tmp_path, postgres_url, JsonReceiver("webhook", secret=HOOK_SECRET), REPLICAS) as running:
        yield running


def _post_alert(base: str, alert: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        base + "/alerts/generic",
        data=json.dumps({"alerts": [alert]}).encode(),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=WAIT_S) as resp:
        return dict(json.loads(resp.read()))


def _settled(url: str) -> bool:
    """True when nothing waits in the outbox (every card and reply delivered)."""
    engine = open_store(url)
    try:
        with Session(engine) as s:
            counts = outbox.counts(db_session=s)
    finally:
        engine.dispose()
    return counts.get("pending", 0) == 0 and counts.get("dead", 0) == 0


def _storm(cluster: Cluster) -> None:
    alerts = [
        {"name": "HighErrorRate", "service": SERVICES[i % len(SERVICES)], "fingerprint": f"storm-{i}"}
        for i in range(100)
    ]
    bases = [cluster.replicas[i % REPLICAS].base for i in range(len(alerts))]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(_post_alert, bases, alerts))
    assert sum(a["recorded"] for a in answers) == 100  # nothing lost, nothing ignored
    assert len({i for a in answers for i in a["created"]}) == len(SERVICES)


def _one_approval(card: dict[str, Any]) -> bool:
    """Whether Alice alone may approve the card's first suggestion: one approval, on a service she owns."""
    first = next((b for b in card["blocks"] if b.get("block_id") == "text-1"), None)
    if first is None or "needs 1 approval(s) from oncall" not in first["text"]["text"]:
        return False
    target = first["text"]["text"].split("\n", 1)[0].rstrip("*").rsplit(" on ", 1)[-1]
    return target in ALICE_OWNS


def test_three_replicas_make_one_incident_and_one_card_per_service_and_run_an_approval_once(
    cluster: Cluster,
) -> None:
    _storm(cluster)
    engine = open_store(cluster.url)
    with Session(engine) as s:
        opened = incidents.open_incidents(db_session=s, limit=100)
    engine.dispose()
    assert sorted(i.services[0] for i in opened) == sorted(SERVICES)  # one incident per service
    wait_for(lambda: len(_cards(cluster.sandbox)) >= len(SERVICES) and _settled(cluster.url))
    cards = _cards(cluster.sandbox)
    assert len(cards) == len(SERVICES), [c.get("text") for c in cards]  # one card per incident, no copy

    card = next(c for c in cards if _one_approval(c))  # Alice (oncall) alone approves its first suggestion

    def click(i: int) -> Any:
        driver = cluster.replicas[i % REPLICAS].driver
        return driver.click(user=ALICE, channel="incidents", message_ts=card["ts"], action_id="approve:1")

    with ThreadPoolExecutor(max_workers=30) as pool:
        deliveries = list(pool.map(click, range(30)))
    assert all(d.ok for d in deliveries)  # every replica acked its clicks
    assert cluster.hook.arrived.wait(WAIT_S), "the approved action never reached the receiver"
    wait_for(lambda: any("executed" in json.dumps(c["blocks"]) for c in _cards(cluster.sandbox)))
    wait_for(lambda: _settled(cluster.url))
    assert len(cluster.hook.received) == 1, cluster.hook.received  # 30 clicks, 3 replicas: one run
    assert len(_cards(cluster.sandbox)) == len(SERVICES)


class HoldingReceiver(JsonReceiver):
    """A webhook receiver that records a call, then holds its answer until released (an action mid-run)."""

    def __init__(self) -> None:
        super().__init__("webhook", secret=HOOK_SECRET)
        self.holding, self.release = threading.Event(), threading.Event()

    def answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Record the call, then hold it until `release` (or the test's deadline)."""
        result = super().answer(body, headers)
        self.holding.set()
        self.release.wait(WAIT_S)
        return result

    def close(self) -> None:
        """Let a held call go, then stop."""
        self.release.set()
        super().close()


def _execution(url: str) -> tuple[Execution, str]:
    engine = open_store(url)
    try:
        with Session(engine) as s:
            [run] = s.execute(sa.select(Execution)).scalars().all()  # one approved request ran, once
            state = s.execute(sa.select(ApprovalRequest.state).where(ApprovalRequest.id == run.request_id))
            return run, str(state.scalar_one())
    finally:
        engine.dispose()


def test_killing_the_executing_replica_hands_its_request_to_recovery_only_after_the_lease(
    tmp_path: Path, postgres_url: str
) -> None:
    hook = HoldingReceiver()
    with _running(tmp_path, postgres_url, hook, 2, REMEDIATE_EXECUTION_LEASE_S="6") as cluster:
        few = ("checkoutservice", "cartservice", "frontend")
        for service in few:
            _post_alert(cluster.replicas[0].base, {"name": "HighErrorRate", "service": service})
        wait_for(lambda: len(_cards(cluster.sandbox)) >= len(few))
        card = next(c for c in _cards(cluster.sandbox) if _one_approval(c))
        cluster.replicas[1].driver.click(
            user=ALICE, channel="incidents", message_ts=card["ts"], action_id="approve:1"
        )
        assert hook.holding.wait(WAIT_S), "the approved action never reached the receiver"
        run, state = _execution(postgres_url)
        assert state == "executing" and run.lease_owner is not None
        pid = int(run.lease_owner.split(":")[1])  # the replica's work process runs it (docs/bot.md, Latency)
        [runner] = [
            r for r in cluster.replicas if pid in (r.proc.pid, _health(r.base)["work_process"]["pid"])
        ]
        runner.proc.kill()  # kill -9, mid-run: its work process ends with it
        runner.proc.wait(timeout=60)
        wait_for(lambda: _execution(postgres_url)[1] == "unknown")  # the survivor's recovery job
        run, _ = _execution(postgres_url)
        assert run.state == "unknown" and run.finished_at is not None and run.lease_expires_at is not None
        assert run.finished_at >= run.lease_expires_at  # taken over only once the dead runner's lease ran out
        assert len(hook.received) == 1  # never run again


def _feed(cluster: Cluster, sent: list[str], stop: threading.Event) -> None:
    """Send alerts until stopped, each to the next replica, trying the others when one is down (a balancer)."""
    n = 0
    while not stop.is_set():
        alert = {
            "name": "HighErrorRate",
            "service": ALICE_OWNS[n % len(ALICE_OWNS)],
            "fingerprint": f"roll-{n}",
        }
        for attempt in range(10 * len(cluster.replicas)):
            try:
                _post_alert(cluster.replicas[(n + attempt) % len(cluster.replicas)].base, alert)
            except OSError:  # refused while that replica restarts: the balancer tries another
                continue
            sent.append(alert["fingerprint"])
            break
        n += 1
        stop.wait(0.05)  # pacing only


def test_a_rolling_restart_loses_no_alert_and_posts_no_duplicate_card(
    tmp_path: Path, postgres_url: str
) -> None:
    hook = JsonReceiver("webhook", secret=HOOK_SECRET)
    with _running(tmp_path, postgres_url, hook, 2) as cluster:
        sent: list[str] = []
        stop = threading.Event()
        feeder = threading.Thread(target=_feed, args=(cluster, sent, stop), daemon=True)
        feeder.start()
        for i in range(len(cluster.replicas)):  # stop and start each replica in turn while alerts keep coming
            old = cluster.replicas[i]
            old.proc.terminate()
            old.proc.wait(timeout=60)
            cluster.replicas[i] = _start(tmp_path, postgres_url, cluster.sandbox, hook, 10 + i)
            _health(cluster.replicas[i].base)
        stop.set()
        feeder.join(timeout=WAIT_S)
        engine = open_store(postgres_url)
        with Session(engine) as s:
            states = incidents.alert_states(db_session=s)
            opened = incidents.open_incidents(db_session=s, limit=100)
        engine.dispose()
        assert sent and set(sent) <= set(states)  # every alert a replica answered is in the store
        assert sorted(i.services[0] for i in opened) == sorted(ALICE_OWNS)
        wait_for(lambda: len(_cards(cluster.sandbox)) >= len(ALICE_OWNS) and _settled(cluster.url))
        cards = _cards(cluster.sandbox)
        assert len(cards) == len(ALICE_OWNS), [c.get("text") for c in cards]  # no card posted twice
