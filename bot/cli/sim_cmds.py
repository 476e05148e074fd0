"""`remediate sim ...`: list topologies, run one simulated incident, write history, draw a fault spreading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, progress_bar, refuse

if TYPE_CHECKING:
    from sim.runner import Episode
    from sim.topology import Topology

TOPOLOGY_HELP = (
    "Built-in name (see `remediate sim topologies`), generated:SIZE[:SEED], or a node-link JSON file."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TopologyOption = Annotated[str, typer.Option("--topology", "-t", help=TOPOLOGY_HELP)]
TargetOption = Annotated[str | None, typer.Option("--target", help="Service the fault strikes.")]
RunFaultOption = Annotated[
    str | None, typer.Option("--fault", help="Fault kind to inject (random when absent).")
]
PeerOption = Annotated[str | None, typer.Option("--peer", help="For network_partition: the caller cut off.")]
PolicyOption = Annotated[str, typer.Option("--policy", help="oracle, random, heuristic or operator.")]
RunSeedOption = Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same run).")]
MaxStepsOption = Annotated[int, typer.Option("--max-steps", min=1, help="Step limit.")]
HistoryOutOption = Annotated[Path, typer.Option("--out", "-o", help="JSON Lines file to write.")]
IncidentsOption = Annotated[int, typer.Option("--incidents", "-n", min=1, help="How many incidents.")]
HistorySeedOption = Annotated[int, typer.Option("--seed", min=0, help="Random seed (same seed, same file).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
DrawOutOption = Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")]
DrawFaultOption = Annotated[str, typer.Option("--fault", help="Fault kind to show spreading.")]
DrawSeedOption = Annotated[int, typer.Option("--seed", min=0, help="Random seed.")]


def _faults(topology: Any, fault: str | None, target: str | None, peer: str | None, seed: int) -> Any:
    """Return the fault list for --fault/--target (None = random scenario)."""
    import numpy as np

    from sim.faults import FaultSpec, fault_kind, sample_fault

    if fault is None:
        if target is not None or peer is not None:
            refuse("--target and --peer need --fault KIND (see `remediate sim faults`)")
        return None
    fault_kind(fault)
    if target is None:
        return [sample_fault(topology, np.random.default_rng(seed), fault)]
    return [FaultSpec(fault, target, peer)]


def register(app: typer.Typer) -> None:
    """Mount the `sim` group."""
    group = typer.Typer(
        help="The incident simulator: topologies, runs, history, pictures.", no_args_is_help=True
    )
    register_listings(group)
    register_run(group)
    register_outputs(group)
    app.add_typer(group, name="sim")


def register_listings(group: typer.Typer) -> None:
    """Mount `sim topologies` and `sim faults`."""

    @group.command("topologies")
    def topologies(as_json: JsonOption = False) -> None:
        """List the built-in topologies with their sizes."""
        rows = topology_rows()
        if as_json:
            print_json(rows)
            return
        print_topologies(rows)

    @group.command("faults")
    def faults(as_json: JsonOption = False) -> None:
        """List the fault kinds, where they strike and their ground-truth fix."""
        from sim.faults import FAULT_KINDS

        rows: list[dict[str, Any]] = [
            {"kind": k.id, "fix": k.fix, "applies_to": list(k.applies_to), "description": k.description}
            for k in FAULT_KINDS
        ]
        if as_json:
            print_json(rows)
            return
        table = Table("fault", "fix", "strikes", "what happens", title="fault kinds")
        for r in rows:
            table.add_row(r["kind"], r["fix"], ", ".join(r["applies_to"]), r["description"])
        console.print(table)


def register_run(group: typer.Typer) -> None:
    """Mount `sim run`."""

    @group.command("run")
    def run(
        topology: TopologyOption = "online-boutique",
        fault: RunFaultOption = None,
        target: TargetOption = None,
        peer: PeerOption = None,
        policy: PolicyOption = "heuristic",
        seed: RunSeedOption = 0,
        max_steps: MaxStepsOption = 30,
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary only.")] = False,
    ) -> None:
        """Run one incident with a reference policy and print each step."""
        from sim.core import SimConfig
        from sim.policies import POLICIES, make_policy
        from sim.resolve import resolve_topology
        from sim.runner import run_episode

        if policy not in POLICIES:
            refuse(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
        topo = resolve_topology(topology)
        chosen = _faults(topo, fault, target, peer, seed)
        episode = run_episode(
            topo, make_policy(policy, seed), seed=seed, faults=chosen, config=SimConfig(max_steps=max_steps)
        )
        if as_json:
            print_json(episode.summary())
            return
        print_episode(episode, topology=topo.name, policy=policy, seed=seed)


def register_outputs(group: typer.Typer) -> None:
    """Mount `sim history` and `sim draw`: the commands that write a file."""

    @group.command("history")
    def history(
        out: HistoryOutOption,
        topology: TopologyOption = "online-boutique",
        incidents: IncidentsOption = 100,
        seed: HistorySeedOption = 0,
        quiet: QuietOption = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Write remediate.incident/v1 history handled by a simulated on-call engineer."""
        from sim.resolve import resolve_topology

        topo = resolve_topology(topology)
        count = write_sim_history(topo, out, incidents=incidents, seed=seed, quiet=quiet or as_json)
        if as_json:
            print_json({"out": str(out), "incidents": count, "topology": topo.name, "seed": seed})
        else:
            console.print(f"wrote {count} incidents on {topo.name} to {out}")

    @group.command("draw")
    def draw(
        out: DrawOutOption,
        topology: TopologyOption = "online-boutique",
        fault: DrawFaultOption = "datastore_outage",
        target: TargetOption = None,
        seed: DrawSeedOption = 0,
    ) -> None:
        """Draw the topology and a fault spreading through it (PNG)."""
        from sim.draw import draw_incident
        from sim.resolve import resolve_topology

        topo = resolve_topology(topology)
        chosen = _faults(topo, fault, target, None, seed)
        path = draw_incident(topo, chosen, out, seed=seed)
        console.print(f"wrote {path}")


