"""What `serve` ranks with: a `LivePolicy` (promoted > bundled > runbook with ``auto``) kept in step with the registry.

A scheduled check every ``policy_reload_s`` (at most 30 s) reads the registry's active versions, so a
promote, rollback, shadow or canary change reaches every running replica without a restart; an artifact
that fails its SHA-256 check or does not load leaves the serving policy in place and says why in the log
and on /healthz (docs/policy.md).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bot.services import Services
from bot.settings import Settings
from playbooks.catalog import load_catalog
from playbooks.runbooks import load_runbooks
from remediation.policies import RunbookPolicy
from remediation.registry.live import LivePolicy

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("remediate.policy")


def build_live_policy(engine: Engine | None, settings: Settings) -> LivePolicy:
    """Return the serving policy ``settings.policy`` asks for; a version named explicitly must load (else refused)."""
    from remediation.registry.bundle import BUNDLED_DIR, serving_loader  # torch: only when serving
    from remediation.registry.workflow import load_policy

    extra = [settings.playbooks_dir] if settings.playbooks_dir else []
    catalog = load_catalog(extra)
    runbook = RunbookPolicy(catalog=catalog, runbooks=load_runbooks(catalog, extra))
    ref = settings.policy
    pinned = None
    if ref not in ("auto", "runbook"):
        if engine is None:
            raise ValueError(f"policy {ref!r} needs the store to load it")
        pinned = load_policy(engine=engine, ref=ref)
    live = LivePolicy(engine=engine, mode=ref if pinned is None else "pinned", runbook=runbook,
                      loader=serving_loader, bundled=BUNDLED_DIR, pinned=pinned)  # fmt: skip
    live.start()
    return live


def check_policy(services: Services) -> None:
    """One reload check (a scheduled job): never raises, a failure is retried at the next tick."""
    policy = services.policy
    if not isinstance(policy, LivePolicy):
        return
    try:
        if policy.check():
            log.info("policy now %s (shadow %s, canary %s)", policy.name, policy.status()["shadow"],
                     policy.status()["canary"])  # fmt: skip
    except Exception:  # the store may be away for a moment; the serving policy stays
        log.exception("checking the registry's active policy versions failed")


def start_policy_reload(scheduler: BackgroundScheduler, services: Services) -> None:
    """Check the registry every ``policy_reload_s`` in this process."""
    if isinstance(services.policy, LivePolicy):
        seconds = services.settings.policy_reload_s
        scheduler.add_job(check_policy, "interval", seconds=seconds, args=[services], id="policy-reload",
                          max_instances=1, coalesce=True)  # fmt: skip
