"""Hypothesis stateful test: no sequence of workflow calls executes anything without the approvals its risk needs."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as stg
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from incidents_db.db import make_engine, make_sessionmaker, upgrade
from incidents_db.models import Approval, ApprovalRequest, Execution, GuardrailSwitch
from playbooks.catalog import builtin_catalog
from playbooks.models import Risk
from remediation.approvals import service as svc
from remediation.errors import ApprovalError
from remediation.guardrails.config import load_rbac
from remediation.guardrails.rbac import eligible_approvers
from tests.remediation.conftest import KINDS, CountingExecutor

USERS = [
    "U024BE7LH",
    "U02B3C4D5",
    "U03C4D5E6",
    "U04D5E6F7",
    "U05E6F7G8",
    "U06F7G8H9",
    "U07G8H9J0",
    "UEVIL0001",
]
ACTIONS = [
    ("restart_service", "checkoutservice"),
    ("drain_node", "checkoutservice"),
    ("failover_datastore", "mongodb-rate"),
    ("scale_out", "frontend"),
    ("flush_cache", "redis-cart"),
    ("escalate", None),
]
_TEMPLATE: dict[str, Path] = {}


def template_db() -> Path:
    if "path" not in _TEMPLATE:
        path = Path(tempfile.mkdtemp()) / "template.sqlite"
        upgrade(f"sqlite:///{path}")
        _TEMPLATE["path"] = path
    return _TEMPLATE["path"]


class Workflow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        path = self.dir / f"{uuid.uuid4().hex}.sqlite"
        shutil.copy(template_db(), path)
        self.engine = make_engine(f"sqlite:///{path}")
        self.factory = make_sessionmaker(self.engine)
        self.now = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
        self.config = load_rbac()
        self.guard = svc.Guard(
            config=self.config, catalog=builtin_catalog(), clock=lambda: self.now, service_kinds=KINDS
        )
        self.executor = CountingExecutor()
        self.ids: list[str] = []

    def teardown(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _try(self, fn, **kw) -> None:  # type: ignore[no-untyped-def]
        with self.factory() as s:
            try:
                view = fn(db_session=s, guard=self.guard, **kw)
            except ApprovalError:
                return
        if isinstance(view, svc.RequestView) and view.id not in self.ids:
            self.ids.append(view.id)

    @rule(who=stg.sampled_from(USERS), what=stg.sampled_from(ACTIONS))
    def propose(self, who: str, what: tuple[str, str | None]) -> None:
        self._try(svc.propose, action=what[0], target=what[1], params={}, requester=who)

    @precondition(lambda self: self.ids)
    @rule(who=stg.sampled_from(USERS), pick=stg.integers(0, 50), run=stg.booleans())
    def approve(self, who: str, pick: int, run: bool) -> None:
        self._try(
            svc.approve,
            request_id=self.ids[pick % len(self.ids)],
            approver=who,
            executor=self.executor if run else None,
        )

    @precondition(lambda self: self.ids)
    @rule(pick=stg.integers(0, 50))
    def execute(self, pick: int) -> None:
        self._try(svc.execute, request_id=self.ids[pick % len(self.ids)], executor=self.executor)

    @precondition(lambda self: self.ids)
    @rule(who=stg.sampled_from(USERS), pick=stg.integers(0, 50))
    def reject(self, who: str, pick: int) -> None:
        self._try(svc.reject, request_id=self.ids[pick % len(self.ids)], approver=who)

    @precondition(lambda self: self.ids)
    @rule(who=stg.sampled_from(USERS), pick=stg.integers(0, 50))
    def cancel(self, who: str, pick: int) -> None:
        self._try(svc.cancel, request_id=self.ids[pick % len(self.ids)], actor=who)

    @rule(seconds=stg.sampled_from([60, 1800, 4000]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(on=stg.booleans())
    def freeze(self, on: bool) -> None:
        with self.factory() as s:
            s.merge(
                GuardrailSwitch(
                    kind="freeze", scope="*", engaged=on, actor="U05E6F7G8", reason="", at=self.now
                )
            )
            s.commit()

    @invariant()
    def every_execution_had_its_approvals(self) -> None:
        with self.factory() as s:
            for _ex, req in s.execute(
                sa.select(Execution, ApprovalRequest).join(
                    ApprovalRequest, Execution.request_id == ApprovalRequest.id
                )
            ):
                approvers = set(
                    s.execute(
                        sa.select(Approval.approver).where(
                            Approval.request_id == req.id, Approval.decision == "approve"
                        )
                    ).scalars()
                )
                risk = Risk(req.risk)
                eligible = approvers & set(eligible_approvers(self.config, risk, req.target, req.requester))
                assert req.requester not in approvers
                assert len(eligible) >= self.config.approvals_required[risk], (req.action, approvers)
        assert len(self.executor.calls) == len(set(self.executor.calls))  # never twice


Workflow.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestWorkflow = Workflow.TestCase
