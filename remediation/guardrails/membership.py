"""Group members named by a source (Slack user group, on-call schedule), cached with their age.

`MembershipCache` keeps each source's last answer, keyed by ``(kind, id)`` so that a reloaded file
naming the same source keeps it. `refresh` asks the sources of a config's groups again; `resolve`
turns the cache into what `roles_of` reads (``RbacConfig.resolved``). The failure rule: a source that
fails keeps its last known members until they are older than ``keep_s``, then grants nothing; a
failure never adds anyone (docs/safety.md, "Groups from Slack and on-call schedules").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from remediation.errors import MembershipSourceError
from remediation.guardrails.models import RbacConfig, Resolved

log = logging.getLogger("remediate.rbac")
Source = tuple[str, str]  # (kind, id): ("slack_usergroup", "S0ONCALL01")
Fetch = Callable[[str, str], tuple[str, ...]]
"""Return the Slack user ids a source names now (kind, id); raise `MembershipSourceError` when it cannot."""


@dataclass(frozen=True)
class _Seen:
    members: tuple[str, ...] = ()
    as_of: datetime | None = None  # when the source last answered
    failing_since: datetime | None = None
    error: str = ""


def sources(config: RbacConfig) -> dict[Source, list[str]]:
    """Return each source the config's groups name, with the ids of the groups that name it."""
    found: dict[Source, list[str]] = {}
    for gid, group in config.groups.items():
        if group.source is not None:
            found.setdefault(group.source, []).append(gid)
    return found


class MembershipCache:
    """The last answer of each source; shared by the scheduled refresh, the Slack event and reloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Source, _Seen] = {}

    def succeeded(self, source: Source, members: Iterable[str], at: datetime) -> None:
        """Record what a source answered at ``at``: these members replace the last ones."""
        with self._lock:
            self._seen[source] = _Seen(members=tuple(sorted(set(members))), as_of=at)

    def failed(self, source: Source, error: str, at: datetime) -> None:
        """Record that a source failed at ``at``; its last answer stays (it ages, see `resolve`)."""
        with self._lock:
            seen = self._seen.get(source, _Seen())
            self._seen[source] = replace(seen, failing_since=seen.failing_since or at, error=error)

    def resolve(self, config: RbacConfig, *, now: datetime, keep_s: float) -> dict[str, Resolved]:
        """Return, per group with a source, the members it grants now under the failure rule."""
        keep = timedelta(seconds=keep_s)
        out: dict[str, Resolved] = {}
        with self._lock:
            seen_now = dict(self._seen)
        for (kind, ref), group_ids in sources(config).items():
            seen = seen_now.get((kind, ref), _Seen(error="not asked yet"))
            failing = seen.failing_since is not None or seen.as_of is None
            expired = failing and (seen.as_of is None or now - seen.as_of > keep)
            resolved = Resolved(
                kind=kind, ref=ref, members=() if expired else seen.members, as_of=seen.as_of,
                failing_since=seen.failing_since, error=seen.error, expired=expired and seen.as_of is not None,
                last_members=seen.members,
            )  # fmt: skip
            out.update({gid: resolved for gid in group_ids})
        return out


def refresh(
    config: RbacConfig, cache: MembershipCache, fetch: Fetch, *, now: datetime, only: Source | None = None
) -> dict[Source, str]:
    """Ask every source the config names (or only ``only``) again; return the errors of those that failed.

    A failure is logged and recorded in the cache (the last answer stays and ages); it never raises.
    """
    errors: dict[Source, str] = {}
    for source in sources(config):
        if only is not None and source != only:
            continue
        try:
            members = fetch(*source)
        except MembershipSourceError as exc:
            log.warning("cannot read the members of %s %s, keeping the last known: %s", *source, exc)
            cache.failed(source, str(exc), now)
            errors[source] = str(exc)
            continue
        cache.succeeded(source, members, now)
    return errors
