"""Gaps: what the coverage ledger says is missing, and keeping it at nothing.

`scan` is pure: from a series' ledger and the timeline it should cover (its inception,
or a later configured start, to the last closed minute) it reports the minutes present,
confirmed empty (outages), anomalous, failing and missing, and how many requests filling
them takes (the planner's count: windows of up to a request's candles, placed greedily,
bridging present minutes between nearby gaps). Filling is the bootstrap run itself: it
plans from the same ledger, so it fetches exactly what `scan` reports.

`monitor` runs the fill every `every_s` for the symbols given (`serve` runs it for the
tracked ones): what an outage of candlevault itself left behind after a restart is
repaired without anyone asking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import msgspec

from candlevault.bootstrap.runner import Bootstrap, Progress
from candlevault.domain.coverage import Coverage, closed_until, plan
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.spans import SpanSet

log = logging.getLogger(__name__)
MINUTE_MS = 60_000


class GapReport(msgspec.Struct, frozen=True):
    """A series' coverage of [start_ms, end_ms): spans as [start, end) pairs, in ms."""

    start_ms: int
    end_ms: int
    present: list[list[int]]
    empty: list[list[int]]
    anomalies: list[list[int]]
    failing: list[list[int]]
    missing: list[list[int]]
    missing_minutes: int
    requests_to_fill: int


def scan(
    coverage: Coverage,
    now_ms: int,
    *,
    start_ms: int | None = None,
    max_candles_per_request: int = 1000,
) -> GapReport | None:
    """Report the coverage of [max(inception, start_ms), last closed minute) (None: the
    inception is unknown, so nothing can be missing yet)."""
    if coverage.inception_ms is None:
        return None
    start = max(coverage.inception_ms, start_ms or coverage.inception_ms)
    start += -start % MINUTE_MS
    window = (start, max(start, closed_until(now_ms)))
    whole = SpanSet.of(*window)
    missing = coverage.missing(window, now_ms)
    windows = plan(coverage, window, now_ms, max_candles_per_request=max_candles_per_request)
    return GapReport(
        start_ms=window[0],
        end_ms=window[1],
        present=(coverage.present & whole).to_pairs(),
        empty=(coverage.empty & whole).to_pairs(),
        anomalies=(coverage.anomaly_spans & whole).to_pairs(),
        failing=(SpanSet((f.start_ms, f.end_ms) for f in coverage.failed) & whole).to_pairs(),
        missing=missing.to_pairs(),
        missing_minutes=missing.minutes,
        requests_to_fill=len(windows),
    )


async def monitor(
    runner: Bootstrap,
    symbols: Callable[[], Sequence[str]],
    *,
    every_s: float = 60.0,
    since_ms: int | None = None,
    settle_ms: int = 0,
    on_fill: Callable[[Progress], None] | None = None,
) -> None:
    """Fill the gaps of `symbols()` (asked each round: the tracked set changes) every
    `every_s` until cancelled, leaving the minutes closed less than `settle_ms` ago to
    whoever brings them anyway; an error is logged and the next round tries again (a
    venue down now may be up in a minute)."""
    while True:
        for symbol in symbols():
            try:
                done = await runner.run(symbol, since_ms=since_ms, settle_ms=settle_ms)
            except CandlevaultError as e:
                log.warning("gap fill of %s %s failed: %s", runner.client.venue, symbol, e)
                continue
            if on_fill is not None:
                on_fill(done)
            if done.candles or done.empty_minutes:
                log.info(
                    "gap fill of %s %s: %d candles, %d minutes confirmed empty",
                    runner.client.venue,
                    symbol,
                    done.candles,
                    done.empty_minutes,
                )
        await asyncio.sleep(every_s)
