"""Bot latency: ack p50/p99 for slash commands and button clicks under 50 concurrent requests, and
alert-to-card latency (alert POST until the card is in the Slack sandbox), each beside a baseline
measured in the same run.

Processes: the app under test runs in its own processes as `remediate serve` runs it (a
`multiprocessing` spawn child serving it on waitress with the same server and thread counts, and its
work process, `bench_apps.py`); the acks are measured once more with the app in one process
(`--no-work-process`) beside them; the Slack sandbox runs in
this process; the 50 client threads run in a third, load process. The sandbox driver builds each
request (payload, response URL, trigger) here, the load process signs, sends and times them with
the driver's own transport (`AppDriver.send`: a new connection per request, time from the request
until the ack is read). So neither the app, nor the clients, nor the sandbox (which takes the
listeners' `response_url` posts) share a GIL. The baselines run the same way.

Baselines: a bare Bolt app whose listeners only ack, configured like ours (ack in the request thread)
on the same waitress server in its own process and driven by the same sandbox driver, so the ratio is
what remediate adds on top of Bolt + HTTP; for alert-to-card, one `chat.postMessage` of a finished
card straight to the sandbox (the floor: one Web API call). The card is ranked by the runbook
baseline and by a learned graph network (untrained weights: the inference cost is the same as a
trained one's).

Tracing overhead: three runbook apps, tracing off (the default), on for every trace, and on for one
trace in ten, each exporting over OTLP/HTTP to a local sink in this process, measured in turns (ack
p99s and alert-to-card side by side; ratio on / off, target within 10 %).

Run: `.venv/bin/python benchmarks/bench_bot.py [--requests 500] [--alerts 24] [--no-tracing]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import secrets
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench_apps import HTTP_THREADS, AppSpec, Child, tree_cpu  # benchmarks/bench_apps.py
from otlp_sink import Sink, pct, print_cpu, print_overhead  # benchmarks/otlp_sink.py
from slack_sdk import WebClient

from bot.sandbox import AppDriver, Attempt, SandboxOptions, SlackSandbox, Workspace, WorkspaceConfig
from sim.resolve import resolve_topology

CONCURRENCY = 50
Row = tuple[str, list[float], list[float], float]
CHANNEL = "C0INCIDENT"
ALICE = "U0ALICE001"


Body = tuple[str, str]  # request body, content type


class Capture(AppDriver):
    """The sandbox driver with its transport replaced by a list: it builds requests, the load process sends them."""

    def __init__(self, sandbox: SlackSandbox, app_url: str, secret: str) -> None:
        super().__init__(sandbox.workspace, app_url=app_url, signing_secret=secret, sandbox_url=sandbox.url)
        self.bodies: list[Body] = []

    def send(self, body: str, content_type: str, **_: Any) -> Attempt:
        """Keep the request for the load process; report a plain 200 ack to the driver."""
        self.bodies.append((body, content_type))
        return Attempt(0, 200, 0.0, None, "")


def load_child(app_url: str, secret: str, bodies: list[Body], warm: int, out: Connection) -> None:
    """Load process: send ``bodies`` with 50 in flight (the first ``warm`` untimed); report each attempt."""
    driver = AppDriver(Workspace(WorkspaceConfig()), app_url=app_url, signing_secret=secret, sandbox_url="")

    def send_all(batch: list[Body]) -> list[Attempt]:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return list(pool.map(lambda b: driver.send(*b), batch))

    send_all(bodies[:warm])  # warm up (threads, connections, caches)
    out.send([(a.status, a.ack_ms, a.failure) for a in send_all(bodies[warm:])])


def acks(capture: Capture, n: int, build: Callable[[AppDriver], Any]) -> list[float]:
    """Build 50 + ``n`` requests, send them from the load process; return the ``n`` timed acks (ms)."""
    capture.bodies.clear()
    for _ in range(CONCURRENCY + n):
        build(capture)
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    args = (capture.app_url, capture.signing_secret, list(capture.bodies), CONCURRENCY, send)
    load = ctx.Process(target=load_child, args=args, name="bench-load", daemon=True)
    load.start()
    if not receive.poll(600):
        load.terminate()
        raise SystemExit("the load process sent no result within 600 s")
    results: list[tuple[int | None, float, str | None]] = receive.recv()
    load.join(10)
    failed = [r for r in results if r[2] is not None or r[0] is None or not 200 <= r[0] < 300]
    if failed:
        raise SystemExit(
            f"{len(failed)} of {n} deliveries failed, e.g. status {failed[0][0]}: {failed[0][2]}"
        )
    return [ms for _, ms, _ in results]


def spec_for(
    sandbox: SlackSandbox, kind: str, tmp: Path, secret: str, alerts_token: str, otlp_url: str = ""
) -> AppSpec:
    return AppSpec(
        kind=kind,
        data_dir=str(tmp),
        api_url=sandbox.api_url,
        bot_token=sandbox.bot_token,
        bot_user=sandbox.workspace.config.bot_user_id,
        signing_secret=secret,
        alerts_token=alerts_token,
        otlp_url=otlp_url,
    )


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


def card_posted(sandbox: SlackSandbox, prefix: str, after: int) -> bool:
    """Whether a message starting with ``prefix`` was posted after the first ``after`` of the channel."""
    posted = list(sandbox.workspace.messages.get(CHANNEL, []))[after:]
    return any(m.text.startswith(prefix) for m in posted)


def wait_card(sandbox: SlackSandbox, incident: str) -> Any:
    """Return the incident's card once it is in the sandbox with its buttons."""
    for _ in range(20_000):
        for m in list(sandbox.workspace.messages.get(CHANNEL, [])):
            if m.text.startswith(incident + " ") and "why:1" in json.dumps(m.blocks):
                return m
        time.sleep(0.001)
    raise SystemExit(f"no card for {incident}")


