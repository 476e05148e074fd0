"""From a cluster's metrics to an executed fix, with real parts only (issue 12, "End to end, with real parts").

A simulated sock-shop (`tests.e2e.world`) exposes kube-state-metrics, cAdvisor and Istio metrics; a real
Prometheus scrapes them and evaluates ``deploy/prometheus/rules.yaml`` (windows shortened to seconds); a
real Alertmanager routes the alerts to ``remediate serve`` (a subprocess), whose graph comes from
``remediate topology discover`` against that Prometheus and whose metric snapshots come from
``remediate snapshots feed`` against it. When ``carts`` starts crash looping, the card in the Slack
sandbox names ``carts`` (not kube-state-metrics, which the alert's ``service`` label names) and ranks its
restart; an on-call engineer's signed click approves it; the webhook executor posts it to the world's
heal receiver; the pods come back, the alerts resolve and the incident closes.

Needs Debian's ``prometheus`` and ``prometheus-alertmanager`` (``deploy/ci/install-system-deps.sh``);
``REMEDIATE_TEST_PROMETHEUS=off`` or ``REMEDIATE_TEST_ALERTMANAGER=off`` skips it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.sandbox import SandboxOptions, SlackSandbox
from incidents_db.models import Incident, IncidentEvent
from incidents_db.snapshots import ServiceSnapshot
from tests.bot.cli.test_serve_cli import _health
from tests.bot.feeds.promserver import free_port
from tests.bot.sandbox.conftest import WAIT_S, control, wait_for
from tests.e2e.stack import ClusterAlertmanager, ClusterPrometheus, shortened_rules
from tests.e2e.world import NAMESPACE, ShopWorld, WorldServer

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "e2e-signing-secret"
ALERTS_TOKEN = "e2e-alerts-token"
HOOK_SECRET = "e2e-hook-secret"
# what the crash loop fires: kube-state-metrics' two views of it and the Istio error rate of its callers
ALERT_NAMES = ("KubePodCrashLooping", "KubeDeploymentReplicasMismatch", "IstioHigh5xxErrorRate")
ALICE, BOB, BOT = "U0ALICE001", "U0BOB00002", "U0REMBOT01"
RBAC = f"""
version: 1
policy_version: e2e-1
roles:
  bot: the bot itself
  oncall: on call for the shop
users:
  {BOT}: {{name: remediate, roles: [bot]}}
  {ALICE}: {{name: alice, roles: [oncall]}}
teams:
  shop:
    members: [{ALICE}]
    services: [front-end, carts, catalogue, carts-db]
policies:
  - {{name: bot-requests, roles: [bot], services: ["*"], request: [low, medium, high, critical]}}
  - {{name: oncall-owned, roles: [oncall], services: [owned], request: [low, medium, high], approve: [low, medium]}}
