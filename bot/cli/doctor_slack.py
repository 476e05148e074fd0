"""`remediate doctor`'s Slack checks: token (`auth.test`), scopes, the incident channel, the clock.

One `auth.test` call answers three questions: is the token valid, which scopes does it carry (Slack
lists them in the ``X-OAuth-Scopes`` header of every answer to a token) and what time Slack's servers
say it is (the ``Date`` header; request signatures older than five minutes are refused).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from bot.cli.doctor_checks import FAIL, OK, SKIP, WARN, Check
from bot.settings import Settings

BASE_SCOPES = ("app_mentions:read", "chat:write", "commands")
PUBLIC_SCOPES = ("channels:read", "channels:history")
PRIVATE_SCOPES = ("groups:read", "groups:history")
CLOCK_WARN_S, CLOCK_FAIL_S = 30.0, 300.0  # Slack refuses request signatures five minutes old
TOKEN_ERRORS = {
    "not_authed": "no token reached Slack",
    "invalid_auth": "Slack does not know this token",
    "account_inactive": "the token's app or user was deactivated",
    "token_revoked": "the token was revoked",
    "token_expired": "the token expired (token rotation is on)",
}
FIX_TOKEN = (
    "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-) under OAuth & Permissions of the Slack app; "
    "reinstall the app if it was revoked"
)
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,}")


@dataclass
class Answer:
    """One Web API answer: reached at all, its JSON body and the headers doctor reads."""

    reached: bool
    body: dict[str, Any] = field(default_factory=dict)
    scopes: frozenset[str] | None = None
    server_date: datetime | None = None
    problem: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # what the Date is compared with


def call(
    settings: Settings, method: str, params: dict[str, str] | None = None, timeout: float = 20.0
) -> Answer:
    """POST one Web API method with the bot token; never raise for a network problem (say it)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    request = urllib.request.Request(
        settings.slack_api_url + method,
        data=urllib.parse.urlencode(params or {}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw, headers = resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        raw, headers = exc.read(), exc.headers
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(False, problem=f"cannot reach {settings.slack_api_url}: {reason}")
    scopes = headers.get("X-OAuth-Scopes")
    try:
        date = parsedate_to_datetime(headers["Date"]) if headers.get("Date") else None
    except (TypeError, ValueError):
        date = None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"ok": False, "error": f"not JSON (HTTP answer of {len(raw)} bytes)"}
    granted = frozenset(s.strip() for s in scopes.split(",") if s.strip()) if scopes is not None else None
    return Answer(True, body if isinstance(body, dict) else {"ok": False}, granted, date)


def check_token(settings: Settings, answer: Answer | None) -> Check:
    """SLACK_BOT_TOKEN set and accepted by `auth.test`."""
    if settings.slack_bot_token is None or answer is None:
        return Check("slack token", FAIL, "SLACK_BOT_TOKEN is not set", FIX_TOKEN)
    if not answer.reached:
        return Check(
            "slack token",
            FAIL,
            answer.problem,
            "check SLACK_API_URL (default https://slack.com/api/) and the proxy",
        )
    if not answer.body.get("ok"):
        error = str(answer.body.get("error"))
        return Check(
            "slack token", FAIL, f"auth.test: {error} ({TOKEN_ERRORS.get(error, 'refused')})", FIX_TOKEN
        )
    body = answer.body
    detail = f"bot {body.get('user')} ({body.get('user_id')}) in {body.get('team')} ({body.get('team_id')})"
    return Check("slack token", OK, detail)


def needed_scopes(private: bool | None, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Return the bot scopes the configured set-up uses (the incident channel's kind decides two)."""
    return (*BASE_SCOPES, *(PRIVATE_SCOPES if private else PUBLIC_SCOPES), *extra)


def channel_scopes(settings: Settings) -> tuple[str, ...]:
    """Return what incident channels need when on: channels:manage, or groups:write for private ones."""
    if not settings.incident_channels:
        return ()
    return ("groups:write",) if settings.incident_channel_private else ("channels:manage",)


def check_scopes(answer: Answer | None, private: bool | None, extra: tuple[str, ...] = ()) -> Check:
    """Every scope the set-up needs is granted to the token."""
    if answer is None or not answer.body.get("ok"):
        return Check("slack scopes", SKIP, "needs a working token")
    if answer.scopes is None:
        return Check(
            "slack scopes",
            WARN,
            "Slack listed no scopes (no X-OAuth-Scopes header)",
            "compare OAuth & Permissions with deploy/slack/manifest.yaml",
        )
    missing = [s for s in needed_scopes(private, extra) if s not in answer.scopes]
    if missing:
        return Check(
            "slack scopes",
            FAIL,
            f"missing {', '.join(missing)}",
            f"add {', '.join(missing)} under OAuth & Permissions → Bot Token Scopes (deploy/slack/manifest.yaml "
            "lists them), then reinstall the app",
        )
    return Check("slack scopes", OK, ", ".join(needed_scopes(private, extra)))


def find_channel(settings: Settings, name: str) -> tuple[dict[str, Any] | None, str]:
    """Return the incident channel as Slack shows it (by id or name), or None and why not."""
    if CHANNEL_ID.fullmatch(name):
        answer = call(settings, "conversations.info", {"channel": name})
        if answer.body.get("ok"):
            return dict(answer.body["channel"]), ""
        return None, str(answer.body.get("error") or answer.problem)
    cursor = ""
    for _ in range(50):  # 50 pages of 200: far beyond any workspace's channel list
        params = {"types": "public_channel,private_channel", "limit": "200", "exclude_archived": "true"}
        answer = call(settings, "conversations.list", {**params, **({"cursor": cursor} if cursor else {})})
        if not answer.body.get("ok"):
            return None, str(answer.body.get("error") or answer.problem)
        for channel in answer.body.get("channels", []):
            if channel.get("name") == name:
                return dict(channel), ""
        cursor = str((answer.body.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            break
    return None, "channel_not_found"


def check_channel(settings: Settings, answer: Answer | None) -> tuple[Check, bool | None]:
    """The incident channel exists and the bot is a member; also return whether it is private."""
    name = settings.incident_channel.lstrip("#")
    if answer is None or not answer.body.get("ok"):
        return Check("incident channel", SKIP, "needs a working token"), None
    channel, why = find_channel(settings, name)
    if channel is None:
        if why == "missing_scope":
            return Check(
                "incident channel", FAIL, f"#{name}: cannot list channels ({why})", "grant channels:read"
            ), None
        fix = (
            f"create #{name} (a private one: invite the bot first) or set REMEDIATE_INCIDENT_CHANNEL "
            "to an existing channel"
        )
        return Check("incident channel", FAIL, f"#{name}: {why}", fix), None
    private = bool(channel.get("is_private"))
    shown = f"#{channel.get('name', name)} ({channel.get('id')}{', private' if private else ''})"
    if not channel.get("is_member"):
        fix = f"type `/invite @{answer.body.get('user') or 'remediate'}` in #{channel.get('name', name)}"
        return Check("incident channel", FAIL, f"{shown}: the bot is not a member", fix), private
    return Check("incident channel", OK, f"{shown}, the bot is a member"), private


def check_clock(answer: Answer | None, now: datetime | None = None) -> Check:
    """This machine's clock agrees with Slack's (its Date header) within what signatures tolerate."""
    if answer is None or answer.server_date is None:
        return Check("clock", SKIP, "no answer from Slack with a Date header")
    skew = ((now or answer.received_at) - answer.server_date).total_seconds()
    detail = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} Slack's clock"
    fix = "sync the clock (NTP: `timedatectl set-ntp true` or chrony); Slack refuses signatures 5 min off"
    if abs(skew) > CLOCK_FAIL_S:
        return Check("clock", FAIL, detail, fix)
    if abs(skew) > CLOCK_WARN_S:
        return Check("clock", WARN, detail, fix)
    return Check("clock", OK, f"within {max(abs(skew), 1):.0f} s of Slack's")


def slack_checks(settings: Settings) -> tuple[list[Check], str | None]:
    """Return the token, scopes, channel and clock checks, in that order, and the bot's user id if known."""
    answer = call(settings, "auth.test") if settings.slack_bot_token is not None else None
    token = check_token(settings, answer)
    working = answer if token.status == OK else None
    channel, private = check_channel(settings, working)
    clock = check_clock(answer if answer and answer.reached else None)
    bot_user = str(working.body.get("user_id") or "") if working is not None else ""
    scopes = check_scopes(working, private, channel_scopes(settings))
    return [token, scopes, channel, clock], bot_user or None
