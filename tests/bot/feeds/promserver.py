"""Start a real Prometheus (Debian's `prometheus` 2.42) in a temp dir, scraping given targets every second.

``prometheus_binary()`` fails the test with the install instruction when the binary is missing, or
skips it when ``REMEDIATE_TEST_PROMETHEUS=off``. `RealPrometheus.wait_for` polls an instant query until
it returns samples (a generous deadline, no timed assertion).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

OPT_OUT = "REMEDIATE_TEST_PROMETHEUS"


def prometheus_binary() -> str:
    """Return the prometheus binary's path; skip on opt-out, fail with the install instruction if missing."""
    if os.environ.get(OPT_OUT, "").lower() == "off":
        pytest.skip(f"{OPT_OUT}=off")
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(
            "prometheus is not installed: run `sudo bash deploy/ci/install-system-deps.sh` "
            f"(or set {OPT_OUT}=off to skip this test)"
        )
    return path


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealPrometheus:
    """A prometheus process scraping ``targets``; stop() ends it."""

    def __init__(
        self,
        directory: Path,
        targets: list[str],
        *,
        rule_files: list[Path] | None = None,
        interval: str = "1s",
    ) -> None:
        rules = "".join(f"\n  - {path}" for path in rule_files or [])
        self._launch(
            directory,
            f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
            + (f"rule_files:{rules}\n" if rules else "")
            + "scrape_configs:\n  - job_name: test\n    static_configs:\n"
            + f"      - targets: {json.dumps(targets)}\n",
        )

    def _launch(self, directory: Path, config_text: str, *extra_args: str) -> None:
        """Write ``config_text`` as prometheus.yml in ``directory`` and start prometheus on a free port."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        config = directory / "prometheus.yml"
        config.write_text(config_text, encoding="utf-8")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--web.external-url={self.url}",  # generatorURL links point here
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _alive(self) -> None:
        assert self.proc.poll() is None, "prometheus exited:\n" + self.log.read_text(errors="replace")[-3000:]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Return the result vector of an instant query (empty when Prometheus is not up yet)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return list(json.loads(resp.read())["data"]["result"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return []

    def wait_for(self, expr: str, *, deadline_s: float = 120.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns samples; fail with the log's tail when the deadline passes."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            self._alive()
            found = self.query(expr)
            if found:
                return found
            time.sleep(0.5)
        pytest.fail(
            f"no samples for {expr!r} within {deadline_s:g}s:\n"
            + self.log.read_text(errors="replace")[-3000:]
        )

    def stop(self) -> None:
        """Terminate the process (kill it if it does not stop within 30 s)."""
        stop_process(self.proc, timeout_s=30)


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """Terminate ``proc`` (kill it if it lingers past ``timeout_s``) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
