"""What the service counts about itself: per layer hits, misses and latency, exchange
requests per venue, symbol and day. Read by `/api/v1/admin/cache/stats`,
`/api/v1/system/cache-stats` and the Prometheus collector (`api.metrics`).

Recording sits on the hot path, so it is a few dictionary and list operations: latency
samples go to a fixed-size ring per layer (the newest `RING` samples), and percentiles
are computed only when someone asks.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from datetime import UTC, datetime

import msgspec

RING = 4096
DAY_MS = 86_400_000
LAYERS = ("hot", "warm", "forming", "exchange")
EXCHANGE_KINDS = ("forming", "fill", "fresh", "bootstrap")


class LayerFigures(msgspec.Struct):
    """One layer's counts and latency percentiles (ms) over its newest samples."""

    hits: int
    misses: int
    hit_ratio: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    samples: int


class _Ring:
    __slots__ = ("filled", "next", "values")

    def __init__(self) -> None:
        self.values = array("d", bytes(8 * RING))
        self.next = 0
        self.filled = 0

    def add(self, value: float) -> None:
        self.values[self.next] = value
        self.next = (self.next + 1) % RING
        self.filled = min(RING, self.filled + 1)

    def percentiles(self, points: Iterable[float]) -> list[float | None]:
        if not self.filled:
            return [None for _ in points]
        ordered = sorted(self.values[: self.filled])
        top = len(ordered) - 1
        return [ordered[min(top, round(p * top))] * 1000 for p in points]


class ServiceStats:
    """Counters of the read path and the exchange traffic it caused."""

    def __init__(self) -> None:
        self.hits = dict.fromkeys(LAYERS, 0)
        self.misses = dict.fromkeys(LAYERS, 0)
        self._rings = {layer: _Ring() for layer in LAYERS}
        self.reads = 0
        self.answered_by: dict[str, int] = {}
        # (venue, symbol, UTC day, kind) -> [requests, weight]
        self.exchange: dict[tuple[str, str, str, str], list[int]] = {}
        self._days: dict[int, str] = {}

    def hit(self, layer: str, seconds: float) -> None:
        """Count a lookup in `layer` that answered, and how long it took."""
        self.hits[layer] += 1
        self._rings[layer].add(seconds)

    def miss(self, layer: str, seconds: float) -> None:
        """Count a lookup in `layer` that could not answer."""
        self.misses[layer] += 1
        self._rings[layer].add(seconds)

    def read(self, layers: tuple[str, ...]) -> None:
        """Count one read and the set of layers that answered it."""
        self.reads += 1
        key = "+".join(layers) or "none"
        self.answered_by[key] = self.answered_by.get(key, 0) + 1

    def exchange_request(
        self, venue: str, symbol: str, kind: str, requests: int, weight: int, now_ms: int
    ) -> None:
        """Count exchange requests the service made (`kind`: forming, fill, fresh or
        bootstrap) against the day (UTC, exchange time) they were made."""
        day = self._days.get(now_ms // DAY_MS)
        if day is None:  # formatted once a day, not once per refresh
            day = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d")
            self._days[now_ms // DAY_MS] = day
        entry = self.exchange.setdefault((venue, symbol, day, kind), [0, 0])
        entry[0] += requests
        entry[1] += weight

    def layers(self) -> dict[str, LayerFigures]:
        """Return every layer's figures."""
        out = {}
        for layer in LAYERS:
            hits, misses = self.hits[layer], self.misses[layer]
            ring = self._rings[layer]
            p50, p90, p99 = ring.percentiles((0.5, 0.9, 0.99))
            ratio = hits / (hits + misses) if hits + misses else None
            out[layer] = LayerFigures(hits, misses, ratio, p50, p90, p99, ring.filled)
        return out

    def exchange_by_symbol(self) -> list[dict[str, object]]:
        """Return the exchange requests per venue, symbol, day and kind."""
        return [
            {"venue": v, "symbol": s, "day": d, "kind": k, "requests": r, "weight": w}
            for (v, s, d, k), (r, w) in sorted(self.exchange.items())
        ]

    def hot_warm_ratio(self) -> float | None:
        """Share of closed-candle reads answered without the exchange (hot or warm)."""
        served = self.hits["hot"] + self.hits["warm"]
        total = served + self.hits["exchange"]
        return served / total if total else None
