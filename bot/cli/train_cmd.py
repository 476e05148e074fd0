"""`remediate train`: train a policy (offline on history, then in the simulator) and register it."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import console, print_json, progress_bar, refuse, settings_of
from bot.cli.ray_opts import RayAddress, RayFlag, RayWorkers, check_address
from bot.settings import Settings
from incidents_db import db
from sim.errors import SimError
from sim.resolve import resolve_topology

if TYPE_CHECKING:
    from remediation.learning.train import TrainArgs


def register(app: typer.Typer) -> None:
    """Mount the `train` command."""

    @app.command("train")
    def train_command(
        ctx: typer.Context,
        history: Annotated[
            Path | None, typer.Option("--history", help="remediate.incident/v1 file to learn from.")
        ] = None,
        from_store: Annotated[
            bool, typer.Option("--from-store", help="Learn from the store's resolved incidents.")
        ] = False,
        minutes: Annotated[
            float,
            typer.Option(
                "--minutes", min=0.05, help="Wall-clock budget of the whole run; training uses it all."
            ),
        ] = 5.0,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Seed; same seed, same weights.")] = 0,
        iterations: Annotated[
            int | None,
            typer.Option(
                "--iterations",
                min=1,
                help="Most PPO iterations (default: the budget decides).",
                show_default=False,
            ),
        ] = None,
        history_topology: Annotated[
            str,
            typer.Option(
                "--history-topology",
                help="Topology (built-in name or node-link JSON file) of the history's services.",
            ),
        ] = "online-boutique",
        quick: Annotated[
            bool,
            typer.Option(
                "--quick", help="Smoke test: tiny network, few incidents, under a minute; not for use."
            ),
        ] = False,
        ray: RayFlag = False,
        address: RayAddress = None,
        workers: RayWorkers = 2,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Train a policy and register it as a candidate version."""
        check_address("train", ray, address)
        if history is not None and from_store:
            refuse("use either --history FILE or --from-store, not both")
        if history is not None and not history.is_file():
            refuse(f"{history}: no such file")
        try:
            resolve_topology(history_topology)
        except SimError as exc:
            refuse(f"--history-topology: {exc}")
        from remediation.learning.budget import QUICK_ITERATIONS, QUICK_MINUTES
        from remediation.learning.train import QUICK, TrainArgs  # torch: only when training

        settings = settings_of(ctx)
        run_root = settings.data_dir / "runs"
        # the configured guardrails mask the simulated states as the bot would refuse them
        rbac = str(settings.rbac_config) if settings.rbac_config else None
        if (
            quick and iterations is None
        ):  # under a minute; with --iterations N, N iterations bind (repeatable)
            minutes, iterations = min(minutes, QUICK_MINUTES), QUICK_ITERATIONS
        args = TrainArgs(seed=seed, minutes=minutes, iterations=iterations, run_root=str(run_root), rbac_config=rbac,
                         history_topology=history_topology, **(QUICK if quick else {}))  # fmt: skip
        from_store_url = settings.effective_database_url if from_store else None
        summary = run_training(settings, args, history, from_store_url, quiet=as_json,
                               rollout_workers=workers if ray else 0, ray_address=address)  # fmt: skip
        print_summary(summary, as_json=as_json)


def run_training(settings: Settings, args: TrainArgs, history: Path | None, from_store_url: str | None, *,
                 quiet: bool, rollout_workers: int = 0, ray_address: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Train with a progress bar (hidden when ``quiet``) and register the result; return its summary.

    ``rollout_workers`` > 0: the learner here, the rollouts on that many workers of the Ray cluster at
    ``ray_address`` (None: a local one started for this run).
    """
    from remediation.learning.cluster import ray_cluster
    from remediation.registry.workflow import train_and_register

    engine = db.open_store(settings.effective_database_url)
    try:
        cluster = ray_cluster(ray_address) if rollout_workers else nullcontext()
        with cluster, progress_bar(quiet=quiet) as bar:
            tasks: dict[str, object] = {}

            def progress(phase: str, done: int, total: int, metrics: dict[str, float]) -> None:
                if phase not in tasks:  # total 0: the budget decides, the bar only counts
                    tasks[phase] = bar.add_task(phase, total=total or None)
                bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

            return train_and_register(engine=engine, data_dir=settings.data_dir, args=args, history_file=history,
                                      from_store_url=from_store_url, progress=progress,
                                      rollout_workers=rollout_workers)  # fmt: skip
    finally:
        engine.dispose()


def print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    """Print what a training run registered: version, iterations, wall time against the budget, metrics."""
    if as_json:
        print_json(summary)
        return
    console.print(f"registered {summary['version']} (candidate) at {summary['path']}")
    metrics = summary["metrics"]
    console.print(f"  {metrics['iterations']:.0f} iterations in {metrics['train_wall_s']:.0f} s of a "
                  f"{metrics['budget_s']:.0f} s budget (stopped by {summary['stopped_by']}); learning curve "
                  f"in {summary['run_dir']}/summary.json")  # fmt: skip
    for key, value in metrics.items():
        console.print(f"  {key}: {value}")
