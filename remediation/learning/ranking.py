"""The learned policy behind the ``Policy`` protocol: calibrated top-k with time to mitigate, risk, reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import torch

from playbooks.catalog import Catalog, builtin_catalog
from playbooks.models import SERVICE_KINDS
from remediation.guardrails.config import load_rbac
from remediation.guardrails.decide import Context
from remediation.guardrails.mask import action_mask
from remediation.learning.encoding import GraphBatch, batch_from_observations
from remediation.learning.policy import GraphPolicy
from remediation.learning.train import Memory
from remediation.policies.base import RankedAction
from sim.observation import FEATURES, Observation

_KIND0 = FEATURES.index("kind_frontend")
_SIGNALS = [
    i
    for i, f in enumerate(FEATURES)
    if not f.startswith("kind_") and f not in ("stateful", "in_degree", "out_degree")
]


def static_mask(observation: Observation, catalog: Catalog) -> npt.NDArray[np.int8]:
    """Return the (N * A + G,) mask of actions whose catalog kinds fit each service (read from its features)."""
    kinds = [
        SERVICE_KINDS[int(np.argmax(row[_KIND0 : _KIND0 + len(SERVICE_KINDS)]))] for row in observation.nodes
    ]
    per = np.array(
        [[kind in catalog.get(a).applies_to for a in catalog.service_actions] for kind in kinds],
        dtype=np.int8,
    )
    return np.concatenate([per.reshape(-1), np.ones(len(catalog.global_actions), dtype=np.int8)])


def guardrail_mask(services: Sequence[str], kinds: Sequence[str], catalog: Catalog,
                   replicas: Sequence[int] | None = None) -> npt.NDArray[np.int8]:  # fmt: skip
    """Return the guardrails' plan-stage mask under the shipped RBAC config (no freeze, no recent runs)."""
    context = Context(
        config=load_rbac(None),
        catalog=catalog,
        now=datetime.now(UTC),
        stage="plan",
        service_kinds=dict(zip(services, kinds, strict=True)),
        replicas={s: int(r) for s, r in zip(services, replicas or [2] * len(services), strict=True)},
    )
    return action_mask(services, catalog, context)


class LearnedPolicy:
    """Ranks with a trained GraphPolicy; confidence is the temperature-scaled softmax over allowed actions."""

    def __init__(
        self,
        net: GraphPolicy,
        *,
        temperature: float = 1.0,
        memory: Memory | None = None,
        catalog: Catalog | None = None,
        name: str = "learned",
        version: str = "unversioned",
        explain: bool = True,
    ) -> None:
        self.net = net.eval()
        self.temperature = temperature
        self.memory = memory
        self.catalog = catalog or builtin_catalog()
        self.name = name
        self.version = version
        self.explain = explain
        self.mask: npt.NDArray[np.int8] | None = None
        """Optional extra mask (guardrails) for the next ``rank`` calls, same layout as the action space."""

    def scores(self, observation: Observation) -> tuple[GraphBatch, torch.Tensor, torch.Tensor]:
        """Return the encoded batch, calibrated probabilities (A,) and predicted seconds to mitigate (A,)."""
        mask = static_mask(observation, self.catalog)
        if self.mask is not None:
            mask = mask & self.mask.astype(np.int8)
        a, g = len(self.catalog.service_actions), len(self.catalog.global_actions)
        batch = batch_from_observations([observation], [mask], a, g)
        with torch.no_grad():
            heads = self.net(batch)
        probs = torch.softmax(heads.logits[0] / self.temperature, dim=0)
        return batch, probs, torch.expm1(heads.ttm[0].clamp(0, 12))

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return the top ``k`` allowed actions, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        batch, probs, ttm = self.scores(observation)
        allowed = int(batch.mask[0].sum())
        top = torch.topk(probs, min(k, allowed)).indices.tolist()
        similar = self._similar(batch) if self.explain else ""
        out = []
        for index in top:
            action, target = self._decode(index, observation.services)
            reason = ""
            if self.explain:
                reason = self._signals(batch, index, observation) + similar
            out.append(
                RankedAction(
                    action=action,
                    target=target,
                    score=float(torch.log(probs[index].clamp(min=1e-12))),
                    confidence=round(float(probs[index]), 4),
                    expected_ttm_s=round(float(ttm[index]), 1),
                    risk=self.catalog.get(action).risk.value,
                    reason=reason,
                )
            )
        return out

    def _decode(self, index: int, services: Sequence[str]) -> tuple[str, str | None]:
        a, n = len(self.catalog.service_actions), len(services)
        if index >= n * a:
            return self.catalog.global_actions[index - n * a], None
        return self.catalog.service_actions[index % a], services[index // a]

    def _signals(self, batch: GraphBatch, index: int, observation: Observation) -> str:
        """Name the three (service, signal) inputs with the largest gradient x input for this action."""
        x = batch.x.clone().requires_grad_(True)
        logit = self.net(batch._replace(x=x)).logits[0, index]
        (grad,) = torch.autograd.grad(logit, x)
        attribution = (grad * x).detach()[0][:, _SIGNALS]
        flat = attribution.reshape(-1)
        best = torch.topk(flat, min(3, flat.numel())).indices.tolist()
        parts = []
        for i in best:
            node, feat = divmod(i, len(_SIGNALS))
            if float(flat[i]) <= 0:
                continue
            parts.append(f"{FEATURES[_SIGNALS[feat]]} on {observation.services[node]}")
        return "driven by " + ", ".join(parts) if parts else "no single signal stands out"

    def _similar(self, batch: GraphBatch) -> str:
        """Name the two most similar past incidents (cosine over graph embeddings) and what fixed them."""
        if self.memory is None or not self.memory.incidents:
            return ""
        with torch.no_grad():
            emb = torch.nn.functional.normalize(self.net(batch).pooled, dim=1)[0]
        sims = self.memory.embeddings @ emb
        best = torch.topk(sims, min(2, sims.numel())).indices.tolist()
        past = "; ".join(
            f"{self.memory.incidents[i]} (fixed by {self.memory.fixes[i]}, similarity {float(sims[i]):.2f})"
            for i in best
        )
        return f". Similar past incidents: {past}"
