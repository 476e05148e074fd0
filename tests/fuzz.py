"""Shared settings of the property-based (Hypothesis) tests: modest example counts, scalable at night.

Each fuzz test asks `examples(default)` for its `max_examples`. The default keeps the suite fast;
`REMEDIATE_FUZZ_EXAMPLES=N` multiplies every default by N for a longer, opt-in run (a nightly job).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import strategies as st


def examples(default: int) -> int:
    """Return ``default`` times the factor in REMEDIATE_FUZZ_EXAMPLES (1 when unset or not a number >= 1)."""
    raw = os.environ.get("REMEDIATE_FUZZ_EXAMPLES", "").strip()
    try:
        factor = int(raw) if raw else 1
    except ValueError:
        factor = 1
    return default * max(1, factor)


# --- strategies shared by the fuzz tests --------------------------------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=12)
)
"""Any JSON/YAML scalar, NaN, infinities and huge integers included."""

JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=16,
)
"""Nested JSON-like values (what a YAML or JSON file can hold)."""


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here] if here else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*here, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_paths(value, (*here, i)))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Any, max_changes: int = 3) -> Any:
    """Return a copy of a valid document with 1..max_changes random changes (drop, replace, rename)."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _paths(doc)
        if not paths:
            return draw(JSON_VALUES)
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        change = draw(st.sampled_from(("drop", "replace", "rename", "scalar")))
        if change == "drop":
            del parent[last]
        elif change == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = parent.pop(last)
        elif change == "scalar":
            parent[last] = draw(SCALARS)
        else:
            parent[last] = draw(JSON_VALUES)
    return doc
