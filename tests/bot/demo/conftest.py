"""The demo stack (sandbox, bot, live world) on free ports and a temporary store."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.demo.stack import DemoOptions, DemoStack
from bot.demo.world import WorldOptions
from bot.settings import load_settings
from tests.bot.sandbox.conftest import WAIT_S, control, wait_for

INCIDENTS = "C0INCIDENT"
CRASH = {"kind": "crash_loop", "target": "cartservice"}  # the runbook's first suggestion fixes it


def fast_world(**overrides: Any) -> WorldOptions:
    base: dict[str, Any] = {"first_fault_s": 0.0, "tick_s": 0.3, "fault_every_s": 600.0, "faults": (CRASH,)}
    return WorldOptions(**{**base, **overrides})


def cards(stack: DemoStack) -> list[dict[str, Any]]:
    assert stack.sandbox is not None
    found = control(stack.sandbox, f"messages?channel={INCIDENTS}", method="GET")
    items = found.get("messages", found) if isinstance(found, dict) else found
    return [m for m in items if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")]


def replies(stack: DemoStack, ts: str) -> list[str]:
    assert stack.sandbox is not None
    found = control(stack.sandbox, f"messages?channel={INCIDENTS}&thread_ts={ts}", method="GET")
    items = found.get("messages", found) if isinstance(found, dict) else found
    return [str(m.get("text", "")) for m in items if m.get("ts") != ts]


def wait_card(stack: DemoStack, predicate: Callable[[str], bool], seconds: float = WAIT_S) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((c for c in cards(stack) if predicate(json.dumps(c.get("blocks", [])))), None)

    return dict(wait_for(find, seconds=seconds))


def approve_id(card: dict[str, Any], names: str) -> str:
    """Return the action id of the Approve button of the card's suggestion whose text names ``names``."""
    n = next(
        b["block_id"].split("-")[1]
        for b in card["blocks"]
        if b.get("block_id", "").startswith("text-") and names in b["text"]["text"]
    )
    return f"approve:{n}"


@pytest.fixture
def demo_factory(tmp_path: Path) -> Iterator[Callable[..., DemoStack]]:
    stacks: list[DemoStack] = []

    def start(database_url: str | None = None, **world: Any) -> DemoStack:
        settings = load_settings(
            data_dir=tmp_path, database_url=database_url or f"sqlite:///{tmp_path / 'demo.sqlite'}"
        )
        stack = DemoStack(settings, DemoOptions(port=0, sandbox_port=0, world=fast_world(**world))).start()
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a program the test started (kill it when it lingers) and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
