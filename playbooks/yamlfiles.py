"""Reading YAML data files into validated models, with errors that name the file and the key."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
# libyaml's loader is fast and bounds nesting (1,000 levels) itself; the pure-Python one recurses
# until RecursionError and takes seconds on a deeply nested file.
_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Return a YAML syntax error as one line: where it is (line, column) and what is wrong."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None:
        return " ".join(str(exc).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, started = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and started is not None:
        context += f" that starts at line {started.line + 1}, column {started.column + 1}"
    text = f"{where}{problem}" + (f" ({context})" if context else "")
    return " ".join(text.split())


def parse_yaml_file(path: Path) -> tuple[Any, str | None]:
    """Return ``(data, None)``, or ``(None, reason)`` when the file cannot be read or parsed (one line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start}: {exc.reason})"
    try:
        return yaml.load(text, Loader=_LOADER), None  # a safe loader: CSafeLoader or SafeLoader
    except yaml.YAMLError as exc:
        return None, f"not valid YAML ({yaml_problem(exc)})"
    except RecursionError:
        return None, "nested too deeply to read"


def read_yaml(path: Path, error: type[Exception], what: str = "") -> Any:
    """Read and parse one YAML file; raise ``error`` with one line naming the file and the problem.

    ``what`` prefixes the file in messages (e.g. ``"config file "``).
    """
    data, reason = parse_yaml_file(path)
    if reason is not None:
        raise error(f"{what}{key_text(path)}: {reason}")
    return data


def key_text(part: object) -> str:
    """Return a key as it reads in a message: plain when printable and trimmed, else its repr."""
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(part)


def format_validation(path: Path, exc: ValidationError) -> str:
    """Render every pydantic error of a file as ``FILE: key.path: message``, joined by semicolons."""
    parts = []
    for err in exc.errors():
        loc = ".".join(key_text(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{key_text(path)}: {loc}: {' '.join(err['msg'].split())}")
    return "; ".join(parts)


def load_yaml_model(path: Path, model: type[M], error: type[Exception]) -> M:
    """Parse one YAML file into ``model``; raise ``error`` naming the file and key of each problem."""
    raw = read_yaml(path, error)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(format_validation(path, exc)) from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to check") from None


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
