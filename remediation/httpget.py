"""GET a JSON document over plain HTTP (urllib), the one place where its failures are told apart.

Used by the Opsgenie schedule reader and the Prometheus feeds (snapshots and graph discovery). Every
failure becomes `JsonGetError`, carrying the HTTP status, the reason and the ``error`` field of a JSON
error answer, so each caller can word its own message for its own reader.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from remediation.errors import JsonGetError


def error_field(exc: urllib.error.HTTPError) -> str | None:
    """Return the ``error`` field of an HTTP error answer's JSON body, None when it has none."""
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return None
    return str(body["error"]) if isinstance(body, dict) and "error" in body else None


def get_json(url: str, *, timeout: float, headers: Mapping[str, str] | None = None) -> Any:
    """Return the decoded JSON answer of ``GET url``; raise JsonGetError when there is none."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        reason = str(exc.reason)
        raise JsonGetError(
            f"HTTP {exc.code} {reason}", kind="http", status=exc.code, reason=reason, error=error_field(exc)
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise JsonGetError(str(exc), kind="network", reason=str(getattr(exc, "reason", exc))) from None
    except ValueError:
        raise JsonGetError("the answer is not JSON", kind="not_json") from None
