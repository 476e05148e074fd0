"""A Kubernetes action run through the approval workflow against the test API server, then judged: the
workload's health and the spec drift the executor saw are in the verdict's evidence."""

from __future__ import annotations

from pathlib import Path

from incidents_db import verifications as store_v
from remediation.approvals import service as svc
from remediation.executors.kubernetes import KubernetesExecutor
from remediation.verification import service as verification
from tests.remediation.conftest import ALICE, BOB, Store
from tests.remediation.executors import kubeobjects
from tests.remediation.executors.conftest import kube_api, kube_certs, kubeconfig  # noqa: F401
from tests.remediation.executors.kubeapi import KubeApiServer, Recorded
from tests.remediation.executors.kubeobjects import NS

DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/frontend"


def test_drift_and_health_reach_the_verdict(
    sqlite_store: Store,
    kube_api: KubeApiServer,  # noqa: F811
    kubeconfig: Path,  # noqa: F811
) -> None:
    store = sqlite_store
    kubeobjects.deployment(kube_api, replicas=3)

    def meddle(recorded: Recorded) -> None:  # someone edits the Deployment while it rolls out
        if recorded.method == "PATCH" and recorded.path == DEPLOYMENT and not recorded.query.get("dryRun"):
            obj = kube_api.objects[("deployments", NS, "frontend")]
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = "web:hotfix"

    kube_api.after.append(meddle)
    ex = KubernetesExecutor(kubeconfig=kubeconfig, namespaces={"frontend": NS}, poll_s=0.02)
    with store.factory() as s:
        req = svc.propose(db_session=s, guard=store.guard, action="restart_service", target="frontend",
                          params={}, requester=ALICE)  # fmt: skip
        done = svc.approve(db_session=s, guard=store.guard, request_id=req.id, approver=BOB, executor=ex)
        assert done.state == "succeeded"
        verification.schedule(db_session=s, request_id=req.id, action="restart_service", target="frontend",
                              incident_id=None, settle_s=0, now=store.clock())  # fmt: skip
        s.commit()
        assert store_v.claim_due(db_session=s, now=store.clock(), owner="r1", lease_s=60) == [req.id]
        verdict = verification.verify_one(
            db_session=s, guard=store.guard, request_id=req.id, owner="r1", topology=None
        )
    assert verdict is not None
    evidence = verdict.judgement.evidence
    assert f"deployment/frontend -n {NS}: 3 of 3 replicas ready after the rollout" in evidence
    assert (
        'spec drift: spec.template.spec.containers[web].image changed from "web:v3" to "web:hotfix"'
        in evidence
    )
    with store.factory() as s:
        row = store_v.get(db_session=s, request_id=req.id)
        assert row is not None and any("spec drift" in e for e in row.evidence)
