"""Groups whose members come from a source: the failure rule, where roles come from, the file's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from playbooks.models import Risk
from remediation.errors import GuardrailConfigError, MembershipSourceError
from remediation.guardrails.config import load_rbac
from remediation.guardrails.membership import MembershipCache, refresh
from remediation.guardrails.models import RbacConfig
from remediation.guardrails.oncall import slack_ids
from remediation.guardrails.rbac import eligible_approvers, may, membership_note, role_origins, roles_of

ALICE, BOB, CAROL = "U0ALICE001", "U0BOB00002", "U0CAROL003"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEEP_S = 3600.0

CONFIG = {
    "roles": {"oncall": "on call", "lead": "leads"},
    "users": {CAROL: {"name": "carol", "roles": ["lead"], "email": "carol@corp.example"}},
    "groups": {
        "payments-oncall": {"slack_usergroup": "S0ONCALL01", "roles": ["oncall"]},
        "S0LISTED01": {"members": [BOB], "roles": ["oncall"]},
        "primary": {"pagerduty_schedule": "PSCHED1", "roles": ["lead"]},
    },
    "teams": {"shop": {"groups": ["payments-oncall"], "services": ["checkoutservice"]}},
    "policies": [{"name": "owned", "roles": ["oncall"], "services": ["owned"], "approve": ["low", "medium"]}],
}


def config_with(cache: MembershipCache, now: datetime) -> RbacConfig:
    base = RbacConfig.model_validate(CONFIG)
    return base.with_resolved(cache.resolve(base, now=now, keep_s=KEEP_S))


class Source:
    """A fake source at the edge: answers from a table, or fails."""

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], tuple[str, ...]] = {}
        self.down = False

    def __call__(self, kind: str, ref: str) -> tuple[str, ...]:
        if self.down:
            raise MembershipSourceError(f"{kind} {ref}: unreachable")
        return self.members.get((kind, ref), ())


def test_sourced_members_grant_roles_until_removed() -> None:
    cache, source = MembershipCache(), Source()
    base = RbacConfig.model_validate(CONFIG)
    assert roles_of(config_with(cache, T0), ALICE) == frozenset()  # never asked: nothing granted
    source.members[("slack_usergroup", "S0ONCALL01")] = (ALICE,)
    assert refresh(base, cache, source, now=T0) == {}
    config = config_with(cache, T0)
    assert roles_of(config, ALICE) == {"oncall"}
    assert may(config, ALICE, "approve", Risk.MEDIUM, "checkoutservice")  # owned through the team's group
    assert ALICE in eligible_approvers(config, Risk.MEDIUM, "checkoutservice", requester=None)
    assert role_origins(config, ALICE)[0].via.startswith("group payments-oncall: Slack user group S0ONCALL01")
    source.members[("slack_usergroup", "S0ONCALL01")] = ()
    refresh(base, cache, source, now=T0 + timedelta(minutes=5))
    assert roles_of(config_with(cache, T0 + timedelta(minutes=5)), ALICE) == frozenset()


@pytest.mark.parametrize(
    ("failing_for", "granted", "note"),
    [
        (timedelta(minutes=10), {"oncall"}, "comes from stale membership of Slack user group S0ONCALL01"),
        (timedelta(seconds=KEEP_S + 60), set(), "membership of Slack user group S0ONCALL01 expired"),
    ],
)
def test_a_failing_source_keeps_its_last_members_for_a_bounded_time(
    failing_for: timedelta, granted: set[str], note: str
) -> None:
    cache, source = MembershipCache(), Source()
    base = RbacConfig.model_validate(CONFIG)
    source.members[("slack_usergroup", "S0ONCALL01")] = (ALICE,)
    refresh(base, cache, source, now=T0)
    source.down = True
    errors = refresh(base, cache, source, now=T0 + timedelta(minutes=1))
    assert list(errors) == [("slack_usergroup", "S0ONCALL01"), ("pagerduty_schedule", "PSCHED1")]
    config = config_with(cache, T0 + failing_for)
    assert roles_of(config, ALICE) == granted
    assert note in membership_note(config, ALICE)
    assert membership_note(config, BOB) == ""  # listed in the file: not concerned


def test_a_failure_never_widens_access() -> None:
    cache, source = MembershipCache(), Source()
    base = RbacConfig.model_validate(CONFIG)
    source.down = True
    refresh(base, cache, source, now=T0)
    config = config_with(cache, T0)
    assert config.resolved["payments-oncall"].members == ()
    assert roles_of(config, ALICE) == frozenset() and membership_note(config, ALICE) == ""


def test_role_origins_name_file_entries_and_listed_groups() -> None:
    config = config_with(MembershipCache(), T0)
    assert [o.via for o in role_origins(config, CAROL)] == ["file user entry"]
    assert [o.via for o in role_origins(config, BOB)] == ["group S0LISTED01 members (file)"]


def test_schedule_emails_map_through_the_file_then_slack() -> None:
    config = RbacConfig.model_validate(CONFIG)
    asked: list[str] = []

    def lookup(email: str) -> str | None:
        asked.append(email)
        return ALICE if email == "alice@corp.example" else None

    emails = ["CAROL@corp.example", "alice@corp.example", "nobody@corp.example"]
    assert slack_ids(config, emails, lookup) == (CAROL, ALICE)
    assert asked == ["alice@corp.example", "nobody@corp.example"]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"slack_usergroup": "S0A1", "pagerduty_schedule": "P1", "roles": ["oncall"]}, "at most one source"),
        ({"slack_usergroup": "payments", "roles": ["oncall"]}, "Slack user-group id"),
        ({"pagerduty_schedule": "P1/../x", "roles": ["oncall"]}, "schedule id"),
    ],
)
def test_bad_sources_are_refused(tmp_path, group: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rbac.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "groups": {"g": group}, "teams": {}}), encoding="utf-8")
    with pytest.raises(GuardrailConfigError, match=message):
        load_rbac(path)


def test_opsgenie_on_call_recipients_over_http() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from remediation.guardrails.oncall import ScheduleApi, opsgenie_oncall

    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"data": {"onCallRecipients": ["alice@corp.example"]}}).encode()
            self.send_response(200 if "/v2/schedules/" in self.path else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = ScheduleApi("genie-key", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        assert opsgenie_oncall(api, "storage_schedule", now=T0) == ("alice@corp.example",)
        path, auth = seen[0]
        assert path.startswith("/v2/schedules/storage_schedule/on-calls?flat=true")
        assert path.endswith("&scheduleIdentifierType=name") and auth == "GenieKey genie-key"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(MembershipSourceError, match="Opsgenie schedule storage_schedule"):
        opsgenie_oncall(api, "storage_schedule", now=T0)  # nobody listens any more
