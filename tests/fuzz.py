"""Shared settings of the property-based (Hypothesis) tests: modest example counts, scalable at night.

Each fuzz test asks `examples(default)` for its `max_examples`. The default keeps the suite fast;
`REMEDIATE_FUZZ_EXAMPLES=N` multiplies every default by N for a longer, opt-in run (a nightly job).
"""

from __future__ import annotations

import os


def examples(default: int) -> int:
    """Return ``default`` times the factor in REMEDIATE_FUZZ_EXAMPLES (1 when unset or not a number >= 1)."""
    raw = os.environ.get("REMEDIATE_FUZZ_EXAMPLES", "").strip()
    try:
        factor = int(raw) if raw else 1
    except ValueError:
        factor = 1
    return default * max(1, factor)
