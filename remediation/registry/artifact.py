"""Policy artifacts: a ``torch.save`` file of plain tensors and values, checked by SHA-256 before loading.

Layout of ``<dir>/policy.pt`` (loaded with ``torch.load(weights_only=True)``, so no pickled code runs):
``format``, ``net_config`` (dict), ``state_dict``, ``operator_bc_state_dict``, ``temperature``,
``memory`` (``embeddings`` tensor, ``incidents`` and ``fixes`` string lists, ``signatures`` tensor for the
similar-incident memory, absent in older artifacts), ``metrics``, ``config``,
``parent``. ``<dir>/artifact.json`` holds the version, the SHA-256 of ``policy.pt`` and the metrics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from remediation.errors import ArtifactError
from remediation.learning.policy import GraphPolicy, NetConfig
from remediation.learning.train import Memory, TrainResult
from sim.observation import GLOBALS, N_FEATURES

FORMAT = "remediate.policy/v1"
FILE = "policy.pt"


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified policy artifact."""

    version: str
    path: Path
    sha256: str
    net: GraphPolicy
    operator_bc: GraphPolicy
    temperature: float
    memory: Memory
    metrics: dict[str, Any]
    config: dict[str, Any]
    parent: str | None


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_artifact(result: TrainResult, directory: Path, *, version: str, parent: str | None) -> str:
    """Write ``result`` as an artifact into ``directory``; return the SHA-256 of the weights file."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": version,
        "net_config": result.net.describe(),
        "state_dict": result.net.state_dict(),
        "operator_bc_state_dict": result.operator_bc.state_dict(),
        "temperature": float(result.temperature),
        "memory": {
            "embeddings": result.memory.embeddings.contiguous(),
            "incidents": list(result.memory.incidents),
            "fixes": list(result.memory.fixes),
            **(
                {}
                if result.memory.signatures is None
                else {"signatures": result.memory.signatures.contiguous()}
            ),
        },
        "metrics": {k: float(v) for k, v in result.metrics.items()},
        "config": {
            k: v for k, v in result.config.items() if isinstance(v, str | int | float | bool) or v is None
        },
        "parent": parent,
    }
    torch.save(payload, directory / FILE)
    digest = sha256_of(directory / FILE)
    meta = {"version": version, "sha256": digest, "parent": parent, "metrics": payload["metrics"]}
    (directory / "artifact.json").write_text(json.dumps(meta, indent=2))
    return digest


def load_artifact(path: Path, *, expected_sha256: str | None = None) -> Artifact:
    """Load and verify an artifact (a directory or its ``policy.pt``).

    The SHA-256 of the weights must match ``expected_sha256`` (from the registry) or, without it, the
    one recorded in ``artifact.json`` next to the file; a mismatch is refused before anything is loaded.
    """
    file = path / FILE if path.is_dir() else path
    if not file.is_file():
        raise ArtifactError(f"no policy artifact at {path} (expected {FILE} or a directory holding it)")
    if expected_sha256 is None:
        meta_file = file.parent / "artifact.json"
        if not meta_file.is_file():
            raise ArtifactError(f"{meta_file} is missing; cannot verify {file} (re-export the policy)")
        expected_sha256 = str(json.loads(meta_file.read_text()).get("sha256", ""))
    actual = sha256_of(file)
    if actual != expected_sha256:
        raise ArtifactError(
            f"{file} has SHA-256 {actual[:12]}…, expected {expected_sha256[:12]}…: the file was changed "
            "after training; refusing to load it (retrain or restore the original)"
        )
    try:
        raw: dict[str, Any] = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ArtifactError(f"{file} is not a loadable policy artifact: {exc}") from None
    if raw.get("format") != FORMAT:
        raise ArtifactError(f"{file} has format {raw.get('format')!r}, expected {FORMAT!r}")
    cfg = NetConfig(**raw["net_config"])
    if cfg.n_features != N_FEATURES or cfg.n_globals != len(GLOBALS):
        raise ArtifactError(
            f"{file} was trained on {cfg.n_features} service features and {cfg.n_globals} global ones; this "
            f"version observes {N_FEATURES} and {len(GLOBALS)} (sim/observation.py): retrain it with "
            "`remediate train`"
        )
    net, bc = GraphPolicy(cfg), GraphPolicy(cfg)
    net.load_state_dict(raw["state_dict"])
    bc.load_state_dict(raw["operator_bc_state_dict"])
    net.eval()
    bc.eval()
    mem = raw["memory"]
    return Artifact(
        version=str(raw["version"]),
        path=file,
        sha256=actual,
        net=net,
        operator_bc=bc,
        temperature=float(raw["temperature"]),
        memory=Memory(mem["embeddings"], list(mem["incidents"]), list(mem["fixes"]), mem.get("signatures")),
        metrics=dict(raw["metrics"]),
        config=dict(raw["config"]),
        parent=raw.get("parent"),
    )
