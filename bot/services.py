"""The `Services` bundle the app is built from: store, catalog, RBAC, policy, executor, clock, runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import SecretStr
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import tracing
from bot.metrics import Metrics
from bot.settings import Settings
from incidents_db.db import make_sessionmaker, open_store
from incidents_db.installations import installation_store, state_store
from playbooks.catalog import Catalog, load_catalog
from playbooks.runbooks import load_runbooks
from playbooks.vocabulary import Vocabulary, load_vocabulary
from remediation.approvals.lease import Lease, replica_id
from remediation.approvals.service import Guard
from remediation.executors.base import Executor
from remediation.executors.build import ExecutorConfig, node_namespaces
from remediation.guardrails.config import load_rbac
from remediation.guardrails.models import RbacConfig
from remediation.policies import Policy, RunbookPolicy
from remediation.similar.memory import SimilarMemory
from sim.observation import ALERTS
from sim.resolve import resolve_topology
from sim.topology import Topology


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
    """Everything the listeners call into, built once at start from the settings and passed to `build_app`.

    Only built objects live here; every knob (channel, requester, grouping window, top-k, retries,
    snapshots, lease, threads) is read from ``settings``.

    Attributes:
        settings: the validated settings these services were built from.
        sessions: session factory of the store.
        catalog: the action catalog.
        rbac: the RBAC and guardrails config.
        policy: the ranking policy (runbook baseline or a learned one), through the protocol only.
        executor: runs approved actions; None means approvals are recorded but nothing runs.
        clock: the time source (tests pin it).
        topology: the service graph incidents are observed on (unknown services join as plain nodes);
            a scheduled rediscovery swaps it whole (`bot.feeds.refresh`).
        topology_status: where the graph came from, its last refresh, change and error (for /healthz).
        replica: this process's owner id in execution leases.
        runner: runs approved requests off the caller's thread (set by `build_app`); None runs them inline.
        vocabulary: real alert names -> the policy's signals, and the monitoring components to skip.
        metrics: this app's Prometheus counters on its own registry (`bot.metrics`).
        similar: past incidents and their fixes for the cards; grows as incidents resolve (`bot.notify.similar`).
        installations: OAuth mode: slack_sdk's installation store on the store's engine (a bot token per
            workspace); None with one token (`incidents_db.installations`, docs/slack.md).
        oauth_states: OAuth mode: the install flow's one-use state store on the same engine; else None.
    """

    settings: Settings
    sessions: sessionmaker[Session]
    catalog: Catalog
    rbac: RbacConfig
    policy: Policy
    executor: Executor | None = None
    clock: Callable[[], datetime] = utc_now
    topology: Topology | None = None
    topology_status: dict[str, Any] = field(default_factory=dict)
    replica: str = field(default_factory=replica_id)
    runner: Runner | None = field(default=None, repr=False)
    vocabulary: Vocabulary = field(default_factory=lambda: load_vocabulary(ALERTS), repr=False)
    metrics: Metrics = field(default_factory=Metrics, repr=False)
    similar: SimilarMemory = field(default_factory=SimilarMemory, repr=False)
    installations: InstallationStore | None = field(default=None, repr=False)
    oauth_states: OAuthStateStore | None = field(default=None, repr=False)

    @property
    def lease(self) -> Lease:
        """Return the lease this replica's executions hold (renewed by a heartbeat while they run)."""
        return Lease(
            owner=self.replica,
            seconds=self.settings.execution_lease_s,
            renew_every_s=self.settings.execution_heartbeat_s,
        )

    @property
    def alert_secrets(self) -> dict[str, str]:
        """Return each alert source's signing secret (``pagerduty``: the webhook subscription's)."""
        secret = self.settings.pagerduty_webhook_secret
        return {"pagerduty": secret.get_secret_value()} if secret is not None else {}

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


def executor_config(settings: Settings) -> ExecutorConfig:
    """Return the executor settings as the plain values `build_executor` takes (docs/executors.md)."""

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return ExecutorConfig(
        kind=settings.executor,
        routes=dict(settings.executor_routes),
        webhook_url=settings.webhook_url,
        webhook_secret=secret(settings.webhook_secret),
        kubeconfig=settings.kubeconfig,
        kube_context=settings.kube_context,
        kube_namespace=settings.kube_namespace,
        namespaces=node_namespaces(settings.topology),
        pagerduty_routing_key=secret(settings.pagerduty_routing_key),
        pagerduty_events_url=settings.pagerduty_events_url,
    )


def build_services(
    settings: Settings,
    *,
    policy: Policy | None = None,
    executor: Executor | None = None,
    clock: Callable[[], datetime] | None = None,
    engine: Engine | None = None,
) -> Services:
    """Open the store (migrating it), load catalog, RBAC and topology from settings, and bundle them.

    Args:
        settings: the validated settings; every knob is read from them.
        policy: the ranking policy; the runbook baseline when None.
        executor: runs approved actions; None records approvals without running anything.
        clock: time source; real UTC time when None.
        engine: an engine on the store to reuse instead of opening ``settings.effective_database_url``.
    """
    store = engine or open_store(settings.effective_database_url)
    tracing.instrument_engine(store)  # SQL spans, when tracing is on (`bot.tracing.setup_tracing`)
    extra = [settings.playbooks_dir] if settings.playbooks_dir else []
    catalog = load_catalog(extra)
    return Services(
        settings=settings,
        sessions=make_sessionmaker(store),
        catalog=catalog,
        rbac=load_rbac(settings.rbac_config),
        policy=policy or RunbookPolicy(catalog=catalog, runbooks=load_runbooks(catalog, extra)),
        executor=executor,
        clock=clock or utc_now,
        topology=resolve_topology(settings.topology) if settings.topology else None,
        vocabulary=load_vocabulary(ALERTS, settings.alert_vocabulary_file),
        installations=installation_store(store, client_id=settings.slack_client_id or "")
        if settings.oauth
        else None,
        oauth_states=state_store(store) if settings.oauth else None,
    )
