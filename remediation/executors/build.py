"""Build the configured executor from plain settings values, or say in one line why it cannot be built.

The bot turns its settings into an `ExecutorConfig`; `build_executor` returns the executor `serve` runs
approved actions with (None: advisory only), routing single actions (``escalate`` -> PagerDuty) to
another executor than the default. Every refusal is an `ExecutorConfigError` naming the setting to fix.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from incidents_db.redact import redact_url
from remediation.errors import ExecutorConfigError, ExecutorError
from remediation.executors.base import Executor
from remediation.executors.pagerduty import PagerDutyExecutor, PagerDutySettings
from remediation.executors.routing import RoutedExecutor
from remediation.executors.shell import ShellExecutor
from remediation.executors.sim import SimExecutor, SimWorld
from remediation.executors.webhook import WebhookExecutor, WebhookSettings

KINDS = ("none", "webhook", "shell", "kubernetes", "sim")
ESCALATE = "escalate"


@dataclass(frozen=True)
class ExecutorConfig:
    """The executor settings as plain values (secrets unwrapped); see docs/executors.md."""

    kind: str = "none"
    routes: Mapping[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    kubeconfig: Path | None = None
    kube_context: str | None = None
    kube_namespace: str = "default"
    namespaces: Mapping[str, str] = field(default_factory=dict)
    pagerduty_routing_key: str | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"

    def effective_routes(self) -> dict[str, str]:
        """Return the routes, with ``escalate -> pagerduty`` added when a routing key is set."""
        routes = dict(self.routes)
        if self.pagerduty_routing_key and ESCALATE not in routes:
            routes[ESCALATE] = "pagerduty"
        return routes


def build_executor(
    config: ExecutorConfig, *, world: SimWorld | None = None, actions: Collection[str] | None = None
) -> Executor | None:
    """Return the executor for ``config`` (None: advisory only); raise ExecutorConfigError saying what to fix.

    With ``actions`` (the catalog's ids), a route naming no action is refused: a typo would else leave
    that action on the default executor without a word.
    """
    check_routes(config, actions)
    built: dict[str, Executor | None] = {"none": None}

    def one(kind: str) -> Executor | None:
        if kind not in built:
            built[kind] = build_one(kind, config, world)
        return built[kind]

    default = one(config.kind)
    routes = {action: one(kind) for action, kind in sorted(config.effective_routes().items())}
    if all(executor is default for executor in routes.values()):
        return default
    return RoutedExecutor(default, routes)


def check_routes(config: ExecutorConfig, actions: Collection[str] | None) -> None:
    """Refuse routes that name no catalog action (when the catalog's ids are given)."""
    unknown = sorted(set(config.routes) - set(actions)) if actions is not None else []
    if unknown:
        raise ExecutorConfigError(
            f"REMEDIATE_EXECUTOR_ROUTES names no action {', '.join(map(repr, unknown))}; "
            f"actions are: {', '.join(sorted(actions or ()))}"
        )


def build_one(kind: str, config: ExecutorConfig, world: SimWorld | None = None) -> Executor:
    """Build one executor kind from ``config`` (``pagerduty`` included); raise ExecutorConfigError if it cannot."""
    if kind == "webhook":
        return _webhook(config)
    if kind == "pagerduty":
        return _pagerduty(config)
    if kind == "shell":
        return _shell(config)
    if kind == "kubernetes":
        return _kubernetes(config)
    if kind == "sim":
        if world is None:
            raise ExecutorConfigError(
                "REMEDIATE_EXECUTOR=sim acts on a simulated world, which only `remediate demo` runs; "
                "choose webhook, shell or kubernetes for serve"
            )
        return SimExecutor(world)
    raise ExecutorConfigError(
        f"unknown executor {kind!r}; expected one of {', '.join((*KINDS, 'pagerduty'))}"
    )


def _webhook(config: ExecutorConfig) -> Executor:
    if not config.webhook_url:
        raise ExecutorConfigError(
            "the webhook executor needs REMEDIATE_WEBHOOK_URL (the automation endpoint)"
        )
    if not config.webhook_secret:
        raise ExecutorConfigError(
            "the webhook executor needs REMEDIATE_WEBHOOK_SECRET (the HMAC secret the receiver verifies)"
        )
    try:
        return WebhookExecutor(WebhookSettings(url=config.webhook_url, secret=config.webhook_secret))
    except ExecutorError as exc:
        raise ExecutorConfigError(f"REMEDIATE_WEBHOOK_URL: {exc}") from None


def _shell(config: ExecutorConfig) -> Executor:
    if config.kube_context:
        raise ExecutorConfigError(
            "REMEDIATE_KUBE_CONTEXT is not used by the shell executor (kubectl acts in the kubeconfig's "
            "current context): unset it, or choose REMEDIATE_EXECUTOR=kubernetes"
        )
    if config.kubeconfig is not None and not config.kubeconfig.is_file():
        raise ExecutorConfigError(
            f"REMEDIATE_KUBECONFIG={config.kubeconfig}: no such file (the shell executor hands it to kubectl)"
        )
    env = {"KUBECONFIG": str(config.kubeconfig)} if config.kubeconfig is not None else None
    try:
        return ShellExecutor(namespace=config.kube_namespace, namespaces=dict(config.namespaces), env=env)
    except ExecutorError as exc:
        raise ExecutorConfigError(f"the shell executor cannot start: {exc}") from None


def _pagerduty(config: ExecutorConfig) -> Executor:
    if not config.pagerduty_routing_key:
        raise ExecutorConfigError(
            "an action routes to pagerduty but REMEDIATE_PAGERDUTY_ROUTING_KEY is not set "
            "(an Events API v2 integration key)"
        )
    return PagerDutyExecutor(
        PagerDutySettings(routing_key=config.pagerduty_routing_key, url=config.pagerduty_events_url)
    )


def _kubernetes(config: ExecutorConfig) -> Executor:
    from remediation.executors.kubernetes import KubernetesExecutor

    # Credentials load here, at start (kubeconfig and context, else the pod's service account, else
    # ~/.kube/config), so a bad file or an unknown context stops `serve` before it takes traffic.
    try:
        return KubernetesExecutor(
            kubeconfig=config.kubeconfig,
            context=config.kube_context,
            namespace=config.kube_namespace,
            namespaces=dict(config.namespaces),
        )
    except ExecutorError as exc:
        raise ExecutorConfigError(f"the kubernetes executor cannot start: {exc}") from None


def node_namespaces(topology: str | None) -> dict[str, str]:
    """Return each service's ``namespace`` node attribute from a node-link JSON file (empty otherwise)."""
    if not topology or not topology.endswith(".json") or not Path(topology).is_file():
        return {}
    try:
        graph = json.loads(Path(topology).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the topology loader refuses it with its own message
    nodes = graph.get("nodes", []) if isinstance(graph, dict) else []
    return {
        str(n["id"]): str(n["namespace"])
        for n in nodes
        if isinstance(n, dict) and "id" in n and isinstance(n.get("namespace"), str) and n["namespace"]
    }


def where(config: ExecutorConfig, executor: Executor | None) -> str:
    """Return where the default executor acts, for the start line (credentials masked)."""
    if config.kind == "webhook" and config.webhook_url:
        return redact_url(config.webhook_url)
    if config.kind == "kubernetes":
        source = str(getattr(getattr(executor, "default", executor), "source", "the cluster"))
        return f"{source}, default namespace {config.kube_namespace}"
    return ""
