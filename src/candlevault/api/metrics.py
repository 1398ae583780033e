"""`/metrics`: Prometheus figures, read from the service's own counters at scrape time.

Nothing is recorded twice: the read path counts into `ServiceStats` (a few dictionary
operations on the hot path) and each venue's HTTP counts its requests; a custom
collector turns them into metric families when Prometheus scrapes, so serving a
request pays nothing for metrics it would not pay anyway.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from candlevault.api.deps import RuntimeDep
from candlevault.cache.ports import CacheStats
from candlevault.service.runtime import Runtime

router = APIRouter(tags=["system"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeCollector(Collector):
    """Metric families from a runtime's counters; `hot` is the cache's latest stats."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hot = CacheStats(engine="unknown")

    def collect(self) -> Iterator[Metric]:
        """Yield every family (called by `generate_latest`)."""
        yield from self._layers()
        yield from self._exchange()
        yield from self._hot()
        yield from self._gaps()
        yield from self._streams()

    def _layers(self) -> Iterator[Metric]:
        stats = self.runtime.stats
        reads = CounterMetricFamily(
            "candlevault_reads", "Candle reads, by the layers that answered", labels=["layers"]
        )
        for layers, n in stats.answered_by.items():
            reads.add_metric([layers], n)
        lookups = CounterMetricFamily(
            "candlevault_layer_lookups", "Lookups per layer", labels=["layer", "result"]
        )
        latency = GaugeMetricFamily(
            "candlevault_layer_latency_seconds",
            "Latency of the newest lookups per layer",
            labels=["layer", "quantile"],
        )
        for layer, figures in stats.layers().items():
            lookups.add_metric([layer, "hit"], figures.hits)
            lookups.add_metric([layer, "miss"], figures.misses)
            for q, ms in (
                ("0.5", figures.p50_ms),
                ("0.9", figures.p90_ms),
                ("0.99", figures.p99_ms),
            ):
                if ms is not None:
                    latency.add_metric([layer, q], ms / 1000)
        ratio = GaugeMetricFamily(
            "candlevault_hot_warm_hit_ratio", "Closed-candle reads answered without the exchange"
        )
        ratio.add_metric([], stats.hot_warm_ratio() or 0.0)
        yield from (reads, lookups, latency, ratio)

    def _exchange(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "candlevault_exchange_requests",
            "Requests sent to each venue (retries included)",
            labels=["venue", "path"],
        )
        weight = CounterMetricFamily(
            "candlevault_exchange_weight", "Weight spent per venue", labels=["venue", "path"]
        )
        replies = CounterMetricFamily(
            "candlevault_exchange_replies", "Replies per HTTP status (429, 418...)",
            labels=["venue", "status"],
        )  # fmt: skip
        used = GaugeMetricFamily(
            "candlevault_exchange_weight_used",
            "Weight used in the current window",
            labels=["venue"],
        )
        by_kind = CounterMetricFamily(
            "candlevault_exchange_kline_requests",
            "Kline requests by purpose (forming refresh, fill, fresh, bootstrap)",
            labels=["venue", "kind"],
        )
        for venue, client in self.runtime.stacks.clients.items():
            http = client.http
            for path, n in http.counts.requests.items():
                requests.add_metric([venue.value, path], n)
                weight.add_metric([venue.value, path], http.counts.weight.get(path, 0))
            for status, n in http.counts.statuses.items():
                replies.add_metric([venue.value, str(status)], n)
            used.add_metric([venue.value], http.limiter.stats().used)
        kinds: dict[tuple[str, str], int] = {}
        for (venue_name, _, _, kind), (n, _) in self.runtime.stats.exchange.items():
            kinds[(venue_name, kind)] = kinds.get((venue_name, kind), 0) + n
        for (venue_name, kind), n in kinds.items():
            by_kind.add_metric([venue_name, kind], n)
        yield from (requests, weight, replies, used, by_kind)

    def _hot(self) -> Iterator[Metric]:
        hot = self.hot
        for name, help_text, value in (
            ("candlevault_hot_cache_healthy", "1 when the hot cache answers", int(hot.healthy)),
            ("candlevault_hot_cache_series", "Series held in the hot cache", hot.series),
            ("candlevault_hot_cache_rows", "Candles held in the hot cache", hot.rows),
            ("candlevault_hot_cache_bytes", "Bytes of rows held in the hot cache", hot.bytes),
        ):
            family = GaugeMetricFamily(name, help_text, labels=["engine"])
            family.add_metric([hot.engine], value)
            yield family
        errors = CounterMetricFamily(
            "candlevault_hot_cache_errors", "Hot cache errors", labels=["engine"]
        )
        errors.add_metric([hot.engine], hot.errors)
        yield errors

    def _gaps(self) -> Iterator[Metric]:
        missing = GaugeMetricFamily(
            "candlevault_missing_minutes",
            "Minutes neither held nor confirmed empty, per tracked symbol",
            labels=["venue", "symbol"],
        )
        runtime = self.runtime
        for item in runtime.tracked.all():
            coverage = runtime.ingestor.known_coverage(item.venue, item.symbol)
            report = None if coverage is None else runtime.gap_report(item.venue, coverage)
            if report is not None:
                missing.add_metric([item.venue.value, item.symbol], report.missing_minutes)
        yield missing

    def _streams(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "candlevault_stream_connected", "1 while the venue's stream is connected",
            labels=["venue"],
        )  # fmt: skip
        age = GaugeMetricFamily(
            "candlevault_stream_last_message_age_seconds",
            "Wall seconds since the venue's stream sent anything",
            labels=["venue"],
        )
        events = CounterMetricFamily(
            "candlevault_stream_events",
            "Stream reconnects, gaps (spans repaired from REST), silences, malformed frames",
            labels=["venue", "event"],
        )
        for venue, pool in self.runtime.streams.pools.items():
            health = pool.health()
            connected.add_metric([venue.value], int(health.connected))
            if health.last_message_age_s is not None:
                age.add_metric([venue.value], health.last_message_age_s)
            for event in ("reconnects", "gaps", "silences", "malformed"):
                events.add_metric([venue.value, event], getattr(health, event))
        live = self.runtime.live
        minutes = CounterMetricFamily(
            "candlevault_stream_minutes",
            "Streamed minutes: written, left to REST (unknown), corrected or settled by the "
            "venue's closed kline, repaired; late and backfilled trades; feeds found silent",
            labels=["kind"],
        )
        for kind, count in live.health().items():
            minutes.add_metric([kind.removesuffix("_minutes")], count)
        yield from (connected, age, events, minutes)


def registry_for(runtime: Runtime) -> tuple[RuntimeCollector, CollectorRegistry]:
    """A registry of its own per app (tests run several apps in one process)."""
    collector = RuntimeCollector(runtime)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return collector, registry


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Return every metric in Prometheus' text format."""
    collector, registry = request.app.state.metrics
    collector.hot = await runtime.hot.stats()
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
