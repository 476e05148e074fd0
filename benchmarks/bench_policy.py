"""Benchmark: train the learned policy, then compare every policy on topologies excluded from training.

Run: ``.venv/bin/python benchmarks/bench_policy.py [--minutes 5] [--episodes 100] [--seed 0] [--dense]``.
Prints the eval table per held-out topology, ratios against the runbook and operator baselines
measured in the same run, training wall time, rank() latency p99 on a 200-service graph, and
sb3-contrib's MaskablePPO trained on the same Gymnasium env (``sim.env.IncidentEnv``) for the same
wall time, evaluated on the same episodes. MaskablePPO runs in a separate virtual environment
(``--sb3-venv``, default /tmp/sb3venv; create it with ``python3 -m venv /tmp/sb3venv &&
/tmp/sb3venv/bin/pip install torch==2.13.0 sb3-contrib``), never as a project dependency: this file
re-runs itself there with ``--sb3-worker``. Writes docs/img/policy-training.png and
docs/img/policy-eval-<topology>.png. ``--dense`` evaluates on issue 13's dense held-out graphs instead
(``rollout.dense_topologies``: 40, 50, 60 services, 2.5 call edges per service), prints the targets
table (success, TTM against runbook and operators, top-1, top-3, violations: met or missed) and the load
average before and after, and skips the plots and MaskablePPO. ``--scaling`` measures rollout workers on
Ray instead (``benchmarks/policy_scaling.py``): env steps per second and the wall time to a fixed
evaluation score in the driver and with 1, 2 and 4 workers, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playbooks.catalog import Catalog, builtin_catalog  # noqa: E402
from remediation.evaluation.plots import plot_policies, plot_training  # noqa: E402
from remediation.evaluation.sim_eval import PolicyResult, evaluate_policies  # noqa: E402
from remediation.guardrails.config import load_rbac  # noqa: E402
from remediation.learning.baselines import OperatorBCPolicy, OraclePolicy, RandomPolicy, RunbookPolicy  # noqa: E402
from remediation.learning.encoding import observation_from_core  # noqa: E402
from remediation.learning.ranking import LearnedPolicy, static_mask  # noqa: E402
from remediation.learning.rollout import (  # noqa: E402
    EPISODE_STEPS,
    dense_topologies,
    held_out_topologies,
    training_topology,
)
from remediation.learning.train import TrainArgs, train  # noqa: E402
from remediation.policies.base import Policy, RankedAction  # noqa: E402
from sim.core import BatchCore  # noqa: E402
from sim.generator import generate_topology  # noqa: E402
from sim.observation import EDGE_FEATURES, Observation  # noqa: E402

SB3_SERVICES = 64
"""MaskablePPO's MLP reads a fixed-size observation: every topology is padded to this many services."""
SB3_EDGES = 512


def print_table(name: str, n_services: int, episodes: int, res: dict[str, PolicyResult]) -> None:
    """Print one held-out topology's table and the TTM ratios of the issue's targets."""
    print(f"\n{name} ({n_services} services, never trained on), {episodes} episodes")
    print(f"{'policy':12} {'success':>8} {'autom':>6} {'escal':>6} {'humMin':>6} {'meanTTM':>8} {'p90TTM':>8} "
          f"{'actions':>8} {'cost$':>7} {'viol':>5} {'top1':>6} {'top3':>6} {'regret':>7} {'ECE':>6}")  # fmt: skip
    for policy, r in res.items():
        j = r.as_row()
        print(f"{policy:12} {r.success_rate:8.2f} {r.automated_success_rate:6.2f} {r.escalation_rate:6.2f} "
              f"{r.human_minutes:6.1f} {r.mean_ttm_s:8.0f} {r.p90_ttm_s:8.0f} {r.actions_per_incident:8.2f} "
              f"{r.cost_usd:7.2f} {r.violations:5d} {r.top1:6.2f} {r.top3:6.2f} {r.regret:7.3f} {j['ece']!s:>6}")  # fmt: skip
    ll, rb, op = res["learned"], res["runbook"], res["operator_bc"]
    print(f"ratios: learned/runbook mean TTM {ll.mean_ttm_s / rb.mean_ttm_s:.2f} (target <= 0.60), "
          f"learned/operator_bc {ll.mean_ttm_s / op.mean_ttm_s:.2f} (target <= 0.65)")  # fmt: skip


