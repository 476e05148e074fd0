"""Change events posted to `POST /events/deploy`, parsed once at the edge into `ChangeIn` values.

Four forms are accepted (docs/change-events.md): Argo CD notifications (the documented template),
GitHub ``deployment_status`` webhooks, Flux notification-controller events and a generic JSON form.
The form is told by the request, not guessed field by field: an ``X-GitHub-Event`` header is GitHub,
an ``involvedObject`` is Flux, an ``app`` is Argo CD, a ``service`` is the generic form. Every field
is bounded here like the alert intake's (`bot.alerts.models`); a delivery that is valid but is no
finished change (a failed GitHub deployment, an out-of-sync Argo CD app, a Flux error) is answered
with why it was ignored, not refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from bot.alerts.errors import AlertError, BadPayloadError
from bot.alerts.models import Name, Text, Word, aware_at, problems, storable
from bot.notify.mrkdwn import clip

MAX_VERSION = 200  # a version, revision, ref or environment
MAX_URL = 2000
MAX_TEXT = 2000  # a description, kept on the timeline
MAX_MESSAGE = 100_000  # a Flux event's message (the list of objects it changed); parsed, not stored
MAX_WORKLOADS = 50  # workloads one Flux event may name
NO_VALUE = "<no value>"  # what an Argo CD template prints for a field the application lacks
FORMATS = ("argocd", "github", "flux", "generic")
# Flux reasons that mean a revision was applied (kustomize-controller, helm-controller)
FLUX_APPLIED = frozenset({"ReconciliationSucceeded", "Progressing", "UpgradeSucceeded", "InstallSucceeded"})
_FLUX_OBJECT = re.compile(
    r"^(?P<kind>[A-Za-z]+)/(?:(?P<ns>[a-z0-9.-]+)/)?(?P<name>[a-z0-9.-]+) (?:configured|created)$"
)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
CONFIG_KINDS = frozenset({"ConfigMap", "Secret"})


def _blank_no_value(value: Any) -> Any:
    return "" if value == NO_VALUE else value


def _time_or_none(value: Any) -> Any:
    return None if value in ("", NO_VALUE, "0001-01-01T00:00:00Z") else value


Version = Annotated[
    str, BeforeValidator(_blank_no_value), Field(max_length=MAX_VERSION), AfterValidator(storable)
]
Url = Annotated[str, BeforeValidator(_blank_no_value), Field(max_length=MAX_URL), AfterValidator(storable)]
Description = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(storable)]
Opt = Annotated[str, BeforeValidator(_blank_no_value), Field(max_length=200), AfterValidator(storable)]
When = Annotated[datetime | None, BeforeValidator(_time_or_none)]


@dataclass(frozen=True)
class ChangeIn:
    """One deploy or config change, whatever sent it.

    ``names`` are the service names it may have: the first the graph knows wins, else the first.
    """

    source: str
    names: tuple[str, ...]
    kind: Literal["deploy", "config_change"]
    key: str
    at: datetime | None = None
    version: str | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    """What a delivery came to: its changes, or why it holds none that count."""

    source: str
    changes: list[ChangeIn]
    ignored: str | None = None


def key_of(*parts: Any) -> str:
    """Return a stable key of a change (a re-sent delivery gets the same one)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]


def qualified(name: str, namespace: str) -> tuple[str, ...]:
    """Return the names a workload may have in the graph, the plain name (what alerts carry) first.

    Then ``ns/name`` and ``name.ns`` (a graph of namespace-qualified nodes), and ``name`` without a
    leading ``ns-`` (an Argo CD application named after its namespace: ``shop-cartservice``).
    """
    names = [name]
    if namespace:
        names += [f"{namespace}/{name}", f"{name}.{namespace}"]
        if name.startswith(namespace + "-") and len(name) > len(namespace) + 1:
            names.append(name[len(namespace) + 1 :])
    return tuple(dict.fromkeys(names))


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ArgoNotification(_Model):
    """The body of the documented Argo CD notification template (docs/change-events.md)."""

    app: Annotated[Name, Field(min_length=1)]
    service: Opt = ""
    revision: Version = ""
    sync_status: Opt = ""
    health_status: Opt = ""
    operation_phase: Opt = ""
    namespace: Opt = ""
    finished_at: When = None
    repo_url: Url = ""
    url: Url = ""

    _aware = field_validator("finished_at")(aware_at)


