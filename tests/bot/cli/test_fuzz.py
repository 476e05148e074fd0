"""Fuzzing CLI arguments: generated flag values -> exit 0, 1 (one-line refusal) or 2 (usage), never 70.

`remediate` is run in-process through its real entry point (`bot.cli.main.main`), so the same error
handling applies as on a terminal: exit 70 is an internal error with a trace id (a bug of ours).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli.main import main
from tests.fuzz import examples

FUZZ = settings(
    max_examples=examples(12),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
BOX = "│╭╰─╮╯"
INTS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["-1", "0", "1", "1e3", "", "NaN", "0x10", " 2", "٣"]),
)
IDS = st.one_of(
    st.text(max_size=40).filter(lambda t: not t.startswith("-")),
    st.sampled_from(["INC-1", "inc-1", "INC-1\n", "", " ", "a" * 300, "%", "../../etc/passwd"]),
)


@pytest.fixture(scope="module")
def store() -> Iterator[Path]:
    """A data directory with a store holding one incident (module-wide: the examples share it)."""
    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "one.jsonl"
        history.write_text(
            '{"format": "remediate.incident/v1", "id": "INC-1", "title": "t", "severity": "sev2",'
            ' "opened_at": "2026-03-02T10:14:00Z"}\n'
        )
        env = {"REMEDIATE_DATA_DIR": tmp, "REMEDIATE_DATABASE_URL": f"sqlite:///{tmp}/store.sqlite"}
        with mock.patch.dict(os.environ, env):
            code, _, err = remediate("import", str(history))
            assert code == 0, err
            yield Path(tmp)


def remediate(*args: str) -> tuple[int, str, str]:
    """Run `remediate ARGS` in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with (
        mock.patch.object(sys, "argv", ["remediate", *args]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, err: str, *args: str, out: str = "") -> None:
    """Exit 0/1/2; a refusal (1) is one line; a usage error (2) is one message; never a trace."""
    assert code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    if code == 1 and not err and "refused" in out:  # import: the report names each refused line
        assert all(line.startswith("  line ") for line in out.splitlines()[1:]), out
    elif code == 1:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, err)
    if code == 2:
        message = " ".join(err.translate({ord(c): " " for c in BOX}).split())
        assert "Invalid value" in message or "No such option" in message or "Missing" in message, (args, err)


def test_the_store_is_seeded(store: Path) -> None:
    code, out, _ = remediate("incidents", "show", "INC-1", "--json")
    assert code == 0 and "INC-1" in out


@FUZZ
@given(IDS)
def test_incidents_show_any_id(store: Path, incident_id: str) -> None:
    code, out, err = remediate("incidents", "show", incident_id)
    assert_clean(code, err, incident_id)
    code, out, _ = remediate("incidents", "show", "INC-1", "--json")
    assert code == 0 and '"INC-1"' in out, "the incident already stored is gone"


@FUZZ
@given(
    seed=INTS,
    steps=st.sampled_from(["0", "-3", "1", "2", "x"]),
    topology=st.sampled_from(["online-boutique", "generated:5:1", "generated:5:-1", "nope", "/", "x.json"]),
)
def test_sim_run_any_topology_seed_and_steps(store: Path, seed: str, steps: str, topology: str) -> None:
    args = ("sim", "run", "--topology", topology, "--seed", seed, "--max-steps", steps, "--json")
    code, _, err = remediate(*args)
    assert_clean(code, err, *args)


@FUZZ
@given(episodes=INTS, seed=INTS)
def test_eval_any_episodes_and_seed_without_a_policy(store: Path, episodes: str, seed: str) -> None:
    args = (
        "eval",
        "--topology",
        "online-boutique",
        "--episodes",
        episodes,
        "--seed",
        seed,
        "--policy",
        "v404",
    )
    code, _, err = remediate(*args)
    assert_clean(code, err, *args)


@FUZZ
@given(content=st.binary(max_size=200), kind=st.sampled_from(["file", "dir", "missing"]))
def test_import_any_path_or_content(store: Path, content: bytes, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        if kind == "file":
            path.write_bytes(content)
        elif kind == "dir":
            path.mkdir()
        code, out, err = remediate("import", str(path))
    assert_clean(code, err, kind, out=out)
    code, out, _ = remediate("incidents", "show", "INC-1", "--json")
    assert code == 0 and '"INC-1"' in out, "the incident already stored is gone"


@pytest.mark.parametrize("command", [["sim", "run"], ["sim", "history", "--out", "h.jsonl", "-n", "1"]])
def test_a_negative_seed_is_a_usage_error_not_an_internal_one(store: Path, command: list[str]) -> None:
    code, _, err = remediate(*command, "--seed", "-1")
    assert code == 2 and "--seed" in err, err
