"""`remediate topology discover|show|diff`: the team's own service graph (docs/topology.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, refuse, settings_of
from bot.feeds.discover import DiscoverOptions, discover
from bot.feeds.graph_diff import diff_graphs, edges_of
from bot.feeds.refresh import write_graph
from sim.errors import TopologyError
from sim.resolve import resolve_topology
from sim.topology import Topology

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
GraphArg = Annotated[str, typer.Argument(help="Node-link JSON file (or a built-in topology name).")]


def load_graph(ref: str) -> Topology:
    """Load a graph file or built-in; a file that fails to load stops the command with the loader's reason."""
    try:
        return resolve_topology(ref)
    except TopologyError as exc:
        refuse(str(exc))


def describe(topology: Topology) -> dict[str, Any]:
    """Return a graph's nodes, edges and kind counts (what `topology show --json` prints)."""
    names = topology.services
    return {
        "name": topology.name,
        "services": topology.n_services,
        "edges": topology.n_edges,
        "kinds": dict(sorted(Counter(topology.kinds).items())),
        "nodes": [
            {
                "id": name,
                "kind": topology.kinds[i],
                "stateful": bool(topology.stateful[i]),
                "replicas": int(topology.replicas[i]),
                "calls": [names[j] for j in topology.callees(i).tolist()],
            }
            for i, name in enumerate(names)
        ],
        "edge_list": [{"source": a, "target": b} for a, b in sorted(edges_of(topology))],
    }


def _show(ref: str, as_json: bool) -> None:
    info = describe(load_graph(ref))
    if as_json:
        print_json(info)
        return
    table = Table(title=f"{info['name']}: {info['services']} services, {info['edges']} edges")
    for column in ("service", "kind", "stateful", "replicas", "calls"):
        table.add_column(column)
    for node in info["nodes"]:
        stateful = "yes" if node["stateful"] else ""
        table.add_row(node["id"], node["kind"], stateful, str(node["replicas"]), ", ".join(node["calls"]))
    console.print(table)
    console.print("kinds: " + ", ".join(f"{k} {n}" for k, n in info["kinds"].items()), highlight=False)


def _diff(old: str, new: str, as_json: bool) -> None:
    change = diff_graphs(load_graph(old), load_graph(new))
    if as_json:
        print_json(change.as_json())
        return
    if change.empty:
        console.print("no change")
    for sign, nodes in (("+", change.nodes_added), ("-", change.nodes_removed)):
        for node in nodes:
            console.print(f"{sign} node {node}", highlight=False, markup=False)
    for sign, edges in (("+", change.edges_added), ("-", change.edges_removed)):
        for a, b in edges:
            console.print(f"{sign} edge {a} -> {b}", highlight=False, markup=False)
    for node, was, now in change.kinds_changed:
        console.print(f"~ kind {node}: {was} -> {now}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Mount the `topology` group."""
    group = typer.Typer(
        help="The team's service graph: discover, show, diff (docs/topology.md).", no_args_is_help=True
    )

    @group.command("discover")
    def discover_cmd(
        ctx: typer.Context,
        prometheus: Annotated[
            str, typer.Option("--prometheus", help="Base URL of the Prometheus API (http://host:9090).")
        ],
        out: Annotated[Path, typer.Option("--out", help="Where to write the node-link JSON.")],
        window: Annotated[
            str, typer.Option("--window", help="How far back to look (PromQL duration).")
        ] = "1h",
        namespace: Annotated[
            list[str] | None,
            typer.Option(
                "--namespace", help="Keep only these namespaces (repeat the option).", show_default=False
            ),
        ] = None,
        kubernetes: Annotated[
            bool,
            typer.Option(
                "--kubernetes",
                help="Also list Deployments and StatefulSets (REMEDIATE_KUBECONFIG, else in-cluster, else "
                "~/.kube/config), so workloads with no traffic yet join the graph.",
            ),
        ] = False,
        name: Annotated[str, typer.Option("--name", help="The graph's name.")] = "discovered",
        as_json: JsonFlag = False,
    ) -> None:
        """Build the service graph from mesh and tracing metrics in Prometheus and write it to --out.

        Exit status 1 when Prometheus cannot be queried or nothing was found.
        """
        settings = settings_of(ctx)
        namespaces = tuple(namespace or ())
        lister = None
        if kubernetes:
            from bot.feeds.kube import list_workloads

            def lister() -> list[Any]:
                return list_workloads(
                    kubeconfig=settings.kubeconfig, context=settings.kube_context, namespaces=namespaces
                )

        options = DiscoverOptions(prometheus=prometheus, window=window, namespaces=namespaces, name=name)
        document = discover(options, workloads=lister)
        topology = write_graph(document, out)
        info = describe(topology)
        if as_json:
            print_json({"out": str(out), **{k: info[k] for k in ("name", "services", "edges", "kinds")}})
            return
        kinds = ", ".join(f"{k} {n}" for k, n in info["kinds"].items())
        console.print(
            f"wrote {out}: {topology.n_services} services, {topology.n_edges} edges ({kinds})",
            highlight=False,
            markup=False,
        )

    @group.command("show")
    def show_cmd(graph: GraphArg, as_json: JsonFlag = False) -> None:
        """List a graph's services (kind, stateful, replicas, what each calls) and its kinds."""
        _show(graph, as_json)

    @group.command("diff")
    def diff_cmd(old: GraphArg, new: GraphArg, as_json: JsonFlag = False) -> None:
        """Show the nodes and edges added and removed from OLD to NEW (and kinds that changed)."""
        _diff(old, new, as_json)

    app.add_typer(group, name="topology")
