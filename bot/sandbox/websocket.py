"""The server side of RFC 6455 WebSocket, just enough for Socket Mode: handshake, text, ping/pong, close.

The sandbox's HTTP handler answers the upgrade (`accept_key`) and hands its socket to `WebSocket`,
which reads client frames (masked, as RFC 6455 requires of clients; fragmented text is joined;
control frames may come between fragments) and writes unmasked server frames. Writes are
serialised by a lock, so the delivering thread and the reading thread may both send.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import socket
import struct
import threading
from typing import NamedTuple

from bot.sandbox.errors import ProtocolError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 16 * 1024 * 1024

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG = 1000, 1001, 1002, 1009


class Message(NamedTuple):
    """One complete message from the client: a text (fragments joined) or a control frame."""

    opcode: int
    data: bytes


def accept_key(key: str) -> str:
    """Return `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode("ascii")).digest()).decode("ascii")


def frame(opcode: int, data: bytes) -> bytes:
    """Return one final, unmasked server frame."""
    head = bytes([0x80 | opcode])
    size = len(data)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += struct.pack("!BH", 126, size)
    else:
        head += struct.pack("!BQ", 127, size)
    return head + data


def _unmask(data: bytes, key: bytes) -> bytes:
    # XOR with the 4-byte key repeated; done on big integers, which is fast enough for a sandbox
    if not data:
        return data
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    n = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return n.to_bytes(len(data), "big")


class WebSocket:
    """An open server-side connection: `receive()` the client's messages, `send_text` / `ping` / `close`."""

    def __init__(self, sock: socket.socket, reader: io.BufferedIOBase) -> None:
        self.sock = sock
        self.reader = reader
        self._send_lock = threading.Lock()
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = self.reader.read(n) if n else b""
        if len(data) < n:
            raise ConnectionError("the client closed the connection")
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = self._read(2)
        if b1 & 0x70:
            raise ProtocolError("reserved bits set without a negotiated extension")
        if not b2 & 0x80:
            raise ProtocolError("client frames must be masked")
        size = b2 & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read(8))
        if size > MAX_MESSAGE:
            raise ProtocolError(f"frame of {size} bytes is too big", CLOSE_TOO_BIG)
        key = self._read(4)
        return bool(b1 & 0x80), b1 & 0x0F, _unmask(self._read(size), key)

    def receive(self) -> Message:
        """Block for the next message; answers pings itself and returns them too (for bookkeeping)."""
        parts: list[bytes] = []
        opcode_started: int | None = None
        while True:
            fin, opcode, data = self._frame()
            if opcode >= OP_CLOSE:
                if not fin or len(data) > 125:
                    raise ProtocolError("control frames must be final and at most 125 bytes")
                if opcode == OP_PING:
                    self.send(OP_PONG, data)
                if opcode in (OP_CLOSE, OP_PING, OP_PONG):
                    return Message(opcode, data)
                raise ProtocolError(f"unknown control opcode {opcode:#x}")
            if opcode == OP_CONTINUATION:
                if opcode_started is None:
                    raise ProtocolError("continuation frame without a message to continue")
            elif opcode in (OP_TEXT, OP_BINARY):
                if opcode_started is not None:
                    raise ProtocolError("a new message started before the last one finished")
                opcode_started = opcode
            else:
                raise ProtocolError(f"unknown opcode {opcode:#x}")
            parts.append(data)
            if sum(map(len, parts)) > MAX_MESSAGE:
                raise ProtocolError("message too big", CLOSE_TOO_BIG)
            if fin:
                return Message(opcode_started, b"".join(parts))

    def send(self, opcode: int, data: bytes) -> None:
        """Send one frame; raises ConnectionError once the connection is closed."""
        with self._send_lock:
            if self.closed and opcode != OP_CLOSE:
                raise ConnectionError("the connection is closed")
            self.sock.sendall(frame(opcode, data))

    def send_text(self, text: str) -> None:
        """Send a text message."""
        self.send(OP_TEXT, text.encode("utf-8"))

    def ping(self, data: bytes = b"") -> None:
        """Send a ping (the client answers with a pong carrying the same data)."""
        self.send(OP_PING, data)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (once) and shut the socket down, which ends the reading thread."""
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.sendall(frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123]))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
