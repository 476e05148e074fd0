"""Install anywhere: the OAuth v2 install flow and two workspaces, through the real app over HTTP.

The app runs in OAuth mode (client id and secret set) against a sandbox with two workspaces; each is
installed through /slack/install -> the sandbox's authorize page -> /slack/oauth_redirect, and then
the bot acts in each with that workspace's own token (the sandbox records a call in the workspace its
token belongs to). People of the second workspace are ``T0SECOND/U...`` in the RBAC file.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from waitress import create_server

from bot.app.app import RemediateApp, build_app
from bot.app.tenancy import actor
from bot.notify.workspaces import bot_token
from bot.sandbox import AppDriver, SandboxOptions, SlackSandbox
from bot.sandbox.config import ChannelSpec, UsergroupSpec, UserSpec, WorkspaceConfig
from bot.sandbox.surfaces import open_home
from bot.sandbox.webapi.users import set_usergroup_members
from bot.server import Server, stop_server
from bot.services import Services, build_services
from bot.settings import load_settings
from incidents_db.models import AuditEntry
from tests.bot.conftest import ALICE, BOT, CAROL, RBAC, SECRET, TOKEN, generic
from tests.bot.sandbox.conftest import wait_for

HOME, SECOND = "T0SANDBOX", "T0SECOND"
ERIN = "U0ERIN0005"  # a lead of the second workspace
CLIENT_ID, CLIENT_SECRET = "111.222", "sandbox-client-secret"
SECOND_WS = WorkspaceConfig(
    bot_tokens=("xoxb-second-token",),
    app_tokens=("xapp-second-token",),
    team_id=SECOND,
    team_domain="second",
    team_name="second workspace",
    bot_user_id="U0REMBOT02",
    bot_id="B0REMBOT02",
    users=(UserSpec(ERIN, "erin", "Erin Lead"),),
    channels=(ChannelSpec("C2INCIDENT", "incidents", (ERIN,)),),
    usergroups=(UsergroupSpec("S0SECOND01", "second-oncall", "second on call", (ERIN,)),),
)
# the second workspace's lead, keyed by (workspace, user); a plain id is a person of the home workspace
RBAC_TWO = RBAC.replace("users:\n", f"users:\n  {SECOND}/{ERIN}: {{name: erin, roles: [sre-lead]}}\n", 1)


@dataclass
class Two:
    """The app in OAuth mode, the sandbox with two workspaces, a driver per workspace."""

    sandbox: SlackSandbox
    app: RemediateApp
    services: Services
    url: str
    home: AppDriver
    second: AppDriver


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """GET without following redirects; return (status, headers lower-cased, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


def install(two: Two, team: str, org: str = "") -> tuple[int, str]:
    """Run the whole install into ``team`` (org-wide into ``org``) as a browser would; return the callback's answer."""
    status, headers, _ = _get(two.url + "/slack/install")
    assert status == 302, status
    cookie = headers["set-cookie"].split(";")[0]
    authorize = headers["location"]
    status, headers, _ = _get(f"{authorize}&team={team}&enterprise={org}")  # the person clicks Allow there
    assert status == 302, status
    status, _, body = _get(headers["location"], {"Cookie": cookie})
    return status, body


@pytest.fixture
def two(tmp_path: Path, sqlite_url: str) -> Iterator[Two]:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC_TWO, encoding="utf-8")
    options = SandboxOptions(
        ack_timeout_s=120.0,
        retry_backoff_s=(0.0, 0.0, 0.0),
        extra_workspaces=(SECOND_WS,),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    with SlackSandbox(options) as sandbox:
        routes: dict[str, Server] = {}  # the app is built once the server's port (redirect URL) is known
        server = create_server(lambda e, s: routes["app"](e, s), host="127.0.0.1", port=0, threads=8)
        url = f"http://127.0.0.1:{server.effective_port}"
        settings = load_settings(
            database_url=sqlite_url,
            rbac_config=rbac,
            slack_signing_secret=SECRET,
            slack_bot_token=sandbox.bot_token,  # alert-born (home) incidents post with it
            slack_api_url=sandbox.api_url,
            slack_client_id=CLIENT_ID,
            slack_client_secret=CLIENT_SECRET,
            slack_redirect_uri=url + "/slack/oauth_redirect",
            home_team_id=HOME,
            alerts_token=TOKEN,
            requester=BOT,
            topology="online-boutique",
            retry_base_s=0.05,
            retry_max_s=1.0,
        )
        services = build_services(settings)
        app = build_app(settings, services)
        routes["app"] = Server(app, alerts_token=TOKEN)
        app.worker.start()
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        home = sandbox.connect_app(url + "/slack/events", SECRET)
        second = sandbox.driver_for(SECOND, url + "/slack/events", SECRET)
        try:
            yield Two(sandbox, app, services, url, home, second)
        finally:
            app.worker.stop()
            stop_server(server, loop=thread)
            app.close()


def _ephemeral(two: Two, team: str, user: str, contains: str) -> str:
    ws = two.sandbox.teams[team]
    return str(
        wait_for(lambda: next((e.text for e in ws.ephemerals if e.user == user and contains in e.text), None))
    )


def _denials(two: Two) -> list[AuditEntry]:
    with two.services.sessions() as s:
        return list(s.execute(sa.select(AuditEntry).where(AuditEntry.event.like("%_workspace"))).scalars())


def test_install_stores_each_workspace_and_the_bot_acts_there_with_its_own_token(two: Two) -> None:
    status, _ = install(two, SECOND)
    assert status == 200
    bot = two.services.installations.find_bot(enterprise_id=None, team_id=SECOND)  # type: ignore[union-attr]
    assert bot is not None and bot.bot_token == "xoxb-second-token" and bot.bot_id == "B0REMBOT02"
    assert install(two, HOME)[0] == 200  # every workspace is installed in OAuth mode, home too

    delivery = two.second.slash_command(
        user=ERIN, channel="incidents", text="declare checkoutservice cart broken"
    )
    assert delivery.ok, delivery.summary()
    second = two.sandbox.teams[SECOND]
    card = wait_for(lambda: next((m for m in second.messages["C2INCIDENT"] if "cart broken" in m.text), None))
    assert card.bot_id == "B0REMBOT02"  # posted with the second workspace's token, in its channel
    wait_for(lambda: any(c.method == "chat.postMessage" and c.ok for c in list(second.calls)))  # its token
    assert not any("cart broken" in m.text for m in two.sandbox.workspace.messages["C0INCIDENT"])
    with two.services.sessions() as s:
        row = s.execute(sa.text("SELECT id, slack_workspace FROM incidents")).one()
    assert row.slack_workspace == SECOND  # the incident belongs to the workspace it was declared in

    # a mention in the second workspace is answered there (chat.postEphemeral with its token)
    two.second.user_message(user=ERIN, channel="incidents", text="<@U0REMBOT02> whoami")
    said = _ephemeral(two, SECOND, ERIN, "You are")
    assert "sre-lead" in said  # the RBAC entry T0SECOND/U0ERIN0005, not a home one

    # their App Home is published in their workspace, with its token
    assert open_home(two.second, user=ERIN).ok
    wait_for(lambda: ERIN in second.homes)
    assert ERIN not in two.sandbox.workspace.homes


def test_callback_with_a_bad_or_missing_state_is_refused(two: Two) -> None:
    status, headers, _ = _get(two.url + "/slack/install")
    cookie = headers["set-cookie"].split(";")[0]
    state = parse_qs(urlsplit(headers["location"]).query)["state"][0]
    code = two.sandbox.oauth.issue_code(SECOND)
    redirect = two.url + "/slack/oauth_redirect"
    for query, sent in (
        (f"code={code}&state=forged-state", {"Cookie": cookie}),  # a state never issued
        (f"code={code}", {"Cookie": cookie}),  # none at all
        (f"code={code}&state={state}", {}),  # issued, but not this browser's (no cookie)
    ):
        status, _, body = _get(f"{redirect}?{query}", sent)
        assert status >= 400, (query, status, body)
    status, _, _ = _get(f"{redirect}?code=not-a-code&state={state}", {"Cookie": cookie})
    assert status >= 400  # the state is good, the code is not (oauth.v2.access: invalid_code)
    assert two.services.installations.find_bot(enterprise_id=None, team_id=SECOND) is None  # type: ignore[union-attr]
    assert not any(c.method == "oauth.v2.access" and c.ok for c in two.sandbox.workspace.calls)


def test_oauth_v2_access_refuses_an_unknown_code(two: Two) -> None:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(base_url=two.sandbox.api_url)
    with pytest.raises(SlackApiError) as refused:
        client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code="nope")
    assert refused.value.response["error"] == "invalid_code"
    code = two.sandbox.oauth.issue_code(SECOND)
    answer = client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code)
    assert answer["team"]["id"] == SECOND and answer["access_token"] == "xoxb-second-token"
    with pytest.raises(SlackApiError):  # one use only
        client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code)


