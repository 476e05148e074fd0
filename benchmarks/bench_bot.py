"""Bot latency: ack p50/p99 for slash commands and button clicks under 50 concurrent requests, and
alert-to-card latency (alert POST until the card is in the Slack sandbox), each beside a baseline
measured in the same run.

Baselines: a bare Bolt app whose listeners only ack, on the same waitress server and driven by the
same sandbox driver (so the ratio is what remediate adds on top of Bolt + HTTP); for alert-to-card,
one `chat.postMessage` of a finished card straight to the sandbox (the floor: one Web API call).
The card is ranked by the runbook baseline and by a learned graph network (untrained weights: the
inference cost is the same as a trained one's).

Run: `.venv/bin/python benchmarks/bench_bot.py [--requests 500] [--alerts 24]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress.server import create_server

from bot.demo.stack import DemoOptions, DemoStack
from bot.demo.world import WorldOptions
from bot.sandbox import AppDriver
from bot.settings import load_settings
from playbooks.catalog import builtin_catalog
from remediation.learning.policy import GraphPolicy, NetConfig
from remediation.learning.ranking import LearnedPolicy
from remediation.policies import Policy
from sim.observation import GLOBALS, N_FEATURES

CONCURRENCY = 50
CHANNEL = "C0INCIDENT"
ALICE = "U0ALICE001"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def acks(driver: AppDriver, n: int, send: Callable[[AppDriver], Any]) -> list[float]:
    """Send ``n`` requests with 50 in flight; return each ack time (ms) as the driver measured it."""
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        deliveries = list(pool.map(lambda _: send(driver), range(n)))
    failed = [d for d in deliveries if not d.ok]
    if failed:
        raise SystemExit(f"{len(failed)} of {n} deliveries failed, e.g. {failed[0].summary()}")
    return [float(d.ack_ms) for d in deliveries]


def bare_bolt(secret: str, sandbox_api: str, token: str) -> tuple[str, Callable[[], None]]:
    """Serve a Bolt app whose listeners only ack, on waitress like the real one; return its URL and a stop."""
    app = App(signing_secret=secret, client=WebClient(token=token, base_url=sandbox_api))

    @app.command("/remediate")
    def command(ack: Ack) -> None:
        ack()

    @app.action({"action_id": "why:1"})
    def action(ack: Ack) -> None:
        ack()

    server = create_server(SlackRequestHandler(app), host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}/slack/events", server.close


def post_alert(url: str, token: str, service: str, n: int, status: str = "firing") -> dict[str, Any]:
    body = {
        "alerts": [{"name": "HighErrorRate", "service": service, "status": status, "fingerprint": f"b-{n}"}]
    }
    request = urllib.request.Request(
        url + "/alerts/generic",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def card_posted(stack: DemoStack, prefix: str) -> bool:
    assert stack.sandbox is not None
    return any(m.text.startswith(prefix) for m in list(stack.sandbox.workspace.messages.get(CHANNEL, [])))


def wait_card(stack: DemoStack, incident: str) -> Any:
    """Return the incident's card once it is in the sandbox with its buttons."""
    assert stack.sandbox is not None
    for _ in range(20_000):
        for m in list(stack.sandbox.workspace.messages.get(CHANNEL, [])):
            if m.text.startswith(incident + " ") and "why:1" in json.dumps(m.blocks):
                return m
        time.sleep(0.001)
    raise SystemExit(f"no card for {incident}")


def alert_to_card(stack: DemoStack, n: int, first: int) -> list[float]:
    """Post ``n`` alerts, each opening an incident; ms from the POST until its card is in the sandbox."""
    assert stack.world is not None
    services = list(stack.world.topology.services)
    out = []
    for i in range(first, first + n):
        service = services[i % len(services)]
        t0 = time.perf_counter()
        created = post_alert(stack.bot_url, stack.alerts_token, service, i)["created"]
        if not created:
            raise SystemExit(f"alert {i} on {service} opened no incident")
        while not card_posted(stack, created[0] + " "):
            time.sleep(0.0005)
        out.append((time.perf_counter() - t0) * 1000)
        post_alert(stack.bot_url, stack.alerts_token, service, i, status="resolved")  # closes it again
    return out