def topology_rows() -> list[dict[str, Any]]:
    """Return each built-in topology's name, size and count of services per kind."""
    from sim.topology import builtin_names, builtin_topology

    rows: list[dict[str, Any]] = []
    for name in builtin_names():
        t = builtin_topology(name)
        kinds = {k: t.kinds.count(k) for k in ("frontend", "service", "database", "cache", "queue")}
        rows.append({"name": name, "services": t.n_services, "edges": t.n_edges, **kinds})
    return rows


def print_topologies(rows: list[dict[str, Any]]) -> None:
    """Print the built-in topologies as a table, then the other forms a topology can take."""
    table = Table(
        "name",
        "services",
        "edges",
        "frontends",
        "datastores (db/cache/queue)",
        title="built-in topologies",
    )
    for r in rows:
        table.add_row(
            r["name"], str(r["services"]), str(r["edges"]), str(r["frontend"]),
            f"{r['database']}/{r['cache']}/{r['queue']}",
        )  # fmt: skip
    console.print(table)
    console.print("Also: generated:SIZE[:SEED] (5..2000 services) or any node-link JSON file.")


def print_episode(episode: Episode, *, topology: str, policy: str, seed: int) -> None:
    """Print one simulated incident: its hidden causes, each step, and how it ended."""
    causes = ", ".join(f"{f.kind} on {f.target}" for f in episode.scenario.faults)
    console.print(f"[bold]{topology}[/]: {causes} (hidden from the policy); policy {policy}, seed {seed}")
    table = Table("step", "t (s)", "action", "target", "outcome", "reward", "alerts firing")
    for i, s in enumerate(episode.steps, start=1):
        table.add_row(
            str(i), f"{s.elapsed_s:.0f}", s.choice.action, s.choice.target or "-", s.outcome,
            f"{s.reward:.3f}", str(s.alerts),
        )  # fmt: skip
    console.print(table)
    verdict = f"resolved in {episode.elapsed_s:.0f} s" if episode.resolved else "not resolved (step limit)"
    console.print(f"{verdict}; user impact {episode.impact:.3f} user-minutes; cost ${episode.cost_usd:.2f}")


def write_sim_history(topo: Topology, out: Path, *, incidents: int, seed: int, quiet: bool) -> int:
    """Simulate ``incidents`` incidents on ``topo`` into ``out`` with a progress bar; return how many."""
    from sim.history import generate_history, write_history

    with progress_bar(quiet=quiet) as bar:
        task = bar.add_task("simulating incidents", total=incidents)

        def records() -> Iterator[dict[str, Any]]:
            for record in generate_history(topo, incidents=incidents, seed=seed):
                bar.advance(task)
                yield record

        try:
            return write_history(records(), out)
        except OSError as exc:
            refuse(f"cannot write {out}: {exc.strerror or exc}")
