"""Executors against real local servers and real subprocesses."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from playbooks.catalog import builtin_catalog
from playbooks.models import Action
from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest
from remediation.executors.shell import ShellExecutor, render_argv
from remediation.executors.sim import SimExecutor, SimWorld
from remediation.executors.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookExecutor,
    WebhookSettings,
    verify_signature,
)

SECRET = "s3cret-for-tests"


def action(action_id: str, **update: Any) -> Action:
    return builtin_catalog().get(action_id).model_copy(update=update)


# ---------------------------------------------------------------- webhook


class Receiver:
    """A real HTTP server that checks signatures and answers with a scripted list of status codes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(
                    SECRET, self.headers[TIMESTAMP_HEADER], body, self.headers[SIGNATURE_HEADER]
                )
                receiver.received.append(
                    {"body": json.loads(body), "signature_ok": ok, "key": self.headers[IDEMPOTENCY_HEADER]}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if not ok:
                    status = 401
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"accepted": true}' if status < 300 else b"boom")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.close()


def webhook(url: str, secret: str = SECRET, sleeps: list[float] | None = None) -> WebhookExecutor:
    return WebhookExecutor(
        WebhookSettings(url=url, secret=secret, timeout_s=5, attempts=4, backoff_s=0.25),
        sleep=(sleeps if sleeps is not None else []).append,
    )


def test_webhook_signature_is_verified_by_receiver(receiver: Receiver) -> None:
    out = webhook(receiver.url).execute(
        ExecRequest("req-1", action("scale_out"), "frontend", {"replicas": 2}), dry_run=False
    )
    assert out.status == "succeeded"
    [got] = receiver.received
    assert got["signature_ok"] and got["key"] == "req-1"
    assert got["body"] == {
        "request_id": "req-1",
        "action": "scale_out",
        "target": "frontend",
        "params": {"replicas": 2},
        "dry_run": False,
    }


def test_webhook_wrong_secret_is_refused_not_retried(receiver: Receiver) -> None:
    out = webhook(receiver.url, secret="wrong").execute(
        ExecRequest("req-2", action("restart_service"), "frontend"), dry_run=False
    )
    assert out.status == "failed" and "401" in out.detail
    assert len(receiver.received) == 1 and not receiver.received[0]["signature_ok"]


def test_webhook_retries_500_with_backoff_and_same_key(receiver: Receiver) -> None:
    receiver.statuses[:] = [500, 502]
    sleeps: list[float] = []
    out = webhook(receiver.url, sleeps=sleeps).execute(
        ExecRequest("req-3", action("restart_service"), "frontend"), dry_run=False
    )
    assert out.status == "succeeded" and out.data["attempts"] == 3
    assert [r["key"] for r in receiver.received] == ["req-3"] * 3
    assert sleeps == [0.25, 0.5]  # exponential backoff between attempts


def test_webhook_no_retry_after_success_and_idempotent(receiver: Receiver) -> None:
    ex = webhook(receiver.url)
    req = ExecRequest("req-4", action("restart_service"), "frontend")
    assert ex.execute(req, dry_run=False).status == "succeeded"
    assert ex.execute(req, dry_run=False).status == "succeeded"  # same request id: not sent again
    assert len(receiver.received) == 1


def test_webhook_gives_up_after_attempts(receiver: Receiver) -> None:
    receiver.statuses[:] = [500] * 10
    out = webhook(receiver.url).execute(
        ExecRequest("req-5", action("restart_service"), "frontend"), dry_run=False
    )
    assert out.status == "failed" and len(receiver.received) == 4


def test_webhook_dry_run_sends_nothing(receiver: Receiver) -> None:
    out = webhook(receiver.url).execute(
        ExecRequest("req-6", action("restart_service"), "frontend"), dry_run=True
    )
    assert out.status == "dry_run" and receiver.url in out.commands[0] and receiver.received == []


def test_webhook_unreachable_is_failed() -> None:
    out = webhook("http://127.0.0.1:9/hook").execute(
        ExecRequest("req-7", action("restart_service"), "frontend"), dry_run=False
    )
    assert out.status == "failed" and "cannot reach" in out.detail


def test_webhook_outcomes_mask_credentials_in_the_url(receiver: Receiver) -> None:
    request = ExecRequest("req-8", action("restart_service"), "frontend")
    with_user = receiver.url.replace("http://", "http://robot:hunter2@") + "?token=hunter2"
    out = webhook(with_user).execute(request, dry_run=True)
    shown = " ".join([out.detail, *out.commands, str(out.data)])
    assert "hunter2" not in shown and "robot:***@" in shown and "token=***" in shown
    out = webhook(receiver.url + "?token=hunter2").execute(request, dry_run=False)
    shown = " ".join([out.detail, *out.commands, str(out.data)])
    assert out.status == "succeeded" and "hunter2" not in shown and "token=***" in shown
    assert len(receiver.received) == 1  # the real URL was used


def test_webhook_needs_secret() -> None:
    with pytest.raises(ExecutorError, match="secret"):
        WebhookExecutor(WebhookSettings(url="http://x", secret=""))


