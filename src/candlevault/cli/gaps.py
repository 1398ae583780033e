"""`candlevault gaps scan|fill`: what the coverage ledger says is missing, and filling it.

`scan` only reads (the store opened read-only, so it works while `serve` writes); `fill`
is a bootstrap run, which fetches exactly the missing minutes `scan` reports.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from candlevault.cli.bootstrap import bootstrap
from candlevault.cli.console import stdout
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.symbols import parse_symbol
from candlevault.domain.times import format_time_ms
from candlevault.domain.venues import Venue, parse_venue

USAGE_ERROR = 2
gaps = typer.Typer(help="Find and fill missing 1m history.", no_args_is_help=True)


@gaps.command("scan")
def scan_gaps(
    symbols: Annotated[list[str], typer.Argument(help="Symbols to scan, e.g. BTCUSDT.")],
    venue: Annotated[str, typer.Option(help=f"One of: {', '.join(v.value for v in Venue)}.")] = (
        "binance"
    ),
) -> None:
    """Report, per symbol, the minutes present, confirmed empty, failing and missing."""
    try:
        chosen = parse_venue(venue)
        names = [parse_symbol(s) for s in symbols]
        table = asyncio.run(_scan(chosen, names))
    except CandlevaultError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
    stdout().print(table)


gaps.command("fill", help="Fetch the missing minutes (a bootstrap run).")(bootstrap)


async def _scan(venue: Venue, symbols: list[str]) -> Table:
    import aiohttp

    from candlevault.bootstrap.gaps import scan
    from candlevault.bootstrap.wiring import exchange_clock, open_store
    from candlevault.config import load_settings
    from candlevault.ingest.writer import Ingestor

    settings = load_settings()
    store = await open_store(settings, readonly=True)
    try:
        async with aiohttp.ClientSession() as session:
            now = (await exchange_clock(settings, venue, session)).now_ms()
        ingestor = Ingestor(store)
        table = Table("Symbol", "From", "To", "Present", "Empty", "Failing", "Missing", "Requests")
        for symbol in symbols:
            report = scan(await ingestor.coverage(venue, symbol), now)
            if report is None:
                table.add_row(symbol, "-", "-", "nothing fetched yet", "", "", "", "")
                continue
            table.add_row(
                symbol,
                format_time_ms(report.start_ms),
                format_time_ms(report.end_ms),
                _minutes(report.present),
                _minutes(report.empty),
                _minutes(report.failing),
                f"{report.missing_minutes:,} min in {len(report.missing)} ranges",
                str(report.requests_to_fill),
            )
    finally:
        await store.aclose()
    return table


def _minutes(pairs: list[list[int]]) -> str:
    return f"{sum(e - s for s, e in pairs) // 60_000:,} min"
