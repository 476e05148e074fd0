"""The training entry point, top to bottom: arguments, seeding, run directory, data, phases, artifact.

Phases: (1) logged history: simulated on-call operators on training topologies, plus mined real
history when given; (2) the operator behaviour-cloning baseline; (3) offline pre-training of the
learned policy (behaviour cloning + discrete CQL); (4) fine-tuning in the simulator with masked PPO
plus imitation of the oracle in the states the policy visits; (5) temperature scaling on held-out
states; (6) the similar-incident memory. Same arguments and seed, same weights (with ``iterations``
as the binding limit; a ``minutes`` budget that cuts training short depends on machine speed, see
``learning.budget``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from playbooks.catalog import Catalog, builtin_catalog
from remediation.guardrails.config import load_rbac
from remediation.guardrails.models import RbacConfig
from remediation.learning.algorithms import (
    CqlConfig,
    PpoConfig,
    bc_loss,
    cql_loss,
    frozen_copy,
    imitation_loss,
    ppo_loss,
    soft_update,
)
from remediation.learning.args import QUICK as QUICK  # re-exported: callers import both from here
from remediation.learning.args import TrainArgs as TrainArgs
from remediation.learning.budget import Budget
from remediation.learning.buffer import (
    Rollout,
    Transitions,
    concat_transitions,
    take_rollout,
    take_transitions,
)
from remediation.learning.calibration import Calibration, align, align_labels, calibrate
from remediation.learning.encoding import GraphBatch, index_batch
from remediation.learning.policy import GraphPolicy, NetConfig
from remediation.learning.rollout import Fixed, collect_logged, collect_rollout, training_topology
from remediation.similar.memory import SIGNATURE_SIZE, signature
from sim.observation import GLOBALS, N_EDGE_FEATURES, N_FEATURES
from sim.resolve import resolve_topology
from sim.topology import Topology
from sim.variations import variations

if TYPE_CHECKING:
    from remediation.learning.workers import RolloutWorkers

Progress = Callable[[str, int, int, dict[str, float]], None]
"""Called as (phase, done, total, metrics) after each unit of work."""
StopRule = Callable[[GraphPolicy, dict[str, float]], bool]
"""Called with the network and the curve row after each fine-tuning iteration; True ends fine-tuning."""


class Memory(NamedTuple):
    """Encoded past incidents for the 'most similar past incidents' part of a reason."""

    embeddings: torch.Tensor  # (M, 2H) unit-norm graph embeddings of the incident's first observation
    incidents: list[str]  # what the incident was
    fixes: list[str]  # what fixed it
    signatures: torch.Tensor | None = None  # (M, S) topology-free signatures (remediation.similar.memory)


class TrainResult(NamedTuple):
    """What a run produced."""

    net: GraphPolicy
    operator_bc: GraphPolicy
    temperature: float
    memory: Memory
    metrics: dict[str, float]
    curve: list[dict[str, float]]
    run_dir: Path
    config: dict[str, Any]
    stopped_by: str = ""  # "iterations" or "budget"


def seed_everything(seed: int) -> None:
    """Seed every generator the run uses."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def guardrails_of(args: TrainArgs) -> RbacConfig | None:
    """Return the RBAC config whose decisions mask the simulated states (None when ``args.guardrails`` is off)."""
    if not args.guardrails:
        return None
    return load_rbac(Path(args.rbac_config) if args.rbac_config else None)


def new_net(args: TrainArgs, catalog: Catalog) -> GraphPolicy:
    """Return a fresh graph network for the catalog's action space."""
    return GraphPolicy(
        NetConfig(
            n_features=N_FEATURES,
            n_globals=len(GLOBALS),
            n_actions=len(catalog.service_actions),
            n_global_actions=len(catalog.global_actions),
            hidden=args.hidden,
            layers=args.layers,
            edge_messages=args.edge_messages,
            edge_features=N_EDGE_FEATURES if args.edge_messages and args.edge_features else 0,
        )
    )


def _minibatches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    parts = [order[i : i + size] for i in range(0, n, size)]
    if len(parts) > 1 and parts[-1].numel() < size // 4:
        # a tiny tail minibatch gives noisy statistics: fold it into the one before
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


