"""`remediate serve`: the Slack app, health check and alert webhooks on one HTTP server (waitress).

With ``--socket-mode`` the app opens a websocket to Slack (`apps.connections.open` at
``SLACK_API_URL``, the app-level token) and receives commands, events and clicks over it; the HTTP
server still serves /healthz and /alerts/* (not /slack/events). Ctrl-C or SIGTERM stops both.

The command only declares its options; `run_serve` does the work, one step per function: check the
tokens, build the app (store, policy, services), start the outbox worker and the scheduled jobs, serve
until stopped, then stop everything in order.
"""

from __future__ import annotations

import signal
from functools import partial
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated

import typer

from bot.cli.common import console, err_console, refuse, settings_of
from bot.cli.serve_build import ServeOptions, build_remediate, start_background_jobs
from bot.cli.serve_topology import prepare_graph
from bot.settings import Settings, with_overrides

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app.app import RemediateApp

PortOption = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")]
HostOption = Annotated[
    str, typer.Option("--host", envvar="REMEDIATE_HOST", help="Address to bind (the image sets 0.0.0.0).")
]
ThreadsOption = Annotated[
    int, typer.Option("--threads", min=1, help="HTTP request threads (ack Slack, ingest alerts).")
]
WorkThreadsOption = Annotated[
    int, typer.Option("--work-threads", min=1, help="Threads for the work after a Slack ack.")
]
WorkProcessOption = Annotated[
    bool | None,
    typer.Option(
        "--work-process/--no-work-process",
        help="Run the work after each Slack ack, the outbox and the jobs in a second process, so acks never "
        "wait for it (default: on, off with --socket-mode; docs/bot.md, Latency).",
        show_default=False,
    ),
]
SocketModeOption = Annotated[
    bool, typer.Option("--socket-mode", help="Talk to Slack over Socket Mode (needs SLACK_APP_TOKEN).")
]
TopologyOption = Annotated[
    str | None,
    typer.Option(
        "--topology",
        help="Service graph: node-link JSON file (`remediate topology discover` writes one) or built-in "
        "name (overrides REMEDIATE_TOPOLOGY). serve needs this or --discover-prometheus.",
        show_default=False,
    ),
]
DiscoverOption = Annotated[
    str | None,
    typer.Option(
        "--discover-prometheus",
        help="Discover the service graph from this Prometheus at start and every REMEDIATE_TOPOLOGY_REFRESH_S "
        "(overrides REMEDIATE_DISCOVER_PROMETHEUS; docs/topology.md).",
        show_default=False,
    ),
]
RequesterOption = Annotated[
    str | None,
    typer.Option("--requester", help="Slack user id proposing actions for alert-born incidents."),
]
PagerDutySecretOption = Annotated[
    str | None,
    typer.Option(
        "--pagerduty-secret",
        help="PagerDuty webhook signing secret (X-PagerDuty-Signature; overrides "
        "REMEDIATE_PAGERDUTY_WEBHOOK_SECRET).",
        show_default=False,
    ),
]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="auto: the promoted learned policy if one is registered, else the bundled one, else the runbook "
        "baseline, following promotions without a restart; "
        "runbook: always the baseline; or a registered version / artifact path (overrides "
        "REMEDIATE_POLICY; default auto).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Mount the `serve` command."""

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        port: PortOption = 3000,
        host: HostOption = "127.0.0.1",
        threads: ThreadsOption = 8,
        work_threads: WorkThreadsOption = 8,
        socket_mode: SocketModeOption = False,
        work_process: WorkProcessOption = None,
        topology: TopologyOption = None,
        discover_prometheus: DiscoverOption = None,
        requester: RequesterOption = None,
        pagerduty_secret: PagerDutySecretOption = None,
        policy_ref: PolicyOption = None,
    ) -> None:
        """Serve /slack/events (or Socket Mode), /healthz and /alerts/{alertmanager,pagerduty,grafana,generic}."""
        settings = with_overrides(
            settings_of(ctx),
            topology=topology,
            discover_prometheus=discover_prometheus,
            requester=requester,
            pagerduty_webhook_secret=pagerduty_secret,
            policy=policy_ref,
        )
        split = work_process if work_process is not None else not socket_mode
        options = ServeOptions(host=host, port=port, threads=threads, work_threads=work_threads,
                               socket_mode=socket_mode, work_process=split)  # fmt: skip
        run_serve(settings, options)


