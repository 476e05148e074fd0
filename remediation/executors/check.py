"""`remediate executors check`: each configured executor's dry run against a harmless target.

One row per executor the settings configure (the default and every route): built as `serve` would
build it, then asked for a dry run of one of its actions. Nothing changes anywhere: the webhook and
PagerDuty executors show the request they would send, shell the argv it would run, kubernetes sends
the patch with ``dryRun=All`` (so the API server checks credentials and permissions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from playbooks.catalog import Catalog
from playbooks.models import Action
from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest
from remediation.executors.build import ExecutorConfig, build_one, check_routes
from remediation.executors.routing import ADVISORY
from remediation.executors.sim import SimWorld

CHECK_TARGET = "remediate-executors-check"
PREFERRED = ("restart_service", "escalate")
MISSING_WORKLOAD = "no Deployment or StatefulSet named"  # the kubernetes executor's answer to a 404


@dataclass(frozen=True)
class CheckRow:
    """One executor's check: which actions use it, the dry-run action and target, and what would happen."""

    executor: str
    used_for: str
    action: str
    target: str | None
    status: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """Return the row as JSON-ready values."""
        return asdict(self)


def _sample(catalog: Catalog, kind: str, actions: list[str]) -> Action | None:
    """Return the action to dry-run on ``kind``: a routed one, else a preferred one it can run."""
    candidates = [*actions, *PREFERRED, *catalog.ids]
    for action_id in candidates:
        if action_id in catalog and (kind == "pagerduty" or kind in catalog.get(action_id).executors):
            return catalog.get(action_id)
    return None


def check_executors(
    config: ExecutorConfig, catalog: Catalog, *, target: str = CHECK_TARGET, world: SimWorld | None = None
) -> list[CheckRow]:
    """Return one row per configured executor: its dry run of a sample action, or why it cannot run."""
    try:
        check_routes(config, catalog.ids)
    except ExecutorError as exc:
        return [CheckRow("routes", ", ".join(sorted(config.routes)), "-", None, "refused", str(exc))]
    uses: dict[str, list[str]] = {config.kind: []}
    for action_id, kind in sorted(config.effective_routes().items()):
        uses.setdefault(kind, []).append(action_id)
    rows = []
    for kind, actions in uses.items():
        used_for = ", ".join(actions) if actions else "every action not routed elsewhere"
        if kind == config.kind and actions:
            used_for = "every action not routed elsewhere, " + used_for
        if kind == "none":
            rows.append(CheckRow("none", used_for, "-", None, "advisory", ADVISORY))
            continue
        rows.append(_check_one(kind, used_for, actions, config, catalog, target, world))
    return rows


def _check_one(
    kind: str,
    used_for: str,
    actions: list[str],
    config: ExecutorConfig,
    catalog: Catalog,
    target: str,
    world: SimWorld | None,
) -> CheckRow:
    action = _sample(catalog, kind, actions)
    if action is None:
        return CheckRow(kind, used_for, "-", None, "refused", f"no catalog action can run on {kind}")
    aim = target if action.scope == "service" else None
    try:
        executor = build_one(kind, config, world)
        request = ExecRequest(f"check-{kind}", action, aim, action.validate_params({}), "executors-check")
        outcome = executor.execute(request, dry_run=True)
    except ExecutorError as exc:
        return CheckRow(kind, used_for, action.id, aim, "refused", str(exc))
    except ValueError as exc:  # parameters without defaults
        return CheckRow(kind, used_for, action.id, aim, "refused", f"cannot dry-run {action.id}: {exc}")
    if kind == "kubernetes" and outcome.status == "failed" and outcome.detail.startswith(MISSING_WORKLOAD):
        # the API server answered the read with our credentials: reachable, just no such workload
        detail = f"credentials work; {outcome.detail} (use --target to dry-run a real workload)"
        return CheckRow(kind, used_for, action.id, aim, "reachable", detail)
    return CheckRow(kind, used_for, action.id, aim, outcome.status, outcome.detail)
