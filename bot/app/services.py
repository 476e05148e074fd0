"""The `Services` bundle the app is built from: store, catalog, RBAC, policy, executor, clock, runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from incidents_db.db import make_sessionmaker, open_store
from playbooks.catalog import Catalog, load_catalog
from playbooks.runbooks import load_runbooks
from remediation.approvals.lease import DEFAULT_LEASE_S, Lease, replica_id
from remediation.approvals.service import Guard
from remediation.executors.base import Executor
from remediation.guardrails.config import load_rbac
from remediation.guardrails.models import RbacConfig
from remediation.policies import Policy, RunbookPolicy
from sim.topology import Topology, resolve_topology


class Runner(Protocol):
    """Runs approved requests in the background (`bot.app.execution.ActionRunner`)."""

    def submit(self, request_id: str, actor: str) -> object:
        """Queue an approved request to run; its outcome reaches the timeline and card when done."""
        ...


def utc_now() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything the listeners call into, built once at start and passed to `build_app`.

    Attributes:
        sessions: session factory of the store.
        catalog: the action catalog.
        rbac: the RBAC and guardrails config.
        policy: the ranking policy (runbook baseline or a learned one), through the protocol only.
        executor: runs approved actions; None means approvals are recorded but nothing runs.
        clock: the time source (tests pin it).
        topology: the service graph incidents are observed on (unknown services join as plain nodes).
        channel: where incident cards go (name or id).
        requester: Slack user id that proposes actions for alert-born incidents (the bot's own id by
            default; it needs a role that may request in the RBAC config).
        alert_secrets: per alert source, a signing secret (``pagerduty``: the webhook subscription's).
        group_window_s: alerts on a service with an open incident updated this recently join it.
        retry_base_s: first outbox retry delay; doubles per attempt up to ``retry_max_s``.
        retry_max_s: longest outbox retry delay (a Retry-After from Slack wins when longer).
        max_attempts: outbox attempts before a message is given up (``dead``).
        top_k: how many suggestions a card shows.
        snapshot_interval_s: a service's metric snapshots join an open incident's timeline at most this
            often (the newest is always kept in the store).
        snapshot_max_age_s: a new incident starts with the kept snapshots at most this old.
        lease_s: how long an execution's claim holds without a heartbeat; recovery (this or another
            replica) marks a run ``unknown`` only once its lease expired.
        heartbeat_s: how often a running execution renews its lease (a third of ``lease_s`` when None).
        action_threads: how many approved actions run at once (the runner's pool; more wait in line).
        replica: this process's owner id in execution leases.
        runner: runs approved requests off the caller's thread (set by `build_app`); None runs them inline.
    """

    sessions: sessionmaker[Session]
    catalog: Catalog
    rbac: RbacConfig
    policy: Policy
    executor: Executor | None = None
    clock: Callable[[], datetime] = utc_now
    topology: Topology | None = None
    channel: str = "incidents"
    requester: str = ""
    alert_secrets: Mapping[str, str] = field(default_factory=dict)
    group_window_s: float = 1800.0
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    max_attempts: int = 12
    top_k: int = 3
    snapshot_interval_s: float = 30.0
    snapshot_max_age_s: float = 300.0
    lease_s: float = DEFAULT_LEASE_S
    heartbeat_s: float | None = None
    action_threads: int = 4
    replica: str = field(default_factory=replica_id)
    runner: Runner | None = field(default=None, repr=False)

    @property
    def lease(self) -> Lease:
        """Return the lease this replica's executions hold (renewed by a heartbeat while they run)."""
        return Lease(owner=self.replica, seconds=self.lease_s, renew_every_s=self.heartbeat_s)

    @property
    def guard(self) -> Guard:
        """Return the approval workflow's view of config, catalog, clock and services."""
        kinds: dict[str, str] = {}
        replicas: dict[str, int] = {}
        if self.topology is not None:
            kinds = dict(zip(self.topology.services, self.topology.kinds, strict=True))
            replicas = {
                s: int(r) for s, r in zip(self.topology.services, self.topology.replicas, strict=True)
            }
        return Guard(
            config=self.rbac, catalog=self.catalog, clock=self.clock, service_kinds=kinds, replicas=replicas
        )


def build_services(
    settings: Settings,
    *,
    policy: Policy | None = None,
    executor: Executor | None = None,
    clock: Callable[[], datetime] | None = None,
    topology: str | Topology | None = "online-boutique",
    engine: Engine | None = None,
    **options: object,
) -> Services:
    """Open the store (migrating it), load catalog and RBAC from settings, and bundle them.

    Args:
        settings: the validated settings.
        policy: the ranking policy; the runbook baseline when None.
        executor: runs approved actions; None records approvals without running anything.
        clock: time source; real UTC time when None.
        topology: built-in name, node-link file or Topology the incidents are observed on; None for none.
        engine: an engine on the store to reuse instead of opening ``settings.effective_database_url``.
        **options: any other `Services` field (``requester``, ``group_window_s``, ...).
    """
    store = engine or open_store(settings.effective_database_url)
    extra = [settings.playbooks_dir] if settings.playbooks_dir else []
    catalog = load_catalog(extra)
    graph = resolve_topology(topology) if topology is not None else None
    runner: dict[str, object] = {
        "lease_s": settings.execution_lease_s,
        "action_threads": settings.action_threads,
    }
    return Services(
        sessions=make_sessionmaker(store),
        catalog=catalog,
        rbac=load_rbac(settings.rbac_config),
        policy=policy or RunbookPolicy(catalog=catalog, runbooks=load_runbooks(catalog, extra)),
        executor=executor,
        clock=clock or utc_now,
        topology=graph,
        channel=settings.incident_channel,
        **{**runner, **options},  # type: ignore[arg-type]
    )
