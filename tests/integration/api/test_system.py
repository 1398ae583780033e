"""The system endpoints over real HTTP: liveness, cache figures, data health and the
Prometheus metrics, checked against what the service did and what the simulator saw."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from candlevault.domain.timeframes import venue_timeframes
from candlevault.domain.venues import Venue
from tests.integration.api.service import Service, running_service, track
from tests.integration.exchanges.venues import START_MS, Sim, running_sim

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START_MINUTE = START_MS - START_MS % MINUTE  # the forming minute's open
SINCE = START_MS - 2 * DAY
FIRST_MINUTE = SINCE + -SINCE % MINUTE
HISTORY_MINUTES = (START_MINUTE - FIRST_MINUTE) // MINUTE
CANDLES = "/api/v1/market/candles/ETHUSDT/1h"
PAST_WINDOW = {"start_time": FIRST_MINUTE + 2 * HOUR, "limit": 10}  # closed hours only
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(service: Service) -> Samples:
    """GET /metrics and parse it: {(sample name, labels): value}."""
    async with service.http.get(service.url + "/metrics") as reply:
        assert reply.status == 200
        assert reply.content_type == "text/plain"
        text = await reply.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def sim_requests(sim: Sim, path: str) -> int:
    return int((await sim.stats())["venues"]["binance"]["requests"].get(path, 0))


async def test_healthz_is_ok_with_the_memory_hot_cache(tmp_path: Path) -> None:
    async with (
        running_sim() as sim,
        running_service(sim, tmp_path, bootstrap_since=SINCE) as service,
    ):
        status, body = await service.get("/healthz")
        assert status == 200, body
        assert body["status"] == "ok"
        assert body["degraded"] == []
        assert body["hot_cache"] == "memory"
        assert body["venues"] == {}  # nothing tracked: no venue to be up
        await track(service)
        _, body = await service.get("/healthz")
        assert body["status"] == "ok"
        assert body["venues"] == {"binance": "up"}


async def test_data_health_shows_full_coverage_and_freshness_after_a_bootstrap(
    tmp_path: Path,
) -> None:
    async with (
        running_sim() as sim,
        running_service(sim, tmp_path, bootstrap_since=SINCE, gap_monitor_s=3600) as service,
    ):
        assert await service.get("/api/v1/system/data-health") == (200, {"series": []})
        await track(service)
        status, body = await service.get("/api/v1/system/data-health")
        assert status == 200, body
        [series] = body["series"]
        assert (series["venue"], series["symbol"]) == ("binance", "ETHUSDT")
        assert series["bootstrap"] == "done"
        assert series["inception_ms"] <= FIRST_MINUTE
        coverage = series["coverage"]
        assert (coverage["from_ms"], coverage["to_ms"]) == (FIRST_MINUTE, START_MINUTE)
        assert coverage["expected_minutes"] == HISTORY_MINUTES
        assert coverage["present_minutes"] == HISTORY_MINUTES
        assert coverage["missing_minutes"] == 0
        assert coverage["missing"] == []
        assert coverage["ratio"] == 1.0
        freshness = series["freshness"]
        assert set(freshness) == {tf.code for tf in venue_timeframes(Venue.BINANCE)}
        within = [tf.code for tf in venue_timeframes(Venue.BINANCE) if tf.duration_ms <= DAY]
        assert all(freshness[code] for code in within), freshness  # every one was derived
        assert freshness["1M"] is None  # only the forming month is stored: nothing closed
        newest_minute = START_MINUTE - MINUTE  # the last closed one
        assert freshness["1m"]["last_open_ms"] == newest_minute
        assert freshness["1m"]["age_s"] == (START_MS - (newest_minute + MINUTE - 1)) / 1000


async def test_system_cache_stats_count_reads_per_layer(tmp_path: Path) -> None:
    async with (
        running_sim() as sim,
        running_service(sim, tmp_path, bootstrap_since=SINCE) as service,
    ):
        await track(service)
        answers = [await service.get(CANDLES, **PAST_WINDOW) for _ in range(3)]
        assert [body["layers"] for _, body in answers] == [["warm"], ["hot"], ["hot"]]
        status, stats = await service.get("/api/v1/system/cache-stats")
        assert status == 200, stats
        assert stats["reads"] == 3
        assert stats["answered_by"] == {"warm": 1, "hot": 2}
        layers = stats["layers"]
        assert set(layers) == {"hot", "warm", "forming", "exchange"}
        assert (layers["hot"]["hits"], layers["hot"]["misses"]) == (2, 1)
        assert layers["hot"]["hit_ratio"] == pytest.approx(2 / 3)
        assert layers["hot"]["samples"] == 3
        assert (layers["warm"]["hits"], layers["warm"]["misses"]) == (1, 0)
        assert stats["hot_warm_ratio"] == 1.0
        assert stats["hot_cache"]["engine"] == "memory"
        assert stats["hot_cache"]["healthy"] is True
        assert stats["hot_cache"]["rows"] >= 10
        assert "exchange_requests" not in stats  # per-symbol figures are admin only


async def test_metrics_agree_with_the_service_and_the_simulator(tmp_path: Path) -> None:
    async with (
        running_sim() as sim,
        running_service(sim, tmp_path, bootstrap_since=SINCE, gap_monitor_s=3600) as service,
    ):
        empty = await scrape(service)
        assert total(empty, "candlevault_reads_total") == 0
        assert value(empty, "candlevault_hot_cache_healthy", engine="memory") == 1
        await track(service)
        for _ in range(3):
            await service.get(CANDLES, **PAST_WINDOW)
        samples = await scrape(service)
        _, stats = await service.get("/api/v1/system/cache-stats")

        assert total(samples, "candlevault_reads_total") == 3
        for layers, n in stats["answered_by"].items():
            assert value(samples, "candlevault_reads_total", layers=layers) == n
        for layer, figures in stats["layers"].items():
            lookups = "candlevault_layer_lookups_total"
            assert value(samples, lookups, layer=layer, result="hit") == figures["hits"]
            assert value(samples, lookups, layer=layer, result="miss") == figures["misses"]
        # Every request candlevault counted reached the simulator, and no other did.
        for path in ("/api/v3/klines", "/api/v3/exchangeInfo"):
            sent = value(samples, "candlevault_exchange_requests_total", venue="binance", path=path)
            assert sent == await sim_requests(sim, path) > 0
        assert value(samples, "candlevault_hot_cache_healthy", engine="memory") == 1
        assert value(samples, "candlevault_hot_cache_rows", engine="memory") >= 10
        missing = value(samples, "candlevault_missing_minutes", venue="binance", symbol="ETHUSDT")
        assert missing >= 0


async def test_the_missing_minutes_metric_agrees_with_the_gap_scan(tmp_path: Path) -> None:
    async with (
        running_sim() as sim,
        running_service(sim, tmp_path, bootstrap_since=SINCE, gap_monitor_s=3600) as service,
    ):
        await track(service)
        _, body = await service.admin("POST", "/api/v1/admin/gaps/scan")
        assert body["reports"]["binance:ETHUSDT"]["missing_minutes"] == 0
        samples = await scrape(service)
        missing = value(samples, "candlevault_missing_minutes", venue="binance", symbol="ETHUSDT")
        assert missing == 0
