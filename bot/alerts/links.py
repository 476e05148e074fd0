"""The links an alert gives to a person: its runbook, where it came from, a dashboard, a silence.

Read at intake from the alert's annotations (``runbook_url``, ``dashboard_url``, ...), the fields
Prometheus and Grafana send (``generatorURL``, ``silenceURL``, ``dashboardURL``, ``panelURL``) and, for
Alertmanager, its ``externalURL`` with the alert's labels (a new-silence link for exactly them). Only
http(s) URLs with a host are kept; the card escapes them again when it links them (`bot.notify.mrkdwn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from bot.notify.mrkdwn import http_url

MAX_URL = 2000  # a longer link is dropped, not clipped: half a URL leads nowhere
URL_FIELDS = ("generatorURL", "silenceURL", "dashboardURL", "panelURL")
# link name -> where it is found, the first one set wins: an annotation name or a field of the alert
SOURCES: dict[str, tuple[str, ...]] = {
    "runbook": ("runbook_url", "runbook", "runbookURL", "runbook_link", "playbook_url"),
    "source": ("generatorURL",),
    "dashboard": ("dashboard_url", "dashboardURL", "dashboard", "grafana_url", "grafana_dashboard_url",
                  "grafana_dashboard", "grafana", "panelURL"),
    "silence": ("silenceURL",),
}  # fmt: skip


def silence_url(external_url: str, labels: Mapping[str, str]) -> str:
    """Return Alertmanager's new-silence page for exactly these labels (its UI's ``filter`` matchers)."""
    matchers = ", ".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return f"{external_url.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


def links_of(
    annotations: Mapping[str, str], fields: Mapping[str, str], labels: Mapping[str, str], external_url: str
) -> dict[str, str]:
    """Return the alert's links by name (runbook, source, dashboard, silence); unsafe or long ones dropped."""
    given = {**fields, **annotations}
    found: dict[str, str] = {}
    for name, keys in SOURCES.items():
        url = next((u for k in keys if (u := http_url(given.get(k, ""), MAX_URL))), None)
        if url is not None:
            found[name] = url
    if "silence" not in found and http_url(external_url, MAX_URL):
        url = http_url(silence_url(external_url, labels), MAX_URL)
        if url is not None:
            found["silence"] = url
    return found
