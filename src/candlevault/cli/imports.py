"""`candlevault import`: data.binance.vision kline files into the warm store.

From a folder (`--from`): the files on disk, verified (checksum sidecar when there is
one, parse, row count), no network needed for spot. From the archive host (the
default, `CANDLEVAULT_BINANCE_ARCHIVE_URL`): whole past months and days, each verified
and spot-checked with one kline request, as the bootstrap's first step; the minutes of
refused or missing files are left to `candlevault bootstrap`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from candlevault.domain.errors import BadRequest, CandlevaultError
from candlevault.domain.symbols import parse_symbol
from candlevault.domain.venues import Venue, parse_venue

USAGE_ERROR = 2


def import_archives(
    symbols: Annotated[list[str], typer.Argument(help="Symbols to import, e.g. BTCUSDT.")],
    venue: Annotated[str, typer.Option(help="binance or binance-usdm.")] = "binance",
    source: Annotated[
        Path | None,
        typer.Option("--from", help="A folder of archive files; default: the archive host."),
    ] = None,
) -> None:
    """Import Binance kline archive files (zip or csv, daily or monthly) of SYMBOLS."""
    try:
        chosen = parse_venue(venue)
        if chosen not in (Venue.BINANCE, Venue.BINANCE_USDM):
            raise BadRequest(f"archive files exist for binance and binance-usdm, not {venue}")
        names = [parse_symbol(s) for s in symbols]
        if source is not None and not source.is_dir():
            raise BadRequest(f"no folder at {source}")
        lines = asyncio.run(_run(chosen, names, source))
    except CandlevaultError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
    console = Console(stderr=True)
    for line in lines:
        console.print(line)


async def _run(venue: Venue, symbols: list[str], source: Path | None) -> list[str]:
    import aiohttp

    from candlevault.bootstrap.archives import import_archives as from_host
    from candlevault.bootstrap.folder_import import import_folder
    from candlevault.bootstrap.wiring import ClientStacks, exchange_clock, open_store
    from candlevault.cli.remote import folder_param, run_jobs, serving_url
    from candlevault.config import load_settings
    from candlevault.domain.coverage import closed_until
    from candlevault.domain.decimals import BINANCE_SPOT
    from candlevault.domain.errors import NotFound
    from candlevault.exchanges.binance.archive_client import BinanceArchiveClient
    from candlevault.ingest.writer import Ingestor

    settings = load_settings()
    url = serving_url(settings)
    if url is not None:  # serve holds the data dir: it imports
        starts = [
            (f"/api/v1/admin/import/{s}", {"venue": venue.value} | folder_param(source))
            for s in symbols
        ]
        finals = await run_jobs(settings, url, starts, lambda job: None)
        return [_job_line(job) for job in finals]
    store = await open_store(settings)
    lines = []
    try:
        ingestor = Ingestor(store)
        if source is not None and venue is Venue.BINANCE:
            for symbol in symbols:
                done = await import_folder(source, venue, symbol, BINANCE_SPOT, ingestor)
                lines += _folder_lines(symbol, done.verified, done.candles, done.refused)
            return lines
        async with aiohttp.ClientSession() as session:
            clock = await exchange_clock(settings, venue, session)
            client = ClientStacks(settings, session).client(venue, clock)
            listed = await client.symbols()
            archives = BinanceArchiveClient(session, settings.binance_archive_url)
            for symbol in symbols:
                if symbol not in listed:
                    raise NotFound(f"{venue.value} does not list {symbol}")
                info = listed[symbol]
                if source is not None:
                    done = await import_folder(source, venue, symbol, info.precision, ingestor)
                    lines += _folder_lines(symbol, done.verified, done.candles, done.refused)
                    continue
                inception = await client.inception_ms(info)
                if inception is None:
                    lines.append(f"{symbol}: never traded, nothing to import")
                    continue
                window = (inception, closed_until(clock.now_ms()))
                got = await from_host(
                    archives, client, ingestor, clock, info, window, inception_ms=inception
                )
                lines += _folder_lines(symbol, got.verified, got.candles, got.rejected)
    finally:
        await store.aclose()
    return lines


def _job_line(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    if job["state"] != "done":
        return f"{job['symbol']}: {job['state']}: {job['error']}"
    refused = progress.get("archive_refused", [])
    return (
        f"{job['symbol']}: {progress.get('archive_files', 0)} files, "
        f"{progress.get('archive_candles', 0):,} candles imported, {len(refused)} refused"
    )


def _folder_lines(
    symbol: str, verified: int, candles: int, refused: list[tuple[str, str]]
) -> list[str]:
    out = [f"{symbol}: {verified} files, {candles:,} candles imported, {len(refused)} refused"]
    out += [f"  refused {name}: {reason}" for name, reason in refused]
    return out
