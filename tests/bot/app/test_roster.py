"""On-call-aware roles through the real app: Slack user groups, a PagerDuty schedule, reloads of the file.

Slack is the local sandbox; PagerDuty is a real HTTPS server on a local socket that PagerDuty's official
client is pointed at (``pagerduty_api_url``; its self-signed certificate trusted through SSL_CERT_FILE).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk import WebClient

from incidents_db.models import AuditEntry
from remediation.guardrails.rbac import role_origins, roles_of
from tests.bot.conftest import ALICE, BOB, BOT, CAROL, DAVE, RBAC, Harness, _running, generic
from tests.bot.sandbox.conftest import control, wait_for

KEEP_S = 600.0
GROUPS = f"""
version: 1
policy_version: rbac-groups-1
roles:
  bot: the bot itself
  oncall: on call
  sre-lead: leads
users:
  {BOT}: {{name: remediate, roles: [bot]}}
  {CAROL}: {{name: carol, roles: [sre-lead]}}
groups:
  oncall: {{name: "@oncall", slack_usergroup: S0ONCALL01, roles: [oncall]}}
  primary: {{name: payments primary, pagerduty_schedule: PSCHED1, roles: [oncall]}}
teams:
  shop:
    groups: [oncall, primary]
    services: [checkoutservice, cartservice, redis-cart, frontend]
policies:
  - {{name: bot-requests, roles: [bot], services: ["*"], request: [low, medium, high, critical]}}
  - {{name: oncall-owned, roles: [oncall], services: [owned], request: [low, medium], approve: [low, medium]}}
  - {{name: leads, roles: [sre-lead], services: ["*"], request: [low, medium, high, critical], approve: [low, medium, high, critical]}}