def _offline(net: GraphPolicy, data: Transitions, args: TrainArgs, gen: torch.Generator, *, cql: bool,
             progress: Progress | None, phase: str) -> float:  # fmt: skip
    """Behaviour cloning (+ discrete CQL on the Q head when ``cql``); return the final loss."""
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    target = frozen_copy(net)
    loss_value = 0.0
    for epoch in range(args.offline_epochs):
        for rows in _minibatches(data.actions.numel(), args.minibatch, gen):
            part = take_transitions(data, rows)
            loss = bc_loss(net, part)
            if cql:
                loss = loss + cql_loss(net, target, part, CqlConfig())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            loss_value = float(loss.detach())
        soft_update(target, net)
        if progress:
            progress(phase, epoch + 1, args.offline_epochs, {"loss": loss_value})
    return loss_value


def build_memory(net: GraphPolicy, data: Transitions, fixes: list[Fixed]) -> Memory:
    """Embed the first observation of each resolved logged incident next to what fixed *that* incident."""
    first: dict[int, int] = {}
    for row, traj in enumerate(data.traj.tolist()):
        first.setdefault(traj, row)
    # paired by trajectory id: incidents end in another order than their trajectories are stored in
    kept = [f for f in fixes if f[0] in first]
    rows = torch.tensor([first[f[0]] for f in kept], dtype=torch.long)
    with torch.no_grad():
        pooled = net(index_batch(data.obs, rows)).pooled if rows.numel() else torch.zeros((0, 2))
    emb = torch.nn.functional.normalize(pooled, dim=1)
    sigs = [
        signature(data.obs.x[r][data.obs.node_mask[r]].numpy(), data.obs.glob[r].numpy())
        for r in rows.tolist()
    ]
    table = torch.from_numpy(np.stack(sigs)) if sigs else torch.zeros((0, SIGNATURE_SIZE))
    return Memory(emb, [k[1] for k in kept], [k[2] for k in kept], table)


