"""Edge-aware messages: a service hears how it differs from the services across its edges."""

from __future__ import annotations

import torch

from remediation.learning.encoding import GraphBatch
from remediation.learning.policy import GraphPolicy, NetConfig

torch.set_num_threads(1)


def chain(x: torch.Tensor) -> GraphBatch:
    """One graph 0 -> 1 -> 2 (caller -> callee) with node features ``x`` and every action allowed."""
    n, a, g = 3, 4, 2
    return GraphBatch(
        x=x[None],
        node_mask=torch.ones((1, n), dtype=torch.bool),
        src=torch.tensor([0, 1]),
        dst=torch.tensor([1, 2]),
        glob=torch.zeros((1, 3)),
        mask=torch.ones((1, n * a + g), dtype=torch.bool),
    )


def net(*, edge_messages: bool) -> GraphPolicy:
    torch.manual_seed(0)
    cfg = NetConfig(n_features=5, n_globals=3, n_actions=4, n_global_actions=2, hidden=16, layers=0,
                    edge_messages=edge_messages)  # fmt: skip
    return GraphPolicy(cfg).eval()


def test_without_message_rounds_only_edge_messages_let_a_callee_see_its_caller() -> None:
    x = torch.rand((3, 5), generator=torch.Generator().manual_seed(1))
    hurt = x.clone()
    hurt[0, 2] += 3.0  # the caller's errors climb; callees 1 and 2 look unchanged
    for edge_messages, callee_moves in ((False, False), (True, True)):
        model = net(edge_messages=edge_messages)
        with torch.no_grad():
            before, after = model(chain(x)).nodes[0], model(chain(hurt)).nodes[0]
        # the callee's embedding (node 1) hears the caller only through an edge message
        assert (not torch.allclose(before[1], after[1])) == callee_moves
        # node 2 is two hops away: one edge message reaches one hop, no further
        assert torch.allclose(before[2], after[2])


def test_old_configs_without_the_field_build_the_old_network() -> None:
    cfg = NetConfig(n_features=5, n_globals=3, n_actions=4, n_global_actions=2, hidden=16, layers=1)
    names = set(GraphPolicy(cfg).state_dict())
    assert not any(name.startswith("edges.") for name in names)
    assert any(name.startswith("edges.") for name in net(edge_messages=True).state_dict())


def test_edge_features_tell_which_callee_a_caller_fails_to_reach() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(n_features=5, n_globals=3, n_actions=4, n_global_actions=2, hidden=16, layers=0,
                    edge_messages=True, edge_features=1)  # fmt: skip
    model = GraphPolicy(cfg).eval()
    x = torch.rand((3, 5), generator=torch.Generator().manual_seed(1))
    quiet = chain(x)._replace(edge_x=torch.zeros((2, 1)))
    cut = chain(x)._replace(edge_x=torch.tensor([[0.0], [1.0]]))  # calls 1 -> 2 fail, node features equal
    with torch.no_grad():
        before, after = model(quiet).nodes[0], model(cut).nodes[0]
        unknown = model(chain(x)).nodes[0]  # no edge features at all reads as zeros
    assert not torch.allclose(before[2], after[2]) and not torch.allclose(before[1], after[1])
    assert torch.allclose(before[0], after[0])  # node 0 touches only edge 0 -> 1, which did not change
    assert torch.allclose(unknown, before)
    # a network built without edge features ignores them
    plain = net(edge_messages=True)
    with torch.no_grad():
        assert torch.allclose(plain(quiet).nodes, plain(cut).nodes)
