"""`candlevault sim` as a user runs it: a separate process, on loopback, deterministic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from candlevault.simulator.server import SimServer
from candlevault.simulator.world import SimConfig, SimWorld

WINDOW = "symbol=BTCUSDT&interval=1m&startTime=1600000000000&limit=1000"


@contextmanager
def running_sim(*args: str) -> Iterator[dict[str, str]]:
    """Start `candlevault sim --port 0 ...`; yield the CANDLEVAULT_* lines it printed."""
    with subprocess.Popen(
        [sys.executable, "-m", "candlevault", "sim", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    ) as proc:
        try:
            assert proc.stdout is not None
            env: dict[str, str] = {}
            expected = set(SimServer(SimWorld(SimConfig())).env())  # the names it prints
            while not expected <= env.keys():
                line = proc.stdout.readline()
                assert line, f"sim exited early: {proc.stderr.read() if proc.stderr else ''}"
                name, _, value = line.strip().partition("=")
                env[name] = value
            yield env
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


async def _get(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def test_it_prints_where_it_listens_and_two_processes_agree() -> None:
    with running_sim("--seed", "5") as first, running_sim("--seed", "5") as second:
        assert set(first) == {
            "CANDLEVAULT_BINANCE_REST_URL",
            "CANDLEVAULT_BINANCE_USDM_REST_URL",
            "CANDLEVAULT_BINANCE_ARCHIVE_URL",
            "CANDLEVAULT_BYBIT_REST_URL",
            "CANDLEVAULT_CLOCK_URL",
            "CANDLEVAULT_BINANCE_WS_URL",
            "CANDLEVAULT_BINANCE_USDM_WS_URL",
            "CANDLEVAULT_BYBIT_WS_URL",
        }
        for env in (first, second):
            assert env["CANDLEVAULT_BINANCE_REST_URL"].startswith("http://127.0.0.1:")
            for name in ("BINANCE_WS_URL", "BINANCE_USDM_WS_URL", "BYBIT_WS_URL"):
                assert env[f"CANDLEVAULT_{name}"].startswith("ws://127.0.0.1:")
        assert first["CANDLEVAULT_BINANCE_REST_URL"] != second["CANDLEVAULT_BINANCE_REST_URL"]
        a = await _get(f"{first['CANDLEVAULT_BINANCE_REST_URL']}/api/v3/klines?{WINDOW}")
        b = await _get(f"{second['CANDLEVAULT_BINANCE_REST_URL']}/api/v3/klines?{WINDOW}")
        trades = "symbol=BTCUSDT&startTime=1600000000000&endTime=1600000600000&limit=1000"
        c = await _get(f"{first['CANDLEVAULT_BINANCE_REST_URL']}/api/v3/aggTrades?{trades}")
        d = await _get(f"{second['CANDLEVAULT_BINANCE_REST_URL']}/api/v3/aggTrades?{trades}")
        clock = await _get(first["CANDLEVAULT_CLOCK_URL"])
    assert a == b
    assert a.count(b"],[") == 999
    assert c == d
    assert b'"speed":1.0' in clock


async def test_another_seed_is_another_market() -> None:
    with running_sim("--seed", "5") as first, running_sim("--seed", "6") as second:
        a = await _get(f"{first['CANDLEVAULT_BINANCE_REST_URL']}/api/v3/klines?{WINDOW}")
        b = await _get(f"{second['CANDLEVAULT_BINANCE_REST_URL']}/api/v3/klines?{WINDOW}")
    assert a != b


def test_it_refuses_a_non_loopback_host() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "candlevault", "sim", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_arguments_are_named() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "candlevault", "sim", "--symbols", "BTC/USDT", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "BTC/USDT" in done.stderr


def test_bad_fault_settings_are_named() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "candlevault", "sim", "--faults", '{"nope": 1}', "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "nope" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_outages_and_listings_are_named() -> None:
    for flag, value in (("--outages", "2020-01-02/2020-01-01"), ("--listed", "BTCUSDT")):
        done = subprocess.run(
            [sys.executable, "-m", "candlevault", "sim", flag, value, "--port", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2, flag
        assert value in done.stderr
