"""System endpoints: liveness, cache figures, data health. No token needed: they show
figures, never candles or settings."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from candlevault.api.deps import RuntimeDep
from candlevault.api.routes.admin import cache_figures
from candlevault.domain.columns import CLOSED
from candlevault.domain.timeframes import venue_timeframes
from candlevault.service.runtime import BOOTSTRAP

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness and degradations")
async def healthz(runtime: RuntimeDep) -> dict[str, Any]:
    """Return ok while the service answers, with what is degraded (the hot cache down,
    a venue unreachable) listed: a degraded service still serves."""
    hot = await runtime.hot.stats()
    degraded = [] if hot.healthy else [f"hot cache ({hot.engine}) unavailable: {hot.last_error}"]
    venues = {}
    for item in runtime.tracked.all():
        up = runtime.venues.known_catalog(item.venue) is not None
        venues[item.venue.value] = "up" if up else "connecting"
    degraded += [f"{v} {state}" for v, state in venues.items() if state != "up"]
    return {
        "status": "degraded" if degraded else "ok",
        "degraded": degraded,
        "hot_cache": hot.engine,
        "venues": venues,
        "uptime_s": round(time.time() - runtime.started_s, 1),
    }


@router.get("/api/v1/system/cache-stats", summary="Hit ratios, latencies, hot cache size")
async def system_cache_stats(runtime: RuntimeDep) -> dict[str, Any]:
    """Return the layers' hits, misses and latency percentiles and the hot cache's size."""
    return await cache_figures(runtime, per_symbol=False)


@router.get("/api/v1/system/data-health", summary="Coverage and freshness per series")
async def data_health(runtime: RuntimeDep) -> dict[str, Any]:
    """Per tracked venue and symbol: coverage from inception (present, confirmed-empty
    and missing minutes and ranges), bootstrap state, stream state, and per timeframe
    the newest closed candle stored and how long ago it closed."""
    out = []
    for item in runtime.tracked.all():
        venue, symbol = item.venue, item.symbol
        now = runtime.now_ms(venue)
        coverage = await runtime.ingestor.coverage(venue, symbol)
        report = runtime.gap_report(venue, coverage)
        job = runtime.jobs.get(BOOTSTRAP, item)
        entry: dict[str, Any] = {
            "venue": venue.value,
            "symbol": symbol,
            "inception_ms": coverage.inception_ms,
            "bootstrap": None if job is None else job.state,
            "stream": runtime.stream_health(venue),
        }
        if report is not None:
            expected = (report.end_ms - report.start_ms) // 60_000
            present = sum(e - s for s, e in report.present) // 60_000
            empty = sum(e - s for s, e in report.empty) // 60_000
            entry["coverage"] = {
                "from_ms": report.start_ms,
                "to_ms": report.end_ms,
                "expected_minutes": expected,
                "present_minutes": present,
                "empty_minutes": empty,
                "missing_minutes": report.missing_minutes,
                "ratio": (present + empty) / expected if expected else 1.0,
                "missing": report.missing[:100],
                "empty": report.empty[:100],
            }
        freshness: dict[str, dict[str, float] | None] = {}
        for tf in venue_timeframes(venue):
            newest = await runtime.store.latest(venue, symbol, tf, 2)
            closed = [
                t for t, f in zip(newest.open_time_ms, newest.flags, strict=True) if f & CLOSED
            ]
            if not closed:
                freshness[tf.code] = None
                continue
            closes = tf.close_time(closed[-1], coverage.inception_ms)
            freshness[tf.code] = {"last_open_ms": closed[-1], "age_s": max(0, now - closes) / 1000}
        entry["freshness"] = freshness
        out.append(entry)
    return {"series": out}
