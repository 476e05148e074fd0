"""Which bot token the outbox worker sends a row with: the home token, or its workspace's installed one.

In OAuth mode (docs/slack.md, Install anywhere) each workspace has its own bot token in the
installation store. A row goes out with the token of the workspace it is for: the row's
``workspace`` (a reply to a person, queued inside `acting_in`) or its incident's (a card, a thread
reply). Home rows use
``SLACK_BOT_TOKEN``, or the installed bot of ``home_team_id`` when no token is set. Each workspace
keeps its own `SlackCalls` (channel ids and the bot's identity differ per workspace); a token is
looked up again after `RECHECK_S`, so a reinstall's new token is used without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import tracing
from bot.notify.errors import Retry
from bot.notify.slack_calls import SlackCalls
from bot.services import Services
from incidents_db import outbox
from incidents_db.installations import workspace_of

RECHECK_S = 60.0
_ACTING_IN: ContextVar[str | None] = ContextVar("remediate_workspace", default=None)


@contextmanager
def acting_in(workspace: str | None) -> Iterator[None]:
    """Queue the replies of the block for ``workspace`` (None: home): a listener answering a person."""
    token = _ACTING_IN.set(workspace)
    try:
        yield
    finally:
        _ACTING_IN.reset(token)


def tagged(payload: dict[str, Any]) -> dict[str, Any]:
    """Return an outbox payload with the trace's carrier and, away from home, the ``workspace`` it is for."""
    workspace = _ACTING_IN.get()
    out = tracing.tagged(payload)
    return {**out, "workspace": workspace} if workspace is not None else out


def bot_token(services: Services, workspace: str) -> str | None:
    """Return the installed bot token of a workspace (``T...``) or org-wide install (``E...``), if any."""
    store = services.installations
    if store is None:
        return None
    org = workspace.startswith("E")
    bot = store.find_bot(
        enterprise_id=workspace if org else None,
        team_id=None if org else workspace,
        is_enterprise_install=org,
    )
    return bot.bot_token if bot is not None else None


class WorkspaceCalls:
    """One `SlackCalls` per workspace the worker sends to; the home one is built from the app's client."""

    def __init__(self, services: Services, client: WebClient) -> None:
        self.services = services
        self.home = SlackCalls(services, client)
        self._installed: dict[str, tuple[SlackCalls, float]] = {}  # workspace -> (calls, looked up at)

    def for_message(self, session: Session, message: outbox.Message) -> SlackCalls:
        """Return the calls (and so the token) a row is sent with; a workspace not installed is fatal."""
        workspace: Any = message.payload.get("workspace")
        if workspace is None and message.incident_id is not None:
            workspace = workspace_of(db_session=session, incident_id=message.incident_id)[1]
        if workspace is None:
            home = self.services.settings.home_team_id
            if self.home.client.token or home is None:
                return self.home
            workspace = home
        return self._calls(str(workspace))

    def _calls(self, workspace: str) -> SlackCalls:
        known = self._installed.get(workspace)
        if known is not None and time.monotonic() - known[1] < RECHECK_S:
            return known[0]
        token = bot_token(self.services, workspace)
        if token is None:
            raise Retry(0, f"workspace {workspace} has no installation; install the app there", fatal=True)
        if known is not None and known[0].client.token == token:
            calls = known[0]
        else:
            home = self.home.client
            client = WebClient(token=token, base_url=home.base_url, timeout=home.timeout, retry_handlers=[])
            calls = SlackCalls(self.services, client)
        self._installed[workspace] = (calls, time.monotonic())
        return calls
