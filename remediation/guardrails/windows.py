"""Freeze windows: which freezes of the config, and which switched on by hand, cover a target now."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from remediation.guardrails.models import ALL, WEEKDAYS, Freeze, RbacConfig


def _in_window(freeze: Freeze, now: datetime) -> bool:
    if freeze.start is not None and freeze.end is not None:
        return freeze.start <= now < freeze.end
    every = freeze.every
    assert every is not None  # the model guarantees one of the two
    local = now.astimezone(ZoneInfo(every.tz))
    day, clock = WEEKDAYS[local.weekday()], local.time().replace(tzinfo=None)
    if every.start <= every.end:
        return day in every.days and every.start <= clock < every.end
    # Overnight window (22:00-06:00): the part after midnight belongs to the previous day's window.
    previous = WEEKDAYS[(local - timedelta(days=1)).weekday()]
    return (day in every.days and clock >= every.start) or (previous in every.days and clock < every.end)


def active_freezes(
    config: RbacConfig, frozen: Collection[str], target: str | None, now: datetime
) -> list[str]:
    """Return a description of every freeze covering the target now: windows, and ``frozen`` by hand (``*``: all)."""
    found = []
    for freeze in config.freeze.windows:
        covers = ALL in freeze.services or (target is not None and target in freeze.services)
        if covers and _in_window(freeze, now):
            found.append(f"freeze window {freeze.name!r}" + (f" ({freeze.reason})" if freeze.reason else ""))
    if ALL in frozen:
        found.append("the global freeze switched on by hand")
    if target is not None and target in frozen:
        found.append(f"the freeze on {target} switched on by hand")
    return found
