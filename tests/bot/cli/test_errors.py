"""The CLI's last line of defence: file-system errors become one-line refusals (exit 1), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_unwritable_output_path_is_one_line_exit_1(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REMEDIATE_DATA_DIR": str(tmp_path),
        "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
    }
    target = tmp_path / "no-such-dir" / "history.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "export", "--out", str(target)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no-such-dir" in lines[0] and "No such file" in lines[0]
    assert "Traceback" not in proc.stderr
