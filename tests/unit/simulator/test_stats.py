"""SimStats: the exact shape of GET /_sim/stats, counting and reset."""

from __future__ import annotations

import msgspec
import pytest

from candlevault.simulator.stats import SimStats, archive_path_key

VENUES = ["binance", "binance-usdm", "bybit-spot", "bybit-linear", "archive"]
EMPTY_VENUE = {"requests": {}, "weight": 0, "candles": 0, "status": {"200": 0, "429": 0, "418": 0}}


def test_an_empty_ledger_has_every_venue_and_the_usual_statuses() -> None:
    snapshot = SimStats().snapshot()
    assert snapshot == {"venues": dict.fromkeys(VENUES, EMPTY_VENUE), "ws": {}}
    assert list(snapshot["venues"]) == VENUES


def test_recording_counts_requests_weight_candles_and_statuses() -> None:
    stats = SimStats()
    for _ in range(12):
        stats.record("binance", "/api/v3/klines", 200, weight=2, candles=1000)
    stats.record("binance", "/api/v3/klines", 429, weight=2)
    stats.record("binance", "/api/v3/exchangeInfo", 200, weight=20)
    stats.record("bybit-spot", "/v5/market/kline", 403)
    stats.record("bybit-spot", "/v5/market/kline", 502)
    venues = stats.snapshot()["venues"]
    assert venues["binance"] == {
        "requests": {"/api/v3/exchangeInfo": 1, "/api/v3/klines": 13},
        "weight": 46,
        "candles": 12000,
        "status": {"200": 13, "429": 1, "418": 0},
    }
    assert venues["bybit-spot"]["status"] == {
        "200": 0,
        "429": 0,
        "418": 0,
        "403": 1,
        "502": 1,
    }
    assert venues["binance-usdm"] == EMPTY_VENUE


def test_archive_requests_are_counted_per_directory_and_file_kind() -> None:
    stats = SimStats()
    base = "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-"
    stats.record("archive", base + "15.zip", 200, candles=1440)
    stats.record("archive", base + "16.zip", 200, candles=1440)
    stats.record("archive", base + "16.zip.CHECKSUM", 200)
    stats.record("archive", "/data/futures/um/monthly/klines/BTCUSDT/1h/x.zip", 404)
    archive = stats.snapshot()["venues"]["archive"]
    assert archive["requests"] == {
        "/data/futures/um/monthly/klines/*.zip": 1,
        "/data/spot/daily/klines/*.CHECKSUM": 1,
        "/data/spot/daily/klines/*.zip": 2,
    }
    assert archive["candles"] == 2880
    assert archive["status"] == {"200": 3, "429": 0, "418": 0, "404": 1}


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/data/spot/monthly/klines/ETHUSDT/1d/ETHUSDT-1d-2022-08.zip",
         "/data/spot/monthly/klines/*.zip"),
        ("/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2023-11-17.zip",
         "/data/spot/daily/aggTrades/*.zip"),
        ("/data/spot/daily/klines", "/data/spot/daily/klines"),
        ("/favicon.ico", "/favicon.ico"),
    ],
)  # fmt: skip
def test_archive_path_keys(path: str, key: str) -> None:
    assert archive_path_key(path) == key


def test_reset_clears_every_count() -> None:
    stats = SimStats()
    stats.record("bybit-linear", "/v5/market/kline", 200, candles=200)
    stats.record("archive", "/data/spot/daily/klines/A/1m/A-1m-2024-01-01.zip", 200)
    stats.reset()
    assert stats.snapshot() == SimStats().snapshot()


def test_the_snapshot_is_json_and_detached_from_the_ledger() -> None:
    stats = SimStats()
    stats.record("binance", "/api/v3/klines", 200, weight=2, candles=500)
    snapshot = stats.snapshot()
    stats.record("binance", "/api/v3/klines", 200, weight=2, candles=500)
    assert msgspec.json.decode(msgspec.json.encode(snapshot)) == snapshot
    assert snapshot["venues"]["binance"]["candles"] == 500


def test_an_unknown_venue_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kraken"):
        SimStats().record("kraken", "/", 200)