class _GhStatus(_Model):
    id: int | None = None
    state: Word
    environment: Opt = ""
    description: Annotated[str | None, Field(max_length=MAX_TEXT)] = None
    target_url: Url | None = None
    environment_url: Url | None = None
    created_at: When = None
    updated_at: When = None

    _aware = field_validator("created_at", "updated_at")(aware_at)


class _GhDeployment(_Model):
    id: int | None = None
    sha: Version = ""
    ref: Version = ""
    environment: Opt = ""
    payload: dict[str, Any] | str | None = None


class _GhRepo(_Model):
    name: Annotated[Name, Field(min_length=1)]
    full_name: Opt = ""


class GitHubDeploymentStatus(_Model):
    """GitHub's ``deployment_status`` webhook (the fields we read)."""

    action: Opt = ""
    deployment_status: _GhStatus
    deployment: _GhDeployment
    repository: _GhRepo


class _FluxObject(_Model):
    kind: Word
    name: Annotated[Name, Field(min_length=1)]
    namespace: Opt = ""


class FluxEvent(_Model):
    """A Flux notification-controller event (the ``generic`` / ``generic-hmac`` provider's body)."""

    involvedObject: _FluxObject
    severity: Word = "info"
    timestamp: When = None
    message: Annotated[str, Field(max_length=MAX_MESSAGE)] = ""
    reason: Word = ""
    metadata: dict[Annotated[str, Field(max_length=200)], Annotated[Text, Field(max_length=MAX_TEXT)]] = (
        Field(default_factory=dict, max_length=100)
    )

    _aware = field_validator("timestamp")(aware_at)


class GenericChange(_Model):
    """The generic form: ``{service, kind: deploy|config, version, at, source, url}``."""

    model_config = ConfigDict(extra="forbid")

    service: Annotated[Name, Field(min_length=1)]
    kind: Literal["deploy", "config"] = "deploy"
    version: Version | None = None
    at: datetime | None = None
    source: Annotated[Word, Field(min_length=1)] = "generic"
    url: Url | None = None
    description: Description | None = None
    namespace: Opt | None = None

    _aware = field_validator("at")(aware_at)

    @field_validator("service")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a service")
        return value.strip()