TARGETS = (
    ("success", lambda r: r["learned"].success_rate, ">=", 0.95),
    ("TTM / runbook", lambda r: r["learned"].mean_ttm_s / r["runbook"].mean_ttm_s, "<=", 0.60),
    ("TTM / operators", lambda r: r["learned"].mean_ttm_s / r["operator_bc"].mean_ttm_s, "<=", 0.65),
    ("top-1", lambda r: r["learned"].top1, ">=", 0.85),
    ("top-3", lambda r: r["learned"].top3, ">=", 0.97),
    ("violations", lambda r: float(r["learned"].violations), "<=", 0.0),
)
"""Issue 13's targets on the dense held-out graphs: (name, value of the learned policy, comparison, bound)."""


def print_targets(all_results: dict[str, dict[str, PolicyResult]]) -> None:
    """Print each target per topology, met or missed."""
    names = list(all_results)
    print(f"\n{'target':18}" + "".join(f"{n:>12}" for n in names) + "  status")
    for label, value, op, bound in TARGETS:
        values = [value(all_results[n]) for n in names]
        met = all(v >= bound if op == ">=" else v <= bound for v in values)
        print(f"{label + ' ' + op + ' ' + format(bound, 'g'):18}" + "".join(f"{v:12.2f}" for v in values)
              + ("  met" if met else "  MISSED"))  # fmt: skip


# ---- MaskablePPO (runs inside the sb3 virtual environment) ----


def sb3_worker(minutes: float, seed: int, episodes: int, out: Path) -> None:
    """Train MaskablePPO on IncidentEnv with random training topologies, evaluate like ours, write JSON."""
    vec, model, wall = train_maskable_ppo(minutes, seed)
    policy = Sb3Policy(model, vec, builtin_catalog())
    results = {}
    for topology in held_out_topologies():
        res = evaluate_policies(
            topology, {"maskable_ppo": policy}, episodes=episodes, seed=1000 + seed, rbac=load_rbac(None)
        )
        results[topology.name] = res["maskable_ppo"].as_row()
    out.write_text(
        json.dumps({"train_wall_s": wall, "timesteps": int(model.num_timesteps), "results": results})
    )


def train_maskable_ppo(minutes: float, seed: int) -> tuple[Any, Any, float]:
    """Train MaskablePPO for ``minutes`` on 8 environments; return (vectorised env, model, training wall seconds)."""
    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sim.core import SimConfig
    from sim.env import IncidentEnv

    torch.set_num_threads(2)

    class RandomTopology(gym.Wrapper):  # type: ignore[type-arg]
        """A fresh training topology (same generator and seed range as ours) every few episodes."""

        def __init__(self, rank: int) -> None:
            super().__init__(IncidentEnv("online-boutique", max_services=SB3_SERVICES, max_edges=SB3_EDGES,
                                         config=SimConfig(max_steps=EPISODE_STEPS)))  # fmt: skip
            self.rng = np.random.default_rng(seed * 100 + rank)
            self.episodes = 0

        def reset(self, **kwargs: Any) -> Any:
            options = dict(kwargs.pop("options", None) or {})
            if self.episodes % 8 == 0:
                options["topology"] = training_topology(self.rng)
            self.episodes += 1
            return self.env.reset(options=options, **kwargs)

        def action_masks(self) -> np.ndarray:
            return self.env.unwrapped.action_masks().astype(bool)  # type: ignore[attr-defined]

    class Deadline(BaseCallback):
        def __init__(self, seconds: float) -> None:
            super().__init__()
            self.end = time.perf_counter() + seconds

        def _on_step(self) -> bool:
            return time.perf_counter() < self.end

    vec = DummyVecEnv([lambda r=r: RandomTopology(r) for r in range(8)])
    model = MaskablePPO(
        "MultiInputPolicy", vec, n_steps=256, batch_size=256, seed=seed, verbose=0, device="cpu"
    )
    started = time.perf_counter()
    model.learn(total_timesteps=10**9, callback=Deadline(minutes * 60.0))
    return vec, model, time.perf_counter() - started


