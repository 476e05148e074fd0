"""Spec drift on real-shaped Deployment JSON, and what it does to a verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from remediation.executors.kubedrift import health, spec_drift
from remediation.verification.judge import Judgement
from remediation.verification.workload import with_workload

RESTARTED = "kubectl.kubernetes.io/restartedAt"


def deployment(image: str = "gcr.io/shop/cart:1.4.2", replicas: int = 3) -> dict[str, Any]:
    """A Deployment as the API server returns it (trimmed to what an action touches, plus noise)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "cartservice", "namespace": "shop", "uid": "5f0c", "resourceVersion": "81234",
            "generation": 7, "labels": {"app": "cartservice"},
            "annotations": {"deployment.kubernetes.io/revision": "7", "team.example/owner": "shop"},
        },
        "spec": {
            "replicas": replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "cartservice"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "cartservice"}},
                "spec": {
                    "containers": [{
                        "name": "server", "image": image, "ports": [{"containerPort": 7070}],
                        "env": [{"name": "REDIS_ADDR", "value": "redis-cart:6379"}],
                        "resources": {"limits": {"cpu": "300m", "memory": "128Mi"}},
                    }],
                    "terminationGracePeriodSeconds": 5,
                },
            },
        },
        "status": {"observedGeneration": 7, "replicas": replicas, "readyReplicas": replicas,
                   "updatedReplicas": replicas, "availableReplicas": replicas},
    }  # fmt: skip


def _restarted(body: dict[str, Any]) -> dict[str, Any]:
    after = copy.deepcopy(body)
    after["spec"]["template"]["metadata"]["annotations"] = {RESTARTED: "2026-12-01T17:00:00Z"}
    after["metadata"]["annotations"]["remediate.io/request-id"] = "req-1"
    after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "8"
    after["metadata"]["generation"], after["metadata"]["resourceVersion"] = 8, "81300"
    return after


def test_a_restart_changes_only_restarted_at() -> None:
    before = deployment()
    assert spec_drift("rollout_restart", before, _restarted(before)) == ()


def test_a_restart_that_also_changed_memory_limits_is_drift() -> None:
    before = deployment()
    after = _restarted(before)
    after["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "64Mi"
    assert spec_drift("rollout_restart", before, after) == (
        'spec.template.spec.containers[server].resources.limits.memory changed from "128Mi" to "64Mi"',
    )


def test_a_scale_changes_only_replicas() -> None:
    before = deployment(replicas=3)
    after = deployment(replicas=5)
    assert spec_drift("scale", before, after) == ()
    after["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = "100%"
    assert spec_drift("scale", before, after) == (
        'spec.strategy.rollingUpdate.maxUnavailable changed from "25%" to "100%"',
    )
    assert spec_drift("rollout_restart", before, deployment(replicas=5)) == (
        "spec.replicas changed from 3 to 5",
    )


def test_a_rollback_changes_the_template_to_the_previous_revisions() -> None:
    before = deployment("gcr.io/shop/cart:1.5.0")
    previous = deployment("gcr.io/shop/cart:1.4.2")["spec"]["template"]
    after = deployment("gcr.io/shop/cart:1.4.2")
    assert spec_drift("rollout_undo", before, after, template=previous) == ()
    wrong = deployment("gcr.io/shop/cart:9.9.9")
    assert spec_drift("rollout_undo", before, wrong, template=previous) == (
        "spec.template is not the previous revision's template",
    )


def test_a_canary_changes_nothing_in_the_workload_and_labels_count() -> None:
    before = deployment()
    after = copy.deepcopy(before)
    after["metadata"]["annotations"]["remediate.io/canary"] = "req-2"  # bookkeeping: not drift
    assert spec_drift("canary", before, after) == ()
    after["metadata"]["labels"]["tier"] = "gold"
    assert spec_drift("canary", before, after) == ('metadata.labels.tier changed from (none) to "gold"',)


def test_an_unknown_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        spec_drift("delete_everything", deployment(), deployment())


def test_health_reads_ready_against_desired() -> None:
    body = deployment(replicas=4)
    body["status"]["readyReplicas"] = 1
    assert health(body) == {"ready": 1, "desired": 4}


def test_drift_caps_an_effective_verdict_at_partial_and_shows_health() -> None:
    good = Judgement(
        "effective", "all targeted alerts cleared after 3 min", ("HighErrorRate on cartservice cleared",)
    )
    data = {"spec_drift": ["spec.replicas changed from 3 to 5"], "health": {"ready": 3, "desired": 5},
            "workload": "deployment/cartservice -n shop"}  # fmt: skip
    capped = with_workload(good, data)
    assert capped.verdict == "partial" and "spec.replicas changed from 3 to 5" in capped.summary
    assert "deployment/cartservice -n shop: 3 of 5 replicas ready after the rollout" in capped.evidence
    assert "spec drift: spec.replicas changed from 3 to 5" in capped.evidence
    clean = with_workload(good, {"spec_drift": [], "health": {"ready": 3, "desired": 3}})
    assert clean.verdict == "effective" and len(clean.evidence) == 2
    worse = Judgement("harmful", "new alert", ())
    assert with_workload(worse, data).verdict == "harmful"  # drift never softens a worse verdict
    assert with_workload(good, {}) == good  # not a Kubernetes action: unchanged
