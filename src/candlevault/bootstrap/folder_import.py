"""`candlevault import --from FOLDER`: data.binance.vision kline files already on disk.

Files are found by their archive names (`BTCUSDT-1m-2024-01.zip` monthly,
`BTCUSDT-1m-2024-01-15.zip` daily, or the `.csv` inside), and judged like downloaded
ones (`judge_archive`): the `.CHECKSUM` beside a zip when there is one (a bare CSV or a
zip without one is parsed on its own word), the parse, and the rows against the minutes the
file should hold. Verified files go through the one write path; refused ones are
reported with the reason and left to the REST bootstrap.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date
from pathlib import Path

import msgspec

from candlevault.domain.decimals import Precision
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive import (
    ArchiveRef,
    ArchiveRejected,
    Market,
    Period,
    check_coverage,
    parse_klines,
)
from candlevault.exchanges.binance.archive_client import Rejected, Verified, judge_archive
from candlevault.ingest.writer import Ingestor

_NAME = re.compile(r"(?P<symbol>[A-Z0-9_-]+)-1m-(?P<y>\d{4})-(?P<m>\d{2})(?:-(?P<d>\d{2}))?")


class FolderReport(msgspec.Struct):
    """What a folder import did: files verified and candles stored, files refused."""

    verified: int = 0
    candles: int = 0
    refused: list[tuple[str, str]] = msgspec.field(default_factory=list)


def archive_files(folder: Path, market: Market, symbol: str) -> list[tuple[ArchiveRef, Path]]:
    """The 1m kline files of `symbol` in `folder` (zip preferred over its csv), in time
    order."""
    found: dict[ArchiveRef, Path] = {}
    for path in sorted(folder.iterdir()):
        match = _NAME.fullmatch(path.stem)
        if path.suffix not in (".zip", ".csv") or match is None:
            continue
        if match["symbol"] != symbol:
            continue
        period: Period = "daily" if match["d"] else "monthly"
        day = date(int(match["y"]), int(match["m"]), int(match["d"] or 1))
        ref = ArchiveRef(market, symbol, M1, period, day)
        if ref not in found or path.suffix == ".zip":
            found[ref] = path
    return sorted(found.items(), key=lambda item: item[0].start_ms)


async def import_folder(
    folder: Path,
    venue: Venue,
    symbol: str,
    precision: Precision,
    ingestor: Ingestor,
    *,
    listed_ms: int | None = None,
) -> FolderReport:
    """Import every verified 1m file of `symbol` in `folder` (`listed_ms`: the symbol's
    first minute, else the ledger's, else the first minute the files hold)."""
    market: Market = "spot" if venue is Venue.BINANCE else "um"
    report = FolderReport()
    known = (await ingestor.coverage(venue, symbol)).inception_ms
    for ref, path in archive_files(folder, market, symbol):
        data = await asyncio.to_thread(path.read_bytes)
        sidecar = path.with_name(path.name + ".CHECKSUM")
        checksum = await asyncio.to_thread(_text, sidecar) if path.suffix == ".zip" else None
        if listed_ms is None and known is None:  # the first minute on file: the inception
            known = await asyncio.to_thread(_first_open, data, ref, precision)
        listed = listed_ms or known or ref.start_ms
        verdict = await asyncio.to_thread(
            _judge, data, checksum, ref, precision, listed, path.suffix == ".csv"
        )
        if isinstance(verdict, Rejected):
            report.refused.append((path.name, f"{verdict.kind}: {verdict.reason}"))
            continue
        columns = verdict.columns
        await ingestor.ingest(venue, symbol, columns, inception_ms=listed_ms or known)
        report.verified += 1
        report.candles += len(columns)
    return report


def _judge(
    data: bytes, checksum: str | None, ref: ArchiveRef, precision: Precision, listed: int, csv: bool
) -> Verified | Rejected:
    if csv or checksum is None:  # no sidecar (a bare CSV, a zip without one): parse alone
        try:
            parsed = parse_klines(data, ref=ref, precision=precision, listed_ms=listed)
        except ArchiveRejected as e:
            return Rejected(ref, "parse", e.reason)
        problems = check_coverage(parsed.columns, ref, listed).problems
        return Rejected(ref, "coverage", "; ".join(problems)) if problems else Verified(ref, parsed)
    return judge_archive(data, checksum, ref, precision=precision, listed_ms=listed)


def _first_open(data: bytes, ref: ArchiveRef, precision: Precision) -> int | None:
    """The first open time in a file, if it parses at all (judging comes after)."""
    try:
        opens = parse_klines(data, ref=ref, precision=precision).columns.open_time_ms
    except ArchiveRejected:
        return None
    return opens[0] if opens else None


def _text(path: Path) -> str | None:
    return path.read_text("ascii", errors="replace") if path.is_file() else None
