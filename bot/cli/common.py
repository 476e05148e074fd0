"""What every subcommand shares: settings from the context, JSON output, refusals, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

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

from bot.errors import BotError
from bot.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


class Refused(BotError):
    """The command refused its input; the message says what was wrong and how to fix it."""


@dataclass
class CliState:
    """Options given to the root command, resolved into settings on first use."""

    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self) -> Settings:
        """Build (once) and return the validated settings."""
        if self._settings is None:
            self._settings = load_settings(self.config, **self.overrides)
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
