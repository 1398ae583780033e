"""Admin endpoints: tracked symbols, bootstraps, the hot cache, gaps. Bearer token only.

Long work (a bootstrap, a gap fill) runs as a background job and answers 202 at once;
`GET /api/v1/admin/bootstrap/status` reports every job's progress with the numbers the
CLI's progress bars show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Body, HTTPException, Query

from candlevault.api.deps import AdminDep, RuntimeDep, venue_or_default
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.symbols import Instrument, parse_instrument, parse_symbol
from candlevault.domain.timeframes import Timeframe, timeframe_for_venue, venue_timeframes
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.service.jobs import JobStatus
from candlevault.service.runtime import BOOTSTRAP, Runtime

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[AdminDep])
VenueQuery = Annotated[str | None, Query(description="Venue; default: the configured one")]
SymbolsQuery = Annotated[str | None, Query(description="One symbol; default: every tracked one")]


def job_view(job: JobStatus) -> dict[str, Any]:
    """A job as JSON: its state and its progress (requests, candles, weight, ETA)."""
    view: dict[str, Any] = msgspec.to_builtins(msgspec.structs.replace(job, progress=None))
    del view["progress"]
    progress = job.progress
    if progress is not None:
        view["progress"] = msgspec.to_builtins(progress)
        view["progress"]["eta_s"] = progress.eta_s
        del view["progress"]["started_s"]  # a monotonic reading: `started_s` above is wall
    return view


@router.get("/symbols", summary="Tracked symbols")
async def list_symbols(runtime: RuntimeDep) -> dict[str, list[str]]:
    """Return the tracked symbols per venue."""
    out: dict[str, list[str]] = {}
    for item in runtime.tracked.all():
        out.setdefault(item.venue.value, []).append(item.symbol)
    return out


@router.post("/symbols", status_code=202, summary="Track symbols (and bootstrap them)")
async def add_symbols(
    runtime: RuntimeDep,
    symbols: Annotated[
        list[str], Body(embed=True, description="BTCUSDT, or venue-qualified binance-usdm:BTCUSDT")
    ],
    venue: VenueQuery = None,
) -> dict[str, Any]:
    """Track symbols the venue lists; each new one starts its bootstrap."""
    default = venue_or_default(runtime, venue)
    items = [parse_instrument(s, default) for s in symbols]
    for item in items:
        await runtime.venues.info(item.venue, item.symbol)  # 404 if not listed
    added = runtime.track(items)
    return {"added": [str(i) for i in added], "tracked": [str(i) for i in runtime.tracked.all()]}


@router.delete("/symbols/{symbol}", summary="Stop tracking a symbol (its history stays)")
async def remove_symbol(
    runtime: RuntimeDep, symbol: str, venue: VenueQuery = None
) -> dict[str, Any]:
    """Stop tracking `symbol` and cancel its jobs; its stored history is kept."""
    item = Instrument(venue_or_default(runtime, venue), parse_symbol(symbol))
    if not await runtime.untrack(item):
        raise HTTPException(404, f"{item} is not tracked")
    return {"removed": str(item)}


@router.post("/bootstrap/{symbol}", status_code=202, summary="Bootstrap a symbol's history")
async def bootstrap(
    runtime: RuntimeDep,
    symbol: str,
    venue: VenueQuery = None,
    since: Annotated[str | None, Query(description="From (ISO 8601 or epoch ms)")] = None,
) -> dict[str, Any]:
    """Start (or join) the symbol's bootstrap in the background."""
    item = Instrument(venue_or_default(runtime, venue), parse_symbol(symbol))
    await runtime.venues.info(item.venue, item.symbol)  # 404 before a job is started
    runtime.bootstrap(item, None if since is None else parse_time_ms(since))
    job = runtime.jobs.get(BOOTSTRAP, item)
    assert job is not None
    return job_view(job)


@router.post("/import/{symbol}", status_code=202, summary="Import Binance archive files")
async def import_files(
    runtime: RuntimeDep,
    symbol: str,
    venue: VenueQuery = None,
    folder: Annotated[
        str | None, Query(description="A folder on the server's machine; default: the host")
    ] = None,
) -> dict[str, Any]:
    """Import data.binance.vision kline files of the symbol in the background: from a
    folder, or from the archive host (verified and spot-checked either way)."""
    item = Instrument(venue_or_default(runtime, venue), parse_symbol(symbol))
    if item.venue not in (Venue.BINANCE, Venue.BINANCE_USDM):
        raise HTTPException(
            400, f"archive files exist for binance and binance-usdm, not {item.venue}"
        )
    path = None if folder is None else Path(folder)
    if path is not None and not path.is_dir():
        raise HTTPException(400, f"no folder at {folder} on the server's machine")
    await runtime.venues.info(item.venue, item.symbol)
    return job_view(runtime.import_files(item, path))


