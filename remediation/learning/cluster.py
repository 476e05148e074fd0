"""Ray, the optional engine that spreads rollouts and evaluation episodes over workers.

Ray is an extra (``pip install 'remediate[ray]'``): nothing imports it until a caller asks for workers.
``ray_cluster`` connects to a cluster by address, or starts a local one with ``LOCAL_CPUS`` CPUs, and
leaves a connection a caller (a test, a notebook) already made alone. Every worker draws its random
numbers from ``worker_seed(seed, worker, iteration)``, so a run is repeatable for a fixed worker count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TypeVar

import numpy as np

from remediation.errors import ClusterError

LOCAL_CPUS = 2
"""CPUs of the local cluster started when no address is given."""
LOCAL_TRIES = 3
"""Attempts at starting the local cluster."""
INSTALL_HINT = "Ray is not installed: pip install 'remediate[ray]'"

T = TypeVar("T")


def import_ray() -> ModuleType:
    """Return the ``ray`` module, or raise ``ClusterError`` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(INSTALL_HINT) from exc
    return ray


@contextmanager
def ray_cluster(address: str | None) -> Iterator[ModuleType]:
    """Connect to the Ray cluster at ``address`` (None: start a local one) for the block, then disconnect.

    A connection made before the block (``ray.is_initialized()``) is used as it is and left open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    _connect(ray, address)
    try:
        yield ray
    finally:
        ray.shutdown()


def _connect(ray: ModuleType, address: str | None) -> None:
    """``ray.init`` for the address (None: a new local cluster), its failures translated into ``ClusterError``.

    A local start is tried ``LOCAL_TRIES`` times: Ray gives a starting node 30 s to register, which a
    loaded machine can miss.
    """
    for attempt in range(1 if address else LOCAL_TRIES):
        try:
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                # "local": a fresh cluster on this machine even when RAY_ADDRESS names another
                ray.init(address="local", num_cpus=LOCAL_CPUS, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)  # fmt: skip
            return
        except Exception as exc:  # Ray raises plain Exception too (a node that missed its start-up time)
            ray.shutdown()
            if address is None and attempt + 1 < LOCAL_TRIES:
                continue
            where = f"at {address}" if address else "on this machine"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ClusterError(f"cannot start or reach a Ray cluster {where}: {reason}") from exc


def worker_seed(seed: int, worker: int, iteration: int) -> np.random.SeedSequence:
    """Return the seed of one worker's share of one iteration (evaluation uses iteration 0)."""
    return np.random.SeedSequence([seed, worker, iteration])


def torch_seed(sequence: np.random.SeedSequence) -> int:
    """Return a torch generator seed drawn from a seed sequence."""
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def shares(total: int, workers: int) -> list[int]:
    """Split ``total`` items over ``workers`` as evenly as possible, the first workers taking one more."""
    if workers < 1:
        raise ClusterError(f"workers must be at least 1, got {workers}")
    base, extra = divmod(total, workers)
    return [base + (1 if w < extra else 0) for w in range(workers)]


def slices(items: Sequence[T], workers: int) -> list[Sequence[T]]:
    """Return contiguous runs of ``items``, one per worker (``shares`` long; empty where none is left)."""
    out, start = [], 0
    for n in shares(len(items), workers):
        out.append(items[start : start + n])
        start += n
    return out
