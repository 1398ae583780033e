"""The admin API over real HTTP: the bearer guard, tracked symbols and their bootstraps,
the hot cache's controls and the gap scan and fill, against the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.api.service import TOKEN, Service, finished_job, running_service, track
from tests.integration.exchanges.venues import START_MS, running_sim
from tests.support.waiting import eventually

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START_MINUTE = START_MS - START_MS % MINUTE  # the forming minute's open
ADMIN_PATH = "/api/v1/admin"
STATUS = f"{ADMIN_PATH}/bootstrap/status"
SCAN = f"{ADMIN_PATH}/gaps/scan"
SYMBOLS = f"{ADMIN_PATH}/symbols"
CANDLES = "/api/v1/market/candles/ETHUSDT/{}"
KNOWN_ADMIN_ROUTES = {
    ("GET", "/api/v1/admin/symbols"),
    ("POST", "/api/v1/admin/symbols"),
    ("DELETE", "/api/v1/admin/symbols/{symbol}"),
    ("POST", "/api/v1/admin/bootstrap/{symbol}"),
    ("GET", "/api/v1/admin/bootstrap/status"),
    ("POST", "/api/v1/admin/cache/preload"),
    ("POST", "/api/v1/admin/cache/invalidate"),
    ("GET", "/api/v1/admin/cache/stats"),
    ("POST", "/api/v1/admin/gaps/scan"),
    ("POST", "/api/v1/admin/gaps/fill"),
}


def ceil_minute(ms: int) -> int:
    return ms + -ms % MINUTE


async def admin_routes(service: Service) -> set[tuple[str, str]]:
    """Every (method, path) under the admin prefix, as the service's OpenAPI lists them."""
    status, spec = await service.get("/openapi.json")
    assert status == 200, spec
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(ADMIN_PATH)
        for method in operations
    }


async def call(
    service: Service, method: str, path: str, headers: dict[str, str]
) -> tuple[int, str | None, Any]:
    """Send one request; return the status, its WWW-Authenticate header and the body."""
    url = service.url + path.replace("{symbol}", "ETHUSDT")
    async with service.http.request(method, url, headers=headers) as reply:
        return reply.status, reply.headers.get("WWW-Authenticate"), orjson.loads(await reply.read())


async def scan_report(service: Service, symbol: str = "ETHUSDT") -> dict[str, Any]:
    status, body = await service.admin("POST", SCAN, symbol=symbol)
    assert status == 200, body
    report: dict[str, Any] = body["reports"][f"binance:{symbol}"]
    return report


async def test_every_admin_endpoint_needs_the_bearer_token(tmp_path: Path) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        routes = await admin_routes(service)
        assert routes >= KNOWN_ADMIN_ROUTES
        for method, path in sorted(routes):
            for headers in (
                {},
                {"Authorization": "Bearer not-the-token"},
                {"Authorization": f"Basic {TOKEN}"},
            ):
                status, challenge, body = await call(service, method, path, headers)
                assert status == 401, (method, path, headers, body)
                assert challenge == "Bearer", (method, path)
                assert "Authorization: Bearer" in body["detail"]
        status, _ = await service.admin("POST", SYMBOLS, {"symbols": ["ETHUSDT"]}, headers={})
        assert status == 401
        assert await service.admin("GET", SYMBOLS) == (200, {})  # nothing was tracked


@pytest.mark.parametrize("token", [None, "", "  "])
async def test_admin_endpoints_are_disabled_when_no_token_is_configured(
    tmp_path: Path, token: str | None
) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path, admin_token=token) as service:
        assert service.settings.admin_token is None
        routes = await admin_routes(service)
        assert routes >= KNOWN_ADMIN_ROUTES
        for method, path in sorted(routes):
            for headers in ({}, {"Authorization": "Bearer anything"}):
                status, _, body = await call(service, method, path, headers)
                assert status == 403, (method, path, body)
                assert "disabled" in body["detail"]
                assert "CANDLEVAULT_ADMIN_TOKEN" in body["detail"]