def test_a_second_workspace_user_cannot_act_on_the_first_workspace_incidents(two: Two) -> None:
    assert install(two, HOME)[0] == 200 and install(two, SECOND)[0] == 200
    status, body = _post_alert(two, generic("HighErrorRate", "cartservice"))
    assert status == 200, body
    incident = body["incidents"][0]
    for text in (f"resolve {incident}", f"suggest {incident}", f"role {incident} commander <@{ERIN}>"):
        delivery = two.second.slash_command(user=ERIN, channel="incidents", text=text)
        assert delivery.ok, delivery.summary()
    said = _ephemeral(two, SECOND, ERIN, "belongs to the home workspace")
    assert incident in said
    wait_for(lambda: len(_denials(two)) == 3)
    denied = _denials(two)
    assert {e.actor for e in denied} == {f"{SECOND}/{ERIN}"} and {e.decision for e in denied} == {"denied"}
    assert {e.event for e in denied} == {"resolve_workspace", "suggest_workspace", "role_workspace"}
    with two.services.sessions() as s:
        status_now = s.execute(
            sa.text("SELECT status FROM incidents WHERE id = :i"), {"i": incident}
        ).scalar()
    assert status_now == "open"

    # and the other way round: the home workspace's lead cannot close the second workspace's incident
    two.second.slash_command(user=ERIN, channel="incidents", text="declare checkoutservice second only")
    mine = wait_for(lambda: _incident_of(two, SECOND))
    two.home.slash_command(user=CAROL, channel="incidents", text=f"resolve {mine}")
    assert mine in _ephemeral(two, HOME, CAROL, f"belongs to workspace {SECOND}")
    two.home.slash_command(user=ALICE, channel="incidents", text=f"status {incident}")  # reads stay open
    assert _ephemeral(two, HOME, ALICE, incident)