# ---------------------------------------------------------------- shell

ECHO = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"]
INJECTIONS = [
    "x; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "a && touch {marker}",
    "a | touch {marker}",
    "a\ntouch {marker}",
    "'; touch {marker}; '",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_shell_injection_stays_inert(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    evil = payload.format(marker=marker)
    act = Action.model_validate(
        {
            "id": "note", "description": "d", "applies_to": ["service"], "risk": "low",
            "params": {"text": {"type": "str"}},
            "executors": {"shell": {"argv": [*ECHO, "--target={target}", "{text}"]}},
        }
    )  # fmt: skip
    out = ShellExecutor(timeout_s=30).execute(
        ExecRequest("r", act, "svc", act.validate_params({"text": evil})), dry_run=False
    )
    assert out.status == "succeeded"
    assert json.loads(out.output) == ["--target=svc", evil]  # one argument, verbatim
    assert not marker.exists()


def test_shell_catalog_validation_stops_injection_in_typed_params() -> None:
    act = action("increase_connection_pool")
    with pytest.raises(ValueError, match="expected an integer"):
        act.validate_params({"size": "5; rm -rf /"})


def test_shell_refuses_odd_target() -> None:
    with pytest.raises(ExecutorError, match="not a service name"):
        render_argv(["echo", "{target}"], "svc; rm -rf /", {})


def test_shell_refuses_target_with_trailing_newline() -> None:
    with pytest.raises(ExecutorError, match="not a service name"):
        render_argv(["echo", "{target}"], "frontend\n", {})


def test_shell_dry_run_shows_exact_argv() -> None:
    out = ShellExecutor().execute(
        ExecRequest("r", action("scale_out"), "frontend", {"replicas": 3}), dry_run=True
    )
    assert out.status == "dry_run"
    assert out.commands == (
        "kubectl get deployment/frontend --namespace=default '--output=jsonpath={.spec.replicas}'",
        "kubectl scale deployment/frontend --namespace=default '--current-replicas=<current>' "
        "'--replicas=<current+3>'",
    )


def test_shell_output_is_cut_and_failure_reported() -> None:
    act = Action.model_validate(
        {"id": "loud", "description": "d", "applies_to": ["service"], "risk": "low",
         "executors": {"shell": {"argv": [sys.executable, "-c", "print('x' * 5000); raise SystemExit(3)"]}}}
    )  # fmt: skip
    out = ShellExecutor(max_output=100).execute(ExecRequest("r", act, "svc"), dry_run=False)
    assert out.status == "failed" and out.data["returncode"] == 3
    assert out.output.startswith("x" * 100) and "more characters cut" in out.output


def test_shell_timeout_is_unknown() -> None:
    act = Action.model_validate(
        {"id": "slow", "description": "d", "applies_to": ["service"], "risk": "low",
         "executors": {"shell": {"argv": [sys.executable, "-c", "import time; time.sleep(30)"]}}}
    )  # fmt: skip
    out = ShellExecutor(timeout_s=0.5).execute(ExecRequest("r", act, "svc"), dry_run=False)
    assert out.status == "unknown" and "killed" in out.detail


def test_shell_runs_once_per_request_id(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    act = Action.model_validate(
        {"id": "tick", "description": "d", "applies_to": ["service"], "risk": "low",
         "executors": {"shell": {"argv": [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x')"]}}}
    )  # fmt: skip
    ex = ShellExecutor()
    for _ in range(3):
        ex.execute(ExecRequest("same", act, "svc"), dry_run=False)
    assert counter.read_text() == "x"


# ---------------------------------------------------------------- sim


class TinyWorld:
    def __init__(self) -> None:
        self.replicas = {"frontend": 2}
        self.calls: list[tuple[str, str | None]] = []

    def apply(self, action_id: str, target: str | None, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append((action_id, target))
        if action_id == "scale_out" and target in self.replicas:
            self.replicas[target] += int(params["replicas"])
            return {"ok": True, "detail": f"{target} now has {self.replicas[target]} replicas"}
        return {"ok": False, "detail": "no such service"}


def test_sim_executor_acts_once_and_dry_runs() -> None:
    world = TinyWorld()
    assert isinstance(world, SimWorld)
    ex = SimExecutor(world)
    req = ExecRequest("r1", action("scale_out"), "frontend", {"replicas": 2})
    assert ex.execute(req, dry_run=True).status == "dry_run" and world.calls == []
    assert ex.execute(req, dry_run=False).detail == "frontend now has 4 replicas"
    assert ex.execute(req, dry_run=False).status == "succeeded"
    assert world.replicas["frontend"] == 4 and len(world.calls) == 1
    assert (
        ex.execute(ExecRequest("r2", action("scale_out"), "nope", {"replicas": 1}), dry_run=False).status
        == "failed"
    )


def test_executor_refuses_action_without_its_config() -> None:
    with pytest.raises(ExecutorError, match="cannot run on the shell executor"):
        ShellExecutor().execute(ExecRequest("r", action("wait"), None), dry_run=True)