approvals_required: {{low: 1, medium: 1, high: 2, critical: 2}}
"""


def _env(tmp_path: Path, sandbox: SlackSandbox, **extra: str) -> dict[str, str]:
    """The bot's settings, all through the environment as a deployment gives them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REMEDIATE_", "KUBE"))}
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC, encoding="utf-8")
    return env | {
        "SLACK_BOT_TOKEN": sandbox.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": sandbox.api_url,
        "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp_path / 'remediate.sqlite'}",
        "REMEDIATE_DATA_DIR": str(tmp_path / "data"),
        "REMEDIATE_RBAC_CONFIG": str(rbac),
        "REMEDIATE_ALERTS_TOKEN": ALERTS_TOKEN,
        "REMEDIATE_REQUESTER": BOT,
        "HOME": str(tmp_path),
        **extra,
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=WAIT_S, check=False,
    )  # fmt: skip


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    """Run ``remediate ARGS`` in the background, its output in ``log``; terminate it afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cards(sandbox: SlackSandbox) -> list[dict[str, Any]]:
    found = control(sandbox, "messages?channel=C0INCIDENT", method="GET")
    items = found.get("messages", found) if isinstance(found, dict) else found
    return [m for m in items if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")]


def _card(sandbox: SlackSandbox, *needles: str) -> dict[str, Any]:
    """Wait for the incident card whose blocks hold every needle."""

    def find() -> dict[str, Any] | None:
        return next((c for c in _cards(sandbox) if all(n in json.dumps(c["blocks"]) for n in needles)), None)

    try:
        return dict(wait_for(find))
    except pytest.fail.Exception:
        shown = [json.dumps(c["blocks"])[-2500:] for c in _cards(sandbox)]
        pytest.fail(f"no card holds {needles}; the cards: {shown}")


def _approve_id(card: dict[str, Any], names: str) -> str:
    """Return the action id of the Approve button of the suggestion whose text names ``names``."""
    n = next(
        b["block_id"].split("-")[1]
        for b in card["blocks"]
        if b.get("block_id", "").startswith("text-") and names in b["text"]["text"]
    )
    return f"approve:{n}"


def _discover(tmp_path: Path, env: dict[str, str], prometheus: ClusterPrometheus) -> Path:
    """Run `remediate topology discover` against the real Prometheus; check what it found."""
    graph = tmp_path / "graph.json"
    done = _cli(
        env, "topology", "discover", "--prometheus", prometheus.url, "--window", "5m", "--out", str(graph)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = _cli(env, "topology", "show", str(graph), "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    nodes = {n["id"]: n for n in info["nodes"]}
    assert set(nodes) == {"front-end", "carts", "catalogue", "carts-db"}  # the gateway stays out
    assert nodes["front-end"]["kind"] == "frontend" and nodes["carts-db"]["stateful"]
    assert {"front-end -> carts", "front-end -> catalogue", "carts -> carts-db"} <= {
        f"{e['source']} -> {e['target']}" for e in info["edge_list"]
    }
    assert all(n["namespace"] == NAMESPACE for n in json.loads(graph.read_text())["nodes"])
    return graph


def _store(tmp_path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'remediate.sqlite'}")


def _carts_snapshots(engine: sa.Engine) -> list[dict[str, float]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ServiceSnapshot.values).where(ServiceSnapshot.service == "carts"))
        return [dict(r[0]) for r in rows]


@pytest.mark.slow
def test_a_crash_loop_in_the_cluster_is_fixed_after_approval(tmp_path: Path) -> None:
    world = ShopWorld()
    with ExitStack() as stack:
        server = stack.enter_context(WorldServer(world, secret=HOOK_SECRET))
        sandbox = stack.enter_context(SlackSandbox(SandboxOptions(ack_timeout_s=WAIT_S)))
        bot_port = free_port()
        bot = f"http://127.0.0.1:{bot_port}"
        alertmanager = ClusterAlertmanager(tmp_path / "alertmanager", bot, ALERTS_TOKEN)
        stack.callback(alertmanager.stop)
        rules = shortened_rules(ROOT / "deploy" / "prometheus" / "rules.yaml", tmp_path / "rules.yaml")
        prometheus = ClusterPrometheus(
            tmp_path / "prometheus", server.target, rules=rules, alertmanager=f"127.0.0.1:{alertmanager.port}"
        )
        stack.callback(prometheus.stop)
        alertmanager.wait_ready()
        prometheus.wait_for('count(istio_requests_total{reporter="destination"})')
        prometheus.wait_for("count(kube_statefulset_replicas) and count(kube_pod_container_info)")

        env = _env(
            tmp_path,
            sandbox,
            REMEDIATE_EXECUTOR="webhook",
            REMEDIATE_WEBHOOK_URL=server.heal_url,
            REMEDIATE_WEBHOOK_SECRET=HOOK_SECRET,
        )  # the default policy (auto: the bundled one) ranks the restart first: there is no deploy to roll back
        graph = _discover(tmp_path, env, prometheus)
        serve = ["serve", "--port", str(bot_port), "--topology", str(graph)]
        stack.enter_context(_process(serve, env, tmp_path / "serve.log"))
        health = _health(bot)
        assert health["executor"]["kind"] == "webhook"
        assert health["topology"]["services"] == 4
        feed = ["snapshots", "feed", "--prometheus", prometheus.url, "--bot", bot, "--interval", "1"]
        stack.enter_context(_process(feed, env | {"REMEDIATE_BOT_URL": bot}, tmp_path / "feed.log"))
        driver = sandbox.connect_app(bot + "/slack/events", SIGNING_SECRET)
        # the rules are evaluated and the pipeline delivers (Watchdog fires, routed away from the bot)
        prometheus.wait_for('ALERTS{alertname="Watchdog", alertstate="firing"}')
        assert _cards(sandbox) == []

        world.crash_loop("carts")
        card = _card(sandbox, "restart_service on carts", "error_rate", *ALERT_NAMES)
        _check_card(card, prometheus.url, alertmanager.url)
        engine = _store(tmp_path)
        stack.callback(engine.dispose)
        wait_for(lambda: any(s.get("error_rate", 0) > 0.1 for s in _carts_snapshots(engine)))

        # someone without a role may not approve: refused, nothing reaches the cluster
        driver.click(user=BOB, channel="incidents", message_ts=card["ts"], action_id="approve:1")
        refusal = wait_for(lambda: _ephemerals(sandbox, BOB))
        assert any(f"{BOB} has no role in the guardrails config" in t for t in refusal), refusal
        assert server.heals == []
        driver.click(
            user=ALICE,
            channel="incidents",
            message_ts=card["ts"],
            action_id=_approve_id(card, "restart_service on carts"),
        )
        assert server.healed.wait(WAIT_S), "the approved restart never reached the heal receiver"
        [heal] = [h for h in server.heals if not h["body"].get("dry_run")]
        assert heal["signed"] and (heal["body"]["action"], heal["body"]["target"]) == (
            "restart_service",
            "carts",
        )

        closed = _card(sandbox, "Resolved")
        wait_for(lambda: _thread_tells_it_all(sandbox, closed["ts"]))
        assert "carts" in json.dumps(closed["blocks"])
        _check_store(engine)


def _thread_tells_it_all(sandbox: SlackSandbox, ts: str) -> bool:
    """Return whether the card's thread shows the approved run's outcome and every alert resolving."""
    found = control(sandbox, f"messages?channel=C0INCIDENT&thread_ts={ts}", method="GET")
    thread = "\n".join(str(m.get("text", "")) for m in found.get("messages", []) if m.get("ts") != ts)
    ran = f"restart_service on carts \u2192 *succeeded* (approved by {ALICE})" in thread
    return ran and all(f"alert {name} resolved on `carts`" in thread for name in ALERT_NAMES)


def _ephemerals(sandbox: SlackSandbox, user: str) -> list[str]:
    """Return the texts of the ephemeral replies ``user`` saw in #incidents."""
    found = control(sandbox, f"ephemerals?channel=C0INCIDENT&user={user}", method="GET")
    return [str(e.get("text", "")) for e in found.get("ephemerals", [])]


