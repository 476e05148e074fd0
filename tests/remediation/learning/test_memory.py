"""The similar-incident memory pairs each past incident's embedding with the fix that ended that incident."""

from __future__ import annotations

import torch

from playbooks.catalog import builtin_catalog
from remediation.learning.encoding import index_batch
from remediation.learning.rollout import collect_logged
from remediation.learning.train import QUICK, TrainArgs, build_memory, new_net
from sim.generator import generate_topology

torch.set_num_threads(1)


def _decode(index: int, services: tuple[str, ...] | list[str]) -> str:
    catalog = builtin_catalog()
    a = len(catalog.service_actions)
    if index >= len(services) * a:
        return catalog.global_actions[index - len(services) * a]
    return f"{catalog.service_actions[index % a]} {services[index // a]}"


def test_each_memory_entry_holds_the_fix_of_its_own_incident() -> None:
    catalog = builtin_catalog()
    topology = generate_topology(12, seed=4242, name="memory-12")
    # operators resolve incidents after different numbers of steps, so the order incidents end in
    # differs from the order of their trajectories: the pairing must not depend on either
    data, fixes = collect_logged(topology, n_envs=24, seed=3, n_actions=len(catalog.service_actions))
    net = new_net(TrainArgs(**QUICK), catalog)
    memory = build_memory(net, data, fixes)
    assert len(memory.fixes) >= 8
    # per trajectory: the embedding of its first observation, and the action of its last step
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for row, traj in enumerate(data.traj.tolist()):
        first.setdefault(traj, row)
        last[traj] = row
    trajs = sorted(first)
    with torch.no_grad():
        pooled = net(index_batch(data.obs, torch.tensor([first[t] for t in trajs]))).pooled
    embeddings = torch.nn.functional.normalize(pooled, dim=1)
    for emb, fix in zip(memory.embeddings, memory.fixes, strict=True):
        same = [t for t, e in zip(trajs, embeddings, strict=True) if torch.allclose(e, emb, atol=1e-5)]
        assert same, "a memory entry matches no logged incident"
        endings = {_decode(int(data.actions[last[t]]), topology.services) for t in same}
        assert fix in endings, (fix, endings)
