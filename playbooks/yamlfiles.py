"""Reading YAML data files into validated models, with errors that name the file and the key."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def format_validation(path: Path, exc: ValidationError) -> str:
    """Render every pydantic error of a file as ``FILE: key.path: message``, joined by semicolons."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{path}: {loc}: {err['msg']}")
    return "; ".join(parts)


def load_yaml_model(path: Path, model: type[M], error: type[Exception]) -> M:
    """Parse one YAML file into ``model``; raise ``error`` naming the file and key of each problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(format_validation(path, exc)) from None


def data_files(
    builtin_dir: Path, pattern: str, extra_dirs: Iterable[Path], error: type[Exception]
) -> list[Path]:
    """List the built-in files matching ``pattern``, then those in each extra directory (which must exist)."""
    files = sorted(builtin_dir.glob(pattern))
    for directory in extra_dirs:
        if not directory.is_dir():
            raise error(f"{directory}: playbook directory does not exist")
        files.extend(sorted(directory.glob(pattern)))
    return files
