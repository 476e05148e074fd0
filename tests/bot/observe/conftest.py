"""A scripted incident through the running app (alert -> card -> approve -> execute -> resolve), and scrapes."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.bot.conftest import ALICE, Harness, generic
from tests.bot.feeds.promserver import OPT_OUT
from tests.bot.sandbox.conftest import wait_for


def scripted_incident(harness: Harness) -> None:
    """Run one incident end to end: alert, card, approve the top suggestion, run it, resolve."""
    status, _ = harness.post_alert(
        "generic", generic("HighErrorRate", "checkoutservice", value=0.3, fingerprint="fp-m")
    )
    assert status == 200
    card = harness.card_for("INC-1")
    harness.click(ALICE, card, "approve:1")
    harness.wait_card("INC-1", lambda b: "executed" in b)
    wait_for(lambda: harness.world.applied)
    harness.post_alert(
        "generic", generic("HighErrorRate", "checkoutservice", status="resolved", fingerprint="fp-m")
    )
    harness.wait_card("INC-1", lambda b: "Resolved" in b)


def get(url: str, *, token: str | None = None) -> tuple[int, bytes, str]:
    """GET a URL; return (status, body, content type), also for error statuses."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def samples(text: str) -> dict[str, float]:
    """Return ``name{labels}`` -> value of every sample line of a text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def promtool() -> str:
    """Return promtool's path; skip on opt-out, fail with the install instruction when it is missing."""
    if os.environ.get(OPT_OUT, "").lower() == "off":
        pytest.skip(f"{OPT_OUT}=off")
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed (Debian package prometheus): run "
            f"`sudo bash deploy/ci/install-system-deps.sh` (or set {OPT_OUT}=off to skip this test)"
        )
    return path


def run_promtool(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run promtool with arguments (and input); return the finished process."""
    return subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, timeout=120, check=False, cwd=cwd
    )
