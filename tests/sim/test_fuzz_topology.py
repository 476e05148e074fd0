"""Fuzzing topology files and names: any JSON (or junk) -> a Topology or a one-line TopologyError."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import SimError
from sim.resolve import resolve_topology
from sim.topology import BUILTIN_DIR, Topology
from tests.fuzz import JSON_VALUES, examples, mutated

FUZZ = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOUTIQUE = json.loads((BUILTIN_DIR / "online-boutique.json").read_text())


def files() -> st.SearchStrategy[bytes]:
    """File contents: a mutated built-in, any JSON value, deep nesting, or raw bytes."""
    as_json = st.one_of(mutated(BOUTIQUE, max_changes=4), JSON_VALUES).map(
        lambda d: json.dumps(d, allow_nan=True).encode()
    )
    return st.one_of(
        as_json,
        st.integers(1, 200_000).map(lambda n: ("[" * n + "]" * n).encode()),
        st.binary(max_size=60),
    )


def check(topology: Topology) -> None:
    """What every accepted topology promises the simulator: known kinds, sane replicas and weights."""
    assert topology.n_services >= 1
    assert all(r >= 1 for r in topology.replicas.tolist())
    assert all(0 < w <= 1 and math.isfinite(w) for w in topology.weights.tolist())


def load(content: bytes) -> Topology | SimError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topology.json"
        path.write_bytes(content)
        try:
            return resolve_topology(str(path))
        except SimError as exc:
            text = str(exc)
            assert str(path) in text and "\n" not in text, text
            return exc


@FUZZ
@given(files())
def test_any_file_is_a_topology_or_a_one_line_error_naming_it(content: bytes) -> None:
    found = load(content)
    if isinstance(found, Topology):
        check(found)


@FUZZ
@given(st.text(max_size=30) | st.from_regex(r"generated:-?[0-9]{0,4}(:-?[0-9]{0,30})?", fullmatch=True))
def test_any_name_is_a_topology_or_a_one_line_error(name: str) -> None:
    try:
        found = resolve_topology(name)
    except SimError as exc:
        assert "\n" not in str(exc), str(exc)
    except OSError as exc:  # a name that is a path the OS refuses (too long, a directory) names itself
        assert exc.filename is not None
    else:
        check(found)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"id": "a", "kind": "service", "replicas": 10**30}, "'replicas' must be an integer"),
        ({"id": "a", "kind": ["service"]}, "unknown kind"),
        ({"id": "a", "kind": "service", "stateful": "yes"}, "'stateful' must be true or false"),
    ],
)
def test_bad_node_attributes_are_named(tmp_path: Path, node: dict[str, Any], expected: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"nodes": [node], "edges": []}))
    with pytest.raises(SimError, match=expected):
        resolve_topology(str(path))


def test_deeply_nested_file_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SimError, match=r"deep\.json"):
        resolve_topology(str(path))


def test_a_name_with_a_newline_is_quoted_in_a_one_line_error() -> None:
    with pytest.raises(SimError) as caught:
        resolve_topology("/\n")
    assert str(caught.value).startswith("'/\\n': no such file")


@pytest.mark.parametrize("spec", ["generated:5:-1", "generated:5:1:2", "generated:-3", "generated:x"])
def test_bad_generated_specs_are_refused(spec: str) -> None:
    with pytest.raises(SimError, match=r"generated|topology size"):
        resolve_topology(spec)
