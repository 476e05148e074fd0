"""`remediate train --ray` and `remediate eval --ray` as a user runs them, on one local two-CPU Ray cluster.

The module starts the cluster once (``ray_cluster(None)``: the path `--ray` without an address takes) and
the commands, real subprocesses, join it by address. Without Ray installed, `--ray` is a one-line refusal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remediation.learning.cluster import INSTALL_HINT, ray_cluster


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """The address of a local two-CPU Ray cluster that lives as long as this module's tests."""
    if os.environ.get("REMEDIATE_TEST_RAY") == "off":
        pytest.skip("Ray cases disabled by REMEDIATE_TEST_RAY=off")
    pytest.importorskip("ray", reason="Ray is an extra: pip install -e '.[ray]' (make install does)")
    with ray_cluster(None) as ray:
        yield str(ray.get_runtime_context().gcs_address)


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "REMEDIATE_DATA_DIR": str(home),
        "REMEDIATE_DATABASE_URL": f"sqlite:///{home / 'store.sqlite'}",
        **(env or {}),
    }
    return subprocess.run([sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True,
                          env=full, timeout=900, check=False)  # fmt: skip


def ok_json(home: Path, *args: str) -> Any:
    proc = run(home, *args, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def one_line_refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained(address: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A data dir with one quick policy whose rollouts ran on the cluster's two workers."""
    home = tmp_path_factory.mktemp("ray-cli")
    summary = ok_json(
        home,
        "train",
        "--quick",
        "--iterations",
        "2",
        "--minutes",
        "30",
        "--minutes",
        "30",
        "--seed",
        "4",
        "--ray",
        address,
        "--workers",
        "2",
    )
    return home, summary


def test_train_on_ray_registers_a_policy_artifact(trained: tuple[Path, dict[str, Any]]) -> None:
    home, summary = trained
    assert summary["metrics"]["iterations"] == 2 and summary["stopped_by"] == "iterations"
    assert (Path(summary["path"]) / "artifact.json").is_file()
    shown = ok_json(home, "policy", "show", summary["version"])
    # the weights depend on the worker count, so the artifact says how it was trained
    assert shown["config"]["rollout_workers"] == 2 and shown["config"]["seed"] == 4


def test_eval_on_ray_repeats_for_the_same_seed_and_workers(
    address: str, trained: tuple[Path, dict[str, Any]]
) -> None:
    home, summary = trained
    args = ("eval", "--topology", "online-boutique", "--episodes", "24", "--seed", "3", "--policy",
            summary["version"], "--ray", address, "--workers", "2")  # fmt: skip
    first, second = ok_json(home, *args), ok_json(home, *args)
    assert first == second
    assert set(first["policies"]) == {"learned", "runbook", "operator_bc", "random", "oracle"}
    assert first["policies"]["oracle"]["success_rate"] > first["policies"]["random"]["success_rate"]


def test_without_ray_installed_ray_is_a_one_line_refusal(tmp_path: Path) -> None:
    # a `ray` package that cannot be imported stands in for an installation without the extra
    hidden = tmp_path / "hide"
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    line = one_line_refusal(run(tmp_path, "train", "--quick", "--ray", env=env))
    assert INSTALL_HINT in line and "pip install 'remediate[ray]'" in line
    line = one_line_refusal(run(tmp_path, "train", "--quick", "ray://head:10001"))
    assert "goes with --ray" in line