def _texts(card: dict[str, Any]) -> list[str]:
    """Return every text of a card's section blocks (section texts and fields)."""
    found = []
    for block in card["blocks"]:
        found += [str(f["text"]) for f in block.get("fields", [])]
        if isinstance(block.get("text"), dict):
            found.append(str(block["text"]["text"]))
    return found


def _check_card(card: dict[str, Any], prometheus: str, alertmanager: str) -> None:
    """The card pins every alert on carts, shows its live metrics and links, and ranks its restart first."""
    texts = _texts(card)
    signals = next(t for t in texts if t.startswith("*Key signals*"))
    assert "*Services*\ncarts" in texts
    for name in ALERT_NAMES:
        assert f"*{name}* on `carts`" in signals
    assert "kube-state-metrics`" not in signals  # the alert's job and service labels lost to container
    assert "`carts`: " in signals and "error_rate" in signals  # from `snapshots feed`
    links = next(t for t in texts if t.startswith("*Links*"))
    assert (
        "<https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping|runbook>" in links
    )
    assert f"<{prometheus}/graph?g0.expr=" in links  # generatorURL
    assert f"<{alertmanager}/#/silences/new?filter=" in links
    assert _approve_id(card, "restart_service on carts") == "approve:1"


def _check_store(engine: sa.Engine) -> None:
    """One incident, on carts, resolved; its alerts came through Alertmanager and resolved there."""
    with engine.connect() as conn:
        incidents = conn.execute(sa.select(Incident.services, Incident.status)).all()
        alerts = [
            r[0] for r in conn.execute(sa.select(IncidentEvent.payload).where(IncidentEvent.type == "alert"))
        ]
    assert [(list(i.services), i.status) for i in incidents] == [(["carts"], "resolved")]
    assert alerts and all(a["source"] == "alertmanager" for a in alerts)
    names = {a["name"] for a in alerts}
    assert set(ALERT_NAMES) <= names
    assert "Watchdog" not in names
