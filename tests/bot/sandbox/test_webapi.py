"""The fake Web API through the real slack_sdk WebClient over a real socket."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.sandbox import SlackSandbox
from tests.bot.sandbox.conftest import ALICE, control, wait_for


def error_of(exc: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(exc.value.response["error"])


def test_auth_test_names_the_bot_and_team(client: WebClient, sandbox: SlackSandbox) -> None:
    data = client.auth_test().data
    assert isinstance(data, dict)
    assert data["ok"] is True
    assert data["user_id"] == sandbox.workspace.bot_user_id
    assert data["team_id"] == "T0SANDBOX"


def test_missing_and_unknown_tokens_fail_like_slack(sandbox: SlackSandbox) -> None:
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=sandbox.api_url).auth_test()
    assert error_of(missing) == "not_authed"
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-not-ours", base_url=sandbox.api_url).chat_postMessage(
            channel="incidents", text="x"
        )
    assert error_of(bad) == "invalid_auth"
    assert sandbox.workspace.messages["C0INCIDENT"] == []


def test_form_encoded_calls_with_token_field_work(sandbox: SlackSandbox) -> None:
    body = "token=xoxb-sandbox-token&channel=incidents&text=from+a+form&blocks=" + urllib.request.quote(
        json.dumps([{"type": "divider"}])
    )
    req = urllib.request.Request(
        sandbox.api_url + "chat.postMessage",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(req) as resp:
        data = json.loads(resp.read())
    assert data["ok"] is True
    assert data["message"]["blocks"] == [{"type": "divider"}]


def test_post_thread_update_and_history_round_trip(client: WebClient) -> None:
    parent = client.chat_postMessage(channel="#incidents", text="card v1")
    assert parent["channel"] == "C0INCIDENT"
    ts = parent["ts"]
    assert len(ts.split(".")[1]) == 6
    r1 = client.chat_postMessage(channel="C0INCIDENT", text="timeline 1", thread_ts=ts)
    client.chat_postMessage(channel="C0INCIDENT", text="timeline 2", thread_ts=r1["ts"])  # reply to a reply
    updated = client.chat_update(channel="C0INCIDENT", ts=ts, text="card v2")
    assert updated["message"]["edited"]["user"] == "U0REMBOT01"

    history = client.conversations_history(channel="C0INCIDENT")["messages"]
    assert [m["text"] for m in history] == ["card v2"]
    assert history[0]["reply_count"] == 2
    replies = client.conversations_replies(channel="C0INCIDENT", ts=ts)["messages"]
    assert [m["text"] for m in replies] == ["card v2", "timeline 1", "timeline 2"]
    assert all(m["thread_ts"] == ts for m in replies)
    link = client.chat_getPermalink(channel="C0INCIDENT", message_ts=ts)["permalink"]
    assert link.endswith("/archives/C0INCIDENT/p" + ts.replace(".", ""))


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_message_errors_use_slacks_names(client: WebClient) -> None:
    cases = [
        (lambda: client.chat_postMessage(channel="nope", text="x"), "channel_not_found"),
        (lambda: client.chat_postMessage(channel="incidents"), "no_text"),
        (lambda: client.chat_postMessage(channel="random", text="x"), "not_in_channel"),
        (lambda: client.chat_postMessage(channel="incidents", text="x" * 40001), "msg_too_long"),
        (lambda: client.chat_update(channel="C0INCIDENT", ts="1.000001", text="x"), "message_not_found"),
        (lambda: client.conversations_replies(channel="C0INCIDENT", ts="1.000001"), "thread_not_found"),
        (lambda: client.conversations_history(channel="incidents"), "channel_not_found"),
        (lambda: client.users_info(user="U0NOBODY00"), "user_not_found"),
        (lambda: client.usergroups_users_list(usergroup="S0NOPE0000"), "no_such_subteam"),
        (lambda: client.conversations_join(channel="G0SRELEADS"), "method_not_supported_for_channel_type"),
        (lambda: client.api_call("chat.noSuchMethod"), "unknown_method"),
    ]
    for call, expected in cases:
        with pytest.raises(SlackApiError) as exc:
            call()
        assert error_of(exc) == expected


def test_bot_cannot_update_a_persons_message(client: WebClient, sandbox: SlackSandbox) -> None:
    msg = sandbox.workspace.post(channel_id="C0INCIDENT", text="mine", blocks=[], user=ALICE)
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel="C0INCIDENT", ts=msg.ts, text="edited by bot")
    assert error_of(exc) == "cant_update_message"


def test_join_then_post_and_list_channels(client: WebClient) -> None:
    assert client.conversations_info(channel="C0RANDOM01")["channel"]["is_member"] is False
    joined = client.conversations_join(channel="C0RANDOM01")
    assert joined["channel"]["is_member"] is True
    again = client.conversations_join(channel="C0RANDOM01")
    assert again["warning"] == "already_in_channel"
    client.chat_postMessage(channel="random", text="now I can")
    names = {c["name"] for c in client.conversations_list(types="public_channel,private_channel")["channels"]}
    assert names == {"incidents", "general", "random"}  # not the private channel the bot isn't in


def test_conversations_history_paginates_with_cursor(client: WebClient) -> None:
    for i in range(5):
        client.chat_postMessage(channel="general", text=f"m{i}")
    first = client.conversations_history(channel="C0GENERAL1", limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"] and first["has_more"] is True
    second = client.conversations_history(
        channel="C0GENERAL1", limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in second["messages"]] == ["m2", "m1"]


def test_users_usergroups_and_ephemerals(client: WebClient, sandbox: SlackSandbox) -> None:
    assert client.users_info(user=ALICE)["user"]["name"] == "alice"
    assert client.usergroups_users_list(usergroup="S0ONCALL01")["users"] == [ALICE, "U0BOB00002"]
    sent = client.chat_postEphemeral(channel="incidents", user=ALICE, text="only you")
    assert sent["message_ts"]
    with pytest.raises(SlackApiError) as exc:
        client.chat_postEphemeral(channel="incidents", user="U0NOBODY00", text="x")
    assert error_of(exc) == "user_not_found"
    found = control(sandbox, "ephemerals?channel=incidents&user=" + ALICE, method="GET")["ephemerals"]
    assert [e["text"] for e in found] == ["only you"]
    assert client.conversations_history(channel="C0INCIDENT")["messages"] == []  # never in history


def test_inspection_api_shows_messages_and_calls(client: WebClient, sandbox: SlackSandbox) -> None:
    parent = client.chat_postMessage(channel="incidents", text="card")
    client.chat_postMessage(channel="incidents", text="reply", thread_ts=parent["ts"])
    listed = control(sandbox, "messages?channel=incidents", method="GET")["messages"]
    assert [m["text"] for m in listed] == ["card", "reply"]
    thread = control(sandbox, f"messages?channel=C0INCIDENT&thread_ts={parent['ts']}", method="GET")[
        "messages"
    ]
    assert len(thread) == 2
    calls = control(sandbox, "calls?method=chat.postMessage", method="GET")["calls"]
    assert [c["args"]["text"] for c in calls] == ["card", "reply"]
    assert all(c["ok"] for c in calls)
    state = control(sandbox, "state", method="GET")
    assert {u["name"] for u in state["users"]} >= {"alice", "bob", "carol", "dave", "remediate"}


def test_rate_limit_answers_429_with_retry_after(client: WebClient, sandbox: SlackSandbox) -> None:
    control(sandbox, "rate_limits", {"method": "conversations.history", "per_minute": 60, "burst": 1})
    client.conversations_history(channel="C0INCIDENT")
    with pytest.raises(SlackApiError) as exc:
        client.conversations_history(channel="C0INCIDENT")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] in (["1"], "1")
    assert error_of(exc) == "ratelimited"


def test_rate_limit_retry_handler_recovers(sandbox: SlackSandbox) -> None:
    control(sandbox, "rate_limits", {"method": "users.info", "per_minute": 60, "burst": 1})
    patient = WebClient(
        token=sandbox.bot_token,
        base_url=sandbox.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
    )
    assert patient.users_info(user=ALICE)["ok"]
    assert patient.users_info(user=ALICE)["ok"]  # refused once with 429, then retried after Retry-After
    statuses = [c["status"] for c in control(sandbox, "calls?method=users.info", method="GET")["calls"]]
    assert statuses[0] == 200 and 429 in statuses and statuses[-1] == 200


def test_post_message_limit_is_per_channel(client: WebClient, sandbox: SlackSandbox) -> None:
    sandbox.limiter.set_limit("chat.postMessage", per_minute=1, burst=2)
    client.chat_postMessage(channel="incidents", text="1")
    client.chat_postMessage(channel="incidents", text="2")
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="incidents", text="3")
    assert exc.value.response.status_code == 429
    assert client.chat_postMessage(channel="general", text="other channel")["ok"]


def test_forced_server_errors_then_recovery(client: WebClient, sandbox: SlackSandbox) -> None:
    control(sandbox, "faults", {"method": "chat.postMessage", "kind": "500", "count": 2})
    for _ in range(2):
        with pytest.raises(SlackApiError) as exc:
            client.chat_postMessage(channel="incidents", text="lost?")
        assert exc.value.response.status_code == 500
    assert sandbox.workspace.messages["C0INCIDENT"] == []  # a 500 stored nothing
    assert client.chat_postMessage(channel="incidents", text="third time")["ok"]
    control(sandbox, "faults", {"method": "chat.postMessage", "kind": "server_error", "status": 503})
    retrying = WebClient(
        token=sandbox.bot_token,
        base_url=sandbox.api_url,
        retry_handlers=[ServerErrorRetryHandler(max_retry_count=2)],
    )
    assert retrying.chat_postMessage(channel="incidents", text="after a 503")["ok"]
    assert control(sandbox, "faults", method="GET")["faults"] == []


def test_hang_fault_times_the_client_out(sandbox: SlackSandbox) -> None:
    control(sandbox, "faults", {"method": "chat.update", "kind": "hang", "hang_s": 3})
    impatient = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=0.5)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        impatient.chat_update(channel="C0INCIDENT", ts="1.000001", text="x")


def test_hang_then_process_still_posts(sandbox: SlackSandbox) -> None:
    control(sandbox, "faults", {"method": "chat.postMessage", "kind": "hang", "hang_s": 1, "then": "process"})
    impatient = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=0.2)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        impatient.chat_postMessage(channel="incidents", text="slow but delivered")
    wait_for(lambda: sandbox.workspace.messages["C0INCIDENT"])  # finished after the client gave up
    assert [m.text for m in sandbox.workspace.messages["C0INCIDENT"]] == ["slow but delivered"]


def test_metadata_is_stored_and_read_back_only_on_request(client: WebClient) -> None:
    meta = {"event_type": "remediate_card", "event_payload": {"incident_id": "INC-1", "outbox_id": 7}}
    parent = client.chat_postMessage(channel="incidents", text="card", metadata=meta)
    client.chat_postMessage(channel="incidents", text="reply", thread_ts=parent["ts"], metadata=meta)
    plain = client.conversations_history(channel="C0INCIDENT")["messages"]
    assert "metadata" not in plain[0]  # as Slack: only with include_all_metadata
    full = client.conversations_history(channel="C0INCIDENT", include_all_metadata=True)["messages"]
    assert full[0]["metadata"] == meta
    thread = client.conversations_replies(channel="C0INCIDENT", ts=parent["ts"], include_all_metadata=True)
    assert [m["metadata"] for m in thread["messages"]] == [meta, meta]
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="incidents", text="x", metadata={"event_payload": {}})
    assert error_of(exc) == "invalid_metadata_format"


def test_history_and_replies_read_a_window(client: WebClient) -> None:
    sent = [client.chat_postMessage(channel="general", text=f"m{i}")["ts"] for i in range(5)]
    window = client.conversations_history(channel="C0GENERAL1", oldest=sent[1], latest=sent[3], limit=10)
    assert [m["text"] for m in window["messages"]] == ["m2"]
    inclusive = client.conversations_history(
        channel="C0GENERAL1", oldest=sent[1], latest=sent[3], inclusive=True, limit=1
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m3"] and inclusive["has_more"] is True
    replies = [
        client.chat_postMessage(channel="general", text=f"r{i}", thread_ts=sent[0])["ts"] for i in range(3)
    ]
    later = client.conversations_replies(channel="C0GENERAL1", ts=sent[0], oldest=replies[0])
    assert [m["text"] for m in later["messages"]] == ["m0", "r1", "r2"]  # the parent always comes first


def test_lose_fault_stores_the_message_but_never_answers(sandbox: SlackSandbox) -> None:
    control(sandbox, "faults", {"method": "chat.postMessage", "kind": "hang", "hang_s": 0.5, "then": "lose"})
    impatient = WebClient(token=sandbox.bot_token, base_url=sandbox.api_url, timeout=5, retry_handlers=[])
    with pytest.raises((TimeoutError, ConnectionError, urllib.error.URLError)):
        impatient.chat_postMessage(channel="incidents", text="stored, answer lost")
    assert [m.text for m in sandbox.workspace.messages["C0INCIDENT"]] == ["stored, answer lost"]
    calls = control(sandbox, "calls?method=chat.postMessage", method="GET")["calls"]
    assert [c["status"] for c in calls] == [200]  # processed as Slack would have


def test_error_fault_answers_a_slack_error(client: WebClient, sandbox: SlackSandbox) -> None:
    control(sandbox, "faults", {"method": "chat.update", "kind": "invalid_blocks"})
    sent = client.chat_postMessage(channel="incidents", text="card")
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel="C0INCIDENT", ts=sent["ts"], text="new")
    assert error_of(exc) == "invalid_blocks" and exc.value.response["errors"]
    control(sandbox, "faults", {"method": "chat.postMessage", "kind": "error", "error": "msg_too_long"})
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="incidents", text="x")
    assert error_of(exc) == "msg_too_long"
    assert client.chat_update(channel="C0INCIDENT", ts=sent["ts"], text="new")["ok"]  # one-shot


def test_bad_fault_is_refused(sandbox: SlackSandbox) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        control(sandbox, "faults", {"method": "chat.postMessage", "kind": "explode"})
    assert exc.value.code == 400
    assert "expected one of" in json.loads(exc.value.read())["error"]


MODAL = {
    "type": "modal",
    "callback_id": "confirm",
    "title": {"type": "plain_text", "text": "Confirm"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Sure?"}}],
}


def test_trigger_id_expires_after_three_seconds(client: WebClient, sandbox: SlackSandbox) -> None:
    stale = sandbox.workspace.issue_trigger(ALICE)
    control(sandbox, "clock", {"advance": 3.5})
    with pytest.raises(SlackApiError) as exc:
        client.views_open(trigger_id=stale, view=MODAL)
    assert error_of(exc) == "expired_trigger_id"
    fresh = sandbox.workspace.issue_trigger(ALICE)
    view = client.views_open(trigger_id=fresh, view=MODAL)["view"]
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=fresh, view=MODAL)
    assert error_of(reused) == "exchanged_trigger_id"
    with pytest.raises(SlackApiError) as unknown:
        client.views_open(trigger_id="123.456.abc", view=MODAL)
    assert error_of(unknown) == "invalid_trigger_id"

    updated = client.views_update(
        view_id=view["id"], hash=view["hash"], view={**MODAL, "title": {"type": "plain_text", "text": "Done"}}
    )
    assert updated["view"]["title"]["text"] == "Done"
    with pytest.raises(SlackApiError) as conflict:
        client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert error_of(conflict) == "hash_conflict"
    with pytest.raises(SlackApiError) as long_title:
        client.views_open(
            trigger_id=sandbox.workspace.issue_trigger(ALICE),
            view={**MODAL, "title": {"type": "plain_text", "text": "x" * 25}},
        )
    assert error_of(long_title) == "invalid_arguments"


def test_response_url_posts(sandbox: SlackSandbox, client: WebClient) -> None:
    card = client.chat_postMessage(channel="incidents", text="card")
    url = sandbox.workspace.issue_response_url(
        sandbox.url, channel="C0INCIDENT", user=ALICE, message_ts=card["ts"]
    )

    def post(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        req = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post({"text": "just for you"}) == (200, {"ok": True})
    assert post({"text": "for all", "response_type": "in_channel"})[0] == 200
    assert post({"text": "card v2", "replace_original": True})[0] == 200
    texts = [m.text for m in sandbox.workspace.messages["C0INCIDENT"]]
    assert texts == ["card v2", "for all"]
    assert [e.text for e in sandbox.workspace.ephemerals] == ["just for you"]
    assert post({"delete_original": True})[0] == 200
    assert [m.text for m in sandbox.workspace.messages["C0INCIDENT"]] == ["for all"]
    assert post({"text": "fifth use"})[0] == 200
    assert post({"text": "sixth use"}) == (404, {"ok": False, "error": "used_url"})


def test_server_error_after_processing_stores_the_message(client: WebClient, sandbox: SlackSandbox) -> None:
    control(sandbox, "faults", {"method": "chat.postMessage", "kind": "server_error", "then": "process"})
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="incidents", text="stored, then a 500")
    assert exc.value.response.status_code == 500
    assert [m.text for m in sandbox.workspace.messages["C0INCIDENT"]] == ["stored, then a 500"]
