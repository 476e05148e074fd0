"""How `remediate serve` builds its app: the options, the store, policy, services and Bolt app, the jobs.

`bot.cli.serve_cmd` (the front, or the only process) and `bot.cli.serve_work` (the work process) both
build through here, so neither imports the other's module back (tests/test_package_shape.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bot.cli.common import console, refuse
from bot.cli.serve_policy import start_policy_reload
from bot.cli.serve_topology import start_refresh
from bot.settings import Settings, with_overrides
from remediation.registry.live import LivePolicy

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.app.app import RemediateApp


@dataclass(frozen=True)
class ServeOptions:
    """How `serve` listens; everything else it needs is a field of the settings."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 3000
    """Port to listen on."""
    threads: int = 8
    """HTTP request threads (ack Slack, ingest alerts)."""
    work_threads: int = 8
    """Threads for the work after a Slack ack."""
    socket_mode: bool = False
    """Talk to Slack over Socket Mode instead of serving /slack/events."""
    work_process: bool = False
    """Hand the work after each ack, the outbox and the jobs to a second process (`bot.app.handoff`)."""


def build_remediate(
    settings: Settings,
    options: ServeOptions,
    *,
    work: Callable[[Connection, ProcessEvent, Connection], None] | None = None,
    work_process: bool = False,
) -> RemediateApp:
    """Open the store, choose the policy, build the services and the Bolt app (not yet serving).

    ``work``: the app is a front that hands its work to a process running ``work`` (`bot.cli.serve_work`),
    started once the store's schema is current (it builds its app meanwhile); ``work_process``: this
    process is that one.
    """
    from bot.app.app import build_app
    from bot.app.handoff import WorkProcess
    from bot.services import build_services, executor_config
    from incidents_db.db import open_store
    from playbooks.catalog import load_catalog
    from remediation.errors import ExecutorConfigError
    from remediation.executors.build import build_executor, where
    from remediation.executors.routing import describe_text

    config = executor_config(settings)
    extra = [settings.playbooks_dir] if settings.playbooks_dir else []
    try:  # before anything else: a misconfigured executor must not take traffic
        executor = build_executor(config, actions=load_catalog(extra).ids)
    except ExecutorConfigError as exc:
        refuse(f"not starting: {exc}")
    place = where(config, executor)
    say = console.print if not work_process else (lambda _: None)  # the front said it already
    say(f"remediate: executor {describe_text(executor)}" + (f" at {place}" if place else ""))
    engine = open_store(settings.effective_database_url)
    handoff = None
    if work is not None:
        handoff = WorkProcess()
        handoff.start(work)
    try:
        policy = choose_policy(engine, settings)
        say(f"remediate: ranking with the {policy.name}" + (f" ({policy.error})" if policy.error else ""))
        services = build_services(settings, engine=engine, policy=policy, executor=executor)
        remediate = build_app(
            settings, services, work_threads=options.work_threads, socket_mode=options.socket_mode,
            front=handoff, work_process=work_process,
        )  # fmt: skip
    except BaseException:
        if handoff is not None:  # a front that cannot start must not leave its work process behind
            handoff.close(timeout_s=10.0)
        raise
    _default_requester(remediate)
    return remediate


def _default_requester(remediate: RemediateApp) -> None:
    """Without a configured requester, alert-born incidents are proposed by the bot's own user."""
    from incidents_db.redact import redact_text

    services = remediate.services
    if services.settings.requester:
        return
    try:
        bot_user = str(remediate.bolt.client.auth_test()["user_id"])
        services.settings = with_overrides(services.settings, requester=bot_user)
    except Exception as exc:
        console.print(
            f"warning: auth.test failed ({redact_text(str(exc))}); alert-born incidents get no requester"
        )


def start_background_jobs(remediate: RemediateApp) -> BackgroundScheduler:
    """Start the scheduled jobs (request expiry, recovery, audit head publication) in this process."""
    from bot.app.audit_head import HeadPublisher
    from bot.app.jobs import start_jobs
    from bot.app.loop_jobs import engine_of, schedule_loop
    from incidents_db.leader import Leadership

    services = remediate.services
    audit_head = HeadPublisher.from_settings(
        services.settings, sessions=services.sessions, clock=services.clock
    )
    leadership = Leadership(engine_of(services))  # one leader per database runs every scheduled job
    scheduler = start_jobs(services, audit_head=audit_head, leadership=leadership)
    start_refresh(scheduler, services)  # with discovery: rediscover the graph on a schedule
    start_policy_reload(scheduler, services)  # promote / rollback / shadow / canary without a restart
    schedule_loop(scheduler, services, leadership)  # mine, retrain, evaluate, promote, report, watch
    if remediate.roster is not None:  # every replica: the RBAC file's mtime, groups' sources
        remediate.roster.schedule(scheduler)
    return scheduler


def choose_policy(engine: Engine, settings: Settings) -> LivePolicy:
    """Return the serving policy (``auto``: promoted > bundled > runbook, kept in step with the registry).

    With ``auto``, a promoted artifact that does not load (changed on disk, or trained on an older
    feature set) leaves the bundled policy serving, with the reason on /healthz: the bot must come up
    for the on-call. A version named explicitly is refused instead.
    """
    from bot.cli.serve_policy import build_live_policy

    return build_live_policy(engine, settings)
