"""The graph network policy: message passing over the dependency graph, a score per (service, action).

Shapes: B graphs padded to N services, F node features, H hidden units, A per-service actions, G global
actions (escalate, wait). The flat action axis is ``N * A + G``, service-major, the simulator's layout.
The network never sees a topology size as a parameter, so it runs on graphs it never saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from remediation.learning.encoding import GraphBatch

NEG = -1e9  # logit of a masked action: exp() underflows to exactly 0 in float32


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the graph network (saved with every artifact)."""

    n_features: int
    n_globals: int
    n_actions: int
    n_global_actions: int
    hidden: int = 64
    layers: int = 3
    edge_messages: bool = False
    """Edge-aware input messages (caller-minus-callee feature differences); False in older artifacts."""
    edge_features: int = 0
    """Per-edge input features the edge messages also read (``EDGE_FEATURES``); 0 in older artifacts."""


class Heads(NamedTuple):
    """Everything one forward pass returns."""

    logits: torch.Tensor  # (B, N * A + G) masked policy logits
    q: torch.Tensor  # (B, N * A + G) action values (offline CQL head), unmasked
    ttm: torch.Tensor  # (B, N * A + G) predicted log(1 + seconds to mitigate) after the action
    value: torch.Tensor  # (B,) state value (PPO critic)
    nodes: torch.Tensor  # (B, N, H) final node embeddings
    pooled: torch.Tensor  # (B, 2H) graph embedding (masked mean and max of nodes)


class MessageLayer(nn.Module):
    """One round: each service mixes its own state with the mean of its callers' and its callees'."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self_w = nn.Linear(hidden, hidden)
        self.from_callers = nn.Linear(hidden, hidden, bias=False)
        self.from_callees = nn.Linear(hidden, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, inv_in: torch.Tensor,
                inv_out: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Return the updated (B * N, H) node states."""
        # messages along each edge caller -> callee: the callee hears its callers (upstream view)
        callers = torch.zeros_like(h).index_add_(0, dst, h[src]) * inv_in
        # and the reverse direction: the caller hears its callees (where failures come from)
        callees = torch.zeros_like(h).index_add_(0, src, h[dst]) * inv_out
        update = self.self_w(h) + self.from_callers(callers) + self.from_callees(callees)
        return h + torch.relu(self.norm(update))


