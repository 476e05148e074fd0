"""`remediate doctor`'s checks of this machine's set-up: store, secrets, graph, executor, RBAC, policy.

Each check is a plain function returning a `Check`: a status (OK, WARN, FAIL, SKIP), what it found,
and for WARN and FAIL how to fix it. None raises for a bad set-up: finding it is their job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.settings import Settings
from incidents_db.redact import redact_text, redact_url

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the check as JSON-ready values."""
        return asdict(self)


def _why(exc: BaseException) -> str:
    return redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def check_store(settings: Settings) -> Check:
    """The store answers and its schema is the newest this version ships."""
    from incidents_db import db
    from incidents_db.errors import StoreError

    url = settings.effective_database_url
    shown = redact_url(url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return Check(
            "store", WARN, f"{shown}: no store yet", "`remediate db upgrade` creates it (serve does at start)"
        )
    try:
        current, head = db.current(url), db.head_revision()
    except StoreError as exc:
        return Check(
            "store", FAIL, _why(exc), "check REMEDIATE_DATABASE_URL and that the database server runs"
        )
    except Exception as exc:  # a driver missing for the URL's dialect, a malformed URL
        return Check("store", FAIL, f"{shown}: {_why(exc)}", "check REMEDIATE_DATABASE_URL")
    if current == head:
        return Check("store", OK, f"{shown} at revision {head} (newest)")
    fix = "run `remediate db upgrade` (serve upgrades at start)"
    if current is None:
        return Check("store", WARN, f"{shown}: reachable, never migrated", fix)
    return Check("store", WARN, f"{shown}: at revision {current}, newest is {head}", fix)


def _secret_check(
    name: str, secret: SecretStr | None, env: str, *, fallback: str | None, missing: str, fix: str
) -> Check:
    """OK when ``secret`` is set; WARN with ``fallback`` when another way in remains; FAIL with ``missing``."""
    if secret is not None and secret.get_secret_value():
        return Check(name, OK, f"{env} is set")
    if fallback is not None:
        return Check(name, WARN, f"not set: {fallback}", fix)
    return Check(name, FAIL, f"{env} is not set: {missing}", fix)


def check_signing_secret(settings: Settings) -> Check:
    """SLACK_SIGNING_SECRET set (HTTP mode verifies every request with it)."""
    return _secret_check(
        "signing secret",
        settings.slack_signing_secret,
        "SLACK_SIGNING_SECRET",
        fallback="only `serve --socket-mode` can run" if settings.slack_app_token is not None else None,
        missing="Slack's requests cannot be verified",
        fix="set SLACK_SIGNING_SECRET (Basic Information → App Credentials → Signing Secret)",
    )


def check_alert_token(settings: Settings) -> Check:
    """REMEDIATE_ALERTS_TOKEN set (alert webhooks refuse every call without it)."""
    pagerduty = settings.pagerduty_webhook_secret is not None
    return _secret_check(
        "alerts token",
        settings.alerts_token,
        "REMEDIATE_ALERTS_TOKEN",
        fallback="only signed PagerDuty webhooks are accepted" if pagerduty else None,
        missing="every alert webhook is refused",
        fix="set REMEDIATE_ALERTS_TOKEN and give Alertmanager the same bearer token (README quickstart)",
    )


def check_topology(settings: Settings) -> Check:
    """The service graph loads (REMEDIATE_TOPOLOGY) or discovery answers (REMEDIATE_DISCOVER_PROMETHEUS)."""
    from sim.resolve import resolve_topology

    if settings.topology:
        try:
            graph = resolve_topology(settings.topology)
        except Exception as exc:  # SimError for a bad file or name; OSError, JSON errors from odd files
            return Check(
                "topology", FAIL, f"{settings.topology}: {_why(exc)}", "fix the file, or name a built-in"
            )
        return Check("topology", OK, f"{graph.name}: {graph.n_services} services, {graph.n_edges} edges")
    if settings.discover_prometheus:
        from bot.feeds.discover import DiscoverOptions, discover

        options = DiscoverOptions(
            settings.discover_prometheus, settings.discover_window, tuple(settings.discover_namespaces)
        )
        try:
            found = discover(options)
        except Exception as exc:  # DiscoveryError and anything the Prometheus client lets through
            fix = "check REMEDIATE_DISCOVER_PROMETHEUS and that mesh or tracing metrics are scraped (docs/topology.md)"
            return Check("topology", FAIL, f"discovery: {_why(exc)}", fix)
        return Check("topology", OK, f"discovery answers: {len(found.get('nodes', []))} services")
    fix = (
        "set REMEDIATE_TOPOLOGY (built-in name or node-link file; `remediate topology discover` writes one) "
        "or REMEDIATE_DISCOVER_PROMETHEUS"
    )
    return Check("topology", FAIL, "no service graph: serve refuses to start without one", fix)


def check_executor(settings: Settings) -> Check:
    """Each configured executor builds and dry-runs a harmless action (`remediate executors check`)."""
    from bot.services import executor_config
    from playbooks.catalog import load_catalog
    from remediation.executors.check import check_executors

    try:
        catalog = load_catalog([settings.playbooks_dir] if settings.playbooks_dir else [])
        rows = check_executors(executor_config(settings), catalog)
    except Exception as exc:  # a broken playbook directory
        return Check(
            "executor", FAIL, _why(exc), "fix REMEDIATE_PLAYBOOKS_DIR (`remediate playbooks validate`)"
        )
    bad = [r for r in rows if r.status in ("refused", "failed", "unknown")]
    if bad:
        detail = "; ".join(f"{r.executor}: {r.detail}" for r in bad)
        return Check(
            "executor", FAIL, detail, "see docs/executors.md; `remediate executors check` shows each dry run"
        )
    if [r.executor for r in rows] == ["none"]:
        fix = "set REMEDIATE_EXECUTOR (webhook, shell or kubernetes) to run approved actions (docs/executors.md)"
        return Check(
            "executor", WARN, "none: advisory only, approving records the decision and nothing runs", fix
        )
    return Check("executor", OK, "; ".join(f"{r.executor}: {r.status} ({r.action})" for r in rows))


def check_rbac(settings: Settings, bot_user: str | None) -> list[Check]:
    """The RBAC file loads, and the user proposing alert-born actions may request them."""
    from playbooks.models import Risk
    from remediation.guardrails.config import DEFAULT_RBAC, load_rbac
    from remediation.guardrails.rbac import may

    where = str(settings.rbac_config or DEFAULT_RBAC)
    try:
        config = load_rbac(settings.rbac_config)
    except Exception as exc:  # GuardrailConfigError naming file and key; OSError for an unreadable file
        fix = f"fix {where} (`remediate rbac check` explains decisions; docs/safety.md has the format)"
        return [
            Check("rbac", FAIL, _why(exc), fix),
            Check("bot may request", SKIP, "needs a valid RBAC file"),
        ]
    loaded = Check("rbac", OK, f"{where}: {len(config.users)} users, {len(config.policies)} policies")
    user = settings.requester or bot_user
    if not user:
        return [
            loaded,
            Check("bot may request", SKIP, "the bot's user id is unknown (needs a working token)"),
        ]
    allowed = [r.value for r in Risk if may(config, user, "request", r, None)]
    if not allowed:
        fix = (
            f"add {user} under users in {where} with a role whose policy lists `request: [low, medium, ...]` "
            "(or set REMEDIATE_REQUESTER to a user who may)"
        )
        return [loaded, Check("bot may request", FAIL, f"{user} may request no action", fix)]
    return [loaded, Check("bot may request", OK, f"{user} may request {', '.join(allowed)} risk actions")]


def check_policy(settings: Settings) -> Check:
    """The ranking policy the settings name loads (auto: the promoted one, else the bundled one, else the runbook)."""
    if settings.policy == "runbook":
        return Check("policy", OK, "runbook baseline")
    from bot.cli.serve_build import choose_policy
    from incidents_db import db

    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return Check("policy", OK if settings.policy == "auto" else FAIL, "no store yet: runbook baseline")
    engine = db.make_engine(url)
    try:
        if settings.policy == "auto" and db.current_revision(engine) is None:
            return Check("policy", OK, "store not migrated yet: runbook baseline")
        policy = choose_policy(engine, settings)
    except Exception as exc:  # ArtifactError, RegistryError, StoreError: say which and why
        fix = "`remediate policy list` shows what is registered; REMEDIATE_POLICY=auto or runbook"
        return Check("policy", FAIL, f"{settings.policy}: {_why(exc)}", fix)
    finally:
        engine.dispose()
    return Check(
        "policy", WARN if policy.error else OK, policy.name + (f" ({policy.error})" if policy.error else "")
    )