def _details(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def _argocd(body: Any, _headers: Mapping[str, str]) -> Parsed:
    n = ArgoNotification.model_validate(body)
    phase = n.operation_phase or "none"
    if n.sync_status != "Synced" or n.operation_phase not in ("", "Succeeded"):
        return Parsed(
            "argocd",
            [],
            f"Argo CD app {n.app!r} is {n.sync_status or 'of unknown sync status'} "
            f"(operation {phase}): not a finished deploy; only Synced apps whose operation "
            "Succeeded count",
        )
    names = ((n.service,) if n.service else ()) + qualified(n.app, n.namespace)
    change = ChangeIn(
        source="argocd",
        names=names,
        kind="deploy",
        key=key_of("argocd", n.app, n.revision, n.finished_at),
        at=n.finished_at,
        version=n.revision[:MAX_VERSION] or None,
        details=_details(
            app=n.app,
            namespace=n.namespace,
            revision=n.revision,
            url=n.url,
            repo_url=n.repo_url,
            health=n.health_status,
        ),
    )
    return Parsed("argocd", [change])


def _github(body: Any, headers: Mapping[str, str]) -> Parsed:
    event = headers.get("x-github-event", "")
    if event == "ping":
        return Parsed(
            "github", [], "GitHub ping: the webhook reaches the bot; deployment statuses will count"
        )
    if event != "deployment_status":
        raise AlertError(
            f"GitHub event {clip(event, 60)!r} is not a change event; subscribe the webhook to "
            "'Deployment statuses' only"
        )
    g = GitHubDeploymentStatus.model_validate(body)
    status, deployment = g.deployment_status, g.deployment
    if status.state != "success":
        return Parsed(
            "github",
            [],
            f"GitHub deployment status {status.state!r} of {g.repository.name!r} is "
            "not a finished deploy; only 'success' counts",
        )
    payload = deployment.payload if isinstance(deployment.payload, dict) else {}
    service = payload.get("service") if isinstance(payload.get("service"), str) else None
    namespace = payload.get("namespace") if isinstance(payload.get("namespace"), str) else ""
    version = payload.get("version") if isinstance(payload.get("version"), str) else None
    names = ((service,) if service else ()) + qualified(g.repository.name, namespace or "")
    environment = status.environment or deployment.environment
    change = ChangeIn(
        source="github",
        names=tuple(n[:200] for n in names if n.strip()),
        kind="deploy",
        key=key_of(
            "github", g.repository.full_name or g.repository.name, deployment.id, status.id, deployment.sha
        ),
        at=status.updated_at or status.created_at,
        version=(version or deployment.ref or deployment.sha[:12])[:MAX_VERSION] or None,
        details=_details(
            repository=g.repository.full_name or g.repository.name,
            revision=deployment.sha,
            ref=deployment.ref,
            environment=environment,
            url=status.environment_url or status.target_url,
        ),
    )
    return Parsed("github", [change])


def _flux_targets(message: str, namespace: str) -> tuple[list[tuple[str, str]], bool]:
    """Return the workloads (name, namespace) a Flux message says it changed, and whether config changed."""
    workloads: list[tuple[str, str]] = []
    config = False
    for line in message.splitlines()[: MAX_WORKLOADS * 20]:
        found = _FLUX_OBJECT.match(line.strip())
        if found is None:
            continue
        if found["kind"] in WORKLOAD_KINDS and len(workloads) < MAX_WORKLOADS:
            workloads.append((found["name"], found["ns"] or namespace))
        config = config or found["kind"] in CONFIG_KINDS
    return list(dict.fromkeys(workloads)), config


def _flux(body: Any, _headers: Mapping[str, str]) -> Parsed:
    e = FluxEvent.model_validate(body)
    obj = e.involvedObject
    what = f"Flux {obj.kind} {obj.namespace + '/' if obj.namespace else ''}{obj.name}"
    if e.severity == "error" or e.reason not in FLUX_APPLIED:
        return Parsed(
            "flux",
            [],
            f"{what}: {e.severity} event {e.reason!r} is not an applied change; "
            f"only info events with reason {', '.join(sorted(FLUX_APPLIED))} count",
        )
    revision = e.metadata.get("revision") or next(
        (v for k, v in sorted(e.metadata.items()) if k.endswith("/revision")), ""
    )
    workloads, config = _flux_targets(e.message, obj.namespace)
    targets = workloads or [(obj.name, obj.namespace)]
    kind: Literal["deploy", "config_change"] = "config_change" if config and not workloads else "deploy"
    changes = [
        ChangeIn(
            source="flux",
            names=qualified(name, namespace),
            kind=kind,
            key=key_of("flux", obj.kind, obj.namespace, obj.name, revision, namespace, name, kind),
            at=e.timestamp,
            version=clip(revision, MAX_VERSION) or None,
            details=_details(
                object=f"{obj.kind}/{obj.name}", namespace=namespace, revision=revision, reason=e.reason
            ),
        )
        for name, namespace in targets
    ]
    return Parsed("flux", changes)


def _generic(body: Any, _headers: Mapping[str, str]) -> Parsed:
    g = GenericChange.model_validate(body)
    kind: Literal["deploy", "config_change"] = "config_change" if g.kind == "config" else "deploy"
    details = _details(url=g.url, namespace=g.namespace)
    if kind == "config_change":
        details["change"] = g.description or g.version or ""
    elif g.description:
        details["description"] = g.description
    change = ChangeIn(
        source=g.source,
        names=qualified(g.service, g.namespace or ""),
        kind=kind,
        key=key_of("generic", g.source, g.service, kind, g.version, g.at, g.description),
        at=g.at,
        version=g.version or None,
        details={k: v for k, v in details.items() if v},
    )
    return Parsed(g.source, [change])


_PARSERS: dict[str, Callable[[Any, Mapping[str, str]], Parsed]] = {
    "argocd": _argocd,
    "github": _github,
    "flux": _flux,
    "generic": _generic,
}


def format_of(headers: Mapping[str, str], body: Any) -> str:
    """Return which form a delivery is in, or raise BadPayloadError saying which forms are accepted."""
    if headers.get("x-github-event"):
        return "github"
    if isinstance(body, dict):
        for key, form in (("involvedObject", "flux"), ("app", "argocd"), ("service", "generic")):
            if key in body:
                return form
    raise BadPayloadError(
        "unknown change event format: expected a GitHub deployment_status webhook (X-GitHub-Event header), "
        "a Flux event (involvedObject), an Argo CD notification (app, revision, sync_status) or the generic "
        "form {service, kind, version, at, source, url}; see docs/change-events.md"
    )


def parse_changes(headers: Mapping[str, str], body: Any) -> Parsed:
    """Parse a decoded JSON body into its changes; BadPayloadError names the field that is wrong."""
    form = format_of(headers, body)
    try:
        return _PARSERS[form](body, headers)
    except ValidationError as exc:
        raise BadPayloadError(f"not a valid {form} change event: {problems(exc)}") from None
