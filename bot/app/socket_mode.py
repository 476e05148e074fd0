"""Socket Mode: the Bolt app opens a websocket to Slack and gets commands, events and clicks over it.

slack_sdk's built-in client (what Bolt's `SocketModeHandler` uses) calls `apps.connections.open`
through the app's own Web API client, so it honours ``SLACK_API_URL`` like every other call (the
local sandbox answers it too). Acks go back over the websocket; the work after an ack runs on the
app's pool as in HTTP mode. The client pings every 10 s and reconnects by itself.
"""

from __future__ import annotations

import contextlib
import socket

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.app.errors import SocketModeError


def open_socket_mode(bolt: App, app_token: str, *, concurrency: int = 10) -> SocketModeHandler:
    """Connect the app over Socket Mode with its app-level token; raise `SocketModeError` when refused.

    ``concurrency`` threads dispatch envelopes (verify, route, ack), like the HTTP request threads.
    """
    handler = SocketModeHandler(bolt, app_token, concurrency=concurrency)
    try:
        handler.connect()
    except SlackApiError as exc:
        close_socket_mode(handler)
        data = exc.response.data
        error = data.get("error") if isinstance(data, dict) else f"HTTP {exc.response.status_code}"
        raise SocketModeError(
            f"Slack refused apps.connections.open ({error}); SLACK_APP_TOKEN must be an app-level "
            "xapp- token with connections:write"
        ) from None
    except OSError as exc:
        close_socket_mode(handler)
        raise SocketModeError(f"cannot reach Slack at {bolt.client.base_url} ({exc})") from None
    return handler


def close_socket_mode(handler: SocketModeHandler) -> None:
    """Close the connection and stop the client's threads, promptly.

    The client closes its socket without shutting it down, so its reader thread would sit in
    ``recv()`` until the 3 s receive timeout, and its queue thread waits up to 1 s for a message;
    marking the session over, shutting the socket's read side and waking the queue ends both at once.
    """
    client = handler.client
    client.closed = True
    client.auto_reconnect_enabled = False
    client.current_session_state.terminated = True
    session = client.current_session
    if session is not None and session.sock is not None:
        with contextlib.suppress(OSError):
            session.sock.shutdown(socket.SHUT_RD)
    client.message_queue.put(None)  # type: ignore[arg-type]  # wakes the queue thread; skipped as empty
    handler.close()