def calibration_set(net: GraphPolicy, args: TrainArgs, rng: np.random.Generator,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Return (logits, oracle labels) on states of fresh topologies the policy never trained on."""
    logits: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for _ in range(args.calibration_topologies):
        # the states a deployed (greedy) policy meets, on topologies it never trained on
        topo = training_topology(rng, min_services=args.min_services, max_services=args.max_services,
                                 dense=args.dense_share)  # fmt: skip
        rollout, _ = collect_rollout(net, topo, n_envs=args.envs, rng=rng, generator=gen, gamma=0.97, lam=0.9,
                                     greedy=True, guardrails=guardrails_of(args))  # fmt: skip
        with torch.no_grad():
            out = net(rollout.obs).logits
        width = max(out.shape[1], max((lg.shape[1] for lg in logits), default=0))
        logits = [torch.nn.functional.pad(lg, (0, width - lg.shape[1]), value=-1e9) for lg in logits]
        # global actions sit at the end of the flat axis; align them by padding service columns
        logits.append(align(out, width, net.config))
        labels.append(align_labels(rollout.oracle, out.shape[1], width, net.config))
    width = max(lg.shape[1] for lg in logits)
    logits = [align(lg, width, net.config) for lg in logits]
    return torch.cat(logits), torch.cat(labels)


@dataclass(frozen=True)
class _Run:
    """What every phase of one run shares."""

    args: TrainArgs
    catalog: Catalog
    rng: np.random.Generator  # topologies and simulated incidents
    gen: torch.Generator  # minibatches and sampled actions
    run_dir: Path
    budget: Budget  # the wall clock since the start, and when fine-tuning stops
    progress: Progress | None
    team: list[Topology]  # the team's graph and its variations (empty: generated graphs only)
    rollout_workers: int = 0  # N > 0: fine-tuning rollouts on N Ray actors (learning.workers)
    stop: StopRule | None = None  # ends fine-tuning early when it says so (stopped_by "target")


@dataclass(frozen=True)
class _Logged:
    """The logged history the offline phases learn from."""

    data: Transitions
    fixes: list[Fixed]  # (trajectory id, what the incident was, what fixed it) per resolved incident
    mined_steps: int  # steps that came from mined real history


def train(
    args: TrainArgs,
    *,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    rollout_workers: int = 0,
    stop: StopRule | None = None,
) -> TrainResult:
    """Run every phase and return the trained networks, calibration, memory and metrics.

    ``rollout_workers`` = N > 0 plays the fine-tuning rollouts on N Ray actors of the connected cluster
    (``learning.cluster.ray_cluster``); each worker's incidents are seeded from (seed, worker, iteration),
    so the weights differ from the in-process run's (0, the default) but are the same again for the same
    seed and N. ``stop`` may end fine-tuning before the iterations or the budget do.
    """
    # 1. seeding and the run directory
    run = replace(_start(args, catalog, progress), rollout_workers=rollout_workers, stop=stop)

    # 2. logged history: simulated operators on training topologies, plus mined history if given
    logged = _logged_history(run)

    # 3. the operator baseline: behaviour cloning of the logged operators
    operator_bc = new_net(args, run.catalog)
    _offline(operator_bc, logged.data, args, run.gen, cql=False, progress=progress, phase="operator BC")

    # 4. offline pre-training of the learned policy: BC + discrete CQL
    net = new_net(args, run.catalog)
    offline_loss = _offline(
        net, logged.data, args, run.gen, cql=True, progress=progress, phase="offline BC+CQL"
    )

    # 5. simulator fine-tuning: masked PPO + oracle imitation on fresh random topologies, every state
    #    masked by the guardrails as the bot would refuse (principle 5)
    curve = _finetune(net, run)

    # 6. temperature scaling on held-out states, ECE before and after
    calibration = calibrate(*calibration_set(net, args, run.rng, run.gen))

    # 7. the similar-incident memory
    memory = build_memory(net, logged.data, logged.fixes)
    metrics = _summary(run, curve, logged, offline_loss, calibration)
    summary = {**metrics, **run.budget.summary(), "curve": curve}
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    # the weights depend on the worker count, so a distributed run's artifact records it
    config = {**asdict(args), **({"rollout_workers": rollout_workers} if rollout_workers else {})}
    return TrainResult(net, operator_bc, calibration.temperature, memory, metrics, curve, run.run_dir,
                       config, run.budget.stopped_by)  # fmt: skip


def _start(args: TrainArgs, catalog: Catalog | None, progress: Progress | None) -> _Run:
    """Seed every generator, create the run directory and save the arguments in it."""
    seed_everything(args.seed)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    catalog = catalog or builtin_catalog()
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(args.run_root) / (args.name or f"train-{stamp}-s{args.seed}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(json.dumps(asdict(args), indent=2))
    # calibration after fine-tuning rolls out about half an iteration's work per topology pair
    after = args.calibration_topologies / (2 * max(1, args.topologies_per_iteration))
    budget = Budget(args.minutes * 60.0, args.iterations, time.perf_counter(), after_share=after)
    team: list[Topology] = []
    if args.team_variations > 0:
        own = resolve_topology(args.history_topology)
        team = [own, *variations(own, args.team_variations, seed=args.seed)]
    return _Run(args, catalog, rng, gen, run_dir, budget, progress, team)


def _logged_history(run: _Run) -> _Logged:
    """Simulate operators on training topologies and put the mined history (``args.history``) first."""
    args, n_actions = run.args, len(run.catalog.service_actions)
    parts, fixes = [], []
    for i in range(args.logged_topologies):
        topo = training_topology(run.rng, min_services=args.min_services, max_services=args.max_services)
        data, fx = collect_logged(
            topo, n_envs=args.logged_envs, seed=args.seed * 100 + i, n_actions=n_actions
        )
        parts.append(data)
        fixes += [(traj, f"simulated incident: {cause}", fix) for traj, cause, fix in fx]
    mined_steps = 0
    if args.history:
        from remediation.learning.history import load_mined

        mined, mined_fixes = load_mined(
            Path(args.history), resolve_topology(args.history_topology), run.catalog
        )
        mined_steps = int(mined.actions.numel())
        parts.insert(0, mined)
        fixes = [(traj, f"incident {inc}", fix) for traj, inc, fix in mined_fixes] + fixes
    return _Logged(concat_transitions(parts, n_actions), fixes, mined_steps)


def _finetune(net: GraphPolicy, run: _Run) -> list[dict[str, float]]:
    """Run PPO iterations plus DAgger imitation until ``args.iterations`` or the budget binds; return the curve."""
    args = run.args
    guardrails = guardrails_of(args)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ppo = PpoConfig()
    curve: list[dict[str, float]] = []
    dagger: list[tuple[GraphBatch, torch.Tensor]] = []  # (states, oracle labels) per rollout, oldest first
    workers = None
    if run.rollout_workers > 0:
        from remediation.learning.workers import RolloutWorkers  # Ray: only when asked for

        workers = RolloutWorkers(run.rollout_workers, net.config, guardrails, seed=args.seed)
    try:
        while run.budget.another():
            it, began = len(curve), time.perf_counter()
            collected = _collect(net, run, it, ppo, guardrails, workers)
            rollouts = [r for r, _ in collected]
            last = _ppo_update(net, opt, rollouts, ppo, run)
            # DAgger: aggregate the oracle-labelled states the policy visited, then imitate over all of them
            dagger += [(r.obs, r.oracle) for r in rollouts]
            while sum(int(d[1].numel()) for d in dagger) > args.dagger_states and len(dagger) > 1:
                dagger.pop(0)
            last.update(_imitate(net, opt, dagger, run))
            row = {"iteration": float(it + 1), "train_success_rate": float(np.mean([s["success_rate"] for _, s in collected])),
                   **last, "elapsed_s": run.budget.elapsed()}  # fmt: skip
            curve.append(row)
            run.budget.record(time.perf_counter() - began)
            with open(run.run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            if run.progress:
                run.progress("simulator PPO", it + 1, run.budget.total(), row)
            if run.stop is not None and run.stop(net, row):
                run.budget.stopped_by = "target"
                break
    finally:
        if workers is not None:
            workers.close()
    return curve


def _collect(net: GraphPolicy, run: _Run, iteration: int, ppo: PpoConfig, guardrails: RbacConfig | None,
             workers: RolloutWorkers | None) -> list[tuple[Rollout, dict[str, float]]]:  # fmt: skip
    """Return one iteration's rollouts and their stats: in this process, or on the Ray workers."""
    args = run.args
    if workers is None:
        out = []
        for _ in range(args.topologies_per_iteration):
            topo = training_topology(run.rng, min_services=args.min_services, max_services=args.max_services,
                                     team=run.team, dense=args.dense_share)  # fmt: skip
            out.append(collect_rollout(net, topo, n_envs=args.envs, rng=run.rng, generator=run.gen, gamma=ppo.gamma,
                                       lam=ppo.lam, escalate_after=args.escalate_after, guardrails=guardrails))  # fmt: skip
        return out
    # the driver draws the iteration's topologies; the workers draw the incidents on them
    topos = [
        training_topology(
            run.rng,
            min_services=args.min_services,
            max_services=args.max_services,
            team=run.team,
            dense=args.dense_share,
        )
        for _ in range(args.topologies_per_iteration)
    ]
    return workers.collect(net, topos, envs=args.envs, iteration=iteration, gamma=ppo.gamma, lam=ppo.lam,
                           escalate_after=args.escalate_after)  # fmt: skip


def _ppo_update(net: GraphPolicy, opt: torch.optim.Optimizer, rollouts: list[Rollout], ppo: PpoConfig,
                run: _Run) -> dict[str, float]:  # fmt: skip
    """Take ``args.ppo_epochs`` passes of masked-PPO minibatch steps over each rollout; return the last step's stats."""
    last: dict[str, float] = {}
    for r in rollouts:
        for _ in range(run.args.ppo_epochs):
            for rows in _minibatches(r.actions.numel(), run.args.minibatch, run.gen):
                loss, last = ppo_loss(net, take_rollout(r, rows), ppo)
                _step(net, opt, loss)
    return last


def _imitate(net: GraphPolicy, opt: torch.optim.Optimizer, dagger: list[tuple[GraphBatch, torch.Tensor]],
             run: _Run) -> dict[str, float]:  # fmt: skip
    """Take ``args.dagger_steps`` imitation steps on random minibatches of the aggregated oracle-labelled states."""
    last: dict[str, float] = {}
    for _ in range(run.args.dagger_steps):
        obs, labels = dagger[int(torch.randint(len(dagger), (1,), generator=run.gen))]
        rows = torch.randperm(labels.numel(), generator=run.gen)[: run.args.minibatch]
        loss = imitation_loss(net(index_batch(obs, rows)).logits, labels[rows])
        _step(net, opt, loss)
        last["dagger_loss"] = float(loss.detach())
    return last


def _step(net: GraphPolicy, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step with the gradient norm clipped to 1."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def _summary(run: _Run, curve: list[dict[str, float]], logged: _Logged, offline_loss: float,
             calibration: Calibration) -> dict[str, float]:  # fmt: skip
    """Return the run's headline metrics (saved as ``summary.json``)."""
    return {
        "train_wall_s": round(run.budget.elapsed(), 1),
        "budget_s": round(run.budget.seconds, 1),
        "iterations": len(curve),
        "train_success_rate": curve[-1]["train_success_rate"] if curve else 0.0,
        "offline_loss": offline_loss,
        "logged_steps": int(logged.data.actions.numel()),
        "mined_steps": logged.mined_steps,
        "temperature": calibration.temperature,
        "ece_uncalibrated": round(calibration.ece_uncalibrated, 4),
        "ece": round(calibration.ece, 4),
        "heldout_top1": round(calibration.top1, 4),
    }