async def test_a_tracked_symbol_is_bootstrapped_complete_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    since = START_MS - 2 * DAY
    expected_minutes = (START_MINUTE - ceil_minute(since)) // MINUTE
    settings: dict[str, Any] = {"bootstrap_since": since, "gap_monitor_s": 3600}
    async with running_sim() as sim:
        async with running_service(sim, tmp_path, **settings) as service:
            status, body = await service.admin("POST", SYMBOLS, {"symbols": ["ETHUSDT"]})
            assert status == 202, body
            assert body == {"added": ["binance:ETHUSDT"], "tracked": ["binance:ETHUSDT"]}
            job = await finished_job(service, "bootstrap")
            assert job["venue"] == "binance"
            progress = job["progress"]
            assert progress["finished"] is True
            assert progress["error"] is None
            assert progress["done_requests"] == progress["planned_requests"] > 0
            assert progress["weight"] > 0
            assert progress["failed_windows"] == progress["anomalies"] == 0
            assert progress["candles"] + progress["archive_candles"] == expected_minutes
            report = await scan_report(service)
            assert report["start_ms"] == ceil_minute(since)
            assert report["end_ms"] == START_MINUTE
            assert report["missing"] == []
            assert report["missing_minutes"] == 0
            assert report["requests_to_fill"] == 0
            # Adding it again adds nothing and starts nothing.
            again = await service.admin("POST", SYMBOLS, {"symbols": ["ETHUSDT"]})
            assert again == (202, {"added": [], "tracked": ["binance:ETHUSDT"]})

        assert (tmp_path / "symbols.json").is_file()
        async with running_service(sim, tmp_path, **settings) as service:
            assert await service.admin("GET", SYMBOLS) == (200, {"binance": ["ETHUSDT"]})
            assert (await scan_report(service))["missing_minutes"] == 0  # the ledger persisted

            status, body = await service.admin("DELETE", f"{SYMBOLS}/ETHUSDT")
            assert status == 200, body
            assert body["removed"] == "binance:ETHUSDT"
            status, body = await service.admin("DELETE", f"{SYMBOLS}/ETHUSDT")
            assert status == 404, body
            assert "not tracked" in body["detail"]
            assert await service.admin("GET", SYMBOLS) == (200, {})

            status, history = await service.get(
                CANDLES.format("1m"), start_time=since, limit=100, cache_strategy="cache_only"
            )
            assert status == 200, history
            assert history["count"] == 100
            assert history["complete"] is True
            assert history["candles"][0][0] == ceil_minute(since)

        async with running_service(sim, tmp_path, **settings) as service:
            assert await service.admin("GET", SYMBOLS) == (200, {})  # the removal persisted


async def test_symbols_the_venue_does_not_list_are_not_found(tmp_path: Path) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, body = await service.admin("POST", SYMBOLS, {"symbols": ["NOPEUSDT"]})
        assert status == 404, body
        assert "NOPEUSDT" in body["detail"]
        status, body = await service.admin("POST", SYMBOLS, {"symbols": ["ETHUSDT", "NOPEUSDT"]})
        assert status == 404, body  # all or nothing: ETHUSDT was not tracked either
        status, body = await service.admin("POST", f"{ADMIN_PATH}/bootstrap/NOPEUSDT")
        assert status == 404, body
        assert "NOPEUSDT" in body["detail"]
        assert await service.admin("GET", SYMBOLS) == (200, {})
        assert await service.admin("GET", STATUS) == (200, {"jobs": []})


async def test_a_bootstrap_started_by_hand_runs_as_a_job(tmp_path: Path) -> None:
    since = START_MS - DAY
    async with running_sim() as sim, running_service(sim, tmp_path, bootstrap_since=since) as s:
        status, job = await s.admin("POST", f"{ADMIN_PATH}/bootstrap/ETHUSDT", since=since)
        assert status == 202, job
        assert (job["kind"], job["venue"], job["symbol"]) == ("bootstrap", "binance", "ETHUSDT")
        assert job["state"] == "running"
        done = await finished_job(s, "bootstrap")
        assert done["started_s"] == job["started_s"]  # the same job, now done
        assert done["progress"]["done_requests"] > 0
        assert (await scan_report(s))["missing_minutes"] == 0
        assert await s.admin("GET", SYMBOLS) == (200, {})  # bootstrapped, not tracked


