"""Load the action catalog (built-ins plus user directories) and give every action a stable index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from playbooks.errors import CatalogError, UnknownActionError
from playbooks.models import Action, CatalogFile
from playbooks.yamlfiles import data_files, format_validation, load_yaml_model

__all__ = ["format_validation"]  # re-exported: older callers import it from here

BUILTIN_DIR = Path(__file__).parent / "catalog"


def read_actions_file(path: Path) -> list[Action]:
    """Parse one actions YAML file; raise CatalogError naming the file and key of each problem."""
    return load_yaml_model(path, CatalogFile, CatalogError).actions


@dataclass(frozen=True)
class Catalog:
    """All known actions. Indices: service-scoped actions by sorted id, then global ones by sorted id."""

    actions: dict[str, Action]

    @property
    def service_actions(self) -> tuple[str, ...]:
        """Sorted ids of actions that target one service (the per-service action axis)."""
        return tuple(sorted(a for a, spec in self.actions.items() if spec.scope == "service"))

    @property
    def global_actions(self) -> tuple[str, ...]:
        """Sorted ids of actions without a target (wait, escalate): the `+ k` tail of the action space."""
        return tuple(sorted(a for a, spec in self.actions.items() if spec.scope == "global"))

    @property
    def ids(self) -> tuple[str, ...]:
        """Every action id in index order."""
        return self.service_actions + self.global_actions

    def get(self, action_id: str) -> Action:
        """Return the action or raise UnknownActionError listing what exists."""
        try:
            return self.actions[action_id]
        except KeyError:
            raise UnknownActionError(
                f"unknown action {action_id!r}; known actions: {', '.join(self.ids)}"
            ) from None

    def index(self, action_id: str) -> int:
        """Return the stable index of an action id."""
        self.get(action_id)
        return self.ids.index(action_id)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self.actions

    def __iter__(self) -> Iterator[Action]:
        return (self.actions[a] for a in self.ids)

    def __len__(self) -> int:
        return len(self.actions)


def build_catalog(files: Iterable[Path]) -> Catalog:
    """Merge actions from files; a duplicate id is an error naming both files."""
    actions: dict[str, Action] = {}
    origin: dict[str, Path] = {}
    for path in files:
        for action in read_actions_file(path):
            if action.id in actions:
                raise CatalogError(f"{path}: action {action.id!r} is already defined in {origin[action.id]}")
            actions[action.id] = action
            origin[action.id] = path
    for action in actions.values():
        if action.rollback is not None and action.rollback not in actions:
            raise CatalogError(
                f"{origin[action.id]}: {action.id}.rollback: unknown action {action.rollback!r}"
            )
    return Catalog(actions=actions)


def action_files(extra_dirs: Iterable[Path] = ()) -> list[Path]:
    """List the built-in actions file(s) then ``actions*.yaml`` in each extra directory."""
    return data_files(BUILTIN_DIR, "actions*.yaml", extra_dirs, CatalogError)


@cache
def builtin_catalog() -> Catalog:
    """Return the built-in catalog, loaded once."""
    return build_catalog(action_files())


def load_catalog(extra_dirs: Iterable[Path] = ()) -> Catalog:
    """Return the built-ins merged with the actions of user playbook directories."""
    dirs = tuple(extra_dirs)
    return builtin_catalog() if not dirs else build_catalog(action_files(dirs))
