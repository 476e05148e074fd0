"""`remediate policy list|show|promote|rollback|shadow|canary|report`: the life cycle of trained policies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.cli.common import console, print_json, refuse, settings_of
from bot.cli.policy_live_cmds import register_live
from bot.settings import Settings
from incidents_db import db
from remediation.registry import service
from remediation.registry.service import version_row

if TYPE_CHECKING:
    from remediation.registry.artifact import Artifact

# remediation.registry.workflow (torch, the simulator) is imported inside the commands that load an
# artifact, so `remediate --help`, `policy list|show|rollback` start without torch.

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Skip the evaluation gate.")]
EpisodesOption = Annotated[
    int, typer.Option("--episodes", min=4, help="Simulated and logged incidents the gate runs.")
]


@contextmanager
def registry_session(engine: Engine) -> Iterator[Session]:
    """Yield a session on the registry that commits when the block succeeds."""
    with db.session_scope(db.make_sessionmaker(engine)) as session:
        yield session


def open_engine(ctx: typer.Context) -> Engine:
    """Return an engine on the configured store, migrated to the newest schema (the caller disposes it)."""
    return db.open_store(settings_of(ctx).effective_database_url)


def register(app: typer.Typer) -> None:
    """Mount the `policy` group."""
    group = typer.Typer(
        help="Trained policy versions: list, inspect, shadow, promote, roll back.", no_args_is_help=True
    )
    register_inspection(group)
    register_changes(group)
    register_live(group)  # canary and report (bot/cli/policy_live_cmds.py)
    app.add_typer(group, name="policy")


def register_inspection(group: typer.Typer) -> None:
    """Mount `policy list` and `policy show`: they only read the registry."""

    @group.command("list")
    def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List every registered version, newest first."""
        engine = open_engine(ctx)
        with registry_session(engine) as session:
            rows = [version_row(v) for v in service.list_versions(db_session=session)]
        engine.dispose()
        if as_json:
            print_json(rows)
            return
        table = Table("version", "status", "parent", "success (train)", "ECE")
        for r in rows:
            table.add_row(r["version"], r["status"], r["parent"] or "-", str(r["metrics"].get("train_success_rate")),
                          str(r["metrics"].get("ece")))  # fmt: skip
        console.print(table)

    @group.command("show")
    def show_cmd(ctx: typer.Context, version: str, as_json: JsonOpt = False) -> None:
        """Show one version with its metrics and training config."""
        engine = open_engine(ctx)
        with registry_session(engine) as session:
            found = service.get_version(db_session=session, version=version)
            row = {**version_row(found), "config": found.config}
        engine.dispose()
        if as_json:
            print_json(row)
            return
        for key, value in row.items():
            console.print(f"{key}: {value}")


def register_changes(group: typer.Typer) -> None:
    """Mount `policy shadow`, `policy promote` and `policy rollback`: they change which version ranks."""

    @group.command("shadow")
    def shadow_cmd(ctx: typer.Context, version: str, as_json: JsonOpt = False) -> None:
        """Run a version in shadow next to the promoted one (its artifact is verified first)."""
        from remediation.registry.workflow import resolve_artifact

        engine = open_engine(ctx)
        try:
            resolve_artifact(engine=engine, ref=version)
            with registry_session(engine) as session:
                row = version_row(service.set_shadow(db_session=session, version=version))
        finally:
            engine.dispose()
        print_json(row) if as_json else console.print(f"{version} is now in shadow")

    @group.command("promote")
    def promote_cmd(
        ctx: typer.Context,
        version: str,
        force: ForceOption = False,
        episodes: EpisodesOption = 40,
        as_json: JsonOpt = False,
    ) -> None:
        """Promote a version after the gate: simulator evaluation and off-policy estimates."""
        from remediation.registry.workflow import resolve_artifact

        engine = open_engine(ctx)
        settings = settings_of(ctx)
        try:
            artifact = resolve_artifact(engine=engine, ref=version)
            gate: dict[str, Any] = {"passed": True, "skipped": True}
            if not force:
                gate = run_gate(engine, artifact, settings, episodes)
            if not gate["passed"]:
                refuse(f"{version} failed the promotion gate ({'; '.join(gate['reasons'])}); "
                       "rerun with --force to override")  # fmt: skip
            with registry_session(engine) as session:
                row = version_row(service.promote(db_session=session, version=version))
        finally:
            engine.dispose()
        print_json({**row, "gate": gate}) if as_json else console.print(f"{version} promoted")

    @group.command("rollback")
    def rollback_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Retire the promoted version and promote the previous one."""
        engine = open_engine(ctx)
        with registry_session(engine) as session:
            row = version_row(service.rollback(db_session=session))
        engine.dispose()
        print_json(row) if as_json else console.print(f"rolled back to {row['version']}")


def run_gate(engine: Engine, artifact: Artifact, settings: Settings, episodes: int) -> dict[str, Any]:
    """Evaluate ``artifact`` against production (the promoted version, else the runbook); say which it was."""
    from remediation.guardrails.config import load_rbac
    from remediation.registry.workflow import promoted_artifact, promotion_gate

    production, against = promoted_artifact(engine=engine)
    gate = promotion_gate(artifact, rbac=load_rbac(settings.rbac_config), production=production,
                          episodes=episodes, automated_margin=settings.gate_automated_margin)  # fmt: skip
    gate["production"] = against
    return gate
