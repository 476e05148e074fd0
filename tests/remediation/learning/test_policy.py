"""Tiny real trainings: better than random, masks hold, same seed same ranking, artifacts verified, eval runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from incidents_db.db import make_engine, make_sessionmaker, session_scope, upgrade
from remediation.errors import ArtifactError, RegistryError
from remediation.evaluation.sim_eval import evaluate_policies
from remediation.guardrails.config import load_rbac
from remediation.learning.baselines import OraclePolicy, RandomPolicy
from remediation.learning.encoding import batch_from_core, observation_from_core
from remediation.learning.ranking import LearnedPolicy
from remediation.learning.train import QUICK, TrainArgs, TrainResult, train
from remediation.registry import service
from remediation.registry.artifact import load_artifact, save_artifact
from sim.core import BatchCore
from sim.generator import generate_topology

torch.set_num_threads(1)
ITERATIONS = 40


def tiny_args(tmp: Path, seed: int = 0) -> TrainArgs:
    # the `remediate train --quick` sizes; iterations (not minutes) bind, so runs are repeatable
    return TrainArgs(
        seed=seed, iterations=ITERATIONS, minutes=10.0, run_root=str(tmp), name=f"tiny-{seed}", **QUICK
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(tiny_args(tmp_path_factory.mktemp("runs")))


def test_tiny_training_beats_random_on_an_unseen_topology(trained: TrainResult) -> None:
    topology = generate_topology(10, seed=987_654, name="unseen-10")
    learned = LearnedPolicy(trained.net, temperature=trained.temperature, explain=False)
    results = evaluate_policies(topology, {"learned": learned, "random": RandomPolicy(0), "oracle": OraclePolicy()},
                                episodes=30, seed=5, rbac=load_rbac(None))  # fmt: skip
    learned_r, random_r = results["learned"], results["random"]
    # a few seconds of training: clearly less user impact, faster mitigation, finds the fix far more often
    assert learned_r.regret < 0.6 * random_r.regret
    assert learned_r.mean_ttm_s < random_r.mean_ttm_s
    assert learned_r.top1 >= random_r.top1 + 0.2
    assert learned_r.success_rate >= random_r.success_rate
    assert results["learned"].violations == 0
    assert (trained.run_dir / "metrics.jsonl").read_text().count("\n") == trained.metrics["iterations"]


def test_masked_actions_never_come_out(trained: TrainResult) -> None:
    core = BatchCore(generate_topology(14, seed=3), 8, seed=1)
    core.reset()
    batch = batch_from_core(core)
    rng = np.random.default_rng(0)
    for trial in range(20):
        deny = torch.from_numpy(rng.random(batch.mask.shape) < 0.9)
        deny[:, 0] = False  # keep one action allowed per row
        masked = batch._replace(mask=batch.mask & ~deny | (torch.arange(batch.mask.shape[1]) == 0))
        greedy = trained.net.predict(masked)
        sampled = trained.net.predict(
            masked, deterministic=False, generator=torch.Generator().manual_seed(trial)
        )
        rows = torch.arange(masked.mask.shape[0])
        assert masked.mask[rows, greedy].all() and masked.mask[rows, sampled].all()
    # through rank(): a guardrail mask that denies every service action leaves only global ones
    policy = LearnedPolicy(trained.net, temperature=trained.temperature, explain=False)
    obs = observation_from_core(core, 0)
    a = trained.net.config.n_actions
    policy.mask = np.zeros(len(obs.services) * a + trained.net.config.n_global_actions, dtype=np.int8)
    policy.mask[len(obs.services) * a :] = 1
    ranked = policy.rank(obs, 5)
    assert ranked and all(r.target is None for r in ranked)


def test_same_seed_same_weights_and_rankings(trained: TrainResult, tmp_path: Path) -> None:
    again = train(tiny_args(tmp_path, seed=0))
    for key, value in trained.net.state_dict().items():
        assert torch.equal(value, again.net.state_dict()[key]), key
    core = BatchCore(generate_topology(12, seed=42), 1, seed=9)
    core.reset()
    obs = observation_from_core(core, 0)
    first = LearnedPolicy(trained.net, temperature=trained.temperature, memory=trained.memory).rank(obs, 3)
    second = LearnedPolicy(again.net, temperature=again.temperature, memory=again.memory).rank(obs, 3)
    assert first == second
    assert all(0.0 <= r.confidence <= 1.0 and r.reason and r.expected_ttm_s is not None for r in first)


def test_artifact_round_trip_and_tamper_refusal(trained: TrainResult, tmp_path: Path) -> None:
    digest = save_artifact(trained, tmp_path / "v1", version="v1", parent=None)
    loaded = load_artifact(tmp_path / "v1", expected_sha256=digest)
    for key, value in trained.net.state_dict().items():
        assert torch.equal(value, loaded.net.state_dict()[key])
    assert loaded.temperature == pytest.approx(trained.temperature)
    assert loaded.memory.fixes == trained.memory.fixes
    with open(tmp_path / "v1" / "policy.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_artifact(tmp_path / "v1")


def test_registry_promote_and_rollback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        for v in ("a", "b"):
            service.register(
                db_session=s, version=v, path="/x", sha256="0" * 64, parent=None, metrics={}, config={}
            )
    with session_scope(factory) as s:
        with pytest.raises(RegistryError, match="no promoted"):
            service.rollback(db_session=s)
        service.promote(db_session=s, version="a")
    with session_scope(factory) as s:
        service.promote(db_session=s, version="b")
    with session_scope(factory) as s:
        assert service.rollback(db_session=s).id == "a"
    with session_scope(factory) as s:
        statuses = {v.id: v.status for v in service.list_versions(db_session=s)}
    assert statuses == {"a": "promoted", "b": "retired"}
    engine.dispose()


def test_eval_cli_on_an_unseen_topology_file(trained: TrainResult, tmp_path: Path) -> None:
    save_artifact(trained, tmp_path / "art", version="tiny", parent=None)
    topo_file = tmp_path / "unseen.json"
    topo_file.write_text(json.dumps(generate_topology(9, seed=555_555, name="unseen-9").to_node_link()))
    env = {**os.environ, "REMEDIATE_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "eval", "--topology", str(topo_file), "--episodes", "6",
         "--policy", str(tmp_path / "art"), "--json", "--by-fault", "--plots", str(tmp_path / "plots")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["episodes"] == 6 and set(out["policies"]) == {
        "learned",
        "runbook",
        "operator_bc",
        "random",
        "oracle",
    }
    keys = {"success_rate", "mean_ttm_s", "p90_ttm_s", "top1", "top3", "violations", "ece",
            "automated_success_rate", "escalation_rate", "mean_escalations", "human_minutes"}  # fmt: skip
    assert all(set(v) == keys for v in out["policies"].values())
    by_fault = out["learned_by_fault"]
    assert by_fault and all(set(v) == {"episodes", "success_rate", "top1"} for v in by_fault.values())
    assert sum(v["episodes"] for v in by_fault.values()) >= 6  # concurrent faults count for each kind
    assert out["policies"]["oracle"]["success_rate"] >= out["policies"]["random"]["success_rate"]
    assert list((tmp_path / "plots").glob("*.png"))
    missing = subprocess.run([sys.executable, "-m", "bot.cli.main", "eval", "--topology", "nope-topology",
                              "--policy", str(tmp_path / "art")], capture_output=True, text=True, env=env,
                             timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_an_artifact_of_an_older_feature_set_is_refused(trained: TrainResult, tmp_path: Path) -> None:
    from remediation.learning.policy import GraphPolicy, NetConfig

    old = GraphPolicy(NetConfig(**{**trained.net.describe(), "n_features": 26}))
    save_artifact(trained._replace(net=old, operator_bc=old), tmp_path / "old", version="old", parent=None)
    with pytest.raises(ArtifactError, match=r"trained on 26 service features.*retrain"):
        load_artifact(tmp_path / "old")


def test_serve_auto_falls_back_to_the_bundled_policy_when_the_promoted_policy_cannot_load(
    trained: TrainResult, tmp_path: Path
) -> None:
    from bot.cli.serve_build import choose_policy
    from bot.settings import load_settings

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    digest = save_artifact(trained, tmp_path / "v1", version="v1", parent=None)
    with session_scope(make_sessionmaker(engine)) as s:
        service.register(db_session=s, version="v1", path=str(tmp_path / "v1"), sha256=digest, parent=None,
                         metrics={}, config={})  # fmt: skip
        service.promote(db_session=s, version="v1")
    auto = load_settings(database_url=url, policy="auto")
    chosen = choose_policy(engine, auto)
    assert chosen.version == "v1" and chosen.name == "promoted policy v1"
    with open(tmp_path / "v1" / "policy.pt", "ab") as fh:
        fh.write(b"\0")
    fallback = choose_policy(engine, auto)  # the bot still comes up, on the bundled policy
    assert fallback.current.source == "bundled" and "SHA-256" in str(fallback.error)
    with pytest.raises(ArtifactError, match="SHA-256"):
        choose_policy(engine, load_settings(database_url=url, policy="v1"))  # named explicitly: refused
    engine.dispose()
