"""Where the demo keeps its data: its own directory, so it never writes into the store `serve` uses.

The default is ``<data_dir>/demo/`` holding the demo's SQLite store, its policy artifacts and its
training runs. ``remediate demo --store URL`` puts the incidents in the store named instead (the
other files stay in the demo directory); ``--reset`` deletes the demo directory first.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings, with_overrides

DEMO_DIR = "demo"


@dataclass(frozen=True)
class DemoHome:
    """The demo's directory and the settings that point every store, artifact and run into it."""

    directory: Path
    settings: Settings
    own_store: bool  # True: the SQLite file in ``directory``; False: the store ``--store`` named


def demo_directory(settings: Settings) -> Path:
    """Return the demo's data directory: ``<data_dir>/demo``."""
    return settings.data_dir / DEMO_DIR


def demo_home(settings: Settings, *, store: str | None = None, reset: bool = False) -> DemoHome:
    """Return the demo's home beside ``settings.data_dir``; with ``reset`` its directory starts empty.

    The configured ``database_url`` is ignored: only ``store`` (``--store URL``) puts the demo's
    incidents anywhere but the demo directory. ``reset`` never drops a store ``--store`` names.
    """
    directory = demo_directory(settings)
    if reset and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # database_url "" means the SQLite file in the (demo) data_dir; with_overrides skips only None
    demo = with_overrides(settings, data_dir=directory, database_url=store or "")
    return DemoHome(directory=directory, settings=demo, own_store=not store)
