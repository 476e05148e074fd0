"""`remediate alerts explain PAYLOAD.json`: what the bot makes of each alert of a webhook body, and why.

For each alert: the service it is pinned on (which label won, which were skipped and why), the policy
signal it carries (which vocabulary rule matched, or "not understood by the policy") and its links.
The same code as intake reads the body (`bot.alerts.models.parse_alerts` with the bot's resolver), so
what this prints is what `serve` would do with the same settings, vocabulary and service graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bot.alerts.errors import AllRefusedError, BadPayloadError
from bot.alerts.models import MAX_ALERTS, AlertIn, decode_json, parse_alerts
from bot.alerts.resolve import ServiceResolver
from bot.cli.common import print_json, refuse, settings_of
from playbooks.vocabulary import Vocabulary, load_vocabulary
from sim.observation import ALERTS
from sim.resolve import resolve_topology

SOURCES = ("alertmanager", "grafana", "pagerduty", "generic")
MAX_FILE = 10_000_000
NOT_UNDERSTOOD = "not understood by the policy"


def detect_source(body: Any) -> str:
    """Return which sender's form a decoded body has: pagerduty, alertmanager, grafana or generic."""
    if isinstance(body, dict):
        if "event" in body:
            return "pagerduty"
        if body.get("version") == "4":
            return "alertmanager"
        alerts = body.get("alerts")
        if isinstance(alerts, list) and alerts and isinstance(alerts[0], dict) and "labels" in alerts[0]:
            return "grafana"
    return "generic"


def _read(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        refuse(f"cannot read {path}: {exc.strerror or exc}")
    if len(data) > MAX_FILE:
        refuse(f"{path}: larger than {MAX_FILE} bytes; a webhook body is far smaller")
    try:
        return decode_json(data)
    except BadPayloadError as exc:
        refuse(f"{path}: {exc}")


def explain(alert: AlertIn, index: int, vocabulary: Vocabulary) -> dict[str, Any]:
    """Return what the bot makes of one alert: service and why, signal and why, links."""
    match = vocabulary.match(alert.name, alert.labels)
    resolution = alert.resolution
    return {
        "index": index,
        "name": alert.name,
        "status": alert.status,
        "service": alert.service,
        "service_label": resolution.label if resolution else None,
        "service_why": resolution.why if resolution else "the payload names the service",
        "labels_read": [str(c) for c in resolution.candidates] if resolution else [],
        "signal": match.signal if match else None,
        "signal_why": f"{match.why} ({match.origin})" if match else NOT_UNDERSTOOD,
        "links": dict(alert.links),
    }


def _text(item: dict[str, Any]) -> list[str]:
    lines = [f"alert {item['index']}: {item['name']} ({item['status']})"]
    if "refused" in item:
        return [*lines, f"  refused: {item['refused']}"]
    label = f"label {item['service_label']}; " if item["service_label"] else ""
    lines.append(f"  service: {item['service']}  ({label}{item['service_why']})")
    lines.extend(f"    {read}" for read in item["labels_read"])
    if item["signal"]:
        lines.append(f"  signal: {item['signal']}  ({item['signal_why']})")
    else:
        lines.append(
            f"  signal: none, {NOT_UNDERSTOOD} (no vocabulary rule matches; see alert_vocabulary_file)"
        )
    lines.extend(f"  link {name}: {url}" for name, url in item["links"].items())
    return lines


def register(app: typer.Typer) -> None:
    """Mount the `alerts` group."""
    group = typer.Typer(help="See how alerts map to services and policy signals.", no_args_is_help=True)

    @group.command("explain")
    def explain_cmd(
        ctx: typer.Context,
        payload: Annotated[Path, typer.Argument(help="A webhook body (JSON) as a sender posts it.")],
        source: Annotated[
            str | None, typer.Option(help="alertmanager, grafana, pagerduty or generic; guessed if unset.")
        ] = None,
        topology: Annotated[
            str | None,
            typer.Option(help="Service graph (built-in name or node-link file); the setting's if unset."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Print, for each alert of a webhook body, the service and signal it maps to, and why."""
        settings = settings_of(ctx)
        if source is not None and source not in SOURCES:
            refuse(f"--source {source!r}: expected one of {', '.join(SOURCES)}")
        body = _read(payload)
        form = source or detect_source(body)
        vocabulary = load_vocabulary(ALERTS, settings.alert_vocabulary_file)
        graph = topology or settings.topology
        nodes = frozenset(resolve_topology(graph).services) if graph else frozenset()
        resolver = ServiceResolver(settings.alert_service_labels, vocabulary, nodes)
        items: list[dict[str, Any]] = []
        try:
            delivery = parse_alerts(form, body, resolver)
        except AllRefusedError as exc:
            items = [
                {"index": r["index"], "name": "?", "status": "?", "refused": r["error"]} for r in exc.refused
            ]
        except BadPayloadError as exc:
            refuse(f"{payload}: {exc}")
        else:
            kept = iter(range(MAX_ALERTS))
            refused = {p.index: p.message for p in delivery.refused}
            for alert in delivery.accepted:
                index = next(i for i in kept if i not in refused)
                items.append(explain(alert, index, vocabulary))
            items += [{"index": i, "name": "?", "status": "?", "refused": m} for i, m in refused.items()]
            items.sort(key=lambda item: int(item["index"]))
        if as_json:
            print_json({"source": form, "graph": graph, "alerts": items})
        else:
            typer.echo(f"{payload}: {form} webhook, {len(items)} alert(s); graph: {graph or 'none'}")
            for item in items:
                typer.echo("\n".join(_text(item)))
        if items and all("refused" in item for item in items):
            raise typer.Exit(1)

    app.add_typer(group, name="alerts")
