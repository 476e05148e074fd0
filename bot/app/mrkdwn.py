"""Text from outside (alerts, snapshots, history, topology names, chat input) made safe for Slack.

Slack reads ``<...>`` in mrkdwn (and in a message's fallback text) as a link, a user or channel mention
or ``<!channel>``; ``&`` starts an entity. Escaping these three characters is what Slack documents for
text that must show as typed. Everything that did not come from us passes through `escape` before it
is put into mrkdwn, and through `clip` before it is put into a field with a length limit.
"""

from __future__ import annotations

ELLIPSIS = "…"


def escape(text: object) -> str:
    """Return ``text`` with ``&``, ``<`` and ``>`` escaped, so Slack shows it verbatim (no links, no pings)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending in an ellipsis when it was cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
