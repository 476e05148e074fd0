"""RBAC kept current without a restart: the file reloaded, groups' sources read again (docs/safety.md).

* The RBAC file is reloaded when its mtime changes (checked every ``rbac_reload_s``) and on SIGHUP. A
  file that fails validation changes nothing: the running config stays, and the refusal is logged and
  audited (``rbac_reload`` denied); a good one is audited too (``rbac_reload`` allowed).
* Groups naming a source (``slack_usergroup``, ``pagerduty_schedule``, ``opsgenie_schedule``) are read
  again every ``rbac_refresh_s``, and a Slack user group at once on Slack's ``subteam_members_changed``.
  With the OAuth install a user group is read with the bot token of its own workspace (``T.../S...``;
  a plain ``S...`` is the home workspace's), and its members are named as that workspace's people.
* `services.rbac` is swapped whole (one assignment) after each, so a reader sees one config; what the
  sources named lives in this process (`MembershipCache`), each replica reading them itself.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.app.tenancy import workspace_key
from bot.notify.workspaces import bot_token
from bot.services import Services
from bot.settings import Settings
from remediation.audit.service import append
from remediation.errors import GuardrailConfigError, MembershipSourceError
from remediation.guardrails.config import load_rbac
from remediation.guardrails.membership import MembershipCache, Source, refresh, sources
from remediation.guardrails.models import RbacConfig
from remediation.guardrails.oncall import ScheduleApi, opsgenie_oncall, pagerduty_oncall, slack_ids
from remediation.guardrails.workspaces import qualified, split

log = logging.getLogger("remediate.rbac")
ACTOR = "remediate"
TokenOf = Callable[[str], str | None]
"""Return the installed bot token of a workspace (``T...``, or ``E...`` for an org-wide install), if any."""


def read_source(
    kind: str,
    ref: str,
    *,
    settings: Settings,
    client: WebClient,
    config: RbacConfig,
    now: datetime,
    token_of: TokenOf | None = None,
) -> tuple[str, ...]:
    """Return the Slack user ids a group's source names now; `MembershipSourceError` when it cannot be read.

    Schedules name people by e-mail: the RBAC file's ``email`` entries map them, then ``users.lookupByEmail``.
    """
    if kind == "slack_usergroup":
        return usergroup_members(ref, settings=settings, client=client, token_of=token_of)
    secret = settings.pagerduty_api_token if kind == "pagerduty_schedule" else settings.opsgenie_api_key
    if secret is None:
        name = "pagerduty_api_token" if kind == "pagerduty_schedule" else "opsgenie_api_key"
        raise MembershipSourceError(f"{kind} {ref}: the setting {name} is not set")
    if kind == "pagerduty_schedule":
        emails = pagerduty_oncall(
            ScheduleApi(secret.get_secret_value(), settings.pagerduty_api_url), ref, now=now
        )
    else:
        emails = opsgenie_oncall(
            ScheduleApi(secret.get_secret_value(), settings.opsgenie_api_url), ref, now=now
        )

    def lookup(email: str) -> str | None:  # a person of the home workspace (its bot's token)
        reader = _reader(None, settings=settings, client=client, token_of=token_of, what=f"{kind} {ref}")
        try:
            found = _slack(reader, "users.lookupByEmail", email=email)
        except MembershipSourceError as exc:
            if "users_not_found" in str(exc):
                return None
            raise
        return str(found.get("user", {}).get("id") or "") or None

    return slack_ids(config, emails, lookup)


def usergroup_members(
    ref: str, *, settings: Settings, client: WebClient, token_of: TokenOf | None
) -> tuple[str, ...]:
    """Return a Slack user group's members, read with the bot token of the workspace the group belongs to.

    ``S...`` is a group of the home workspace, read with ``client`` (or, in OAuth mode without a token,
    the bot installed in ``home_team_id``); ``T.../S...`` one of another workspace, read with the bot
    installed there, its members named ``T.../U...`` as the RBAC file and approvals name them.
    """
    workspace, group = split(ref)
    workspace = None if workspace == settings.home_team_id else workspace
    reader = _reader(
        workspace, settings=settings, client=client, token_of=token_of, what=f"Slack user group {ref}"
    )
    users = _slack(reader, "usergroups.users.list", usergroup=group).get("users", [])
    return tuple(qualified(workspace, str(u)) for u in users)


def _reader(
    workspace: str | None, *, settings: Settings, client: WebClient, token_of: TokenOf | None, what: str
) -> WebClient:
    """Return a client with the bot token of ``workspace`` (None: home, ``client`` when it has a token)."""
    home = settings.home_team_id
    if workspace is None and (client.token or home is None):
        return client
    where = workspace or str(home)
    token = token_of(where) if token_of is not None else None
    if token is None:
        raise MembershipSourceError(
            f"{what}: workspace {where} has no installation here; install the app there"
        )
    return WebClient(token=token, base_url=client.base_url, timeout=client.timeout)


def _slack(client: WebClient, method: str, **params: Any) -> dict[str, Any]:
    """Call a Web API read method; Slack's and the network's errors become `MembershipSourceError`."""
    try:
        return dict(client.api_call(method, http_verb="GET", params=params).data)  # type: ignore[arg-type]
    except SlackApiError as exc:
        raise MembershipSourceError(f"Slack {method}: {exc.response.get('error', 'error')}") from None
    except (SlackClientError, OSError) as exc:
        raise MembershipSourceError(f"Slack {method}: {exc}") from None


def resolve_now(config: RbacConfig, *, settings: Settings, client: WebClient, now: datetime) -> RbacConfig:
    """Return ``config`` with its groups' sources read once now (`remediate rbac check`); failures grant nothing."""
    cache = MembershipCache()
    fetch = partial(read_source, settings=settings, client=client, config=config, now=now)
    refresh(config, cache, fetch, now=now)
    return config.with_resolved(cache.resolve(config, now=now, keep_s=settings.rbac_keep_s))


