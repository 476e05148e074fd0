"""The apps `bench_bot.py` measures, each served in its own process as `remediate serve` serves it.

``kind`` is runbook, learned or bare (the baseline: a Bolt app whose listeners only ack). Ours run as
`remediate serve` does by default: a front process (waitress, acks, intake) and a work process fed
through a pipe (`bot.app.handoff`); ``work_process=False`` builds the earlier single process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import TYPE_CHECKING

from otlp_sink import cpu_seconds  # benchmarks/otlp_sink.py
from pydantic import SecretStr
from slack_sdk import WebClient

from bot.settings import load_settings
from playbooks.catalog import builtin_catalog
from remediation.policies import Policy

if TYPE_CHECKING:
    from bot.app.app import RemediateApp
    from bot.app.handoff import WorkProcess

HTTP_THREADS = 8  # `remediate serve --threads` default


@dataclass(frozen=True)
class AppSpec:
    """What a child process serves: ``kind`` is runbook, learned or bare; the rest wires it to the sandbox."""

    kind: str
    data_dir: str
    api_url: str
    bot_token: str
    bot_user: str
    signing_secret: str
    alerts_token: str
    otlp_url: str = ""  # with a URL: tracing on, spans exported there over OTLP/HTTP
    sample: float = 1.0  # the share of traces recorded (parentbased_traceidratio below 1)
    work_process: bool = True  # as `remediate serve` (False: one process, `--no-work-process`)


def tree_cpu(pid: int) -> float:
    """Return the CPU seconds a process and its children (the front and its work process) used so far."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    except OSError:
        children = []
    total = cpu_seconds(pid)
    for child in children:
        with contextlib.suppress(OSError):  # ended meanwhile
            total += cpu_seconds(int(child))
    return total


def learned_policy() -> Policy:
    """Return a graph network policy with untrained weights (the inference cost of a trained one)."""
    from remediation.learning.policy import GraphPolicy, NetConfig
    from remediation.learning.ranking import LearnedPolicy
    from sim.observation import GLOBALS, N_FEATURES

    catalog = builtin_catalog()
    config = NetConfig(
        n_features=N_FEATURES,
        n_globals=len(GLOBALS),
        n_actions=len(catalog.service_actions),
        n_global_actions=len(catalog.global_actions),
    )
    return LearnedPolicy(GraphPolicy(config), catalog=catalog, version="bench-untrained")


def build_ours(
    spec: AppSpec, *, front: WorkProcess | None = None, work_process: bool = False
) -> RemediateApp:
    """Build our app from ``spec`` (the front, the work process, or one process) as `remediate serve` does."""
    from bot.app.app import build_app
    from bot.demo.stack import demo_rbac_path
    from bot.services import build_services

    tmp = Path(spec.data_dir)
    name = spec.kind + (f"-traced-{spec.sample:g}" if spec.otlp_url else "")
    settings = load_settings(
        data_dir=tmp, database_url=f"sqlite:///{tmp / (name + '.sqlite')}", log_level="ERROR"
    ).model_copy(
        update={
            "slack_bot_token": SecretStr(spec.bot_token),
            "slack_api_url": spec.api_url,
            "slack_signing_secret": SecretStr(spec.signing_secret),
            "alerts_token": SecretStr(spec.alerts_token),
            "rbac_config": demo_rbac_path(),
            "topology": "online-boutique",
            "requester": spec.bot_user,
        }
    )
    if spec.otlp_url:  # as OTEL_TRACES_EXPORTER=otlp would, with the sink's URL
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

        from bot.tracing import setup_tracing

        sampler = ALWAYS_ON if spec.sample >= 1 else ParentBased(TraceIdRatioBased(spec.sample))
        setup_tracing(settings, exporter=OTLPSpanExporter(endpoint=spec.otlp_url), sampler=sampler)
    policy = learned_policy() if spec.kind == "learned" else None
    services = build_services(settings, policy=policy)
    return build_app(settings, services, front=front, work_process=work_process)


def work_child(spec: AppSpec, conn: Connection, ready: ProcessEvent, _scrapes: Connection) -> None:
    """The work process of a front (`bot.cli.serve_work.work_main` without the CLI's settings and jobs)."""
    from bot.app.handoff import serve_frames
    from bot.server import settle_heap

    remediate = build_ours(spec, work_process=True)
    remediate.worker.start()
    settle_heap()
    serve_frames(remediate.bolt, conn, remediate.worker.wake, ready)


def _bare(spec: AppSpec) -> object:
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    bolt = App(
        signing_secret=spec.signing_secret,
        client=WebClient(token=spec.bot_token, base_url=spec.api_url),
        token_verification_enabled=False,
        process_before_response=True,
    )

    @bolt.command("/remediate")
    def command(ack: Ack) -> None:
        ack()

    @bolt.action({"action_id": "why:1"})
    def action(ack: Ack) -> None:
        ack()

    return SlackRequestHandler(bolt)


def serve_child(spec: AppSpec, ready: Connection) -> None:
    """Child process: build the app like `remediate serve`, send its port, serve until terminated."""
    from waitress.server import create_server

    from bot.app.handoff import WorkProcess
    from bot.server import http_server, settle_heap

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queue depth warnings are expected at 50
    if spec.kind == "bare":
        handler = _bare(spec)
        settle_heap()  # as `remediate serve` does
        server = create_server(handler, host="127.0.0.1", port=0, threads=HTTP_THREADS)
    else:
        front = WorkProcess() if spec.work_process else None
        remediate = build_ours(spec, front=front)
        if front is not None:
            front.start(partial(work_child, spec))
            if not front.wait_ready(300):
                raise SystemExit("the work process did not start within 300 s")
        else:
            remediate.worker.start()
        settle_heap()
        server = http_server(
            remediate, alerts_token=spec.alerts_token, host="127.0.0.1", port=0, threads=HTTP_THREADS
        )
    ready.send(int(server.effective_port))  # type: ignore[union-attr]
    server.run()


class Child:
    """One app under test in its own process (and its work process); `url` is its base URL."""

    def __init__(self, spec: AppSpec) -> None:
        ctx = mp.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=serve_child, args=(spec, send), name=f"bench-{spec.kind}")
        self.process.start()
        if not receive.poll(400):
            self.stop()
            raise SystemExit(f"the {spec.kind} app did not start within 400 s")
        self.url = f"http://127.0.0.1:{receive.recv()}"

    def stop(self) -> None:
        """Terminate the process and wait for it, and for its work process to finish what it had queued
        (it ends when the pipe closes), so none of it runs into the next measurement."""
        pid = self.process.pid or 0
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
        except OSError:
            children = []
        self.process.terminate()
        self.process.join(10)
        for child in children:
            for _ in range(1200):  # up to 2 minutes
                if not Path(f"/proc/{child}").exists() or _zombie(int(child)):
                    break
                time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
