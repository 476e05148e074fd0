"""Bulk-work helpers shared by import, export and mining."""

from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


def _ready() -> bool:
    return True  # a worker answers only after its initializer ran


def in_workers(
    items: Iterable[T],
    remote: Callable[[T], R],
    local: Callable[[T], R],
    *,
    workers: int,
    broken: Exception,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    wait: bool = False,
) -> Iterator[R]:
    """Yield ``remote(item)`` for each item, in order, computed by ``workers`` processes.

    The workers start in the background (forkserver: clean processes, not forks of one running other
    threads); until all have answered, items are done here with ``local`` so no time is lost waiting
    (``wait`` sends every item to the workers). At most two items per worker are in flight, so memory
    stays flat however many items come. A worker that dies raises ``broken``.
    """
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        ready = [pool.submit(_ready) for _ in range(workers)]
        if wait:
            for starting in ready:
                starting.result()
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                if not all(f.done() for f in ready):
                    yield local(item)
                    continue
                pending.append(pool.submit(remote, item))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise broken from None
        finally:
            for future in pending:
                future.cancel()