class EdgeDiff(nn.Module):
    """Edge-aware input messages: what differs between a caller and each of its callees.

    A fault that only shows on the calling side (a network partition: the caller's errors climb, the
    callee looks healthy) is invisible to per-service features and blurred by mean aggregation. Each edge
    carries the raw feature difference caller minus callee, next to the edge's own features (the error
    rate of calls over it) when there are any, through a small MLP; every service takes the element-wise
    max over its outgoing edges (the callee that differs most) and over its incoming edges (the caller
    that sees it worst), plus the mean over outgoing edges.
    """

    def __init__(self, n_features: int, hidden: int, n_edge_features: int = 0) -> None:
        super().__init__()
        self.n_edge_features = n_edge_features
        self.edge = nn.Sequential(
            nn.Linear(n_features + n_edge_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(3 * hidden, hidden)

    def forward(
        self, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, edge_x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return (B * N, H) edge summaries for flat node features ``x`` of shape (B * N, F)."""
        diff = x[src] - x[dst]
        if self.n_edge_features:
            if edge_x is None:
                edge_x = x.new_zeros((src.shape[0], self.n_edge_features))
            diff = torch.cat([diff, edge_x], dim=1)
        e = self.edge(diff)  # (E, H), >= 0 after the ReLU, so a max starting at 0 is exact
        idx_src = src[:, None].expand_as(e)
        idx_dst = dst[:, None].expand_as(e)
        zeros = x.new_zeros((x.shape[0], e.shape[1]))
        out_max = zeros.scatter_reduce(0, idx_src, e, reduce="amax", include_self=True)
        in_max = zeros.scatter_reduce(0, idx_dst, e, reduce="amax", include_self=True)
        deg = x.new_zeros(x.shape[0]).index_add_(0, src, x.new_ones(src.shape[0])).clamp(min=1.0)
        out_mean = zeros.index_add(0, src, e) / deg[:, None]
        return self.out(torch.cat([out_max, in_max, out_mean], dim=1))


class GraphPolicy(nn.Module):
    """Scores every (service, action) pair and the global actions of B incidents at once."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        h, a, g = config.hidden, config.n_actions, config.n_global_actions
        self.embed = nn.Sequential(
            nn.Linear(config.n_features + config.n_globals, h), nn.ReLU(), nn.Linear(h, h)
        )
        self.edges = EdgeDiff(config.n_features, h, config.edge_features) if config.edge_messages else None
        self.layers = nn.ModuleList(MessageLayer(h) for _ in range(config.layers))
        self.node_head = nn.Sequential(nn.Linear(3 * h, h), nn.ReLU(), nn.Linear(h, 3 * a))
        self.global_head = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU(), nn.Linear(h, 3 * g + 1))

    def forward(self, batch: GraphBatch) -> Heads:
        """Run the network on a GraphBatch; masked actions get logit ``NEG``."""
        b, n, _ = batch.x.shape
        a, g = self.config.n_actions, self.config.n_global_actions
        nm = batch.node_mask.reshape(b * n, 1).to(batch.x.dtype)
        # every node sees the incident-wide features next to its own
        glob = batch.glob[:, None, :].expand(b, n, batch.glob.shape[1])
        h = self.embed(torch.cat([batch.x, glob], dim=2)).reshape(b * n, -1)
        if self.edges is not None:
            h = h + self.edges(batch.x.reshape(b * n, -1), batch.src, batch.dst, batch.edge_x)
        h = h * nm
        # mean aggregation needs in/out degrees; computed once per batch
        ones = torch.ones(batch.src.shape[0], dtype=h.dtype)
        deg_in = torch.zeros(b * n, dtype=h.dtype).index_add_(0, batch.dst, ones).clamp(min=1.0)
        deg_out = torch.zeros(b * n, dtype=h.dtype).index_add_(0, batch.src, ones).clamp(min=1.0)
        for layer in self.layers:
            h = layer(h, batch.src, batch.dst, 1.0 / deg_in[:, None], 1.0 / deg_out[:, None]) * nm
        nodes = h.reshape(b, n, -1)
        # graph embedding: masked mean and max over real services
        mask3 = batch.node_mask[:, :, None]
        mean = (nodes * mask3).sum(1) / mask3.sum(1).clamp(min=1)
        peak = nodes.masked_fill(~mask3, -1e4).max(1).values
        pooled = torch.cat([mean, peak], dim=1)
        # per-service heads read the node, and the graph context it sits in
        per_node = self.node_head(torch.cat([nodes, pooled[:, None, :].expand(b, n, pooled.shape[1])], dim=2))
        glob_out = self.global_head(pooled)
        logit_s, q_s, ttm_s = per_node.split(a, dim=2)
        logit_g, q_g, ttm_g, value = glob_out.split([g, g, g, 1], dim=1)
        logits = torch.cat([logit_s.reshape(b, n * a), logit_g], dim=1)
        logits = logits.masked_fill(~batch.mask, NEG)
        q = torch.cat([q_s.reshape(b, n * a), q_g], dim=1)
        ttm = torch.cat([ttm_s.reshape(b, n * a), ttm_g], dim=1)
        return Heads(logits, q, ttm, value.squeeze(1), nodes, pooled)

    @torch.no_grad()
    def predict(self, batch: GraphBatch, *, deterministic: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Return (B,) action indices: the masked argmax, or a masked sample when not deterministic."""
        logits = self(batch).logits
        if deterministic:
            return logits.argmax(dim=1)
        probs = torch.softmax(logits, dim=1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    def describe(self) -> dict[str, Any]:
        """Return the config as plain values (stored in artifacts)."""
        return asdict(self.config)
