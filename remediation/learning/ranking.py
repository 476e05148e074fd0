"""The learned policy behind the ``Policy`` protocol: calibrated top-k with time to mitigate, risk, reason.

Ranking one incident is one forward pass. What only depends on the topology (edge index tensors, the
catalog-kind mask) is cached per service graph; explanations reuse that same pass: gradient x input of
the top-k logits in one batched backward. Similar past incidents are not part of a reason: every card
shows them whichever policy ranks (``remediation.similar``); ``memory`` only seeds that memory with
the simulated incidents the policy trained on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from playbooks.catalog import Catalog, builtin_catalog
from playbooks.models import SERVICE_KINDS
from remediation.guardrails.decide import Context
from remediation.guardrails.mask import action_mask
from remediation.guardrails.models import RbacConfig
from remediation.learning.encoding import GraphBatch
from remediation.learning.policy import GraphPolicy
from remediation.learning.train import Memory
from remediation.policies.base import RankedAction
from sim.actions import undo_mask
from sim.observation import FEATURES, Observation

_KIND0 = FEATURES.index("kind_frontend")
_SIGNALS = np.array(
    [
        i
        for i, f in enumerate(FEATURES)
        if not f.startswith("kind_") and f not in ("stateful", "in_degree", "out_degree")
    ]
)
_CACHE_SIZE = 16
"""Service graphs whose index tensors a policy keeps (a bot sees a handful of topologies)."""


def kind_applies(catalog: Catalog) -> npt.NDArray[np.int8]:
    """Return the (K, A) table: 1 where service action ``a`` applies to service kind ``k`` (SERVICE_KINDS)."""
    return np.array(
        [[kind in catalog.get(a).applies_to for a in catalog.service_actions] for kind in SERVICE_KINDS],
        dtype=np.int8,
    )


def static_mask(observation: Observation, catalog: Catalog) -> npt.NDArray[np.int8]:
    """Return the (N * A + G,) mask of actions whose catalog kinds fit each service (read from its features)."""
    return _static_mask(observation, kind_applies(catalog), len(catalog.global_actions))


def _static_mask(
    observation: Observation, applies: npt.NDArray[np.int8], n_global: int
) -> npt.NDArray[np.int8]:
    kinds = np.argmax(observation.nodes[:, _KIND0 : _KIND0 + len(SERVICE_KINDS)], axis=1)
    return np.concatenate([applies[kinds].reshape(-1), np.ones(n_global, dtype=np.int8)])


def guardrail_mask(services: Sequence[str], kinds: Sequence[str], catalog: Catalog, *, config: RbacConfig,
                   replicas: Sequence[int] | None = None) -> npt.NDArray[np.int8]:  # fmt: skip
    """Return the guardrails' plan-stage mask under the caller's RBAC config (no freeze, no recent runs)."""
    context = Context(
        config=config,
        catalog=catalog,
        now=datetime.now(UTC),
        stage="plan",
        service_kinds=dict(zip(services, kinds, strict=True)),
        replicas={s: int(r) for s, r in zip(services, replicas or [2] * len(services), strict=True)},
    )
    return action_mask(services, catalog, context)


class _Graph(NamedTuple):
    """What a ranking needs from a service graph, built once per graph."""

    edges: npt.NDArray[np.int64]  # (E, 2) the edges it was built from (compared on lookup)
    src: torch.Tensor  # (E,) int64 caller
    dst: torch.Tensor  # (E,) int64 callee
    node_mask: torch.Tensor  # (1, N) bool, all True
    kinds: npt.NDArray[np.int64]  # (N,) SERVICE_KINDS index read from the features
    static: npt.NDArray[np.bool_]  # (N * A + G,) catalog-kind mask


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
        self._service_actions = self.catalog.service_actions
        self._global_actions = self.catalog.global_actions
        self._applies = kind_applies(self.catalog)
        self._risk = {a: self.catalog.get(a).risk.value for a in self.catalog.ids}
        self._graphs: dict[tuple[tuple[str, ...], int], _Graph] = {}

    def _graph(self, observation: Observation) -> _Graph:
        """Return the cached index tensors and kind mask of this observation's service graph."""
        key = (observation.services, int(observation.edges.shape[0]))
        kinds = np.argmax(observation.nodes[:, _KIND0 : _KIND0 + len(SERVICE_KINDS)], axis=1)
        hit = self._graphs.get(key)
        if (
            hit is not None
            and np.array_equal(hit.edges, observation.edges)
            and np.array_equal(hit.kinds, kinds)
        ):
            return hit
        edges = np.asarray(observation.edges, dtype=np.int64).reshape(-1, 2).copy()
        static = np.concatenate(
            [self._applies[kinds].reshape(-1), np.ones(len(self._global_actions), dtype=np.int8)]
        ).astype(bool)
        graph = _Graph(
            edges=edges,
            src=torch.from_numpy(edges[:, 0].copy()),
            dst=torch.from_numpy(edges[:, 1].copy()),
            node_mask=torch.ones((1, len(observation.services)), dtype=torch.bool),
            kinds=kinds,
            static=static,
        )
        if len(self._graphs) >= _CACHE_SIZE:
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[key] = graph
        return graph

    def encode(self, observation: Observation) -> GraphBatch:
        """Return the one-incident GraphBatch of an observation, masks applied (static, then ``self.mask``)."""
        graph = self._graph(observation)
        # what the observation rules out: a rollback / config revert with no recent change to undo
        mask = graph.static.copy()
        mask[: len(observation.services) * len(self._service_actions)] &= undo_mask(
            observation.nodes, self._service_actions
        ).reshape(-1)
        if self.mask is not None:
            mask &= self.mask.astype(bool)
        return GraphBatch(
            x=torch.from_numpy(np.asarray(observation.nodes, dtype=np.float32))[None],
            node_mask=graph.node_mask,
            src=graph.src,
            dst=graph.dst,
            glob=torch.from_numpy(np.asarray(observation.globals, dtype=np.float32))[None],
            mask=torch.from_numpy(mask)[None],
            edge_x=None
            if observation.edge_values is None
            else torch.from_numpy(np.asarray(observation.edge_values, dtype=np.float32)),
        )

    def scores(self, observation: Observation) -> tuple[GraphBatch, torch.Tensor, torch.Tensor]:
        """Return the encoded batch, calibrated probabilities (A,) and predicted seconds to mitigate (A,)."""
        batch = self.encode(observation)
        with torch.inference_mode():
            heads = self.net(batch)
        probs = torch.softmax(heads.logits[0] / self.temperature, dim=0)
        return batch, probs, torch.expm1(heads.ttm[0].clamp(0, 12))

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return the top ``k`` allowed actions, best first (one forward pass, plus one backward for reasons)."""
        return self.rank_avoiding(observation, k, frozenset(), k)

    def rank_avoiding(
        self, observation: Observation, k: int, targets: Collection[str], pool: int
    ) -> list[RankedAction]:
        """Return ``[r for r in rank(observation, pool) if r.target not in targets][:k]``, reasons for those only.

        Each item's reason is one row of the batched backward, so explaining the 64 of a pool to show 3
        cost ten times the ranking (bot/notify/suggest.py ranks around services the graph lacks).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        batch = self.encode(observation)
        if self.explain:
            # gradients w.r.t. the inputs only, for the reasons; the weights stay untouched
            x = batch.x.clone().requires_grad_(True)
            ex = None if batch.edge_x is None else batch.edge_x.clone().requires_grad_(True)
            with torch.enable_grad():
                heads = self.net(batch._replace(x=x, edge_x=ex))
        else:
            with torch.inference_mode():
                heads = self.net(batch)
        logits = heads.logits[0].detach()
        probs = torch.softmax(logits / self.temperature, dim=0)
        ttm = torch.expm1(heads.ttm[0].detach().clamp(0, 12))
        allowed = int(batch.mask[0].sum())
        top = torch.topk(probs, min(max(k, pool), allowed)).indices
        if targets:
            keep = [i for i in top.tolist() if self._decode(i, observation.services)[1] not in targets]
            top = torch.tensor(keep[:k], dtype=torch.long)
        top = top[:k]
        if top.numel() == 0:
            return []
        reasons = [""] * top.numel()
        if self.explain:
            reasons = self._signals(x, ex, heads.logits[0], top, observation)
        out = []
        for index, reason in zip(top.tolist(), reasons, strict=True):
            action, target = self._decode(index, observation.services)
            p = float(probs[index])
            out.append(
                RankedAction(
                    action=action,
                    target=target,
                    score=float(np.log(max(p, 1e-12))),
                    confidence=round(p, 4),
                    expected_ttm_s=round(float(ttm[index]), 1),
                    risk=self._risk[action],
                    reason=reason,
                )
            )
        return out

    def _decode(self, index: int, services: Sequence[str]) -> tuple[str, str | None]:
        a, n = len(self._service_actions), len(services)
        if index >= n * a:
            return self._global_actions[index - n * a], None
        return self._service_actions[index % a], services[index // a]

    def _signals(self, x: torch.Tensor, edge_x: torch.Tensor | None, logits: torch.Tensor, top: torch.Tensor,
                 observation: Observation) -> list[str]:  # fmt: skip
        """Per top action, the three inputs with the largest gradient x input: (service, signal) or a call edge."""
        k, services = top.numel(), observation.services
        inputs = (x,) if edge_x is None or not self.net.config.edge_features else (x, edge_x)
        # one batched backward: row i of the result is d logit[top[i]] / d inputs
        grads = torch.autograd.grad(
            logits[top], inputs, grad_outputs=torch.eye(k), is_grads_batched=True, allow_unused=True
        )
        attribution = (grads[0][:, 0] * x.detach()[0]).numpy()[:, :, _SIGNALS]  # (k, N, S)
        flat = attribution.reshape(k, -1)
        n_node = flat.shape[1]
        if len(inputs) == 2 and grads[1] is not None:
            # the edge error rates (k, E): a failing call edge can be the reason, not only a service
            flat = np.concatenate([flat, (grads[1] * inputs[1].detach())[:, :, 0].numpy()], axis=1)
        width = min(3, flat.shape[1])
        part = np.argpartition(-flat, width - 1, axis=1)[:, :width]
        best = np.take_along_axis(part, np.argsort(-np.take_along_axis(flat, part, axis=1), axis=1), axis=1)
        out = []
        for row in range(k):
            parts = []
            for i in best[row].tolist():
                if flat[row, i] <= 0:
                    continue
                if i >= n_node:
                    caller, callee = observation.edges[i - n_node].tolist()
                    parts.append(f"errors on calls {services[caller]} -> {services[callee]}")
                    continue
                node, feat = divmod(i, len(_SIGNALS))
                parts.append(f"{FEATURES[_SIGNALS[feat]]} on {services[node]}")
            out.append("driven by " + ", ".join(parts) if parts else "no single signal stands out")
        return out
