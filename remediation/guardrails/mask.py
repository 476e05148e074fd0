"""The action mask for the simulator and trainer, built from the same `decide` the bot uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from playbooks.catalog import Catalog
from remediation.guardrails.decide import Context, decide


def flat_size(services: Sequence[str], catalog: Catalog) -> int:
    """Return the length of the flat action space: services x service actions, then global actions."""
    return len(services) * len(catalog.service_actions) + len(catalog.global_actions)


def decode(index: int, services: Sequence[str], catalog: Catalog) -> tuple[str, str | None]:
    """Return the (action id, target) of a flat index (service-major, then the global tail)."""
    per = len(catalog.service_actions)
    if index < len(services) * per:
        return catalog.service_actions[index % per], services[index // per]
    return catalog.global_actions[index - len(services) * per], None


def action_mask(services: Sequence[str], catalog: Catalog, context: Context) -> npt.NDArray[np.int8]:
    """Return an int8 mask (1 = allowed) over the flat action space, deciding each pair at stage "plan".

    Shape ``(len(services) * len(catalog.service_actions) + len(catalog.global_actions),)``; index
    ``s * len(service_actions) + a`` is service action ``a`` on service ``s``, the global actions follow.
    Parameters take their catalog defaults.
    """
    plan = context if context.stage == "plan" else _with_stage(context)
    mask = np.zeros(flat_size(services, catalog), dtype=np.int8)
    for i in range(mask.shape[0]):
        action, target = decode(i, services, catalog)
        mask[i] = 1 if decide(action, target, {}, None, plan).allowed else 0
    return mask


def _with_stage(context: Context) -> Context:
    from dataclasses import replace

    return replace(context, stage="plan")
