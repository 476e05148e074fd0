"""`remediate sandbox serve`: run the local Slack stand-in (Web API, driver, page) until Ctrl-C.

The command only declares its options; plain functions resolve the credentials (flags over the
settings), build the workspace, and run the sandbox until a signal stops it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from bot.cli.common import console, refuse, settings_of
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.sandbox import SandboxOptions, SlackSandbox, WorkspaceConfig

PortOption = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0 picks a free one).")
]
HostOption = Annotated[str, typer.Option("--host", help="Address to bind.")]
AppUrlOption = Annotated[
    str | None,
    typer.Option("--app-url", help="The app's Slack endpoint, e.g. http://127.0.0.1:3000/slack/events."),
]
SigningSecretOption = Annotated[
    str | None,
    typer.Option("--signing-secret", help="Secret to sign requests with (default: SLACK_SIGNING_SECRET)."),
]
BotTokenOption = Annotated[
    str | None,
    typer.Option(
        "--bot-token",
        help="Bot token the API accepts (default: SLACK_BOT_TOKEN or xoxb-sandbox-token).",
    ),
]
AppTokenOption = Annotated[
    str | None,
    typer.Option(
        "--app-token",
        help="App-level token apps.connections.open accepts, for Socket Mode "
        "(default: SLACK_APP_TOKEN or xapp-sandbox-token).",
    ),
]
WorkspaceOption = Annotated[
    Path | None, typer.Option("--workspace", help="JSON file with team, users, channels, usergroups.")
]
EventOption = Annotated[
    list[str] | None,
    typer.Option("--event", help="Event subscription to deliver (repeatable; default app_mention)."),
]
CommandOption = Annotated[str, typer.Option("--command", help="The app's slash command.")]
NoRateLimitsOption = Annotated[bool, typer.Option("--no-rate-limits", help="Switch off Slack's rate limits.")]
AckTimeoutOption = Annotated[
    float, typer.Option("--ack-timeout", help="Seconds before an ack counts as failed.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the endpoints as one JSON line.")]


class Credentials(NamedTuple):
    """What the sandbox signs with and accepts, each from its flag or else from the settings."""

    signing_secret: str | None
    bot_tokens: tuple[str, ...] | None
    app_token: str | None


def register(app: typer.Typer) -> None:
    """Mount the `sandbox` group."""
    group = typer.Typer(help="The local Slack sandbox: fake Web API, request driver and a web page.")

    @group.command("serve")
    def serve(
        ctx: typer.Context,
        port: PortOption = 3001,
        host: HostOption = "127.0.0.1",
        app_url: AppUrlOption = None,
        signing_secret: SigningSecretOption = None,
        bot_token: BotTokenOption = None,
        app_token: AppTokenOption = None,
        workspace: WorkspaceOption = None,
        events: EventOption = None,
        command: CommandOption = "/remediate",
        no_rate_limits: NoRateLimitsOption = False,
        ack_timeout: AckTimeoutOption = 3.0,
        as_json: JsonOption = False,
    ) -> None:
        """Serve the sandbox; open the printed URL to chat with the app as a chosen user."""
        from bot.sandbox import SandboxOptions

        given = resolve_credentials(
            settings_of(ctx),
            app_url=app_url,
            signing_secret=signing_secret,
            bot_token=bot_token,
            app_token=app_token,
        )
        options = SandboxOptions(
            host=host,
            port=port,
            app_url=app_url,
            signing_secret=given.signing_secret,
            workspace=workspace_config(workspace, given),
            rate_limits=not no_rate_limits,
            ack_timeout_s=ack_timeout,
            subscribed_events=tuple(events or ("app_mention",)),
            command=command,
        )
        run_sandbox(options, as_json=as_json)

    app.add_typer(group, name="sandbox")


def resolve_credentials(
    settings: Settings,
    *,
    app_url: str | None,
    signing_secret: str | None,
    bot_token: str | None,
    app_token: str | None,
) -> Credentials:
    """Take each credential from its flag or the settings; refuse a missing secret or a wrong token kind."""
    secret = signing_secret or (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    if app_url and not secret:
        refuse("--app-url needs a signing secret: pass --signing-secret or set SLACK_SIGNING_SECRET")
    token = bot_token or (settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None)
    tokens = (token,) if token else None
    if tokens and not tokens[0].startswith("xoxb-"):
        refuse(f"--bot-token must be a bot token starting with xoxb-, got {tokens[0][:5]}...")
    xapp = app_token or (settings.slack_app_token.get_secret_value() if settings.slack_app_token else None)
    if xapp and not xapp.startswith("xapp-"):
        refuse(f"--app-token must be an app-level token starting with xapp-, got {xapp[:5]}...")
    return Credentials(signing_secret=secret, bot_tokens=tokens, app_token=xapp)


def workspace_config(workspace: Path | None, given: Credentials) -> WorkspaceConfig:
    """Return the workspace (from its file, or the default one) accepting the given tokens."""
    from bot.sandbox import WorkspaceConfig
    from bot.sandbox.config import load_workspace_config

    tokens = given.bot_tokens
    config = load_workspace_config(workspace, bot_tokens=tokens) if workspace else WorkspaceConfig()
    if tokens and not workspace:
        config = WorkspaceConfig(**{**config.__dict__, "bot_tokens": tokens})
    if given.app_token:
        config = WorkspaceConfig(**{**config.__dict__, "app_tokens": (given.app_token,)})
    return config


def run_sandbox(options: SandboxOptions, *, as_json: bool) -> None:
    """Start the sandbox, print its endpoints, and serve until SIGINT or SIGTERM."""
    from bot.sandbox import SlackSandbox

    sandbox = SlackSandbox(options).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print_endpoints(sandbox, as_json=as_json)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    if not as_json:
        console.print("sandbox stopped")


def print_endpoints(sandbox: SlackSandbox, *, as_json: bool) -> None:
    """Print where the page, the Web API and the app are, and the tokens to use (or one JSON line)."""
    info = {
        "url": sandbox.url,
        "api_url": sandbox.api_url,
        "bot_token": sandbox.bot_token,
        "app_token": sandbox.app_token,
        "app_url": sandbox.driver.app_url if sandbox.driver else None,
    }
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        return
    console.print(f"Slack sandbox on [bold]{info['url']}[/] (open it in a browser)")
    console.print(f"Web API: SLACK_API_URL={info['api_url']}  SLACK_BOT_TOKEN={info['bot_token']}")
    console.print(f"Socket Mode: SLACK_APP_TOKEN={info['app_token']}")
    console.print(f"App: {info['app_url'] or 'none yet (pass --app-url, or start the app in Socket Mode)'}")
    console.print("Ctrl-C stops it.")
