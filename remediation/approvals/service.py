"""Service API of the approval workflow, the only code that changes a request's state.

Callers import this one module (``from remediation.approvals import service as approvals``), as in
Dispatch's ``service.py``; the functions live in modules split by meaning and are re-exported here:

- `remediation.approvals.requests`: propose, submit, approve, reject, cancel, expire_due.
- `remediation.approvals.execution`: preview, execute (under a renewed lease), renew_lease,
  record_outcome, fail_blocked.
- `remediation.approvals.recovery`: recover_interrupted.
- `remediation.approvals.views`: RequestView, get; `remediation.approvals.context`: Guard,
  read_switches, build_context. Shared internal steps (load, move, audit, refuse) are in ``_store``.

Every function runs one or two short transactions of its own and commits them: a denial is written to
the audit log and committed even though the step is refused. Each transaction first takes the audit
chain lock (`lock_chain`), which serialises state changes across threads and processes on SQLite and
PostgreSQL alike; state moves are additionally conditional (``UPDATE ... WHERE state = :expected``) and
`executions.request_id` is unique, so one approved request yields one execution however many callers race.
"""

from __future__ import annotations

from remediation.approvals.context import Guard, build_context, read_switches
from remediation.approvals.execution import execute, fail_blocked, preview, record_outcome, renew_lease
from remediation.approvals.lease import Lease
from remediation.approvals.recovery import recover_interrupted
from remediation.approvals.requests import approve, cancel, expire_due, propose, reject, submit
from remediation.approvals.views import RequestView, get

__all__ = [
    "Guard",
    "Lease",
    "RequestView",
    "approve",
    "build_context",
    "cancel",
    "execute",
    "expire_due",
    "fail_blocked",
    "get",
    "preview",
    "propose",
    "read_switches",
    "record_outcome",
    "recover_interrupted",
    "reject",
    "renew_lease",
    "submit",
]