def direct_post(stack: DemoStack, n: int) -> list[float]:
    """The floor: post an already rendered card with one chat.postMessage."""
    assert stack.sandbox is not None
    client = WebClient(token=stack.sandbox.bot_token, base_url=stack.sandbox.api_url)
    blocks = next(m for m in stack.sandbox.workspace.messages[CHANNEL] if m.blocks).blocks
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.chat_postMessage(channel=CHANNEL, text="baseline card", blocks=blocks)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def learned_policy() -> Policy:
    catalog = builtin_catalog()
    config = NetConfig(
        n_features=N_FEATURES,
        n_globals=len(GLOBALS),
        n_actions=len(catalog.service_actions),
        n_global_actions=len(catalog.global_actions),
    )
    return LearnedPolicy(GraphPolicy(config), catalog=catalog, version="bench-untrained")


def start(tmp: Path, name: str, policy: Policy | None) -> DemoStack:
    settings = load_settings(
        data_dir=tmp, database_url=f"sqlite:///{tmp / (name + '.sqlite')}", log_level="ERROR"
    )
    world = WorldOptions(
        first_fault_s=1e9, fault_every_s=1e9, tick_s=3600
    )  # a quiet world: alerts come from us
    options = DemoOptions(port=0, sandbox_port=0, world=world, rate_limits=False)
    return DemoStack(settings, options, policy=policy).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per ack measurement")
    parser.add_argument("--alerts", type=int, default=24, help="alerts per alert-to-card measurement")
    args = parser.parse_args()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queue depth warnings are expected at 50
    rows: list[tuple[str, list[float], list[float], float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = start(Path(tmp), "runbook", None)
        try:
            assert stack.sandbox is not None and stack.sandbox.driver is not None
            runbook_cards = alert_to_card(stack, args.alerts, 0)
            floor = direct_post(stack, args.alerts)
            rows.append(("alert -> card, runbook (ms)", runbook_cards, floor, 1000.0))
            incident = post_alert(stack.bot_url, stack.alerts_token, "cartservice", 10_000)["created"][0]
            open_card = wait_card(stack, incident)  # one open incident to ask about and click on
            real = stack.sandbox.driver
            bare_url, bare_stop = bare_bolt(
                stack.signing_secret, stack.sandbox.api_url, stack.sandbox.bot_token
            )
            bare = stack.sandbox.connect_app(bare_url, stack.signing_secret)
            try:

                def command(d: AppDriver) -> Any:
                    return d.slash_command(user=ALICE, channel="incidents", text=f"status {incident}")

                def click(d: AppDriver) -> Any:
                    return d.click(
                        user=ALICE, channel="incidents", message_ts=open_card.ts, action_id="why:1"
                    )

                for label, send in (("slash command ack (ms)", command), ("button click ack (ms)", click)):
                    acks(real, 50, send)  # warm both up (threads, connections, caches)
                    acks(bare, 50, send)
                    rows.append(
                        (label, acks(real, args.requests, send), acks(bare, args.requests, send), 100.0)
                    )
            finally:
                bare_stop()
        finally:
            stack.stop()
        learned = start(Path(tmp), "learned", learned_policy())
        try:
            learned_cards = alert_to_card(learned, args.alerts, 0)
            rows.append(
                ("alert -> card, learned net (ms)", learned_cards, direct_post(learned, args.alerts), 1000.0)
            )
        finally:
            learned.stop()
    print(f"\nbot latency: {CONCURRENCY} concurrent for acks, {args.requests} requests, {args.alerts} alerts")
    head = (
        f"{'measure':<34}{'p50':>9}{'p99':>9}{'base p50':>10}{'base p99':>10}{'x p50':>8}{'x p99':>8}  target"
    )
    print(head)
    print("-" * len(head))
    ok = True
    for label, ours, base, target in rows:
        p50, p99, b50, b99 = pct(ours, 50), pct(ours, 99), pct(base, 50), pct(base, 99)
        met = p99 < target
        ok &= met
        print(
            f"{label:<34}{p50:>9.1f}{p99:>9.1f}{b50:>10.1f}{b99:>10.1f}{p50 / b50:>8.1f}{p99 / b99:>8.1f}"
            f"  p99 < {target:g} ms: {'met' if met else 'MISSED'}"
        )
    print(
        "one process on this machine: app, sandbox and the 50 client threads share the CPUs and the GIL,\n"
        "so absolute times are pessimistic; the ratios to the bare-Bolt baseline are the comparison"
    )
    print("all targets met" if ok else "some targets missed (see the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