async def test_preload_and_invalidate_move_a_series_between_hot_and_warm(tmp_path: Path) -> None:
    since = START_MS - 2 * DAY
    window = {"start_time": ceil_minute(since) + 2 * HOUR, "limit": 10}  # closed hours only
    async with running_sim() as sim, running_service(sim, tmp_path, bootstrap_since=since) as s:
        job = await track(s)
        status, body = await s.admin(
            "POST", f"{ADMIN_PATH}/cache/preload", symbol="ETHUSDT", timeframe="1h"
        )
        assert status == 200, body
        loaded = body["loaded"]["binance:ETHUSDT:1h"]
        assert loaded > 0
        assert body["rows"] == loaded

        _, hot = await s.get(CANDLES.format("1h"), **window)
        assert hot["layers"] == ["hot"]
        assert hot["count"] == 10
        assert hot["complete"]
        status, body = await s.admin("POST", f"{ADMIN_PATH}/cache/invalidate", symbol="ETHUSDT")
        assert status == 200, body
        assert body["dropped"] >= 1
        _, warm = await s.get(CANDLES.format("1h"), **window)
        assert warm["layers"] == ["warm"]
        _, hot_again = await s.get(CANDLES.format("1h"), **window)
        assert hot_again["layers"] == ["hot"]
        assert hot["candles"] == warm["candles"] == hot_again["candles"]

        status, stats = await s.admin("GET", f"{ADMIN_PATH}/cache/stats")
        assert status == 200, stats
        assert stats["reads"] == 3
        assert stats["answered_by"] == {"hot": 2, "warm": 1}
        assert (stats["layers"]["hot"]["hits"], stats["layers"]["hot"]["misses"]) == (2, 1)
        assert (stats["layers"]["warm"]["hits"], stats["layers"]["warm"]["misses"]) == (1, 0)
        assert stats["layers"]["exchange"]["hits"] == 0
        assert stats["hot_warm_ratio"] == 1.0
        hot_cache = stats["hot_cache"]
        assert hot_cache["engine"] == "memory"
        assert hot_cache["healthy"] is True
        assert hot_cache["series"] >= 1
        assert hot_cache["rows"] >= 10
        bootstrap_requests = [
            r for r in stats["exchange_requests"] if r["kind"] == "bootstrap"
        ]  # counted against the exchange's day, not the wall clock's
        assert len(bootstrap_requests) == 1, stats["exchange_requests"]
        entry = bootstrap_requests[0]
        assert (entry["venue"], entry["symbol"], entry["day"]) == (
            "binance",
            "ETHUSDT",
            "2024-01-15",
        )
        assert entry["requests"] >= job["progress"]["done_requests"] > 0


async def test_an_invalidation_needs_a_symbol_for_a_timeframe(tmp_path: Path) -> None:
    async with running_sim() as sim, running_service(sim, tmp_path) as service:
        status, body = await service.admin("POST", f"{ADMIN_PATH}/cache/invalidate", timeframe="1h")
        assert status == 400, body
        assert "symbol" in body["detail"]


async def test_the_minutes_the_service_was_down_for_are_scanned_and_filled(
    tmp_path: Path,
) -> None:
    # The minutes pass while the service is down; it starts again without its start-up
    # bootstrap and gap monitor (start=False), so only the admin fill can fill them.
    since = START_MS - DAY
    settings: dict[str, Any] = {"bootstrap_since": since, "gap_monitor_s": 3600}
    down = 30 * MINUTE
    async with running_sim() as sim:
        async with running_service(sim, tmp_path, **settings) as service:
            await track(service)
            assert (await scan_report(service))["missing_minutes"] == 0
        await sim.control("/_sim/clock", {"action": "step", "ms": down})
        # start=False: no start-up bootstrap or monitor round fills the gap before the scan.
        async with running_service(sim, tmp_path, start=False, **settings) as service:
            report = await scan_report(service)
            assert report["missing"] == [[START_MINUTE, START_MINUTE + down]]
            assert report["missing_minutes"] == 30
            assert report["requests_to_fill"] == 1
            _, gap = await service.get(
                CANDLES.format("1m"), start_time=START_MINUTE, cache_strategy="cache_only"
            )
            assert gap["count"] == 0
            assert gap["missing"] == [[START_MINUTE, START_MINUTE + down]]

            status, body = await service.admin("POST", f"{ADMIN_PATH}/gaps/fill")
            assert status == 202, body
            assert [(j["kind"], j["symbol"]) for j in body["jobs"]] == [("gap-fill", "ETHUSDT")]
            job = await finished_job(service, "gap-fill")
            assert job["progress"]["candles"] == 30
            assert job["progress"]["done_requests"] == report["requests_to_fill"]

            after = await scan_report(service)
            assert after["missing"] == []
            assert after["missing_minutes"] == 0
            assert after["end_ms"] == START_MINUTE + down
            _, filled = await service.get(
                CANDLES.format("1m"), start_time=START_MINUTE, cache_strategy="cache_only"
            )
            assert filled["count"] == 30
            assert filled["complete"] is True


async def test_a_running_service_sees_the_simulator_clock_move(tmp_path: Path) -> None:
    since = START_MS - DAY
    settings = {"bootstrap_since": since, "gap_monitor_s": 3600, "clock_sync_s": 0.05}
    async with running_sim() as sim, running_service(sim, tmp_path, **settings) as service:
        await track(service)
        await sim.control("/_sim/clock", {"action": "step", "ms": 30 * MINUTE})

        async def moved() -> dict[str, Any]:
            report = await scan_report(service)
            assert report["end_ms"] == START_MINUTE + 30 * MINUTE
            return report

        report = await eventually(moved)
        assert report["missing_minutes"] == 30
