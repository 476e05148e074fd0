"""Times and durations as people read them on Slack.

A time on a card is Slack's date token ``<!date^EPOCH^FORMAT|FALLBACK>``: Slack shows it in each
reader's own time zone and locale ("Today at 10:36 AM"); the fallback (UTC, minutes) is what clients
that cannot format it, notifications and the local sandbox show. Durations read "4 min", "1 h 5 min".
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.notify.mrkdwn import escape

SHORT = "{date_short_pretty} {time}"  # "Dec 1 10:36 AM", "Today 10:36 AM"
CLOCK = "{time_secs}"  # "10:36:30 AM"


def parse_time(value: object) -> datetime | None:
    """Return an ISO 8601 time (``Z`` or an offset; naive means UTC) as an aware datetime, or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fallback_text(when: datetime, *, seconds: bool = False) -> str:
    """Return the readable UTC form a date token falls back to: ``2026-12-01 10:36 UTC``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def slack_date(value: object, token_format: str = SHORT) -> str:
    """Return Slack's date token for ``value`` with a UTC fallback; an unreadable time escaped as given."""
    when = parse_time(value)
    if when is None:
        return escape(value) if value not in (None, "") else "unknown"
    fallback = fallback_text(when, seconds=token_format == CLOCK)
    return f"<!date^{int(when.timestamp())}^{token_format}|{fallback}>"


def duration(seconds: float | None) -> str:
    """Return a duration as people say it: ``under 1 min``, ``4 min``, ``2 h``, ``1 h 5 min``."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN, negative: nothing to say
        return "unknown"
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")
