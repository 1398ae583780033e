"""`candlevault serve --simulate` as a newcomer runs it: candles, health and stats come
up with nothing else installed; while it runs, `bootstrap` and `import` go through its
admin API instead of failing on the data dir's lock; Ctrl-C stops it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.contract.recorded import fixtures_dir
from tests.e2e.test_bootstrap_cli import _cli
from tests.support.waiting import wait_until

TOKEN = "e2e-token"


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `serve --simulate` on a free port; yield its URL (from serve.json)."""
    env = {**os.environ, "CANDLEVAULT_DATA_DIR": str(data_dir), "CANDLEVAULT_ADMIN_TOKEN": TOKEN}
    args = ["serve", "--simulate", "--port", "0", "--symbols", "BTCUSDT", "--sim-days", "1"]
    log = data_dir.parent / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "candlevault", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    endpoint = data_dir / "serve.json"

    def listening() -> bool:
        if server.poll() is not None:  # it died: fail at once, with its log
            raise RuntimeError(f"serve exited: {log.read_text()}")
        return endpoint.is_file()

    try:
        wait_until(listening, timeout=60, interval=0.1, message="no serve.json")
        yield orjson.loads(endpoint.read_bytes())["url"], server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _get(url: str, token: str | None = None) -> tuple[int, object]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, orjson.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


@pytest.mark.timeout(180)
def test_serve_simulate_serves_candles_and_takes_the_cli_writes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "files"
    folder.mkdir()
    klines = Path(fixtures_dir()) / "binance" / "klines"
    name = "ETHUSDT-1m-2022-08-15.zip"
    (folder / name).write_bytes((klines / name).read_bytes())
    with serving(data_dir) as (url, server):
        status, body = _get(f"{url}/api/v1/market/candles/BTCUSDT/1h?limit=24")
        assert status == 200, body
        assert isinstance(body, dict)
        assert body["count"] == 24
        assert body["open_candle"] is True
        status, health = _get(f"{url}/healthz")
        assert status == 200
        assert isinstance(health, dict)
        assert health["hot_cache"] == "memory"
        env = {"CANDLEVAULT_ADMIN_TOKEN": TOKEN}
        since = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 6 * 3600))
        done = _cli(env, data_dir, "bootstrap", "ETHUSDT", "--since", since)
        assert done.returncode == 0, done.stderr
        assert "holds the data dir: sent to it" in done.stderr
        assert "binance ETHUSDT:" in done.stderr
        imported = _cli(env, data_dir, "import", "ETHUSDT", "--from", str(folder))
        assert imported.returncode == 0, imported.stderr
        assert "ETHUSDT: 1 files, 1,440 candles imported, 0 refused" in imported.stderr
        no_token = _cli({"CANDLEVAULT_ADMIN_TOKEN": ""}, data_dir, "bootstrap", "ETHUSDT")
        assert no_token.returncode == 2
        assert "set CANDLEVAULT_ADMIN_TOKEN" in no_token.stderr
        status, cached = _get(
            f"{url}/api/v1/market/candles/ETHUSDT/1m?start_time=2022-08-15&limit=1440"
            "&cache_strategy=cache_only"
        )
        assert status == 200
        assert isinstance(cached, dict)
        assert cached["count"] == 1440
        assert cached["complete"] is True
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    assert not (data_dir / "serve.json").exists()
