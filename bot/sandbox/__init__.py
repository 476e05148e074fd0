"""A local stand-in for Slack: a fake Web API, a driver that calls the app like Slack, and a web page.

Typical use in a test::

    with SlackSandbox(SandboxOptions(app_url=app_url, signing_secret=secret)) as sandbox:
        client = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url)
        sandbox.driver.slash_command(user="U0ALICE001", channel="incidents", text="help")

See docs/sandbox.md for what is emulated and what is not.
"""

from bot.sandbox.config import ChannelSpec, UsergroupSpec, UserSpec, WorkspaceConfig
from bot.sandbox.delivery import Attempt, Delivery
from bot.sandbox.driver import AppDriver
from bot.sandbox.errors import DeliveryError, SandboxError, WorkspaceConfigError
from bot.sandbox.server import SandboxOptions, SlackSandbox
from bot.sandbox.workspace import Workspace

__all__ = [
    "AppDriver",
    "Attempt",
    "ChannelSpec",
    "Delivery",
    "DeliveryError",
    "SandboxError",
    "SandboxOptions",
    "SlackSandbox",
    "UserSpec",
    "UsergroupSpec",
    "Workspace",
    "WorkspaceConfig",
    "WorkspaceConfigError",
]
