"""Bulk-work helpers shared by import, export and mining."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def relaxed_gc(threshold: int = 100_000) -> Iterator[None]:
    """Run the block with rarer cyclic garbage collections.

    Bulk work allocates millions of short-lived, acyclic objects (records, rows, dicts) that reference
    counting frees anyway; with the default threshold the collector re-scans every live batch over and
    over, which costs more than the work itself. Memory stays bounded because nothing here makes cycles.
    """
    previous = gc.get_threshold()
    gc.set_threshold(threshold, previous[1], previous[2])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
