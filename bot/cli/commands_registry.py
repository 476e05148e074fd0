"""The one list of subcommand modules; add a name here when a capability adds commands."""

from __future__ import annotations

import importlib

import typer

# Each module under bot/cli/ named here has `register(app)`; order is the order in `remediate --help`.
MODULES: tuple[str, ...] = (
    "demo_cmd",
    "doctor_cmd",
    "store_cmds",
    "incidents_cmds",
    "postmortem_cmds",
    "safety_cmds",
    "switch_cmds",
    "audit_cmds",
    "sandbox_cmd",
    "config_cmd",
    "sim_cmds",
    "serve_cmd",
    "executors_cmd",
    "feed_cmd",
    "alerts_cmd",
    "topology_cmd",
    "train_cmd",
    "policy_cmds",
    "jobs_cmds",
    "eval_cmd",
    "outbox_cmd",
)


def register(app: typer.Typer) -> None:
    """Mount every subcommand group on the root app."""
    for name in MODULES:
        importlib.import_module(f"bot.cli.{name}").register(app)
