"""Who is on call now in a PagerDuty or Opsgenie schedule, as Slack user ids.

PagerDuty is read through PagerDuty's official client (``pagerduty`` on PyPI): ``GET
/schedules/{id}/users?since=&until=``, the users on call in the schedule over the next minute.
Opsgenie is read over plain HTTP: ``GET /v2/schedules/{id}/on-calls?flat=true``, whose
``onCallRecipients`` are the on-call users' e-mail addresses (their Opsgenie user names). Both API URLs
are settings, so tests point them at a local server (PagerDuty's client insists on https; a private CA
is trusted through ``SSL_CERT_FILE``). Schedules name people by e-mail; `slack_ids` maps
them to Slack user ids through the RBAC file's ``email`` entries first, then Slack itself. Every
failure becomes `MembershipSourceError` here, at the seam.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediation.errors import JsonGetError, MembershipSourceError
from remediation.guardrails.models import RbacConfig
from remediation.httpget import get_json

PAGERDUTY_API_URL = "https://api.pagerduty.com"
OPSGENIE_API_URL = "https://api.opsgenie.com"
LookupEmail = Callable[[str], str | None]
"""Return the Slack user id of an e-mail address, or None when the workspace has nobody with it."""


@dataclass(frozen=True)
class ScheduleApi:
    """Where and how to read a paging service's schedules."""

    token: str
    url: str
    timeout_s: float = 10.0


def pagerduty_oncall(api: ScheduleApi, schedule_id: str, *, now: datetime) -> tuple[str, ...]:
    """Return the e-mail addresses of the people on call now in a PagerDuty schedule."""
    import pagerduty  # imported when a schedule is read: it costs most CLI commands nothing

    client = pagerduty.RestApiV2Client(api.token, base_url=api.url.rstrip("/"))
    client.timeout = max(1, round(api.timeout_s))
    client.max_network_attempts = (
        0  # no retry here: the refresh job is the retry, a down API must not stall it
    )
    window = {"since": now.isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    try:
        response = client.get(f"/schedules/{urllib.parse.quote(schedule_id)}/users", params=window)
        if not response.is_success:
            raise MembershipSourceError(f"PagerDuty schedule {schedule_id}: HTTP {response.status_code}")
        users = response.json().get("users")
    except pagerduty.Error as exc:
        raise MembershipSourceError(f"PagerDuty schedule {schedule_id}: {exc}") from None
    except ValueError:
        raise MembershipSourceError(f"PagerDuty schedule {schedule_id}: the answer is not JSON") from None
    if not isinstance(users, list):
        raise MembershipSourceError(f"PagerDuty schedule {schedule_id}: no users list in the answer")
    return tuple(str(u["email"]) for u in users if isinstance(u, dict) and u.get("email"))


def opsgenie_oncall(api: ScheduleApi, schedule: str, *, now: datetime) -> tuple[str, ...]:
    """Return the e-mail addresses of the people on call now in an Opsgenie schedule (id or name)."""
    query = urllib.parse.urlencode({"flat": "true", "date": now.isoformat()})
    url = f"{api.url.rstrip('/')}/v2/schedules/{urllib.parse.quote(schedule)}/on-calls?{query}"
    if not _is_id(schedule):
        url += "&scheduleIdentifierType=name"
    try:
        body = get_json(url, timeout=api.timeout_s, headers={"Authorization": f"GenieKey {api.token}"})
    except JsonGetError as exc:
        detail = f"HTTP {exc.status}" if exc.kind == "http" else str(exc)
        raise MembershipSourceError(f"Opsgenie schedule {schedule}: {detail}") from None
    data = body.get("data") if isinstance(body, dict) else None
    recipients = data.get("onCallRecipients") if isinstance(data, dict) else None
    if not isinstance(recipients, list):
        raise MembershipSourceError(f"Opsgenie schedule {schedule}: no onCallRecipients in the answer")
    return tuple(str(r) for r in recipients if r)


def _is_id(schedule: str) -> bool:
    """Return whether an Opsgenie schedule reference looks like an id (a UUID) rather than a name."""
    parts = schedule.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12]


def slack_ids(config: RbacConfig, emails: Iterable[str], lookup: LookupEmail | None) -> tuple[str, ...]:
    """Map e-mail addresses to Slack user ids: the RBAC file's ``email`` entries, then ``lookup``.

    Someone neither knows is left out (logged by the caller's source error only when every lookup fails).
    """
    by_email = {u.email.lower(): uid for uid, u in config.users.items() if u.email}
    found: list[str] = []
    for email in emails:
        uid = by_email.get(email.lower()) or (lookup(email) if lookup is not None else None)
        if uid:
            found.append(uid)
    return tuple(dict.fromkeys(found))
