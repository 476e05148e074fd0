"""Slack's OAuth v2 install, as the sandbox plays it: the authorize page and `oauth.v2.access`.

A person "allows" the app at ``GET /oauth/v2/authorize?client_id=..&scope=..&state=..&redirect_uri=..``
(``team=T...`` picks which sandbox workspace installs it, the first one when absent; ``enterprise=E...``
makes it an Enterprise Grid org-wide install, as an org admin's Allow does): the sandbox
answers 302 to ``redirect_uri?code=...&state=...`` as Slack does after the Allow button. The code is
good for one `oauth.v2.access` call, which answers that workspace's bot token in Slack's shape; an
unknown or used code gets ``invalid_code``, a wrong client id or secret ``invalid_client_id`` or
``bad_client_secret``. Tests may also mint a code directly with `issue_code`.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode

from bot.sandbox.errors import ApiError, SandboxError
from bot.sandbox.workspace import Workspace

OAUTH_V2_ACCESS = "oauth.v2.access"
AUTHORIZE_PATH = "/oauth/v2/authorize"


class OAuthDesk:
    """Hands out one-use install codes per workspace and exchanges them for the workspace's bot token."""

    def __init__(
        self, teams: dict[str, Workspace], *, client_id: str | None = None, client_secret: str | None = None
    ) -> None:
        self.teams = teams
        self.client_id = client_id
        self.client_secret = client_secret
        self._codes: dict[
            str, tuple[str, str | None]
        ] = {}  # code -> (team id, enterprise id of an org install)
        self._count = 0
        self._lock = threading.Lock()

    def issue_code(self, team_id: str | None = None, *, enterprise_id: str | None = None) -> str:
        """Return a fresh one-use code installing the app into ``team_id`` (the first workspace when None).

        With ``enterprise_id`` the install is org-wide (``is_enterprise_install``): no team in the answer.
        """
        team = team_id or next(iter(self.teams))
        if team not in self.teams:
            raise SandboxError(f"no sandbox workspace {team!r}; known: {', '.join(self.teams)}")
        with self._lock:
            self._count += 1
            code = f"sandbox-code-{self._count}-{team}"
            self._codes[code] = (team, enterprise_id)
        return code

    def authorize(self, query: dict[str, str]) -> str:
        """Return where the Allow button sends the browser: the redirect URL with a code and the state."""
        redirect = query.get("redirect_uri", "")
        if not redirect.startswith(("http://", "https://")):
            raise SandboxError("redirect_uri must be the app's http(s) /slack/oauth_redirect URL")
        if self.client_id is not None and query.get("client_id") != self.client_id:
            raise SandboxError("invalid_client_id")
        code = self.issue_code(query.get("team") or None, enterprise_id=query.get("enterprise") or None)
        separator = "&" if "?" in redirect else "?"
        return redirect + separator + urlencode({"code": code, "state": query.get("state", "")})

    def access(self, args: dict[str, Any]) -> dict[str, Any]:
        """Answer `oauth.v2.access`: the installed workspace's bot token for a good code, once."""
        if self.client_id is not None and str(args.get("client_id", "")) != self.client_id:
            raise ApiError("invalid_client_id")
        if self.client_secret is not None and str(args.get("client_secret", "")) != self.client_secret:
            raise ApiError("bad_client_secret")
        with self._lock:
            found = self._codes.pop(str(args.get("code", "")), None)
        if found is None:
            raise ApiError("invalid_code")
        team, enterprise = found
        cfg = self.teams[team].config
        return {
            "ok": True,
            "app_id": cfg.app_id,
            "authed_user": {"id": cfg.users[0].id if cfg.users else cfg.bot_user_id},
            "scope": ",".join(cfg.bot_scopes),
            "token_type": "bot",
            "access_token": cfg.bot_tokens[0],
            "bot_user_id": cfg.bot_user_id,
            "team": None if enterprise else {"id": cfg.team_id, "name": cfg.team_name},
            "enterprise": {"id": enterprise, "name": f"{enterprise} org"} if enterprise else None,
            "is_enterprise_install": enterprise is not None,
        }
