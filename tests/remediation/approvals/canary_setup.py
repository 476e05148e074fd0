"""Setup shared by the canary tests: a restart proposed for an incident with "canary first" armed."""

from __future__ import annotations

from incidents_db import canaries, incidents
from incidents_db import verifications as checks
from remediation.approvals import service as svc
from tests.remediation.conftest import ALICE, BOB, Store


def armed_canary(store: Store, *, auto_undo: bool = False) -> tuple[str, str]:
    """Return (incident id, request id) of a restart proposed for an incident with "canary first" armed."""
    with store.factory() as s:
        incident = incidents.create(db_session=s, title="carts 5xx", services=["checkoutservice"],
                                    severity="sev2", source="alert", now=store.clock())  # fmt: skip
        s.commit()
        view = svc.propose(db_session=s, guard=store.guard, action="restart_service", target="checkoutservice",
                           params={}, requester=ALICE, incident_id=incident.id)  # fmt: skip
        canaries.arm(db_session=s, request_id=view.id, action=view.action, target=view.target,
                     incident_id=incident.id, share=0.25, second_approval=False, by=BOB, now=store.clock())  # fmt: skip
        if auto_undo:  # "undo if harmful" chosen with the canary: a failed run is no harmful verdict
            checks.arm(db_session=s, request_id=view.id, action=view.action, target=view.target,
                       incident_id=incident.id)  # fmt: skip
        s.commit()
        return incident.id, view.id
