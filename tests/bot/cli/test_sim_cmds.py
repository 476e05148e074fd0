"""`remediate sim ...` end to end, as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def remediate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "sim", *args], capture_output=True, text=True, timeout=120
    )


def test_topologies_lists_builtins_with_sizes() -> None:
    done = remediate("topologies", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["online-boutique"]["services"] == 12 and rows["hotel-reservation"]["services"] == 22


def test_run_json_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    done = remediate(
        "run", "--topology", "hotel-reservation", "--fault", "cache_stampede", "--target", "memcached-rate",
        "--policy", "oracle", "--seed", "3", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert list(summary) == ["resolved", "steps", "time_to_mitigate_s", "actions", "impact"]
    assert summary["resolved"] is True
    assert summary["actions"][0] == {"action": "warm_cache", "target": "memcached-rate"}
    assert summary["steps"] == len(summary["actions"]) and summary["time_to_mitigate_s"] > 0


def test_run_takes_a_topology_file_and_prints_steps(tmp_path: Path) -> None:
    from sim.resolve import resolve_topology

    path = tmp_path / "mine.json"
    path.write_text(json.dumps(resolve_topology("online-boutique").to_node_link()))
    done = remediate("run", "--topology", str(path), "--policy", "heuristic", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "step" in done.stdout and ("resolved in" in done.stdout or "not resolved" in done.stdout)


def test_run_is_deterministic_by_seed() -> None:
    args = ("run", "--topology", "online-boutique", "--policy", "random", "--seed", "7", "--json")
    assert remediate(*args).stdout == remediate(*args).stdout


def test_bad_input_is_refused_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nodes")
    for args, needle in (
        (("run", "--topology", str(broken)), "not JSON"),
        (("run", "--fault", "meteor"), "unknown fault kind"),
        (("run", "--fault", "bad_deploy", "--target", "redis-cart"), "cannot strike"),
        (("run", "--policy", "psychic"), "unknown policy"),
        (("run", "--target", "frontend"), "need --fault"),
    ):
        done = remediate(*args)
        assert done.returncode == 1, (args, done.stderr)
        assert needle in done.stderr and "Traceback" not in done.stderr


def test_history_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "h.jsonl"
    done = remediate(
        "history",
        "--topology",
        "online-boutique",
        "--incidents",
        "4",
        "--seed",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["incidents"] == 4
    assert len(out.read_text().splitlines()) == 4


def test_draw_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    done = remediate(
        "draw",
        "--topology",
        "hotel-reservation",
        "--fault",
        "datastore_outage",
        "--target",
        "mongodb-rate",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
