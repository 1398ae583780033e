"""`candlevault bootstrap`: fetch symbols' missing 1m history into the warm store.

One rich progress bar per symbol (requests done of planned, candles, weight spent, ETA),
all symbols of the venue at once through its one rate limiter. Run again, it fetches
only what is still missing; interrupted (Ctrl-C), what it wrote stays, and the next run
resumes from the coverage ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from candlevault.bootstrap.runner import Progress as Done
from candlevault.cli.remote import run_jobs, serving_url
from candlevault.domain.errors import CandlevaultError, StorageError
from candlevault.domain.symbols import parse_symbol
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue, parse_venue

if TYPE_CHECKING:
    from candlevault.config import Settings

USAGE_ERROR = 2


def bootstrap(
    symbols: Annotated[list[str], typer.Argument(help="Symbols to bootstrap, e.g. BTCUSDT.")],
    venue: Annotated[
        str, typer.Option(help=f"One of: {', '.join(v.value for v in Venue)}.")
    ] = "binance",
    since: Annotated[
        str | None,
        typer.Option(
            help="Fetch from this time (ISO date or epoch ms); default: "
            "CANDLEVAULT_BOOTSTRAP_SINCE, else each symbol's inception."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Kline requests in flight per symbol at most.")
    ] = 8,
) -> None:
    """Fetch every missing 1m candle of SYMBOLS from their first one, within the venue's
    rate limits; higher timeframes are derived as the candles are stored."""
    try:
        chosen = parse_venue(venue)
        names = [parse_symbol(s) for s in symbols]
        since_ms = None if since is None else parse_time_ms(since)
        asyncio.run(_run(chosen, names, since_ms, concurrency))
    except CandlevaultError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: what was fetched is stored; run again to resume", err=True)
        raise typer.Exit(130) from None


async def _run(venue: Venue, symbols: list[str], since_ms: int | None, concurrency: int) -> None:
    import aiohttp

    from candlevault.bootstrap.runner import AnomalyLog, Bootstrap
    from candlevault.bootstrap.wiring import ClientStacks, exchange_clock, open_store
    from candlevault.config import load_settings
    from candlevault.ingest.writer import Ingestor

    settings = load_settings()
    url = serving_url(settings)
    if url is not None:  # serve holds the data dir: it does the work
        await _remote(settings, url, venue, symbols, since_ms)
        return
    if since_ms is None:
        since_ms = settings.bootstrap_since
    store = await open_store(settings)
    try:
        async with aiohttp.ClientSession() as session:
            clock = await exchange_clock(settings, venue, session)
            client = ClientStacks(settings, session).client(venue, clock)
            anomalies = AnomalyLog(settings.data_dir / "anomalies.jsonl")
            with _bars() as bars:
                tasks = {s: bars.add_task(s, total=None, candles=0, weight=0) for s in symbols}

                def show(done: Done) -> None:  # called after every reply
                    _update(bars, tasks[done.symbol], done)

                runner = Bootstrap(
                    client,
                    Ingestor(store),
                    clock,
                    anomalies,
                    concurrency=concurrency,
                    on_progress=show,
                )
                results = await asyncio.gather(*(runner.run(s, since_ms=since_ms) for s in symbols))
    finally:
        await store.aclose()
    _summary(results)


def _summary(results: Sequence[Done]) -> None:
    console = Console(stderr=True)
    for done in results:
        console.print(
            f"{done.venue} {done.symbol}: {done.candles:,} candles in {done.done_requests} "
            f"requests ({done.weight} weight), {done.empty_minutes:,} minutes confirmed empty, "
            f"{done.failed_windows} windows failed, {done.anomalies} anomalies"
        )


async def _remote(
    settings: Settings, url: str, venue: Venue, symbols: list[str], since_ms: int | None
) -> None:
    from candlevault.bootstrap.runner import Progress as Done

    params = {"venue": venue.value} | ({} if since_ms is None else {"since": str(since_ms)})
    starts = [(f"/api/v1/admin/bootstrap/{s}", params) for s in symbols]
    Console(stderr=True).print(f"candlevault serve at {url} holds the data dir: sent to it")
    with _bars() as bars:
        tasks = {s: bars.add_task(s, total=None, candles=0, weight=0) for s in symbols}

        def show(job: dict[str, Any]) -> None:
            progress = job.get("progress")
            if progress is not None and job["symbol"] in tasks:
                _update(bars, tasks[job["symbol"]], msgspec.convert(progress, Done))

        finals = await run_jobs(settings, url, starts, show)
    for job in finals:
        if job["state"] != "done":
            raise StorageError(f"{job['venue']} {job['symbol']}: {job['state']}: {job['error']}")
    _summary([msgspec.convert(job["progress"], Done) for job in finals])


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("requests {task.fields[candles]:>12,} candles {task.fields[weight]:>8,} weight"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _update(bars: Progress, task: TaskID, done: Done) -> None:
    bars.update(
        task,
        total=done.planned_requests,
        completed=done.done_requests,
        candles=done.candles,
        weight=done.weight,
    )
