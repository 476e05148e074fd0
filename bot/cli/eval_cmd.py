"""`remediate eval`: every policy on the same held-out simulated episodes of a topology."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of
from bot.cli.ray_opts import RayAddress, RayFlag, RayWorkers, check_address
from incidents_db import db
from remediation.policies.base import Policy
from sim.errors import SimError
from sim.resolve import resolve_topology

if TYPE_CHECKING:  # torch loads only when the command runs
    from remediation.evaluation.sim_eval import PolicyResult
    from remediation.guardrails.models import RbacConfig
    from sim.topology import Topology


def results_table(results: Mapping[str, PolicyResult], title: str) -> Table:
    """Return the eval table: success beside automated success and escalations, then time, cost, agreement."""
    table = Table("policy", "success", "automated", "escalated", "human min", "mean TTM s", "p90 TTM s",
                  "actions", "cost $", "violations", "top-1", "top-3", "regret", "ECE", "1st effective", title=title)  # fmt: skip
    for name, res in results.items():
        j = res.as_row()
        table.add_row(name, f"{res.success_rate:.0%}", f"{res.automated_success_rate:.0%}",
                      f"{res.escalation_rate:.0%}", f"{res.human_minutes:.1f}", str(j["mean_ttm_s"]),
                      str(j["p90_ttm_s"]), str(j["actions_per_incident"]), str(j["cost_usd"]), str(res.violations),
                      f"{res.top1:.0%}", f"{res.top3:.0%}", str(j["regret"]), str(j["ece"]), f"{res.first_effective:.0%}")  # fmt: skip
    return table


def register(app: typer.Typer) -> None:
    """Mount the `eval` command."""

    @app.command("eval")
    def eval_command(
        ctx: typer.Context,
        topology: Annotated[str, typer.Option("--topology", help="Built-in name or node-link JSON file.")],
        episodes: Annotated[int, typer.Option("--episodes", min=1, help="Seeded episodes per policy.")] = 100,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the episodes.")] = 1,
        policy: Annotated[
            str | None, typer.Option("--policy", help="Registered VERSION or artifact PATH.")
        ] = None,
        plots: Annotated[Path | None, typer.Option("--plots", help="Directory for PNG plots.")] = None,
        by_fault: Annotated[
            bool,
            typer.Option("--by-fault", help="Also break the learned policy's results down by fault kind."),
        ] = False,
        ray: RayFlag = False,
        address: RayAddress = None,
        workers: RayWorkers = 2,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Compare learned, runbook, operator BC, random and oracle policies side by side."""
        check_address("eval", ray, address)
        # torch and matplotlib load only when this command runs
        from remediation.evaluation.plots import plot_policies
        from remediation.guardrails.config import load_rbac
        from remediation.learning.baselines import OperatorBCPolicy, OraclePolicy, RandomPolicy, RunbookPolicy
        from remediation.learning.ranking import LearnedPolicy
        from remediation.registry.workflow import resolve_artifact

        try:
            topo = resolve_topology(topology)
        except SimError as exc:
            refuse(str(exc))
        settings = settings_of(ctx)
        engine = db.open_store(settings.effective_database_url)
        try:
            artifact = resolve_artifact(engine=engine, ref=policy)
        finally:
            engine.dispose()
        policies: dict[str, Policy] = {
            "learned": LearnedPolicy(
                artifact.net, temperature=artifact.temperature, version=artifact.version, explain=False
            ),
            "runbook": RunbookPolicy(),
            "operator_bc": OperatorBCPolicy(artifact.operator_bc),
            "random": RandomPolicy(seed),
            "oracle": OraclePolicy(),
        }
        rbac = load_rbac(settings.rbac_config)  # the configured guardrails mask every policy's ranking
        results = _evaluate(topo, policies, episodes=episodes, seed=seed, rbac=rbac, ray=ray, address=address,
                            workers=workers)  # fmt: skip
        out_dir = plots or settings.data_dir / "eval"
        plot_policies(results, out_dir / f"policy-eval-{topo.name}.png", f"{topo.name}, {episodes} episodes")
        breakdown = dict(results["learned"].by_fault or {})
        if as_json:
            payload = {"topology": topo.name, "episodes": episodes,
                       "policies": {name: res.as_json() for name, res in results.items()}}  # fmt: skip
            if by_fault:
                payload["learned_by_fault"] = breakdown
            print_json(payload)
            return
        console.print(results_table(results, f"{topo.name}: {episodes} episodes, seed {seed}"))
        if by_fault:
            console.print(fault_table(breakdown))


def fault_table(breakdown: Mapping[str, Mapping[str, float]]) -> Table:
    """Return the learned policy's results by fault kind, worst first."""
    kinds = Table(
        "fault kind", "episodes", "success", "top-1", title="learned policy by fault kind (worst first)"
    )
    for kind, row in sorted(breakdown.items(), key=lambda kv: kv[1]["success_rate"]):
        kinds.add_row(kind, str(int(row["episodes"])), f"{row['success_rate']:.0%}", f"{row['top1']:.0%}")
    return kinds


def _evaluate(topo: Topology, policies: Mapping[str, Policy], *, episodes: int, seed: int, rbac: RbacConfig,
              ray: bool, address: str | None, workers: int) -> dict[str, PolicyResult]:  # fmt: skip
    """Run the policies in this process, or with ``ray`` on the cluster's workers (same scenarios, dealt out)."""
    if not ray:
        from remediation.evaluation.sim_eval import evaluate_policies

        return evaluate_policies(topo, policies, episodes=episodes, seed=seed, rbac=rbac)
    from remediation.evaluation.distributed import evaluate_on_ray
    from remediation.learning.cluster import ray_cluster

    with ray_cluster(address):
        return evaluate_on_ray(topo, policies, episodes=episodes, seed=seed, rbac=rbac, workers=workers)
