"""The live world: faults fire, alerts go out, approved actions change it; and the bot's whole flow on it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.alerts.models import parse_alerts
from bot.alerts.snapshots import parse_snapshots
from bot.demo.alerts import SimAlert, webhook_body
from bot.demo.stack import DemoStack
from bot.demo.world import LiveWorld, WorldOptions
from incidents_db.service import get_record
from remediation.executors.sim import SimWorld
from tests.bot.demo.conftest import approve_id, cards, fast_world, replies, wait_card
from tests.bot.sandbox.conftest import wait_for

ALICE = "U0ALICE001"


class Recorder:
    """An alert sink that keeps every batch; can refuse deliveries to test the retry."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[SimAlert]]] = []
        self.refuse = False
        self.lock = threading.Lock()

    def send(self, alerts: Sequence[SimAlert], *, group: str) -> bool:
        if self.refuse:
            return False
        with self.lock:
            self.batches.append((group, list(alerts)))
        return True

    def statuses(self) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        with self.lock:
            for _, batch in self.batches:
                for a in batch:
                    out[(a.name, a.service)] = a.status
        return out


def test_fault_fires_alerts_then_the_fix_resolves_them() -> None:
    sink = Recorder()
    with LiveWorld("online-boutique", sink, fast_world()) as world:
        assert isinstance(world, SimWorld)
        wait_for(lambda: sink.statuses())
        firing = sink.statuses()
        assert ("HighErrorRate", "cartservice") in firing and set(firing.values()) == {"firing"}
        assert world.status().faults[0].kind == "crash_loop"
        # Every batch is a valid Alertmanager webhook as the bot parses it.
        group, batch = sink.batches[0]
        parsed = parse_alerts("alertmanager", webhook_body(batch, group=group)).accepted
        assert {a.service for a in parsed} >= {"cartservice"} and parsed[0].group
        result = world.apply("restart_service", "cartservice", {})
        assert result["ok"] and result["outcome"] == "succeeded" and result["healthy"]
        wait_for(lambda: set(sink.statuses().values()) == {"resolved"})
        status = world.status()
        assert not status.active and status.firing == () and status.actions[-1][2] == "succeeded"


class Snapshots:
    """A snapshot sink that keeps every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[list[dict]] = []
        self.lock = threading.Lock()

    def send_snapshots(self, snapshots: Sequence[Mapping[str, Any]]) -> bool:
        with self.lock:
            self.deliveries.append([dict(s) for s in snapshots])
        return True


def test_snapshots_go_out_when_the_state_changes_and_parse_as_the_bot_reads_them() -> None:
    sink, metrics = Recorder(), Snapshots()
    with LiveWorld("online-boutique", sink, fast_world(), metrics=metrics) as world:
        wait_for(lambda: sink.statuses())
        first = wait_for(
            lambda: next(
                (d for d in metrics.deliveries if any(s["values"]["error_rate"] > 0.2 for s in d)), None
            )
        )
        by_service = {s["service"]: s["values"] for s in first}
        parse_snapshots({"snapshots": first})  # the bot's own validation accepts them
        assert by_service["cartservice"]["error_rate"] > 0.2  # the crash loop shows
        assert by_service["redis-cart"]["error_rate"] < 0.05
        assert "error_rate_to:redis-cart" in by_service["cartservice"]  # per-call error rates
        assert by_service["cartservice"]["replicas"] >= 1 and "traffic_ratio" in by_service["frontend"]
        assert by_service["frontend"]["error_rate_to:cartservice"] > 0.2  # callers see the failing calls
        count = len(metrics.deliveries)
        world.apply("restart_service", "cartservice", {})
        later = wait_for(lambda: metrics.deliveries[count:] or None)
        assert {s["service"]: s["values"] for s in later[-1]}["cartservice"]["error_rate"] < 0.2


def test_apply_refuses_what_the_world_cannot_do() -> None:
    world = LiveWorld("online-boutique", Recorder(), fast_world(first_fault_s=600.0))
    assert world.apply("restart_service", "no-such-service", {})["ok"] is False
    assert "no action" in str(world.apply("reboot_universe", "cartservice", {})["detail"])
    refused = world.apply("failover_datastore", "frontend", {})  # not a datastore
    assert refused["ok"] is False and "does not apply" in str(refused["detail"])
    # nothing was deployed: the simulator's preconditions mask a rollback with no change to undo
    no_change = world.apply("rollback_deploy", "cartservice", {})
    assert no_change["ok"] is False and "does not apply" in str(no_change["detail"])


def test_undelivered_alerts_are_sent_again() -> None:
    sink = Recorder()
    sink.refuse = True
    with LiveWorld("online-boutique", sink, fast_world()) as world:
        wait_for(lambda: world.status().active)
        assert sink.batches == [] and world.status().firing == ()
        sink.refuse = False
        wait_for(lambda: sink.statuses())
        assert ("HighErrorRate", "cartservice") in world.status().firing


def test_faults_fire_again_after_recovery_and_seeded_incidents_repeat() -> None:
    def incidents(seed: int) -> list[str]:
        sink = Recorder()
        world = LiveWorld("online-boutique", sink, WorldOptions(seed=seed, fault_every_s=0.0, tick_s=600.0))
        kinds = []
        for _ in range(3):
            faults = world.fire()
            kinds.append(",".join(f"{f.kind}@{f.target}" for f in faults))
            assert world.fire() == ()  # one incident at a time
            for _ in range(4):  # a human fixes it by hand (escalate removes one cause per call)
                if world.apply("escalate", None, {})["healthy"]:
                    break
            assert world.status().incidents == len(kinds)
            world._send()  # the loop's step, run inline: notices the recovery
            assert not world.status().active
        return kinds

    first = incidents(3)
    assert first == incidents(3)
    assert len(set(first)) > 1


def test_alert_card_approve_in_the_sandbox_changes_the_world_and_resolves(
    demo_factory: Callable[..., DemoStack], db_url: str
) -> None:
    # The world's clock stands still after the fault, so the ranking cannot drift before the click
    # (a slow machine let the crash loop saturate the service and put scale_out first).
    stack = demo_factory(database_url=db_url, tick_s=3600.0)
    assert stack.sandbox is not None and stack.world is not None and stack.sandbox.driver is not None
    card = wait_card(stack, lambda b: "restart_service on cartservice" in b)
    assert card["text"].startswith("INC-1 ")
    restart = approve_id(card, "restart_service on cartservice")
    delivery = stack.sandbox.driver.click(
        user=ALICE, channel="incidents", message_ts=card["ts"], action_id=restart
    )
    assert delivery.ok, delivery.summary()
    final = wait_card(stack, lambda b: "Resolved" in b)
    assert stack.world.status().actions == (("restart_service", "cartservice", "succeeded"),)
    wait_for(
        lambda: [r for r in replies(stack, final["ts"]) if "all alerts resolved" in r or "resolved" in r]
    )
    timeline = replies(stack, final["ts"])
    assert any("restart_service on cartservice" in r and "succeeded" in r for r in timeline)
    assert any("firing" in r for r in timeline)
    assert len(cards(stack)) == 1  # one card, updated in place
    assert not any("metrics of" in r for r in timeline)  # snapshots feed the ranking, not the thread
    with stack.app.services.sessions() as s:  # type: ignore[union-attr]
        kinds = [e["type"] for e in get_record(db_session=s, incident_id="INC-1")["events"]]
    assert "metrics" in kinds[: kinds.index("action")]  # the ranking before the approval read them
