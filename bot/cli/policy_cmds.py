"""`remediate policy list|show|promote|rollback|shadow`: the life cycle of trained policies."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of
from incidents_db import db
from incidents_db.models import PolicyVersion
from remediation.registry import service

# remediation.registry.workflow (torch, the simulator) is imported inside the commands that load an
# artifact, so `remediate --help`, `policy list|show|rollback` start without torch.

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _row(v: PolicyVersion) -> dict[str, Any]:
    return {"version": v.id, "status": v.status, "parent": v.parent, "sha256": v.sha256, "path": v.path,
            "created_at": v.created_at.isoformat(), "promoted_at": v.promoted_at.isoformat() if v.promoted_at else None,
            "metrics": v.metrics}  # fmt: skip


def register(app: typer.Typer) -> None:
    """Mount the `policy` group."""
    group = typer.Typer(
        help="Trained policy versions: list, inspect, shadow, promote, roll back.", no_args_is_help=True
    )

    def session_of(ctx: typer.Context) -> Any:
        engine = db.open_store(settings_of(ctx).effective_database_url)
        return engine, db.session_scope(db.make_sessionmaker(engine))

    @group.command("list")
    def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """List every registered version, newest first."""
        engine, scope = session_of(ctx)
        with scope as session:
            rows = [_row(v) for v in service.list_versions(db_session=session)]
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
        engine, scope = session_of(ctx)
        with scope as session:
            row = _row(service.get_version(db_session=session, version=version))
            row["config"] = service.get_version(db_session=session, version=version).config
        engine.dispose()
        if as_json:
            print_json(row)
            return
        for key, value in row.items():
            console.print(f"{key}: {value}")

    @group.command("shadow")
    def shadow_cmd(ctx: typer.Context, version: str, as_json: JsonOpt = False) -> None:
        """Run a version in shadow next to the promoted one (its artifact is verified first)."""
        from remediation.registry.workflow import resolve_artifact

        engine, scope = session_of(ctx)
        try:
            resolve_artifact(engine=engine, ref=version)
            with scope as session:
                row = _row(service.set_shadow(db_session=session, version=version))
        finally:
            engine.dispose()
        print_json(row) if as_json else console.print(f"{version} is now in shadow")

    @group.command("promote")
    def promote_cmd(
        ctx: typer.Context,
        version: str,
        force: Annotated[bool, typer.Option("--force", help="Skip the evaluation gate.")] = False,
        episodes: Annotated[
            int, typer.Option("--episodes", min=4, help="Simulated and logged incidents the gate runs.")
        ] = 40,
        as_json: JsonOpt = False,
    ) -> None:
        """Promote a version after the gate: simulator evaluation and off-policy estimates."""
        from remediation.guardrails.config import load_rbac
        from remediation.registry.workflow import promoted_artifact, promotion_gate, resolve_artifact

        engine, scope = session_of(ctx)
        settings = settings_of(ctx)
        try:
            artifact = resolve_artifact(engine=engine, ref=version)
            gate: dict[str, Any] = {"passed": True, "skipped": True}
            if not force:
                production, against = promoted_artifact(engine=engine)  # the promoted version, else the runbook
                gate = promotion_gate(artifact, rbac=load_rbac(settings.rbac_config), production=production,
                                      episodes=episodes, automated_margin=settings.gate_automated_margin)  # fmt: skip
                gate["production"] = against
            if not gate["passed"]:
                refuse(f"{version} failed the promotion gate ({'; '.join(gate['reasons'])}); "
                       "rerun with --force to override")  # fmt: skip
            with scope as session:
                row = _row(service.promote(db_session=session, version=version))
        finally:
            engine.dispose()
        print_json({**row, "gate": gate}) if as_json else console.print(f"{version} promoted")

    @group.command("rollback")
    def rollback_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Retire the promoted version and promote the previous one."""
        engine, scope = session_of(ctx)
        with scope as session:
            row = _row(service.rollback(db_session=session))
        engine.dispose()
        print_json(row) if as_json else console.print(f"rolled back to {row['version']}")

    app.add_typer(group, name="policy")
