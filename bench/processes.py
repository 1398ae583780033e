"""The processes `bench.serve` runs, each its own `sys.executable` on 127.0.0.1.

- the simulator (`candlevault sim`, any speed, start and listings), which prints the
  `CANDLEVAULT_*_URL` lines that point candlevault at it;
- candlevault (`candlevault serve --port 0`) configured by `CANDLEVAULT_*` variables
  only (every inherited one dropped, so a developer's shell cannot change the engines),
  found through the `serve.json` it writes once listening;
- the floor server (`bench.floor`) and the load generator (`bench.loadgen`).

Servers log to files, not pipes (a chatty server never blocks on a full pipe), are
stopped with SIGTERM and, if they do not stop within 20 s, killed; a failed start shows
the end of the log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class Server:
    """A started server process: its pid, base URL and port."""

    pid: int
    url: str

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any CANDLEVAULT_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEVAULT_")}
    return {**env, **values}


@contextmanager
def started(
    args: list[str], env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], IO[str]]]:
    """Start `sys.executable args`; yield it and its log; stop it at the end."""
    with (
        tempfile.TemporaryFile("w+") as log,
        subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=log, text=True, env=env
        ) as proc,
    ):
        try:
            yield proc, log
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _tail(log: IO[str]) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]


def read_lines(out: IO[str], last: str, timeout_s: float = 60.0) -> dict[str, str]:
    """Read NAME=VALUE lines until the one named `last` (or `timeout_s` passes)."""
    found: dict[str, str] = {}

    def read() -> None:
        for line in itertools.islice(out, 50):
            name, _, value = line.strip().partition("=")
            found[name] = value
            if name == last:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    return dict(found)


@contextmanager
def simulator(*args: str) -> Iterator[tuple[Server, dict[str, str]]]:
    """`candlevault sim --port 0 args`; yield it and the CANDLEVAULT_* URLs it printed."""
    with started(["-m", "candlevault", "sim", "--port", "0", *args], clean_env()) as (proc, log):
        assert proc.stdout is not None
        env = read_lines(proc.stdout, "CANDLEVAULT_CLOCK_URL")
        if "CANDLEVAULT_CLOCK_URL" not in env:
            raise RuntimeError(f"the simulator did not start:\n{_tail(log)}")
        yield Server(proc.pid, env["CANDLEVAULT_BINANCE_REST_URL"]), env


@contextmanager
def floor(body_file: Path) -> Iterator[Server]:
    """`bench.floor` serving the bytes of `body_file`."""
    with started(["-m", "bench.floor", str(body_file)], clean_env()) as (proc, log):
        assert proc.stdout is not None
        port = read_lines(proc.stdout, "PORT").get("PORT")
        if port is None:
            raise RuntimeError(f"the floor server did not start:\n{_tail(log)}")
        yield Server(proc.pid, f"http://127.0.0.1:{port}")


@contextmanager
def candlevault(data_dir: Path, env: dict[str, str]) -> Iterator[Server]:
    """`candlevault serve --port 0` with `env` (CANDLEVAULT_* variables) in `data_dir`."""
    values = {**env, "CANDLEVAULT_DATA_DIR": str(data_dir)}
    args = ["-m", "candlevault", "serve", "--host", "127.0.0.1", "--port", "0"]
    with started(args, clean_env(**values)) as (proc, log):
        endpoint = data_dir / "serve.json"
        deadline = time.monotonic() + 60
        while not endpoint.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"candlevault serve did not start:\n{_tail(log)}")
            time.sleep(0.05)
        url = json.loads(endpoint.read_text())["url"]
        yield Server(proc.pid, url)


async def load(
    server: Server,
    targets: list[str],
    *,
    connections: int = 1,
    requests: int | None = None,
    seconds: float | None = None,
    warmup_requests: int = 0,
    warmup_seconds: float = 0.0,
    seed: int | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Run `bench.loadgen` against `server` in its own process; return its figures
    (`strict`: raise on any reply other than 200, with the first few shown)."""
    args = ["-m", "bench.loadgen", "--port", str(server.port), "--server-pid", str(server.pid)]
    args += ["--connections", str(connections)]
    args += ["--requests", str(requests)] if requests is not None else ["--seconds", str(seconds)]
    args += ["--warmup-requests", str(warmup_requests), "--warmup-seconds", str(warmup_seconds)]
    if seed is not None:
        args += ["--random", str(seed)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate(json.dumps(targets).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.decode()[-2000:]}")
    figures: dict[str, Any] = json.loads(out)
    bad = {s: n for s, n in figures["statuses"].items() if s != "200"}
    if strict and (bad or figures["errors"]):
        errors = "\n".join(figures["errors"])
        raise RuntimeError(f"replies other than 200 from {server.url}: {bad}\n{errors}")
    return figures
