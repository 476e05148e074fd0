"""Hot reload: every process follows the registry (promote, rollback, shadow) and keeps its policy on a bad artifact."""

from __future__ import annotations

from pathlib import Path

import torch
from sqlalchemy.orm import Session, sessionmaker

from incidents_db.db import session_scope
from playbooks.catalog import builtin_catalog
from remediation.learning.train import QUICK, Memory, TrainArgs, TrainResult, new_net
from remediation.policies import RunbookPolicy
from remediation.registry import service
from remediation.registry.artifact import save_artifact
from remediation.registry.bundle import BUNDLED_DIR, bundle_record, serving_loader
from remediation.registry.live import LivePolicy, in_canary
from remediation.similar.memory import SIGNATURE_SIZE
from tests.remediation.conftest import Store


def register_untrained(factory: sessionmaker[Session], root: Path, version: str, *, seed: int) -> Path:
    """Register an untrained (but valid) artifact: reloading is about bytes and hashes, not skill."""
    torch.manual_seed(seed)
    net = new_net(TrainArgs(**QUICK), builtin_catalog())
    memory = Memory(torch.zeros((0, 2 * net.config.hidden)), [], [], torch.zeros((0, SIGNATURE_SIZE)))
    result = TrainResult(net, net, 1.0, memory, {}, [], root, {})
    digest = save_artifact(result, root / version, version=version, parent=None)
    with session_scope(factory) as session:
        service.register(db_session=session, version=version, path=str(root / version), sha256=digest,
                         parent=None, metrics={}, config={})  # fmt: skip
    return root / version / "policy.pt"


def replica(store: Store) -> LivePolicy:
    live = LivePolicy(engine=store.engine, mode="auto", runbook=RunbookPolicy(), loader=serving_loader,
                      bundled=BUNDLED_DIR)  # fmt: skip
    live.start()
    return live


def test_replicas_follow_promote_shadow_rollback_and_keep_the_old_policy_on_a_corrupt_artifact(
    store: Store, tmp_path: Path
) -> None:
    replicas = [replica(store), replica(store)]
    bundled = bundle_record()["version"]
    assert [r.name for r in replicas] == [f"bundled policy {bundled}"] * 2  # nothing promoted yet
    register_untrained(store.factory, tmp_path, "v1", seed=1)
    with session_scope(store.factory) as session:
        service.promote(db_session=session, version="v1")
    assert all(r.check() for r in replicas)
    assert {r.name for r in replicas} == {"promoted policy v1"} and replicas[0].status()["error"] is None

    # a promoted artifact changed on disk after registration: every replica keeps v1 and says why
    weights = register_untrained(store.factory, tmp_path, "v2", seed=2)
    with open(weights, "ab") as fh:
        fh.write(b"corrupt")
    with session_scope(store.factory) as session:
        service.promote(db_session=session, version="v2")
    for r in replicas:
        r.check()
        assert r.name == "promoted policy v1"
        error = str(r.status()["error"])
        assert "promoted v2 not loaded, keeping promoted policy v1" in error and "SHA-256" in error

    # a shadow version ranks beside production on every replica (never instead of it)
    register_untrained(store.factory, tmp_path, "v3", seed=3)
    with session_scope(store.factory) as session:
        service.set_shadow(db_session=session, version="v3")
        service.rollback(db_session=session)  # v2 retired, v1 promoted again
    for r in replicas:
        r.check()
        assert r.name == "promoted policy v1" and r.status()["shadow"] == "v3" and r.status()["error"] is None
        assert r.shadow is not None and r.shadow.policy.version == "v3"


def test_the_canary_share_is_the_same_on_every_replica() -> None:
    ids = [f"INC-{i}" for i in range(2000)]
    share = [in_canary(i, 0.1) for i in ids]
    assert share == [in_canary(i, 0.1) for i in ids]  # a hash of the id: no state, no randomness
    assert 150 < sum(share) < 250
    assert not any(in_canary(i, 0.0) for i in ids) and all(in_canary(i, 1.0) for i in ids)