@router.get("/bootstrap/status", summary="Progress of bootstraps and gap fills")
async def bootstrap_status(runtime: RuntimeDep) -> dict[str, Any]:
    """Return every background job with its progress."""
    return {"jobs": [job_view(j) for j in runtime.jobs.status()]}


@router.post("/cache/preload", summary="Load tracked symbols' recent candles into the hot cache")
async def preload(
    runtime: RuntimeDep,
    symbol: SymbolsQuery = None,
    timeframe: Annotated[str | None, Query(description="One timeframe; default: all")] = None,
    venue: VenueQuery = None,
) -> dict[str, Any]:
    """Load each series' retention window from the warm store into the hot cache."""
    loaded: dict[str, int] = {}
    for item in _items(runtime, venue, symbol):
        for tf in _timeframes(item.venue, timeframe):
            loaded[f"{item}:{tf.code}"] = await runtime.candles.preload(item.venue, item.symbol, tf)
    return {"loaded": loaded, "rows": sum(loaded.values())}


@router.post("/cache/invalidate", summary="Drop hot entries (reloaded from warm on next read)")
async def invalidate(
    runtime: RuntimeDep,
    symbol: Annotated[str | None, Query()] = None,
    timeframe: Annotated[str | None, Query()] = None,
    venue: Annotated[str | None, Query(description="Venue; default: every venue")] = None,
) -> dict[str, int]:
    """Drop the hot entries of a venue, a symbol, or one series (all: no parameters)."""
    chosen = None if venue is None and symbol is None else venue_or_default(runtime, venue)
    name = None if symbol is None else parse_symbol(symbol)
    tf = None if timeframe is None else timeframe_for_venue(timeframe, chosen or Venue.BINANCE)
    if tf is not None and name is None:
        raise HTTPException(400, "a timeframe needs a symbol")
    return {"dropped": await runtime.hot.invalidate(chosen, name, tf)}


@router.get("/cache/stats", summary="Hit ratios, latencies, exchange requests, hot cache size")
async def cache_stats(runtime: RuntimeDep) -> dict[str, Any]:
    """Return the layers' figures, the hot cache's size and the exchange requests made."""
    return await cache_figures(runtime, per_symbol=True)


@router.post("/gaps/scan", summary="Present, confirmed-empty and missing minutes per symbol")
async def gaps_scan(
    runtime: RuntimeDep,
    symbol: SymbolsQuery = None,
    venue: VenueQuery = None,
) -> dict[str, Any]:
    """Compare each ledger with the timeline it should cover; fetch nothing."""
    reports: dict[str, Any] = {}
    for item in _items(runtime, venue, symbol):
        await runtime.runner(item.venue)  # the venue's client: its request size
        coverage = await runtime.ingestor.coverage(item.venue, item.symbol)
        report = runtime.gap_report(item.venue, coverage)
        reports[str(item)] = None if report is None else msgspec.to_builtins(report)
    return {"reports": reports}


@router.post("/gaps/fill", status_code=202, summary="Fetch the missing minutes, in the background")
async def gaps_fill(
    runtime: RuntimeDep,
    symbol: SymbolsQuery = None,
    venue: VenueQuery = None,
) -> dict[str, Any]:
    """Start a gap-fill job per symbol (the fewest requests the ledger allows)."""
    jobs = [runtime.fill_gaps(item) for item in _items(runtime, venue, symbol)]
    return {"jobs": [job_view(j) for j in jobs]}


async def cache_figures(runtime: Runtime, *, per_symbol: bool) -> dict[str, Any]:
    """The read path's figures and the hot cache's (shared with the system route)."""
    stats = runtime.stats
    out: dict[str, Any] = {
        "reads": stats.reads,
        "answered_by": stats.answered_by,
        "layers": msgspec.to_builtins(stats.layers()),
        "hot_warm_ratio": stats.hot_warm_ratio(),
        "hot_cache": msgspec.to_builtins(await runtime.hot.stats()),
    }
    if per_symbol:
        out["exchange_requests"] = stats.exchange_by_symbol()
    return out


def _items(runtime: Runtime, venue: str | None, symbol: str | None) -> list[Instrument]:
    if symbol is not None:
        return [Instrument(venue_or_default(runtime, venue), parse_symbol(symbol))]
    chosen = None if venue is None else venue_or_default(runtime, venue)
    return [i for i in runtime.tracked.all() if chosen is None or i.venue is chosen]


def _timeframes(venue: Venue, code: str | None) -> list[Timeframe]:
    if code is None:
        return list(venue_timeframes(venue))
    try:
        return [timeframe_for_venue(code, venue)]
    except CandlevaultError as e:
        raise HTTPException(400, str(e)) from None
