"""Authenticate alert webhooks: a bearer token, or the source's own HMAC signature where it has one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from bot.alerts.errors import UnauthorizedError


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def pagerduty_signature_ok(body: bytes, header: str, secret: str) -> bool:
    """Return whether one of the ``v1=<hex>`` signatures in X-PagerDuty-Signature matches the body."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for part in header.split(","):
        version, _, digest = part.strip().partition("=")
        if version == "v1" and hmac.compare_digest(digest.encode(), expected.encode()):
            return True
    return False


def authenticate(
    source: str, headers: Mapping[str, str], body: bytes, *, token: str | None, secrets: Mapping[str, str]
) -> str:
    """Return how the request proved itself ("bearer" or "signature"), or raise UnauthorizedError.

    Args:
        source: the alert source (the path's last part).
        headers: request headers, names lower-cased.
        body: the raw request body (signatures cover the exact bytes).
        token: the expected bearer token (REMEDIATE_ALERTS_TOKEN); None accepts no bearer token.
        secrets: per source, the signing secret of sources that sign (``pagerduty``).
    """
    secret = secrets.get(source)
    if source == "pagerduty" and secret and headers.get("x-pagerduty-signature"):
        if not headers["x-pagerduty-signature"].isascii():
            raise UnauthorizedError(
                "X-PagerDuty-Signature holds non-ASCII characters; expected v1=<hex HMAC-SHA256 of the body>"
            )
        if pagerduty_signature_ok(body, headers["x-pagerduty-signature"], secret):
            return "signature"
        raise UnauthorizedError("X-PagerDuty-Signature does not match the body; check the webhook secret")
    given = _bearer(headers)
    if token is None and not secret:
        raise UnauthorizedError(
            "alert intake is closed: set REMEDIATE_ALERTS_TOKEN (alerts_token) to open it"
        )
    if given is None:
        raise UnauthorizedError("missing credentials: send 'Authorization: Bearer <REMEDIATE_ALERTS_TOKEN>'")
    if token is None or not hmac.compare_digest(given.encode(), token.encode()):
        raise UnauthorizedError("the bearer token is wrong")
    return "bearer"
