"""Text from outside (alerts, snapshots, history, topology names, chat input) made safe for Slack.

Slack reads ``<...>`` in mrkdwn (and in a message's fallback text) as a link, a user or channel mention
or ``<!channel>``; ``&`` starts an entity. Escaping these three characters is what Slack documents for
text that must show as typed. Everything that did not come from us passes through `escape` before it
is put into mrkdwn, and through `clip` before it is put into a field with a length limit.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"


def escape(text: object) -> str:
    """Return ``text`` with ``&``, ``<`` and ``>`` escaped, so Slack shows it verbatim (no links, no pings)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending in an ellipsis when it was cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


_SLACK_USER = re.compile(r"(?:[TE][A-Z0-9]{2,}/)?([UW][A-Z0-9]{2,})")  # T.../: another workspace's person
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def mention(user: object) -> str:
    """Return ``<@user>`` for a Slack user id (``U…`` / ``W…``, ``T…/U…``); anything else escaped, so it cannot ping."""
    text = str(user)
    found = _SLACK_USER.fullmatch(text)
    return f"<@{found.group(1)}>" if found else escape(text)


def clip_md(text: str, limit: int) -> str:
    """Return mrkdwn ``text`` clipped like `clip`, never cutting an entity (``&amp;``) in half."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    return _ENTITY_TAIL.sub("", cut) + ELLIPSIS if limit > 0 else ""


def safe(text: object, limit: int) -> str:
    """Return outside ``text`` escaped for mrkdwn and clipped to ``limit`` characters (after escaping)."""
    return clip_md(escape(text), limit)


_HTTP_URL = re.compile(r"https?://[^\s/?#@]+(?:@[^\s/?#@]+)?(?:[/?#]\S*)?", re.IGNORECASE)


def http_url(text: object, limit: int) -> str | None:
    """Return ``text`` stripped when it is an http(s) URL with a host, no spaces and at most ``limit`` long."""
    url = str(text).strip()
    if len(url) > limit or not url.isprintable() or not _HTTP_URL.fullmatch(url):
        return None
    return url


def link(url: object, text: str, limit: int = 2000) -> str | None:
    """Return a Slack link ``<url|text>`` (both escaped) for an http(s) URL; None for anything else."""
    safe_url = http_url(url, limit)
    if safe_url is None:
        return None
    return f"<{escape(safe_url.replace('|', '%7C'))}|{escape(text).replace('|', '¦')}>"


# Slack has no escape for its formatting characters. Inside a styled span (bold, italics, strike) its
# own mark would end it (``_error_spike on …_`` shows "error" in italics and a stray ``_``) and any mark
# after a space or punctuation could open another, so those become look-alikes Slack does not parse.
# A mark inside a word (``restart_service`` in bold) opens nothing and stays as typed.
LOOKALIKES = {"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"}
MARKS = ("*", "_", "~")
_OPENER = re.compile(r"(?<![0-9A-Za-z])[*_~`]|[*_~`](?![0-9A-Za-z])")


def _neutral(md: str, mark: str) -> str:
    """Return ``md`` with ``mark`` and every mark that could open or close a span replaced by look-alikes."""
    md = md.replace(mark, LOOKALIKES[mark])
    return _OPENER.sub(lambda m: LOOKALIKES[m.group(0)], md)


def styled_md(md: str, mark: str, limit: int = 3000) -> str:
    """Return mrkdwn ``md`` (already escaped) wrapped in ``mark`` per line, never broken by what is inside.

    Formatting characters inside become look-alikes; each line is styled on its own (Slack's spans
    end at a newline) and stripped (a span must not start or end with a space); the closing mark
    survives clipping to ``limit``.
    """
    if mark not in MARKS:
        raise ValueError(f"mark {mark!r}: expected one of {', '.join(MARKS)}")
    lines = []
    for line in md.split("\n"):
        inner = _neutral(clip_md(line.strip(), max(limit - 2, 0)), mark)
        lines.append(f"{mark}{inner}{mark}" if inner else "")
    return "\n".join(lines)


def bold(text: object, limit: int = 3000) -> str:
    """Return outside ``text`` escaped and in bold (``*…*``), safe whatever characters it holds."""
    return styled_md(escape(text), "*", limit)


def italic(text: object, limit: int = 3000) -> str:
    """Return outside ``text`` escaped and in italics (``_…_``), safe whatever characters it holds."""
    return styled_md(escape(text), "_", limit)


def code(text: object, limit: int = 3000) -> str:
    """Return outside ``text`` escaped as inline code (backticks inside become look-alikes)."""
    inner = clip_md(escape(text).replace("`", "ˋ").replace("\n", " "), max(limit - 2, 0))
    return f"`{inner}`" if inner else ""
