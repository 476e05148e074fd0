"""The `Settings` model: every knob of remediate, its environment variable, YAML key and validation."""

from __future__ import annotations

import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from remediation.loop.config import SCHEDULE, check_schedule

# Executors an action may be routed to (`executor_routes`); pagerduty pages instead of acting.
ROUTABLE = ("none", "webhook", "shell", "kubernetes", "sim", "pagerduty")
# Alert labels naming the service an alert is about, in order (docs/alert-conventions.md).
ALERT_SERVICE_LABELS = ("deployment", "statefulset", "daemonset", "destination_workload", "container", "pod",
                        "app.kubernetes.io/name", "app_kubernetes_io_name", "app", "service", "job",
                        "persistentvolumeclaim")  # fmt: skip
# The bot scopes of deploy/slack/manifest.yaml; the OAuth install asks for these (`slack_scopes`).
SLACK_SCOPES = ("app_mentions:read", "chat:write", "commands", "channels:history", "groups:history",
                "channels:read", "groups:read", "channels:manage", "groups:write", "usergroups:read",
                "users:read", "users:read.email")  # fmt: skip
_HTTP_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_YAML_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("_YAML_VALUES", default=None)


def default_data_dir() -> Path:
    """Return the per-user data directory where the default SQLite store and run artifacts live."""
    return Path(platformdirs.user_data_dir("remediate", appauthor=False))