def run_serve(settings: Settings, options: ServeOptions) -> None:
    """Build the app from ``settings``, serve until Ctrl-C or SIGTERM, then stop the jobs and the app."""
    from bot.cli.serve_work import work_main
    from bot.observe.logs import configure_logging
    from bot.server import settle_heap
    from bot.tracing import setup_tracing, shutdown_tracing

    configure_logging(settings.log_level, settings.log_format)
    check_tokens(settings, socket_mode=options.socket_mode)
    settings = prepare_graph(settings)  # a file that loads, or a discovery that finds services; else refuse
    setup_tracing(settings)  # OTEL_*: nothing is exported unless OTEL_TRACES_EXPORTER asks
    serving_lock = hold_store(settings)  # a SQLite file serves one process (docs/operations.md)
    work = partial(work_main, settings, options) if options.work_process else None
    remediate = build_remediate(settings, options, work=work)
    if options.work_process:  # the front: acks and intake here, the rest in the work process
        from bot.cli.serve_work import pass_sighup, start_front_jobs

        scheduler = start_front_jobs(remediate)
        pass_sighup(remediate)  # `kill -HUP` reloads the RBAC file (docs/safety.md), in both
    else:
        remediate.worker.start()
        scheduler = start_background_jobs(remediate)
        if remediate.roster is not None:
            remediate.roster.install_sighup()  # `kill -HUP` reloads the RBAC file (docs/safety.md)
    settle_heap()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve_until_stopped(remediate, options)
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=False)
        remediate.close()
        shutdown_tracing()  # the last spans are exported before the process ends
        if serving_lock is not None:
            serving_lock.close()


def hold_store(settings: Settings) -> IO[bytes] | None:
    """Take a SQLite store's serving lock (refuse when another process serves it); None on PostgreSQL."""
    from incidents_db.errors import StoreInUseError
    from incidents_db.leader import hold_serving_lock

    try:
        return hold_serving_lock(settings.effective_database_url)
    except StoreInUseError as exc:
        refuse(f"not starting: {exc}")


def check_tokens(settings: Settings, *, socket_mode: bool) -> None:
    """Refuse to start without the Slack tokens the chosen transport needs.

    In OAuth mode each workspace's token comes from its installation; home incidents (alert-born) then
    need SLACK_BOT_TOKEN or the home workspace, whose installed bot posts them (docs/slack.md).
    """
    if settings.oauth:
        if settings.slack_bot_token is None and settings.home_team_id is None:
            refuse(
                "OAuth mode needs SLACK_BOT_TOKEN or REMEDIATE_HOME_TEAM_ID: the workspace alert-born "
                "incidents are posted to"
            )
    elif settings.slack_bot_token is None:
        refuse("SLACK_BOT_TOKEN is not set; the app cannot post to Slack without it")
    if socket_mode and settings.slack_app_token is None:
        refuse("--socket-mode needs SLACK_APP_TOKEN (an xapp- token with connections:write)")
    if not socket_mode and settings.slack_signing_secret is None:  # before a work process is started
        refuse("SLACK_SIGNING_SECRET is not set; the app cannot verify Slack's requests without it")


def serve_until_stopped(remediate: RemediateApp, options: ServeOptions) -> None:
    """Bind the HTTP server (and open the Socket Mode websocket), serve until interrupted, close both."""
    from bot.app.socket_mode import close_socket_mode
    from bot.server import http_server, stop_server
    from incidents_db.redact import redact_url

    settings = remediate.services.settings
    token = settings.alerts_token.get_secret_value() if settings.alerts_token else None
    host, port = options.host, options.port
    server = http_server(
        remediate,
        alerts_token=token,
        host=host,
        port=port,
        threads=options.threads,
        socket_mode=options.socket_mode,
    )
    handler: SocketModeHandler | None = None
    if options.socket_mode:
        handler = _open_socket(remediate, settings, threads=options.threads)
        console.print(
            f"remediate: Socket Mode via {redact_url(settings.slack_api_url)}; "
            f"serving on http://{host}:{port} (/healthz, /alerts/*)"
        )
    else:
        console.print(f"remediate: serving on http://{host}:{port} (/slack/events, /healthz, /alerts/*)")
    try:
        server.run()
    finally:
        if handler is not None:
            close_socket_mode(handler)
        stop_server(server)


def _open_socket(remediate: RemediateApp, settings: Settings, *, threads: int) -> SocketModeHandler:
    """Open the Socket Mode websocket; a first failure only warns (the client keeps retrying)."""
    from bot.app.socket_mode import open_socket_mode

    assert settings.slack_app_token is not None
    app_token = settings.slack_app_token.get_secret_value()
    handler = open_socket_mode(remediate.bolt, app_token, concurrency=threads)
    if not handler.client.is_connected():
        err_console.print("warning: the Socket Mode websocket did not open; retrying in the background")
    return handler


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into the same clean stop as Ctrl-C."""
    raise KeyboardInterrupt
