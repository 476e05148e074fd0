"""`remediate serve` in two processes: the front (HTTP, acks, intake) and the work process (`bot.app.handoff`).

`run_serve` (`bot.cli.serve_cmd`) starts the front; the front spawns `work_main` with the pipe it
created, once the store's schema is current, and goes on building its own app. The work process builds the same app from the same settings, runs the outbox worker, the
action runner and every scheduled job; the front keeps only what each process needs its own copy of
(the RBAC file and its groups, the service graph, the serving policy's state shown on /healthz).
"""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from types import FrameType
from typing import TYPE_CHECKING

from bot.app.handoff import WorkProcess, answer_scrapes, serve_frames
from bot.settings import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.app.app import RemediateApp
    from bot.cli.serve_build import ServeOptions


def work_main(
    settings: Settings, options: ServeOptions, conn: Connection, ready: ProcessEvent, scrapes: Connection
) -> None:
    """The work process: build the app, start the worker and the jobs, dispatch the front's frames until stop.

    Ctrl-C and SIGTERM are the front's to handle: it drains, then sends the stop frame (or, if it dies,
    the pipe closes); either way the queued work finishes before this process ends. ``scrapes`` carries
    the front's /metrics requests: this process's own series (no store collector: the front reads the
    store; `bot.observe.merge`).
    """
    from prometheus_client import generate_latest

    from bot.cli.serve_build import build_remediate, start_background_jobs
    from bot.observe.logs import configure_logging
    from bot.server import settle_heap
    from bot.tracing import setup_tracing, shutdown_tracing

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(settings.log_level, settings.log_format)
    setup_tracing(settings)
    remediate = build_remediate(settings, options, work_process=True)
    remediate.worker.start()
    scheduler = start_background_jobs(remediate)
    if remediate.roster is not None:
        remediate.roster.install_sighup()  # the front passes its SIGHUP on
    registry = remediate.services.metrics.registry
    answer_scrapes(scrapes, lambda: generate_latest(registry))
    settle_heap()
    try:
        serve_frames(remediate.bolt, conn, remediate.worker.wake, ready)
    finally:
        scheduler.shutdown(wait=False)
        remediate.close()
        shutdown_tracing()


def start_front_jobs(remediate: RemediateApp) -> BackgroundScheduler:
    """Start the front's few jobs: its own RBAC (file and groups), service graph and policy state."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.cli.serve_policy import start_policy_reload
    from bot.cli.serve_topology import start_refresh

    services = remediate.services
    scheduler = BackgroundScheduler(timezone="UTC")
    start_refresh(scheduler, services)  # alert intake resolves services on the graph
    start_policy_reload(scheduler, services)  # /healthz shows what ranks
    if remediate.roster is not None:
        remediate.roster.schedule(scheduler)  # modal submissions check roles here
    scheduler.start()
    return scheduler


def pass_sighup(remediate: RemediateApp) -> None:
    """Reload the RBAC file on SIGHUP here and in the work process (call from the main thread)."""
    roster, handoff = remediate.roster, remediate.handoff

    def both(signum: int, frame: FrameType | None) -> None:
        if roster is not None:
            roster.sighup(signum, frame)
        pid = handoff.status()["pid"] if handoff is not None else None
        if pid:
            os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGHUP, both)


__all__ = ["WorkProcess", "pass_sighup", "start_front_jobs", "work_main"]