def alert_to_card(sandbox: SlackSandbox, bot_url: str, token: str, n: int, first: int = 0) -> list[float]:
    """Post ``n`` alerts (fingerprints from ``first`` on), each opening an incident; ms from the POST until
    its card is in the sandbox."""
    services = list(resolve_topology("online-boutique").services)
    out = []
    for i in range(n):
        service = services[i % len(services)]
        before = len(sandbox.workspace.messages.get(CHANNEL, []))  # another app's run may reuse the ids
        t0 = time.perf_counter()
        created = post_alert(bot_url, token, service, first + i)["created"]
        if not created:
            raise SystemExit(f"alert {i} on {service} opened no incident")
        while not card_posted(sandbox, created[0] + " ", before):
            time.sleep(0.0005)
        out.append((time.perf_counter() - t0) * 1000)
        post_alert(bot_url, token, service, first + i, status="resolved")  # closes it again
    return out


def direct_post(sandbox: SlackSandbox, n: int) -> list[float]:
    """The floor: post an already rendered card with one chat.postMessage."""
    client = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url)
    blocks = next(m for m in sandbox.workspace.messages[CHANNEL] if m.blocks).blocks
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.chat_postMessage(channel=CHANNEL, text="baseline card", blocks=blocks)
        out.append((time.perf_counter() - t0) * 1000)
    return out


Send = Callable[[AppDriver], Any]
ALERT_TO_CARD = "alert -> card (ms)"


def senders(incident: str, card: Any) -> tuple[tuple[str, Send], ...]:
    """The two timed Slack requests: a slash command about ``incident``, a click on its card's Why."""

    def command(d: AppDriver) -> Any:
        return d.slash_command(user=ALICE, channel="incidents", text=f"status {incident}")

    def click(d: AppDriver) -> Any:
        return d.click(user=ALICE, channel="incidents", message_ts=card.ts, action_id="why:1")

    return (("slash command ack (ms)", command), ("button click ack (ms)", click))


VARIANTS = {"off": 1.0, "all traces": 1.0, "10% of traces": 0.1}  # the share of traces recorded when on


