"""A lean HTTP/1.1 load generator for `bench.serve`, run in its own process.

The server under test must be the limit, never this client, so it does as little as a
client can: one uvloop `asyncio.Protocol` per keep-alive connection, requests written as
prebuilt bytes, replies parsed only as far as the status line and `Content-Length`
(the body is counted, not kept), and the next request sent from the callback that saw
the last byte of the previous reply (closed loop, no coroutine per request). Its own
ceiling is what it reaches against `bench.floor`, a server that does nothing.

Input on stdin: a JSON list of request targets (`/api/v1/...?...`). Each connection
walks the list from its own offset (or picks at random with `--random SEED`). A warm-up
(`--warmup-requests` or `--warmup-seconds`) runs first and is not counted; then either
`--requests N` or `--seconds S` is measured. Output on stdout, one JSON object:
requests, seconds, req_per_s, latency percentiles (ms), statuses, body bytes, and the
CPU seconds this process and `--server-pid` (from /proc) spent while measuring.

    .venv/bin/python -m bench.loadgen --port 8000 --connections 16 --seconds 5 < targets.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from array import array
from dataclasses import dataclass
from typing import Any

import uvloop


@dataclass(frozen=True)
class Plan:
    """What one run does."""

    port: int
    targets: list[str]
    connections: int
    requests: int | None  # measured requests, or
    seconds: float | None  # measured wall seconds
    warmup_requests: int = 0
    warmup_seconds: float = 0.0
    seed: int | None = None
    server_pid: int | None = None


class Run:
    """The shared counters of one run and the decision to send another request."""

    def __init__(self, plan: Plan) -> None:
        host = f"127.0.0.1:{plan.port}"
        self.plan = plan
        self.requests = [
            f"GET {t} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
            for t in plan.targets
        ]
        self.rng = random.Random(plan.seed) if plan.seed is not None else None
        self.measuring = plan.warmup_requests <= 0 and plan.warmup_seconds <= 0
        self.warm_done = 0
        self.warm_until = time.perf_counter() + plan.warmup_seconds
        self.issued = 0  # measured requests sent
        self.latencies = array("q")
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []  # the first few replies other than 200, request and body
        self.body_bytes = 0
        self.busy = 0
        self.started = 0.0
        self.ended = 0.0
        self.cpu0: tuple[float, float | None] = (0.0, None)  # (ours, the server's)
        self.cpu1: tuple[float, float | None] = (0.0, None)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.measuring:
            self._start_measuring()

    def _start_measuring(self) -> None:
        self.measuring = True
        self.started = time.perf_counter()
        self.cpu0 = (time.process_time(), cpu_s(self.plan.server_pid))

    def next_request(self, conn: Connection) -> bytes | None:
        """The request `conn` sends next, or None when the run is over."""
        plan = self.plan
        if not self.measuring:
            warm = (
                self.warm_done >= plan.warmup_requests
                if plan.warmup_requests > 0
                else time.perf_counter() >= self.warm_until
            )
            if warm:
                self._start_measuring()
        if self.measuring:
            if plan.requests is not None:
                if self.issued >= plan.requests:
                    return None
            elif time.perf_counter() - self.started >= (plan.seconds or 0.0):
                return None
            self.issued += 1
        if self.rng is not None:
            return self.rng.choice(self.requests)
        conn.cursor = (conn.cursor + 1) % len(self.requests)
        return self.requests[conn.cursor]

    def completed(self, latency_ns: int, status: int, body: int) -> None:
        """Count one reply (only while measuring)."""
        if not self.measuring:
            self.warm_done += 1
            return
        self.latencies.append(latency_ns)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.body_bytes += body

    def idle(self) -> None:
        """A connection has nothing more to send: the run ends with the last one."""
        self.busy -= 1
        if self.busy == 0 and not self.done.done():
            self.ended = time.perf_counter()
            self.cpu1 = (time.process_time(), cpu_s(self.plan.server_pid))
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        """End the run with `error`."""
        if not self.done.done():
            self.done.set_exception(error)


class Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the head, count the body, send again."""

    def __init__(self, run: Run, index: int) -> None:
        self.run = run
        self.cursor = index * len(run.requests) // run.plan.connections - 1
        self.transport: Any = None  # uvloop's TCPTransport (no asyncio.Transport subclass)
        self.head = bytearray()
        self.remaining = -1  # body bytes still to come; -1: reading the head
        self.length = 0
        self.status = 0
        self.sent_ns = 0
        self.request = b""
        self.error_body: bytearray | None = None  # kept only for a reply other than 200

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def start(self) -> None:
        """Send the first request."""
        self.run.busy += 1
        self._send()

    def _send(self) -> None:
        request = self.run.next_request(self)
        if request is None:
            self.run.idle()
            return
        assert self.transport is not None
        self.request = request
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.remaining < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.head[9:12])
            self.length = _content_length(bytes(self.head[:end]))
            self.remaining = self.length - (len(self.head) - end - 4)
            if self.status != 200:
                self.error_body = self.head[end + 4 :]
            self.head.clear()
        else:
            self.remaining -= len(data)
            if self.error_body is not None:
                self.error_body += data
        if self.remaining > 0:
            return
        if self.remaining < 0:
            self.run.fail(RuntimeError("more bytes than Content-Length (no pipelining here)"))
            return
        self.run.completed(time.perf_counter_ns() - self.sent_ns, self.status, self.length)
        if self.error_body is not None:
            if len(self.run.errors) < 5:
                line = self.request.split(b"\r\n", 1)[0]
                body = bytes(self.error_body[:300]).decode(errors="replace")
                self.run.errors.append(f"{line.decode()} -> {self.status} {body}")
            self.error_body = None
        self.remaining = -1
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.run.done.done():
            self.run.fail(ConnectionError(f"server closed the connection: {exc}"))


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"no Content-Length in {head[:200]!r}")
    start = at + len(b"\r\ncontent-length:")
    end = lower.find(b"\r\n", start)
    return int(lower[start : end if end >= 0 else len(lower)])


def cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) used by process `pid` so far; None if unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(plan: Plan) -> dict[str, object]:
    """Run `plan`; return its figures."""
    loop = asyncio.get_running_loop()
    state = Run(plan)
    conns: list[Connection] = []
    for index in range(plan.connections):
        _, conn = await loop.create_connection(
            lambda i=index: Connection(state, i),  # type: ignore[misc]
            "127.0.0.1",
            plan.port,
        )
        conns.append(conn)
    for conn in conns:
        conn.start()
    try:
        await state.done
    finally:
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
    return summary(state)


def summary(state: Run) -> dict[str, object]:
    """The figures of a finished run."""
    seconds = state.ended - state.started
    ordered = sorted(state.latencies)
    n = len(ordered)

    def pct(q: float) -> float | None:
        return ordered[min(n - 1, int(q * n))] / 1e6 if n else None

    client_cpu = state.cpu1[0] - state.cpu0[0]
    s0, s1 = state.cpu0[1], state.cpu1[1]
    return {
        "requests": n,
        "seconds": seconds,
        "req_per_s": n / seconds if seconds > 0 else None,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] / 1e6 if n else None,
        "mean_ms": sum(ordered) / n / 1e6 if n else None,
        "statuses": {str(k): v for k, v in sorted(state.statuses.items())},
        "errors": state.errors,
        "body_bytes": state.body_bytes,
        "client_cpu_s": client_cpu,
        "server_cpu_s": None if s0 is None or s1 is None else s1 - s0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup-requests", type=int, default=0)
    parser.add_argument("--warmup-seconds", type=float, default=0.0)
    parser.add_argument("--random", type=int, dest="seed", help="pick targets at random")
    parser.add_argument("--server-pid", type=int, help="report this process's CPU too")
    args = parser.parse_args()
    if (args.requests is None) == (args.seconds is None):
        parser.error("give exactly one of --requests and --seconds")
    targets = json.load(sys.stdin)
    plan = Plan(
        args.port,
        targets,
        args.connections,
        args.requests,
        args.seconds,
        args.warmup_requests,
        args.warmup_seconds,
        args.seed,
        args.server_pid,
    )
    print(json.dumps(uvloop.run(run(plan))), flush=True)


if __name__ == "__main__":
    main()