class Roster:
    """Holds the RBAC file's config and its groups' sources' answers; keeps `services.rbac` current."""

    def __init__(self, services: Services, client: WebClient) -> None:
        self.services, self.client = services, client
        self.path: Path | None = services.settings.rbac_config
        self.file = services.rbac  # as the file says, without what sources name
        self.cache = MembershipCache()
        self._mtime = self._stat()
        self._lock = threading.Lock()  # one reload or refresh at a time

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime if self.path is not None else None
        except OSError:
            return None

    # --- sources ---------------------------------------------------------------------------------
    def fetch(self, kind: str, ref: str) -> tuple[str, ...]:
        """Return the Slack user ids a source names now; `MembershipSourceError` when it cannot be read."""
        return read_source(kind, ref, settings=self.services.settings, client=self.client, config=self.file,
                           now=self.services.clock(), token_of=partial(bot_token, self.services))  # fmt: skip

    def refresh(self, only: Source | None = None) -> dict[Source, str]:
        """Read the sources again (or only one), then swap in the config they give; return the failures."""
        with self._lock:
            errors = refresh(self.file, self.cache, self.fetch, now=self.services.clock(), only=only)
            self._apply()
        return errors

    def start(self) -> None:
        """Read the sources once at start when the file names any, so the first approvals see them."""
        if sources(self.file):
            self.refresh()

    def _apply(self) -> None:
        """Swap `services.rbac` for the file's config plus what the sources name now (failure rule applied)."""
        settings = self.services.settings
        resolved = self.cache.resolve(self.file, now=self.services.clock(), keep_s=settings.rbac_keep_s)
        self.services.rbac = self.file.with_resolved(resolved)

    def subteam_changed(self, subteam_id: str, workspace: str | None = None) -> None:
        """Read one Slack user group again (Slack said its members changed), when the config names it.

        ``workspace`` is where the event came from (None: home): the file names that group ``T.../S...``.
        """
        home = self.services.settings.home_team_id
        refs = {
            qualified(workspace, subteam_id),
            *([f"{home}/{subteam_id}"] if workspace is None and home else []),
        }
        for source in [("slack_usergroup", ref) for ref in sorted(refs)]:
            if source in sources(self.file):
                self.refresh(only=source)

    # --- the file ----------------------------------------------------------------------------------
    def reload(self, why: str) -> bool:
        """Load the RBAC file again; keep the running config when it fails validation. Audited either way."""
        with self._lock:
            self._mtime = self._stat()
            try:
                config = load_rbac(self.path)
            except GuardrailConfigError as exc:
                log.error(
                    "RBAC reload (%s) refused, keeping policy %s: %s", why, self.file.policy_version, exc
                )
                self._audit("denied", f"{why}: kept {self.file.policy_version}; {exc}")
                return False
            self.file = config
            self._apply()
        self._audit("allowed", f"{why}: now {config.policy_version}")
        log.info("RBAC reloaded (%s): policy %s", why, config.policy_version)
        self.refresh()  # a source the new file names is read at once
        return True

    def _audit(self, decision: str, reason: str) -> None:
        try:
            with self.services.sessions() as s:
                append(
                    db_session=s, actor=ACTOR, event="rbac_reload", decision=decision, reason=reason[:1000],
                    policy_version=self.services.rbac.policy_version,
                )  # fmt: skip
                s.commit()
        except Exception:  # the reload itself stands; the log has it
            log.exception("cannot audit an RBAC reload")

    def poll(self) -> None:
        """The frequent job: reload when the file changed; let stale members expire on time. Never raises."""
        try:
            if self.path is not None and self._stat() != self._mtime:
                self.reload("file changed")
            with self._lock:
                self._apply()
        except Exception:  # the scheduler must keep running
            log.exception("RBAC file check failed")

    def refresh_job(self) -> None:
        """The scheduled read of every source. Never raises."""
        try:
            self.refresh()
        except Exception:
            log.exception("RBAC group refresh failed")

    def schedule(self, scheduler: BaseScheduler) -> None:
        """Add the file check and the source refresh to a scheduler; both run on every replica."""
        settings = self.services.settings
        for func, every, job_id in (
            (self.poll, settings.rbac_reload_s, "rbac-reload"),
            (self.refresh_job, settings.rbac_refresh_s, "rbac-refresh-groups"),
        ):
            scheduler.add_job(
                func,
                "interval",
                seconds=every,
                id=job_id,
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )

    def sighup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP handler: reload on a thread of its own (not inside the signal handler)."""
        threading.Thread(target=self.reload, args=("SIGHUP",), name="rbac-reload", daemon=True).start()

    def install_sighup(self) -> None:
        """Reload the RBAC file on SIGHUP (call from the main thread)."""
        signal.signal(signal.SIGHUP, self.sighup)

    def mount(self, bolt: App, after_ack: Callable[..., None]) -> None:
        """Listen for Slack's ``subteam_members_changed`` (register before any catch-all event listener).

        ``after_ack`` is the listeners' (`bot.app.listeners`): split in two processes, both read the group.
        """

        @bolt.event("subteam_members_changed")
        def on_subteam_change(ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
            ack()
            subteam, workspace = str(event.get("subteam_id", "")), workspace_key(self.services, body)
            after_ack(lambda: self._changed_logged(subteam, workspace), also_here=True)

    def _changed_logged(self, subteam_id: str, workspace: str | None = None) -> None:
        try:
            self.subteam_changed(subteam_id, workspace)
        except Exception:
            log.exception("refreshing user group %s failed", subteam_id)