def tracing_overhead(
    args: argparse.Namespace, sandbox: SlackSandbox, tmp: Path, rounds: int = 5
) -> list[Row]:
    """Tracing off and on (every trace; one in ten), each its own runbook app exporting over OTLP/HTTP to
    a local sink, measured in turns so a busy machine weighs on all alike; rows (label, on, off, target)."""
    secret, token = secrets.token_hex(16), secrets.token_hex(16)
    sink, apps = Sink(), {}
    drivers: dict[str, tuple[Capture, tuple[tuple[str, Send], ...]]] = {}
    got: dict[str, dict[str, list[float]]] = {name: {} for name in VARIANTS}
    try:
        for name, sample in VARIANTS.items():
            (tmp / name).mkdir()
            url = sink.url if name != "off" else ""
            apps[name] = Child(
                replace(spec_for(sandbox, "runbook", tmp / name, secret, token, url), sample=sample)
            )
        for r, (name, app) in itertools.product(range(rounds), apps.items()):
            n, first = max(1, args.alerts // rounds), r * args.alerts
            got[name].setdefault(ALERT_TO_CARD, []).extend(alert_to_card(sandbox, app.url, token, n, first))
        for name, app in apps.items():  # then one open incident each, to ask about and click on
            incident = post_alert(app.url, token, "cartservice", 10_000)["created"][0]
            sends = senders(incident, wait_card(sandbox, incident))
            drivers[name] = (Capture(sandbox, app.url + "/slack/events", secret), sends)
        cpu = dict.fromkeys(VARIANTS, 0.0)  # the app's own CPU over the ack batches and the work after them
        for _, (name, (capture, sends)) in itertools.product(range(rounds), drivers.items()):
            for label, send in sends:
                before = tree_cpu(apps[name].process.pid or 0)
                got[name].setdefault(label, []).extend(acks(capture, max(1, args.requests // rounds), send))
                time.sleep(2)  # let the work after the acks drain (its CPU counts)
                cpu[name] += tree_cpu(apps[name].process.pid or 0) - before
        print_cpu(cpu, rounds * 2 * max(1, args.requests // rounds))  # two kinds of request per batch
    finally:
        for app in apps.values():
            app.stop()
        sink.server.shutdown()
    if sink.exports == 0:
        raise SystemExit("tracing on exported nothing to the sink")
    print(f"tracing on: {sink.exports} OTLP exports, {sink.bytes / 1e6:.1f} MB of spans", file=sys.stderr)
    off = got.pop("off")
    return [(f"{m}, {v}", on[m], off[m], 1.10) for v, on in got.items() for m in off]


def measure(args: argparse.Namespace, sandbox: SlackSandbox, tmp: Path) -> list[Row]:
    """Start each app in its own process in turn, measure it against the sandbox, stop it."""
    secret, token = secrets.token_hex(16), secrets.token_hex(16)
    rows: list[Row] = []
    runbook = Child(spec_for(sandbox, "runbook", tmp, secret, token))
    try:
        cards = alert_to_card(sandbox, runbook.url, token, args.alerts)
        floor = direct_post(sandbox, args.alerts)
        rows.append(("alert -> card, runbook (ms)", cards, floor, 1000.0))
        incident = post_alert(runbook.url, token, "cartservice", 10_000)["created"][0]
        open_card = wait_card(sandbox, incident)  # one open incident to ask about and click on
        real = Capture(sandbox, runbook.url + "/slack/events", secret)
        sends = senders(incident, open_card)
        ours = {}
        for label, send in sends:
            ours[label] = acks(real, args.requests, send)
            time.sleep(2)  # let the work after the acks drain before the next measurement
    finally:
        runbook.stop()
    # the same app and store (so the same open card) in one process, as `remediate serve --no-work-process`
    single = Child(replace(spec_for(sandbox, "runbook", tmp, secret, token), work_process=False))
    try:
        one = Capture(sandbox, single.url + "/slack/events", secret)
        alone = {}
        for label, send in sends:
            alone[label] = acks(one, args.requests, send)
            time.sleep(2)
    finally:
        single.stop()
    bare_app = Child(spec_for(sandbox, "bare", tmp, secret, token))
    try:
        bare = Capture(sandbox, bare_app.url + "/slack/events", secret)
        for label, send in sends:
            base = acks(bare, args.requests, send)
            rows.append((label, ours[label], base, 100.0))
            rows.append((label.replace(" (ms)", ", 1 process"), alone[label], base, 100.0))
    finally:
        bare_app.stop()
    learned_apps = (
        ("two", True, "alert -> card, learned net (ms)"),
        ("one", False, "alert -> card, learned, 1 process"),
    )
    for name, split, label in learned_apps:  # each its own store: both open their incidents from INC-1
        (tmp / name).mkdir()
        learned = Child(replace(spec_for(sandbox, "learned", tmp / name, secret, token), work_process=split))
        try:
            rows.append((label, alert_to_card(sandbox, learned.url, token, args.alerts), floor, 1000.0))
        finally:
            learned.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per ack measurement")
    parser.add_argument("--alerts", type=int, default=24, help="alerts per alert-to-card measurement")
    parser.add_argument("--no-tracing", action="store_true", help="skip the tracing overhead turns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = SlackSandbox(SandboxOptions(rate_limits=False)).start()
        try:
            rows = measure(args, sandbox, Path(tmp))
            overhead = [] if args.no_tracing else tracing_overhead(args, sandbox, Path(tmp))
        finally:
            sandbox.stop()
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
        f"processes: each app (waitress, {HTTP_THREADS} request threads), the sandbox, the {CONCURRENCY} client\n"
        "threads; all on this machine's shared CPUs"
    )
    ok &= print_overhead(overhead) if overhead else True
    print("all targets met" if ok else "some targets missed (see the tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
