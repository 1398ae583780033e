"""Binance history from data.binance.vision first: whole past months and days as files,
so that a full-history bootstrap spends API weight on the last day or two only.

Files are verified, not trusted (their users report late, missing, truncated and
re-uploaded files, and files that disagree with the API): the checksum sidecar, the
parse, the row count against the minutes the file should hold, and one kline request
per file as a spot check against REST (`judge_archive` compares the overlap). A file
that fails is reported with the reason and left alone: its minutes stay missing in the
coverage ledger, so the REST bootstrap that follows fetches them. The spot check's
candles are ingested either way: their weight is spent already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from candlevault.domain.clock import Clock
from candlevault.domain.timeframes import DAY_MS, M1, MO1
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive import ArchiveRef, Market, plan_refs
from candlevault.exchanges.binance.archive_client import (
    BinanceArchiveClient,
    Missing,
    Rejected,
    Verified,
)
from candlevault.exchanges.ports import ExchangeClient, SymbolInfo
from candlevault.ingest.writer import Ingestor

log = logging.getLogger(__name__)
MINUTE_MS = 60_000
MONTHLY_LAG_MS = 8 * DAY_MS  # monthly files appear in the first days of the next month


class ArchiveReport(msgspec.Struct):
    """What an archive import did: files used, absent and refused (name, reason)."""

    verified: int = 0
    missing: int = 0
    skipped: int = 0
    rejected: list[tuple[str, str]] = msgspec.field(default_factory=list)
    candles: int = 0
    spot_checks: int = 0


async def import_archives(
    archives: BinanceArchiveClient,
    client: ExchangeClient,
    ingestor: Ingestor,
    clock: Clock,
    info: SymbolInfo,
    window: tuple[int, int],
    *,
    inception_ms: int,
    concurrency: int = 4,
    on_file: Callable[[ArchiveReport], None] | None = None,
) -> ArchiveReport:
    """Import the verified archive files of `info.symbol` covering [start, end)."""
    if client.venue not in (Venue.BINANCE, Venue.BINANCE_USDM):
        raise ValueError(f"data.binance.vision has no {client.venue.value} files")
    market: Market = "spot" if client.venue is Venue.BINANCE else "um"
    start, end = window
    if start == inception_ms:  # the listing month and day have files too, shorter ones
        start = MO1.bucket_open(start)
    refs = plan_refs(
        market,
        info.symbol,
        M1,
        start,
        end,
        now_ms=clock.now_ms(),
        listed_ms=inception_ms,
        monthly_lag_ms=MONTHLY_LAG_MS,
    )
    report = ArchiveReport()
    gate = asyncio.Semaphore(concurrency)

    async def one(ref: ArchiveRef) -> None:
        async with gate:
            await _import_file(archives, client, ingestor, clock, info, ref, inception_ms, report)
        if on_file is not None:
            on_file(report)

    try:
        async with asyncio.TaskGroup() as group:
            for ref in refs:
                group.create_task(one(ref))
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
    return report


async def _import_file(
    archives: BinanceArchiveClient,
    client: ExchangeClient,
    ingestor: Ingestor,
    clock: Clock,
    info: SymbolInfo,
    ref: ArchiveRef,
    inception_ms: int,
    report: ArchiveReport,
) -> None:
    venue, symbol = client.venue, info.symbol
    start = max(ref.start_ms, inception_ms)
    coverage = await ingestor.coverage(venue, symbol)
    if not coverage.missing((start, ref.end_ms), clock.now_ms()):
        report.skipped += 1  # held already (an earlier run, or REST)
        return
    # The spot check: one request from the middle of the file, as many candles as it holds.
    middle = start + (ref.end_ms - start) // 2 // MINUTE_MS * MINUTE_MS
    last = min(ref.end_ms - MINUTE_MS, middle + (client.max_klines - 1) * MINUTE_MS)
    check = await client.klines(symbol, middle, last, info.precision)
    report.spot_checks += 1
    now = clock.now_ms()
    await ingestor.ingest(
        venue,
        symbol,
        check.closed,
        inception_ms=None,
        now_ms=now,
        answered=(middle, last + MINUTE_MS),
    )
    outcome = await archives.fetch_verified(
        ref, info.precision, inception_ms, reference=check.closed
    )
    if isinstance(outcome, Verified):
        await ingestor.ingest(venue, symbol, outcome.columns, inception_ms=None, now_ms=now)
        report.verified += 1
        report.candles += len(outcome.columns)
    elif isinstance(outcome, Missing):
        report.missing += 1
    else:
        assert isinstance(outcome, Rejected)
        reason = f"{outcome.kind}: {outcome.reason}"
        log.warning(
            "archive file %s refused (%s); REST will fetch its minutes", ref.zip_name, reason
        )
        report.rejected.append((ref.zip_name, reason))
