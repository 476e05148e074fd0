"""Change events at POST /events/deploy, through the real app over HTTP: each form, refusals, timelines."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.settings import with_overrides
from incidents_db import incidents
from incidents_db.changes import recent
from remediation.policies.observe import observation_from_record
from sim.observation import FEATURES
from tests.bot.conftest import TOKEN, Harness, generic
from tests.bot.sandbox.conftest import wait_for

GITHUB_SECRET = "gh-secret"  # the harness's github_webhook_secret


def post(
    harness: Harness,
    body: Any,
    *,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{harness.url}/events/deploy",
        data=data if method == "POST" else None,
        headers=all_headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def argocd(app: str, at: datetime, **extra: str) -> dict[str, Any]:
    """What the documented Argo CD template renders for a synced app."""
    return {
        "app": app, "revision": "8f2c1e9d4b7a", "sync_status": "Synced", "health_status": "Healthy",
        "operation_phase": "Succeeded", "namespace": "shop", "finished_at": iso(at),
        "repo_url": "https://git.example.com/shop/deploy.git", "url": f"https://argocd.example.com/applications/{app}",
        "service": "<no value>", **extra,
    }  # fmt: skip


def github(repo: str, at: datetime, state: str = "success") -> dict[str, Any]:
    return {
        "action": "created",
        "deployment_status": {"id": 42, "state": state, "environment": "production", "created_at": iso(at),
                              "updated_at": iso(at), "target_url": "https://ci.example.com/run/7"},
        "deployment": {"id": 7, "sha": "a1b2c3d4e5f6a7b8", "ref": "v2.3.0", "environment": "production",
                       "payload": {}},
        "repository": {"name": repo, "full_name": f"shop/{repo}"},
        "sender": {"login": "octocat"},
    }  # fmt: skip


def signed(
    body: dict[str, Any], secret: str = GITHUB_SECRET, event: str = "deployment_status"
) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(body).encode()
    digest = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    return data, {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}


def flux(
    at: datetime, message: str, reason: str = "ReconciliationSucceeded", severity: str = "info"
) -> dict[str, Any]:
    return {
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "shop-apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": severity, "timestamp": iso(at), "message": message, "reason": reason,
        "metadata": {"revision": "main@sha1:0c9d8e7f", "summary": "shop apps"},
        "reportingController": "kustomize-controller",
    }  # fmt: skip


def timeline(harness: Harness, incident_id: str) -> list[dict[str, Any]]:
    with harness.services.sessions() as s:
        return list(incidents.record(db_session=s, incident_id=incident_id)["events"])


def test_each_form_is_accepted_and_mapped_to_a_graph_service(harness: Harness) -> None:
    now = harness.services.clock().replace(microsecond=0)
    status, body = post(harness, argocd("shop-cartservice", now - timedelta(minutes=1)))
    assert status == 200, body
    assert (body["source"], body["recorded"], body["changes"][0]["service"]) == ("argocd", 1, "cartservice")
    assert body["changes"][0]["in_graph"] and body["changes"][0]["version"] == "8f2c1e9d4b7a"

    data, headers = signed(github("frontend", now))
    status, body = post(harness, data, token=None, headers=headers)
    assert status == 200, body
    assert (body["source"], body["changes"][0]["service"], body["changes"][0]["version"]) == (
        "github", "frontend", "v2.3.0"
    )  # fmt: skip

    message = "Deployment/shop/checkoutservice configured\nService/shop/checkoutservice unchanged"
    status, body = post(harness, flux(now, message))
    assert status == 200, body
    assert [(c["service"], c["kind"]) for c in body["changes"]] == [("checkoutservice", "deploy")]
    status, body = post(harness, flux(now, "ConfigMap/shop/currencyservice-config configured"))
    assert [(c["service"], c["kind"]) for c in body["changes"]] == [("shop-apps", "config_change")]

    status, body = post(
        harness, {"service": "paymentservice", "kind": "config", "version": "timeout 2s -> 200ms", "at": iso(now),
                  "source": "spinnaker", "url": "https://spin.example.com/p/1"},
    )  # fmt: skip
    assert status == 200, body
    assert (body["source"], body["changes"][0]["kind"]) == ("spinnaker", "config_change")
    with harness.services.sessions() as s:
        kept = {(c.service, c.kind, c.source) for c in recent(db_session=s)}
    assert kept == {
        ("cartservice", "deploy", "argocd"), ("frontend", "deploy", "github"),
        ("checkoutservice", "deploy", "flux"), ("shop-apps", "config_change", "flux"),
        ("paymentservice", "config_change", "spinnaker"),
    }  # fmt: skip


def test_refusals_say_what_to_fix_and_store_nothing(harness: Harness) -> None:
    now = harness.services.clock()
    change = {"service": "cartservice", "version": "v1"}
    status, body = post(harness, change, token=None)
    assert (status, body["error"]) == (
        401, "missing credentials: send 'Authorization: Bearer <REMEDIATE_DEPLOY_WEBHOOK_TOKEN>'"
    )  # fmt: skip
    assert post(harness, change, token="wrong") == (401, {"ok": False, "error": "the bearer token is wrong"})
    data, headers = signed(github("frontend", now), secret="not-the-secret")
    status, body = post(harness, data, token=None, headers=headers)
    assert status == 401 and "X-Hub-Signature-256 does not match the body" in body["error"]
    data, headers = signed(github("frontend", now))
    status, body = post(harness, data + b" ", token=None, headers=headers)  # a byte changed after signing
    assert status == 401 and "does not match" in body["error"]
    assert post(harness, b"{not json") == (422, {"ok": False, "error": "the body is not JSON"})
    status, body = post(harness, {"hello": "world"})
    assert status == 422 and body["error"].startswith("unknown change event format: expected")
    status, body = post(harness, ["cartservice"])
    assert status == 422 and "docs/change-events.md" in body["error"]
    status, body = post(harness, {"service": "cartservice", "kind": "rollout"})
    assert status == 422 and "kind: Input should be 'deploy' or 'config'" in body["error"]
    status, body = post(harness, {"service": "cartservice", "versoin": "v1"})
    assert status == 422 and "versoin: Extra inputs are not permitted" in body["error"]
    status, body = post(harness, {"service": "cartservice", "at": "2026-03-03T10:00:00"})
    assert status == 422 and "time zone" in body["error"]
    status, body = post(harness, {"service": "cartservice", "at": iso(now + timedelta(hours=2))})
    assert status == 422 and "in the future" in body["error"]
    status, body = post(harness, {"service": "x" * 201})
    assert status == 422 and body["error"].startswith("not a valid generic change event: service:")
    status, body = post(harness, {"app": "cartservice", "revision": "r" * 5000, "sync_status": "Synced"})
    assert status == 422 and "revision" in body["error"]
    status, body = post(harness, b"[" * 40 + b"]" * 40)
    assert status == 422 and "nested deeper" in body["error"]
    status, body = post(harness, b"x" * 1_000_001)
    assert status == 413
    data, headers = signed({"ref": "refs/heads/main"}, event="push")
    status, body = post(harness, data, token=None, headers=headers)
    assert status == 400 and "subscribe the webhook to 'Deployment statuses' only" in body["error"]
    assert post(harness, {}, method="GET")[0] == 405
    with harness.services.sessions() as s:
        assert recent(db_session=s) == []


def test_what_is_no_finished_change_is_ignored_with_a_reason(harness: Harness) -> None:
    now = harness.services.clock()
    data, headers = signed({"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    status, body = post(harness, data, token=None, headers=headers)
    assert (status, body["recorded"]) == (200, 0) and "reaches the bot" in body["ignored"]
    data, headers = signed(github("frontend", now, state="failure"))
    status, body = post(harness, data, token=None, headers=headers)
    assert (status, body["recorded"]) == (200, 0)
    assert (
        body["ignored"]
        == "GitHub deployment status 'failure' of 'frontend' is not a finished deploy; only 'success' counts"
    )
    status, body = post(
        harness, argocd("cartservice", now, sync_status="OutOfSync", operation_phase="Running")
    )
    assert (status, body["recorded"]) == (200, 0) and "OutOfSync (operation Running)" in body["ignored"]
    status, body = post(harness, flux(now, "kustomize build failed", reason="BuildFailed", severity="error"))
    assert (status, body["recorded"]) == (200, 0) and "not an applied change" in body["ignored"]
    with harness.services.sessions() as s:
        assert recent(db_session=s) == []


def test_a_deploy_token_of_its_own_replaces_the_alerts_token(harness: Harness) -> None:
    settings = harness.services.settings
    harness.services.settings = with_overrides(settings, deploy_webhook_token="deploy-only")
    try:
        assert post(harness, {"service": "cartservice"})[0] == 401  # the alerts token no longer opens it
        assert post(harness, {"service": "cartservice"}, token="deploy-only")[0] == 200
    finally:
        harness.services.settings = settings


def recent_deploy(harness: Harness, incident_id: str, service: str, now: datetime) -> float:
    with harness.services.sessions() as s:
        record = incidents.record(db_session=s, incident_id=incident_id)
    observation, graph = observation_from_record(record, topology=harness.services.topology, now=now)
    return float(observation.nodes[graph.index[service], FEATURES.index("recent_deploy")])


def test_a_deploy_before_an_incident_opens_starts_its_timeline_and_ranks_rollback(
    db_harness: Harness,
) -> None:
    h = db_harness
    now = h.services.clock().replace(microsecond=0)
    deployed = now - timedelta(minutes=4)
    status, body = post(
        h, {"service": "cartservice", "version": "v1.8.0", "at": iso(deployed), "source": "ci"}
    )
    assert (status, body["recorded"], body["incidents"]) == (200, 1, [])
    status, body = h.post_alert("generic", generic("HighErrorRate", "cartservice", fingerprint="err-1"))
    incident_id = body["created"][0]
    events = timeline(h, incident_id)
    assert events[0]["type"] == "deploy" and events[0]["service"] == "cartservice"
    assert (events[0]["version"], events[0]["source"], events[0]["at"]) == ("v1.8.0", "ci", iso(deployed))
    assert events[1]["type"] == "alert"
    # the live observation sees "deployed 4 minutes ago" as training did: exp(-240 s / 30 min)
    assert recent_deploy(h, incident_id, "cartservice", now) == pytest.approx(0.875, abs=0.01)
    card = h.wait_card(incident_id, lambda blocks: "rollback_deploy on cartservice" in blocks)
    text = json.dumps(card["blocks"])
    assert "deployed `v1.8.0` 4 min before opening" in text
    assert text.index("rollback_deploy on cartservice") < text.index("restart_service")


def test_a_deploy_outside_the_window_is_kept_but_not_on_the_timeline(db_harness: Harness) -> None:
    h = db_harness
    now = h.services.clock()
    status, body = post(
        h, {"service": "cartservice", "version": "v1.7.0", "at": iso(now - timedelta(hours=2))}
    )
    assert (status, body["recorded"], body["changes"][0]["recent"]) == (200, 1, False)
    status, body = post(h, {"service": "not-in-graph", "version": "v9"})  # neither in the graph nor named
    assert body["changes"][0]["in_graph"] is False
    status, body = h.post_alert("generic", generic("HighErrorRate", "cartservice", fingerprint="err-2"))
    incident_id = body["created"][0]
    assert [e["type"] for e in timeline(h, incident_id)] == ["alert"]
    assert recent_deploy(h, incident_id, "cartservice", now) == 0.0
    with h.services.sessions() as s:
        assert {c.service for c in recent(db_session=s)} == {"cartservice", "not-in-graph"}


def test_a_deploy_during_an_open_incident_joins_it_once(db_harness: Harness) -> None:
    h = db_harness
    status, body = h.post_alert("generic", generic("HighLatency", "checkoutservice", fingerprint="lat-1"))
    incident_id = body["created"][0]
    h.card_for(incident_id)
    now = h.services.clock()
    change = argocd("shop-checkoutservice", now)
    status, body = post(h, change)
    assert (status, body["recorded"], body["incidents"]) == (200, 1, [incident_id])
    status, body = post(h, change)  # Argo CD retries: the same change again adds nothing
    assert (status, body["recorded"], body["duplicates"], body["incidents"]) == (200, 0, 1, [])
    deploys = [e for e in timeline(h, incident_id) if e["type"] == "deploy"]
    assert [(e["service"], e["version"], e["app"]) for e in deploys] == [
        ("checkoutservice", "8f2c1e9d4b7a", "shop-checkoutservice")
    ]
    with h.services.sessions() as s:
        assert incidents.get(db_session=s, incident_id=incident_id).services == ["checkoutservice"]
    assert recent_deploy(h, incident_id, "checkoutservice", now) == pytest.approx(1.0, abs=0.01)
    card = h.wait_card(incident_id, lambda blocks: "deployed `8f2c1e9d4b7a` after opening" in blocks)
    wait_for(
        lambda: any("🚀 deploy of `checkoutservice`" in r.get("text", "") for r in h.replies(card["ts"]))
    )