"""


class FakePagerDuty:
    """PagerDuty's REST API for one call: ``GET /schedules/{id}/users``, over HTTPS on a local socket."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.oncall: list[dict[str, Any]] = []
        self.status = 200
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append((self.path, self.headers.get("Authorization", "")))
                found = self.path.split("?")[0] == "/schedules/PSCHED1/users"
                body = json.dumps({"users": fake.oncall} if found else {"error": {"message": "Not Found"}})
                self.send_response(fake.status if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    """Real time plus an offset the test moves forward (the outbox keeps pacing on real time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def pagerduty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePagerDuty]:
    cert, key = tmp_path / "pd-cert.pem", tmp_path / "pd-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # PagerDuty's client (httpx2) trusts it
    fake = FakePagerDuty(cert, key)
    yield fake
    fake.close()


@pytest.fixture
def h(tmp_path: Path, migrated_sqlite_url: str, pagerduty: FakePagerDuty) -> Iterator[Harness]:
    yield from _running(
        tmp_path, migrated_sqlite_url, pagerduty_api_url=pagerduty.url, pagerduty_api_token="pd-test-token",
        rbac_keep_s=KEEP_S,
    )  # fmt: skip


def use_rbac(h: Harness, text: str) -> None:
    path = h.services.settings.rbac_config
    assert path is not None
    path.write_text(text, encoding="utf-8")
    assert h.app.roster is not None and h.app.roster.reload("test")


def incident(h: Harness, service: str, number: int) -> dict[str, Any]:
    status, body = h.post_alert("generic", generic("HighErrorRate", service, value=0.3))
    assert status == 200 and body["created"] == [f"INC-{number}"]
    return h.wait_card(f"INC-{number}", lambda b: "approve:1" in b)


def test_a_user_group_member_approves_and_loses_the_right_when_removed(h: Harness) -> None:
    use_rbac(h, GROUPS)  # S0ONCALL01 has alice and bob in the sandbox workspace
    assert roles_of(h.services.rbac, ALICE) == {"oncall"} and roles_of(h.services.rbac, DAVE) == set()
    card = incident(h, "checkoutservice", 1)
    h.click(ALICE, card, "approve:1")
    h.wait_ephemeral(ALICE, "Approved restart_service on checkoutservice; running")
    # An admin takes alice out of @oncall; Slack sends subteam_members_changed and the app reads it again.
    delivered = control(h.sandbox, "act/usergroup", {"usergroup": "S0ONCALL01", "users": [BOB]})
    assert delivered["delivery"]["ok"] and delivered["delivery"]["label"] == "subteam_members_changed"
    wait_for(lambda: not roles_of(h.services.rbac, ALICE))
    other = incident(h, "cartservice", 2)
    h.click(ALICE, other, "approve:1")
    h.wait_ephemeral(ALICE, "has no role in the guardrails config")
    h.click(BOB, other, "approve:1")
    h.wait_ephemeral(BOB, "Approved restart_service on cartservice; running")


def test_a_failing_user_group_keeps_its_last_members_then_expires_them(h: Harness) -> None:
    clock = Clock()
    h.services.clock = clock
    use_rbac(h, GROUPS)
    assert h.app.roster is not None
    control(h.sandbox, "faults", {"method": "usergroups.users.list", "kind": "server_error", "count": 100})
    assert ("slack_usergroup", "S0ONCALL01") in h.app.roster.refresh()
    assert roles_of(h.services.rbac, ALICE) == {"oncall"}  # the last known members stay, for a while
    assert any(o.stale for o in role_origins(h.services.rbac, ALICE))
    card = incident(h, "checkoutservice", 1)
    assert "Slack user group S0ONCALL01 unreachable since" in json.dumps(card)  # the card says so
    h.click(ALICE, card, "approve:1")
    text = h.wait_ephemeral(ALICE, "Approved restart_service on checkoutservice; running")
    assert "stale membership of Slack user group S0ONCALL01" in text
    clock.offset = timedelta(seconds=KEEP_S + 60)  # past the bound: the last members no longer count
    h.app.roster.poll()
    assert roles_of(h.services.rbac, BOB) == set()
    other = incident(h, "cartservice", 2)
    assert "its membership expired" in json.dumps(other)
    h.click(BOB, other, "approve:1")
    refusal = h.wait_ephemeral(BOB, "no role")
    assert "membership of Slack user group S0ONCALL01 expired" in refusal
    control(h.sandbox, "faults", method="DELETE")
    assert h.app.roster.refresh() == {}  # Slack answers again: the group is current
    h.click(BOB, other, "approve:1")
    h.wait_ephemeral(BOB, "Approved restart_service on cartservice; running")


def test_whoever_is_on_call_in_pagerduty_may_approve(h: Harness, pagerduty: FakePagerDuty) -> None:
    pagerduty.oncall = [{"id": "PDAVE01", "type": "user", "email": "dave@example.com", "name": "Dave"}]
    use_rbac(h, GROUPS)
    assert h.app.roster is not None
    path, auth = pagerduty.requests[-1]
    assert path.startswith("/schedules/PSCHED1/users?since=") and "until=" in path
    assert auth == "Token token=pd-test-token"
    assert [o.via.split(" (")[0] for o in role_origins(h.services.rbac, DAVE)] == [
        "group primary: PagerDuty schedule PSCHED1"
    ]
    card = incident(h, "checkoutservice", 1)
    h.click(DAVE, card, "approve:1")
    h.wait_ephemeral(DAVE, "Approved restart_service on checkoutservice; running")
    pagerduty.oncall = [{"id": "PCAR01", "type": "user", "email": "carol@example.com"}]  # the shift changes
    h.app.roster.refresh_job()
    assert roles_of(h.services.rbac, DAVE) == set()
    other = incident(h, "cartservice", 2)
    h.click(DAVE, other, "approve:1")
    h.wait_ephemeral(DAVE, "has no role")
    pagerduty.status = 503  # PagerDuty down: carol (last known on call) keeps the role, nobody gains one
    assert ("pagerduty_schedule", "PSCHED1") in h.app.roster.refresh()
    assert (
        roles_of(h.services.rbac, CAROL) == {"oncall", "sre-lead"}
        and roles_of(h.services.rbac, DAVE) == set()
    )


def _reloads(h: Harness, decision: str) -> list[AuditEntry]:
    with h.services.sessions() as s:
        query = sa.select(AuditEntry).where(
            AuditEntry.event == "rbac_reload", AuditEntry.decision == decision
        )
        return list(s.execute(query).scalars())


def test_rbac_reloads_on_sighup_and_on_change_and_keeps_the_old_config_when_the_new_is_bad(
    h: Harness,
) -> None:
    roster, path = h.app.roster, h.services.settings.rbac_config
    assert roster is not None and path is not None
    before = signal.getsignal(signal.SIGHUP)
    roster.install_sighup()
    try:
        card = incident(h, "checkoutservice", 1)
        without_alice = RBAC.replace("rbac-test-1", "rbac-test-2").replace(
            f"  {ALICE}: {{name: alice, roles: [oncall]}}\n", ""
        )
        path.write_text(without_alice, encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: h.services.rbac.policy_version == "rbac-test-2")
        h.click(ALICE, card, "approve:1")
        h.wait_ephemeral(ALICE, "has no role")
        path.write_text(
            "version: 1\nroles: {oncall: x}\nusers: {U0BOB00002: {roles: [nope]}}\n", encoding="utf-8"
        )
        os.kill(os.getpid(), signal.SIGHUP)
        denied = wait_for(lambda: _reloads(h, "denied"))
        assert "kept rbac-test-2" in denied[0].reason and "unknown role 'nope'" in denied[0].reason
        assert h.services.rbac.policy_version == "rbac-test-2"  # the running config stays
        h.click(BOB, card, "approve:1")
        h.wait_ephemeral(BOB, "Approved restart_service on checkoutservice; running")
    finally:
        signal.signal(signal.SIGHUP, before)
    path.write_text(without_alice.replace("rbac-test-2", "rbac-test-3"), encoding="utf-8")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))  # the scheduled check sees a change
    roster.poll()
    assert h.services.rbac.policy_version == "rbac-test-3"
    assert [e.reason for e in _reloads(h, "allowed")][-1] == "file changed: now rbac-test-3"


def test_sandbox_user_groups_and_lookup_by_email(h: Harness) -> None:
    client = WebClient(token=h.sandbox.bot_token, base_url=h.sandbox.api_url)
    groups = client.usergroups_list(include_users=True)["usergroups"]
    assert {g["id"]: g["users"] for g in groups}["S0ONCALL01"] == [ALICE, BOB]
    assert client.users_lookupByEmail(email="dave@example.com")["user"]["id"] == DAVE
    assert client.usergroups_users_list(usergroup="S0SRELEAD1")["users"] == [CAROL]
