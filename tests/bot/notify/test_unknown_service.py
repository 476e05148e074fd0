"""An alert on a service the graph does not know: an incident opens, the card says so and offers only
what is safe without a graph; once the graph knows the service (a refresh swaps it), the card ranks as usual.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sim.resolve import resolve_topology
from sim.topology import parse_topology
from tests.bot.conftest import Harness, generic

NOTE = "Unknown to the service graph:"


def _suggestions(card: dict[str, Any]) -> list[str]:
    """Return the first line of each suggestion on a card (``*1. restart_service on `x`*``)."""
    return [
        b["text"]["text"].split("\n", 1)[0]
        for b in card["blocks"]
        if b.get("type") == "section" and str(b.get("block_id", "")).startswith("text-")
    ]


def test_an_alert_on_a_service_outside_the_graph_opens_an_incident_with_safe_suggestions(
    harness: Harness,
) -> None:
    status, answer = harness.post_alert("generic", generic("HighErrorRate", "ratings", fingerprint="r-1"))
    assert status == 200, answer
    (incident_id,) = answer["incidents"]
    card = harness.wait_card(incident_id, lambda blocks: NOTE in blocks)
    text = json.dumps(card["blocks"])
    assert "ratings" in text and "the next graph refresh picks it up" in text
    lines = _suggestions(card)
    assert lines, "a card still suggests something: escalate or wait need no graph"
    assert not any("ratings" in line for line in lines), lines
    assert all(re.search(r"\b(escalate|wait)\b| on ", line) for line in lines), lines

    # the next refresh brings ratings into the graph (what `bot.feeds.refresh` does: one assignment)
    base = resolve_topology("online-boutique").to_node_link()
    base["nodes"].append({"id": "ratings", "kind": "service", "namespace": "shop"})
    base["edges"].append({"source": "frontend", "target": "ratings"})
    harness.services.topology = parse_topology(base, source="refreshed")
    status, answer = harness.post_alert("generic", generic("HighLatency", "ratings", fingerprint="r-2"))
    assert status == 200 and answer["incidents"] == [incident_id], answer
    card = harness.wait_card(incident_id, lambda blocks: NOTE not in blocks and "HighLatency" in blocks)
    assert any("ratings" in line for line in _suggestions(card)), _suggestions(card)
