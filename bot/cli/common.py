"""What every subcommand shares: settings from the context, JSON output, refusals, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bot.cli.errors import Refused
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Options given to the root command and the settings the root built from them, once.

    A refused setting is kept, not raised, until a command asks for the settings: commands that need
    none (``--help``, ``sim``) still run with a bad ``REMEDIATE_*`` value in the environment.
    """

    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None
    _refused: SettingsError | None = None

    def build(self) -> None:
        """Build and validate the settings (the root callback calls this once per invocation)."""
        try:
            self._settings = load_settings(self.config, **self.overrides)
        except SettingsError as exc:
            self._refused = exc

    def settings(self) -> Settings:
        """Return the validated settings; raise `SettingsError` if they were refused."""
        if self._settings is None and self._refused is None:
            self.build()
        if self._refused is not None:
            raise self._refused
        assert self._settings is not None
        return self._settings

    def use(self, settings: Settings) -> None:
        """Replace the settings for the rest of this invocation (the demo points them at its own directory)."""
        self._settings, self._refused = settings, None

    def built(self) -> Settings | None:
        """Return the settings if they were built and valid, else None (for the crash handler)."""
        return self._settings


def state(ctx: typer.Context) -> CliState:
    """Return the CLI state stored on the root context."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def settings_of(ctx: typer.Context) -> Settings:
    """Return the validated settings for this invocation."""
    return state(ctx).settings()


def sessions_of(settings: Settings) -> sessionmaker[Session]:
    """Return a session factory on the configured store, migrated to the newest schema."""
    from incidents_db.db import make_sessionmaker, open_store

    return make_sessionmaker(open_store(settings.effective_database_url))


def refuse(message: str) -> NoReturn:
    """Stop the command with exit status 1 and a one-line message for a person."""
    raise Refused(message)


def print_json(payload: Any) -> None:
    """Write one JSON document to stdout, for scripts."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(*, quiet: bool = False) -> Iterator[Progress]:
    """Yield a Rich progress bar on stderr (hidden when quiet or when stderr is not a terminal)."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet,
        transient=False,
    )
    with bar:
        yield bar