def _incident_of(two: Two, workspace: str) -> str | None:
    with two.services.sessions() as s:
        return s.execute(
            sa.text("SELECT id FROM incidents WHERE slack_workspace = :w"), {"w": workspace}
        ).scalar_one_or_none()


def _post_alert(two: Two, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{two.url}/alerts/generic",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def test_single_token_mode_has_no_install_routes(harness: Any) -> None:
    status, _, body = _get(harness.url + "/slack/install")
    assert status == 404 and "SLACK_CLIENT_ID" in body


def test_an_enterprise_grid_org_wide_install_is_stored_and_its_token_used(two: Two) -> None:
    assert install(two, SECOND, org="E0GRID0001")[0] == 200
    store = two.services.installations
    assert store is not None
    bot = store.find_bot(enterprise_id="E0GRID0001", team_id=None, is_enterprise_install=True)
    assert bot is not None and bot.is_enterprise_install and bot.bot_token == "xoxb-second-token"
    found = store.find_installation(enterprise_id="E0GRID0001", team_id=None, is_enterprise_install=True)
    assert found is not None and found.team_id is None and found.enterprise_name == "E0GRID0001 org"
    assert bot_token(two.services, "E0GRID0001") == "xoxb-second-token"  # what the outbox sends with
    # a person of the org is keyed by the org, whichever of its workspaces they write from
    body = {"team_id": SECOND, "enterprise_id": "E0GRID0001", "is_enterprise_install": "true"}
    assert actor(two.services, body, "W0GRID0001") == "E0GRID0001/W0GRID0001"
    assert actor(two.services, {"team_id": HOME}, ALICE) == ALICE  # the home workspace: plain ids
    assert actor(two.services, {"team_id": SECOND}, ERIN) == f"{SECOND}/{ERIN}"


def test_a_user_group_of_another_workspace_is_read_with_that_workspaces_token(two: Two) -> None:
    assert install(two, SECOND)[0] == 200
    path, roster = two.services.settings.rbac_config, two.app.roster
    assert path is not None and roster is not None
    group = f"groups:\n  second-oncall: {{slack_usergroup: {SECOND}/S0SECOND01, roles: [oncall]}}\nteams:"
    path.write_text(RBAC_TWO.replace("teams:", group, 1), encoding="utf-8")
    assert roster.reload("test")
    resolved = two.services.rbac.resolved["second-oncall"]
    assert resolved.members == (f"{SECOND}/{ERIN}",) and resolved.error == ""  # named as RBAC names them
    second = two.sandbox.teams[SECOND]
    assert any(c.method == "usergroups.users.list" and c.ok for c in list(second.calls))  # its token
    assert not any(c.method == "usergroups.users.list" for c in list(two.sandbox.workspace.calls))

    # an admin empties the group in the second workspace: Slack's event comes from there, read again at once
    assert two.second.event(set_usergroup_members(second, "S0SECOND01", [])).ok
    wait_for(lambda: two.services.rbac.resolved["second-oncall"].members == ())
