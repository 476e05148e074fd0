"""`remediate demo` end to end in a subprocess: setup, live world, a card in the sandbox, Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.bot.sandbox.conftest import WAIT_S, wait_for


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Queue the program's output lines as they come, then None at its end."""
    out: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_demo_serves_a_card_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    env = {**os.environ, "REMEDIATE_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("REMEDIATE_DATABASE_URL", None)
    args = [
        "--port",
        "0",
        "--sandbox-port",
        "0",
        "--first-fault",
        "0",
        "--tick",
        "0.3",
        "--fault-every",
        "600",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "demo", *args, "--history-incidents", "5", "--minutes", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = _lines(proc)
        url = None
        deadline = time.monotonic() + WAIT_S
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:  # the demo ended before it served anything
                break
            seen.append(line)
            found = re.search(r"open (http://127\.0\.0\.1:\d+/)", seen[-1])
            url = found.group(1) if found else None
        assert url, "the demo printed no sandbox URL:\n" + "".join(seen)
        assert (tmp_path / "demo" / "remediate.sqlite").is_file()
        assert any("imported 5" in line for line in seen)  # the simulated history went in

        def card() -> dict[str, Any] | None:
            found = _get(url + "_sandbox/messages?channel=incidents")
            items = found.get("messages", found) if isinstance(found, dict) else found
            return next((m for m in items if re.match(r"INC-\d+ ", m.get("text", ""))), None)

        first = wait_for(card)
        assert first["blocks"] and any(b["type"] == "actions" for b in first["blocks"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Everything it printed up to its end (not "until a quiet second": a busy machine has those).
    while (line := lines.get(timeout=WAIT_S)) is not None:
        seen.append(line)
    text = "".join(seen)
    assert "demo stopped" in text and "Traceback" not in text
    # after Ctrl-C the default store (what `remediate serve` opens) holds no demo incident: none exists
    assert f"data directory: {tmp_path / 'demo'}" in text and not (tmp_path / "remediate.sqlite").exists()