def sb3_observation(observation: Observation) -> dict[str, np.ndarray]:
    """Pad an observation to MaskablePPO's fixed-size dict (SB3_SERVICES services, SB3_EDGES edges)."""
    n, f = observation.nodes.shape
    nodes = np.zeros((SB3_SERVICES, f), dtype=np.float32)
    nodes[:n] = observation.nodes
    edges = np.zeros((SB3_EDGES, 2), dtype=np.int64)
    edges[: len(observation.edges)] = observation.edges
    edge_mask = np.zeros(SB3_EDGES, dtype=np.int8)
    edge_mask[: len(observation.edges)] = 1
    edge_features = np.zeros((SB3_EDGES, len(EDGE_FEATURES)), dtype=np.float32)
    if observation.edge_values is not None:
        edge_features[: len(observation.edges)] = observation.edge_values
    return {"nodes": nodes, "node_mask": (np.arange(SB3_SERVICES) < n).astype(np.int8), "edges": edges,
            "edge_mask": edge_mask, "edge_features": edge_features,
            "globals": np.asarray(observation.globals, dtype=np.float32)}  # fmt: skip


class Sb3Policy:
    """MaskablePPO behind our Policy protocol (padded observation in, top-k of its masked probabilities out)."""

    name = version = "maskable_ppo"

    def __init__(self, model: Any, vec: Any, catalog: Catalog) -> None:
        self.model, self.vec, self.catalog = model, vec, catalog
        self.mask: np.ndarray | None = None
        self.graphs: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}

    def rank(self, observation: Observation, k: int) -> list[RankedAction]:
        """Return MaskablePPO's k most probable allowed (action, target) pairs."""
        a = self.vec.get_attr("n_actions")[0]
        obs = sb3_observation(observation)
        mask = self.padded_mask(observation, a)
        tensor, _ = self.model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            dist = self.model.policy.get_distribution(tensor, action_masks=mask[None])
            probs = dist.distribution.probs[0].numpy()
        out = []
        for index in np.argsort(-probs)[: min(k, int(mask.sum()))].tolist():
            if index >= SB3_SERVICES * a:
                action, target = self.catalog.global_actions[index - SB3_SERVICES * a], None
            else:
                action, target = self.catalog.service_actions[index % a], observation.services[index // a]
            out.append(RankedAction(action=action, target=target, confidence=float(probs[index])))
        return out

    def padded_mask(self, observation: Observation, a: int) -> np.ndarray:
        """Return the allowed actions (the static mask and the evaluator's) on the padded action axis."""
        n = observation.nodes.shape[0]
        small = static_mask(observation, self.catalog)
        if self.mask is not None:
            small = small & self.mask.astype(np.int8)
        mask = np.zeros(SB3_SERVICES * a + (small.size - n * a), dtype=bool)
        mask[: n * a] = small[: n * a]
        mask[SB3_SERVICES * a :] = small[n * a :]
        return mask


def run_sb3(venv: Path, minutes: float, seed: int, episodes: int) -> dict[str, Any] | str:
    """Run the MaskablePPO worker in the sb3 virtual environment; return its results or why it did not run."""
    python = venv / "bin" / "python"
    if not python.exists():
        return f"no virtual environment at {venv} (python3 -m venv {venv} && {venv}/bin/pip install torch==2.13.0 sb3-contrib)"
    check = subprocess.run([str(python), "-c", "import sb3_contrib, stable_baselines3"], capture_output=True,
                           text=True, check=False)  # fmt: skip
    if check.returncode != 0:
        return f"sb3-contrib not importable in {venv}: {(check.stderr.strip().splitlines() or ['?'])[-1]}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sb3.json"
        # the project's own dependencies (pydantic, networkx, ...) come after the sb3 venv's packages
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])}
        proc = subprocess.run([str(python), __file__, "--sb3-worker", "--minutes", str(minutes), "--seed", str(seed),
                               "--episodes", str(episodes), "--sb3-out", str(out)], env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            return f"MaskablePPO worker failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def print_rank_latency(result: Any) -> None:
    """Print rank() latency for one incident on a 200-service graph (with reasons and similar incidents)."""
    big = generate_topology(200, seed=424_242)
    core = BatchCore(big, 1, seed=1)
    core.reset()
    obs = observation_from_core(core, 0)
    full = LearnedPolicy(result.net, temperature=result.temperature, memory=result.memory)
    for _ in range(10):
        full.rank(obs, 3)
    lat = []
    for _ in range(200):
        t0 = time.perf_counter()
        full.rank(obs, 3)
        lat.append((time.perf_counter() - t0) * 1000)
    print(f"\nrank() latency on 200 services, k=3 with reasons: p50 {np.percentile(lat, 50):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms (target < 20 ms)")  # fmt: skip


def main() -> None:
    """Train, evaluate on held-out topologies, and print the tables (``--scaling``: rollout workers instead)."""
    if "--scaling" in sys.argv[1:]:
        from policy_scaling import main as scaling  # Ray: only for this table (benchmarks/ is on sys.path)

        scaling(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sb3-venv", type=Path, default=Path("/tmp/sb3venv"))
    parser.add_argument("--sb3-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sb3-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--dense", action="store_true", help="evaluate on the dense held-out graphs (issue 13)"
    )
    opts = parser.parse_args()
    if opts.sb3_worker:
        sb3_worker(opts.minutes, opts.seed, opts.episodes, opts.sb3_out)
        return
    torch.set_num_threads(2)
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as runs:
        started = time.perf_counter()
        result = train(TrainArgs(seed=opts.seed, minutes=opts.minutes, iterations=100_000, run_root=runs))
        wall = time.perf_counter() - started
    img = ROOT / "docs" / "img"
    if not opts.dense:
        plot_training(result.curve, img / "policy-training.png")
    print(f"training: {wall:.0f} s wall, {result.metrics['iterations']} PPO iterations, "
          f"metrics {json.dumps(result.metrics)}")  # fmt: skip
    learned = LearnedPolicy(result.net, temperature=result.temperature, explain=False)
    all_results: dict[str, dict[str, PolicyResult]] = {}
    for topology in dense_topologies() if opts.dense else held_out_topologies():
        policies: dict[str, Policy] = {"learned": learned, "runbook": RunbookPolicy(), "operator_bc": OperatorBCPolicy(result.operator_bc),
                    "random": RandomPolicy(opts.seed), "oracle": OraclePolicy()}  # fmt: skip
        if opts.dense:
            del policies["random"]  # not among the targets; the dense graphs are slow to play
        res = evaluate_policies(
            topology, policies, episodes=opts.episodes, seed=1000 + opts.seed, rbac=load_rbac(None)
        )
        all_results[topology.name] = res
        if not opts.dense:
            plot_policies(res, img / f"policy-eval-{topology.name}.png", f"{topology.name} (held out)")
        print_table(
            f"{topology.name}, {topology.n_edges} call edges", topology.n_services, opts.episodes, res
        )
        by_fault = res["learned"].by_fault or {}
        worst = sorted(by_fault.items(), key=lambda kv: (kv[1]["success_rate"], kv[1]["top1"]))[:4]
        print("learned, hardest fault kinds: " + ", ".join(
            f"{k} {v['success_rate']:.2f} success / {v['top1']:.2f} top-1 (n={v['episodes']:.0f})" for k, v in worst
        ) + f"; top-1 counting any active fault's fix: {res['learned'].top1_any:.2f}")  # fmt: skip
    print_rank_latency(result)
    if opts.dense:
        print_targets(all_results)
        print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        return
    sb3 = run_sb3(opts.sb3_venv, opts.minutes, opts.seed, opts.episodes)
    if isinstance(sb3, str):
        print(f"MaskablePPO (sb3-contrib): not run: {sb3}")
        return
    print(f"\nMaskablePPO (sb3-contrib, same IncidentEnv, same {opts.minutes:g}-minute budget: "
          f"{sb3['train_wall_s']:.0f} s, {sb3['timesteps']} env steps) vs ours, same held-out episodes")  # fmt: skip
    print(f"{'topology':18} {'policy':13} {'success':>8} {'autom':>6} {'escal':>6} {'meanTTM':>8} {'top1':>6} "
          f"{'top3':>6} {'viol':>5}")  # fmt: skip
    for name, row in sb3["results"].items():
        ours = all_results[name]["learned"]
        print(f"{name:18} {'learned':13} {ours.success_rate:8.2f} {ours.automated_success_rate:6.2f} "
              f"{ours.escalation_rate:6.2f} {ours.mean_ttm_s:8.0f} {ours.top1:6.2f} {ours.top3:6.2f} {ours.violations:5d}")  # fmt: skip
        print(f"{'':18} {'maskable_ppo':13} {row['success_rate']:8.2f} {row.get('automated_success_rate', 0.0):6.2f} "
              f"{row.get('escalation_rate', 0.0):6.2f} {row['mean_ttm_s']:8.0f} {row['top1']:6.2f} {row['top3']:6.2f} "
              f"{row['violations']:5d}")  # fmt: skip


if __name__ == "__main__":
    main()
