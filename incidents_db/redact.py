"""Credentials out of URLs before a person or a log sees them (``config show``, errors, log lines).

It lives here, in the lowest package that knows database URLs, so the store's own errors, the
executors and the bot all mask the same way: a database URL through SQLAlchemy (``hide_password``),
any other URL by masking its userinfo, query values whose name sounds secret (``token``, ``key``,
``sig``, ``password`` ...) and the path of a Slack incoming webhook, which is the secret itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
from urllib.parse import unquote, urlsplit

MASK = "***"
_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_SECRET_NAME = re.compile(r"token|secret|passw|pwd|key|sig|auth|credential|session", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def redact_url(url: str) -> str:
    """Return the URL with its password, secret query values and webhook secrets replaced by ``***``."""
    if "://" not in url:
        # Not a URL, but a value meant to be one (a bad setting): hide anything before an "@".
        return f"{MASK}@{url.rsplit('@', 1)[1]}" if "@" in url else url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _WEB_SCHEMES:
        import sqlalchemy as sa  # here, not at the top: the CLI imports this module on every start

        # A URL SQLAlchemy cannot read still gets the generic masking below.
        with contextlib.suppress(sa.exc.ArgumentError, ValueError):
            url = sa.engine.make_url(url).render_as_string(hide_password=True)
    return _mask_parts(url)


def redact_text(text: str) -> str:
    """Return text (an error message, a log line) with every URL in it passed through `redact_url`."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text) if "://" in text else text


def _mask_parts(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host: mask the whole userinfo by hand
        return re.sub(r"//[^/@]*@", f"//{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        if colon and user:
            netloc = f"{user}:{MASK}@{host}"
        elif colon or parts.scheme.lower() in _WEB_SCHEMES:
            netloc = f"{MASK}@{host}"  # a lone userinfo on the web is usually a token (https://TOKEN@host)
    path = parts.path
    if parts.hostname and parts.hostname.endswith("hooks.slack.com") and path.startswith("/services/"):
        path = f"/services/{MASK}"
    # Rebuilt by hand: urlunsplit would drop the empty authority of sqlite:////abs/path.
    masked = f"{parts.scheme}://{netloc}{path}"
    if parts.query or url.endswith("?"):
        masked += "?" + "&".join(_mask_pair(pair) for pair in parts.query.split("&"))
    return masked + (f"#{parts.fragment}" if parts.fragment else "")


def _mask_pair(pair: str) -> str:
    name, eq, _value = pair.partition("=")
    return f"{name}={MASK}" if eq and _SECRET_NAME.search(unquote(name)) else pair


class RedactingFormatter(logging.Formatter):
    """A log formatter that passes each formatted line (traceback included) through `redact_text`."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as usual, then mask credentials in any URL it contains."""
        return redact_text(super().format(record))


def log_to_stderr(level: str | int, fmt: str = "%(asctime)s %(levelname)s %(name)s %(message)s") -> None:
    """Configure the root logger like ``logging.basicConfig``, with credentials in URLs masked."""
    logging.basicConfig(level=level, format=fmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(fmt))