class _YamlSource(PydanticBaseSettingsSource):
    """Feeds values read from the YAML config file, below the environment in precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _YAML_VALUES.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_YAML_VALUES.get() or {})


class Settings(BaseSettings):
    """Every knob of remediate, validated at start.

    Environment variables use the prefix ``REMEDIATE_`` (``REMEDIATE_DATABASE_URL``), except Slack's
    usual ``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``, ``SLACK_APP_TOKEN`` and ``SLACK_API_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="REMEDIATE_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the default store lives.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store; empty means a SQLite file in data_dir.",
    )
    log_level: str = Field(default="INFO", description="Logging level: DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or json: one object per line (docs/observability.md)."
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token GET /metrics requires; open when unset."
    )
    drift_check_every_s: float = Field(
        default=3600.0, gt=0, description="Seconds between checks of the policy's input drift (F2)."
    )
    drift_window_s: float = Field(
        default=604800.0, gt=0, description="How far back the drift check reads live incidents."
    )
    incident_channel: str = Field(default="incidents", description="Slack channel for incident cards.")
    incident_channels: bool = Field(
        default=False, description="on: each incident gets its own channel inc-<id>-<slug> (docs/slack.md)."
    )
    incident_channel_private: bool = Field(
        default=False, description="Incident channels are private (groups:write) instead of public."
    )
    incident_channel_archive_after: float = Field(
        default=86400.0,
        gt=0,
        description="How long after resolution an incident channel is archived: 24h, 90m, 2d or seconds.",
    )
    alerts_token: SecretStr | None = Field(default=None, description="Bearer token for alert webhooks.")
    pagerduty_webhook_secret: SecretStr | None = Field(
        default=None, description="Signing secret of the PagerDuty V3 webhook subscription."
    )
    deploy_webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token for POST /events/deploy; the alerts token if unset."
    )
    github_webhook_secret: SecretStr | None = Field(
        default=None, description="Secret of the GitHub deployment_status webhook (X-Hub-Signature-256)."
    )
    change_window_s: float = Field(
        default=3600.0, gt=0, description="A deploy or config change this recent joins incidents as recent."
    )
    rbac_config: Path | None = Field(default=None, description="RBAC/guardrails YAML; built-in if unset.")
    rbac_reload_s: float = Field(default=10.0, gt=0, description="Seconds between RBAC file checks.")
    rbac_refresh_s: float = Field(default=300.0, gt=0, description="Seconds between group source reads.")
    rbac_keep_s: float = Field(default=3600.0, gt=0, description="A failing source's members last so long.")
    pagerduty_api_url: str = Field(default="https://api.pagerduty.com", description="PagerDuty REST API.")
    pagerduty_api_token: SecretStr | None = Field(default=None, description="PagerDuty REST API key.")
    opsgenie_api_url: str = Field(default="https://api.opsgenie.com", description="Opsgenie API (schedules).")
    opsgenie_api_key: SecretStr | None = Field(default=None, description="Opsgenie API key (read schedules).")
    playbooks_dir: Path | None = Field(default=None, description="Extra playbook directory beside built-ins.")
    audit_head_file: Path | None = Field(
        default=None, description="Append-only JSON Lines file the audit log's head is published to."
    )
    audit_head_channel: str | None = Field(
        default=None, description="Slack channel (name or id) the audit log's head is posted to."
    )
    audit_head_webhook: SecretStr | None = Field(
        default=None, description="URL the audit log's head is POSTed to as JSON."
    )
    audit_head_every_s: float = Field(
        default=300.0, gt=0, description="Seconds between checks that publish a changed audit head."
    )
    postmortem_reminder_s: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds a postmortem waits in review before its reviewers are reminded (again each period).",
    )
    execution_lease_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds an execution's claim holds without a heartbeat; recovery takes only expired ones.",
    )
    action_threads: int = Field(
        default=4, ge=1, le=64, description="Approved actions that run at once (more wait in line)."
    )
    verify_settle_s: dict[str, float] = Field(
        default_factory=dict,
        description="Settle time before a verdict, per 'action' or 'action:service' (docs/verification.md).",
    )
    verify_every_s: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between looks for verifications that are due."
    )
    recurring_fix_n: int = Field(
        default=3, ge=2, le=100, description="Runs of one action on one service that make it recurring."
    )
    recurring_fix_window_s: float = Field(
        default=604800.0, gt=0, description="Window (seconds) in which recurring_fix_n runs are counted."
    )
    canary_share: float = Field(
        default=0.25, gt=0, le=0.5, description="Share of a workload's replicas a canary runs on first."
    )
    execution_heartbeat_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between lease renewals of a running execution; a third of the lease if unset.",
    )
    requester: str = Field(
        default="",
        description="Slack user id proposing actions for alert-born incidents; the bot's own id if unset.",
    )
    topology: str | None = Field(
        default=None,
        description="Built-in topology name or node-link JSON file incidents are observed on (docs/topology.md).",
    )
    discover_prometheus: str | None = Field(
        default=None,
        description="Prometheus URL `serve` discovers the service graph from (instead of topology).",
    )
    discover_window: str = Field(
        default="1h", description="How far back graph discovery looks (PromQL duration)."
    )
    discover_namespaces: list[str] = Field(
        default_factory=list, description="Namespaces graph discovery keeps; all when empty."
    )
    topology_refresh_s: float = Field(
        default=600.0,
        ge=1,
        description="Seconds between graph rediscoveries of `serve --discover-prometheus`.",
    )
    policy: str = Field(
        default="auto",
        min_length=1,
        description="Ranking policy: auto, runbook, or a registered version or artifact path.",
    )
    policy_reload_s: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="Seconds between checks of the registry's active policy versions.",
    )
    gate_automated_margin: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Promotion gate: how far a candidate's automated success may fall below production's.",
    )
    jobs_schedule: dict[str, str] = Field(
        default_factory=lambda: dict(SCHEDULE), description="Crontab line (UTC) per loop job; empty: off."
    )
    jobs_retrain_minutes: float = Field(default=15.0, gt=0, description="Budget of one retrain job run.")
    jobs_promote: bool = Field(default=False, description="Whether the promote job may promote.")
    rollback_window_s: float = Field(default=86400.0, gt=0, description="Window of the rollback rule.")
    rollback_min_samples: int = Field(default=10, ge=1, description="Rollback rule: samples per version.")
    rollback_success_drop: float = Field(default=0.15, ge=0, le=1, description="Rollback: success drop.")
    rollback_denial_rise: float = Field(default=0.10, ge=0, le=1, description="Rollback: denial rise.")
    group_window_s: float = Field(
        default=1800.0,
        gt=0,
        description="Alerts join an open incident on their service updated this recently.",
    )
    top_k: int = Field(default=3, ge=1, le=20, description="How many suggestions a card shows.")
    retry_base_s: float = Field(
        default=1.0, gt=0, description="First outbox retry delay in seconds; doubles per attempt."
    )
    retry_max_s: float = Field(
        default=300.0, gt=0, description="Longest outbox retry delay in seconds (a longer Retry-After wins)."
    )
    max_attempts: int = Field(default=12, ge=1, description="Outbox attempts before a message is given up.")
    snapshot_interval_s: float = Field(
        default=30.0, ge=0, description="A service's snapshots join an open incident at most this often."
    )
    snapshot_max_age_s: float = Field(
        default=300.0, ge=0, description="A new incident starts with the kept snapshots at most this old."
    )
    alert_service_labels: Annotated[tuple[str, ...], NoDecode] = Field(
        default=ALERT_SERVICE_LABELS, min_length=1, description="Alert labels naming the service, in order."
    )
    alert_vocabulary_file: Path | None = Field(
        default=None, description="Team alert vocabulary YAML, tried before the built-in one."
    )
    executor: Literal["none", "webhook", "shell", "kubernetes", "sim"] = Field(
        default="none", description="What runs approved actions; none: advisory only (docs/executors.md)."
    )
    executor_routes: dict[str, str] = Field(
        default_factory=dict, description="Action id -> executor for that action (pagerduty, webhook, ...)."
    )
    webhook_url: str | None = Field(default=None, description="Endpoint the webhook executor POSTs to.")
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC secret signing webhook calls.")
    kubeconfig: Path | None = Field(
        default=None, description="Kubeconfig file; in-cluster or default if unset."
    )
    kube_context: str | None = Field(
        default=None, description="Kubeconfig context; its current one if unset."
    )
    kube_namespace: str = Field(
        default="default", description="Namespace of services whose graph node names none."
    )
    pagerduty_routing_key: SecretStr | None = Field(
        default=None, description="PagerDuty Events API v2 routing key; routes escalate to PagerDuty."
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint."
    )
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias=AliasChoices("SLACK_API_URL", "slack_api_url"),
    )
    # OAuth (docs/slack.md, Install anywhere): on when both the client id and secret are set; else one token
    slack_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_CLIENT_ID", "slack_client_id"),
        description="App's client id; with the secret: OAuth install flow, a bot token per workspace.",
    )
    slack_client_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_CLIENT_SECRET", "slack_client_secret")
    )
    slack_scopes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=SLACK_SCOPES,
        validation_alias=AliasChoices("SLACK_SCOPES", "slack_scopes"),
        description="Bot scopes the install asks for, comma-separated (deploy/slack/manifest.yaml).",
    )
    slack_redirect_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_REDIRECT_URI", "slack_redirect_uri"),
        description="Public https URL of /slack/oauth_redirect, as in the app's Redirect URLs.",
    )
    home_team_id: str | None = Field(
        default=None,
        description="OAuth mode: the workspace (T...) alerts post to, whose users RBAC names plainly.",
    )
    # OpenTelemetry's standard variables (docs/observability.md, Traces); the SDK reads the rest itself
    # (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_BSP_*).
    otel_sdk_disabled: bool = Field(
        default=False,
        validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled"),
        description="true: no traces at all, whatever the exporter says.",
    )
    otel_traces_exporter: Literal["otlp", "console", "none"] = Field(
        default="none",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
        description="Where spans go: otlp (OTLP/HTTP), console (stdout) or none (not traced).",
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_PROTOCOL", "otel_exporter_otlp_protocol"),
        description="The OTLP protocol; only http/protobuf is shipped.",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "sqlite+pysqlite://", "postgresql")):
            raise ValueError("expected a sqlite:///PATH or postgresql+psycopg://USER@HOST/DB URL")
        if value.startswith(("postgresql://", "postgres://")):
            # Pin the driver we ship: psycopg 3.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("incident_channel_archive_after", mode="before")
    @classmethod
    def _check_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            found = _DURATION.fullmatch(value.strip().lower())
            if not found:
                raise ValueError("expected a duration like 24h, 90m, 2d, 45s or a number of seconds")
            return float(found.group(1)) * _DURATION_UNITS[found.group(2) or "s"]
        return value

    @field_validator("jobs_schedule")
    @classmethod
    def _check_jobs_schedule(cls, value: dict[str, str]) -> dict[str, str]:
        return check_schedule(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return upper

    @field_validator("audit_head_webhook")
    @classmethod
    def _check_audit_head_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("expected an http(s):// URL")
        return value

    @field_validator(
        "webhook_url", "pagerduty_events_url", "pagerduty_api_url", "opsgenie_api_url", "slack_redirect_uri"
    )
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.fullmatch(value):
            raise ValueError("expected an http:// or https:// URL with a host")
        return value

    @field_validator("kube_namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError("expected a Kubernetes namespace (lower-case letters, digits and -, 63 at most)")
        return value

    @field_validator("executor_routes")
    @classmethod
    def _check_routes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(f"{k}={v}" for k, v in value.items() if v not in ROUTABLE)
        if bad:
            raise ValueError(f"unknown executor in {', '.join(bad)}; expected one of {', '.join(ROUTABLE)}")
        return value

    @field_validator("execution_heartbeat_s")
    @classmethod
    def _check_heartbeat(cls, value: float | None, info: ValidationInfo) -> float | None:
        lease = info.data.get("execution_lease_s")
        if value is not None and lease is not None and value >= lease:
            raise ValueError(f"expected fewer seconds than execution_lease_s ({lease:g})")
        return value

    @field_validator("alert_service_labels", mode="before")
    @classmethod
    def _check_service_labels(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple):
            items = tuple(str(i).strip() for i in items if str(i).strip())
            if any(c.isspace() for i in items for c in i):
                raise ValueError("expected label names without spaces, comma-separated")
        return items

    @field_validator("slack_scopes", mode="before")
    @classmethod
    def _check_scopes(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return items
        return tuple(str(i).strip() for i in items if str(i).strip())

    @field_validator("home_team_id")
    @classmethod
    def _check_team(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[TE][A-Z0-9]{2,}", value):
            raise ValueError("expected a Slack team id (T...), or an enterprise id (E...) for an org install")
        return value or None

    @field_validator("topology")
    @classmethod
    def _check_topology(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("discover_prometheus")
    @classmethod
    def _check_discover_prometheus(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected the http(s):// base URL of the Prometheus API")
        return value or None

    @field_validator("slack_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s):// base URL of the Slack Web API")
        return value if value.endswith("/") else value + "/"

    @property
    def oauth(self) -> bool:
        """Return whether the OAuth install flow is on (client id and secret set): a token per workspace."""
        return bool(self.slack_client_id) and self.slack_client_secret is not None

    @property
    def effective_database_url(self) -> str:
        """Return the database URL, defaulting to a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'remediate.sqlite'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: overrides, environment, then the YAML file."""
        return (init_settings, env_settings, _YamlSource(settings_cls))
