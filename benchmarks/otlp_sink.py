"""For benchmarks/bench_bot.py's tracing overhead: a local OTLP/HTTP sink and the side-by-side table."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Row = tuple[str, list[float], list[float], float]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Sink:
    """A local OTLP/HTTP endpoint that takes every export and answers 200 (the traced app's collector)."""

    def __init__(self) -> None:
        self.exports = self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.bytes += len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                sink.exports += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def print_overhead(rows: list[Row]) -> bool:
    """Print tracing off and on side by side with the p99 ratio; return whether all are within target."""
    print("\ntracing overhead (on: spans exported over OTLP/HTTP to a local sink; off: the default, no SDK)")
    head = f"{'measure':<42}{'off p50':>9}{'off p99':>9}{'on p50':>9}{'on p99':>9}{'on/off p99':>12}  target"
    print(head + "\n" + "-" * len(head))
    ok = True
    for label, on, off, target in rows:
        ratio = pct(on, 99) / pct(off, 99)
        ok &= ratio <= target
        print(
            f"{label:<42}{pct(off, 50):>9.1f}{pct(off, 99):>9.1f}{pct(on, 50):>9.1f}{pct(on, 99):>9.1f}"
            f"{ratio:>12.2f}  <= {target:.2f}: {'met' if ratio <= target else 'MISSED'}"
        )
    return ok


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process has used so far, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_cpu(cpu: dict[str, float], requests: int) -> None:
    """Print each app's own CPU per Slack request (the ack and the work after it), beside tracing off."""
    per = {name: seconds * 1000 / requests for name, seconds in cpu.items()}
    shown = [f"{name} {ms:.2f} ({ms / per['off']:.2f}x)" for name, ms in per.items()]
    print("app CPU per Slack request, ms (x off): " + ", ".join(shown))
