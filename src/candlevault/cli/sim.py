"""`candlevault sim`: run the Binance/Bybit simulator on loopback until interrupted.

It prints the `CANDLEVAULT_*_URL=...` lines that point candlevault at it (one per line,
first thing on stdout, so a script can `eval` or source them) and then serves.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from candlevault.domain.errors import CandlevaultError
from candlevault.domain.symbols import parse_symbol
from candlevault.domain.times import parse_time_ms


def sim(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback only by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 9100,
    seed: Annotated[int, typer.Option(help="Market seed: the same seed is the same market.")] = 1,
    symbols: Annotated[
        str, typer.Option(help="Comma-separated symbols listed on every venue that has them.")
    ] = "BTCUSDT,ETHUSDT,SOLUSDT,NEOETH",
    speed: Annotated[float, typer.Option(help="Sim time runs this many times wall time.")] = 1.0,
    start: Annotated[
        str | None, typer.Option(help="Sim time at start (ISO date-time or epoch ms); default now.")
    ] = None,
    binance_weight: Annotated[int, typer.Option(help="Binance spot weight per minute per IP.")] = (
        6000
    ),
    usdm_weight: Annotated[
        int, typer.Option(help="Binance USD-M weight per minute per IP.")
    ] = 2400,
    bybit_limit: Annotated[int, typer.Option(help="Bybit requests per 5 s per IP.")] = 600,
    bybit_lockout: Annotated[float, typer.Option(help="Bybit lock-out after a 403, in s.")] = 600.0,
    outages: Annotated[
        str,
        typer.Option(
            help="Binance maintenance outages, START/END[,START/END...] (ISO or epoch ms), "
            "or 'none'; default: 2018-02-08T04:00Z/2018-02-09T08:00Z."
        ),
    ] = "2018-02-08T04:00Z/2018-02-09T08:00Z",
    listed: Annotated[
        str | None,
        typer.Option(help="Override listings: SYMBOL=DATE[,SYMBOL=DATE...] (all venues)."),
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Faults from the start, as the JSON of /_sim/faults: '{\"error_5xx\": 0.05}'."
        ),
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host.")
    ] = False,
) -> None:
    """Run the exchange simulator: Binance spot and USD-M, Bybit v5 and the archives.

    Prints the CANDLEVAULT_*_URL lines that point candlevault at it, then serves
    until interrupted. Controls: /_sim/clock, /_sim/faults, /_sim/stats.
    """
    from candlevault.simulator.faults import FaultSettings, parse_settings
    from candlevault.simulator.server import SimServer, is_loopback
    from candlevault.simulator.world import SimConfig, SimWorld

    try:
        fault_settings = FaultSettings() if faults is None else parse_settings(_json(faults))
        names = tuple(parse_symbol(s) for s in symbols.split(",") if s.strip())
        start_ms = parse_time_ms(start) if start is not None else None
        config = SimConfig(
            seed=seed,
            symbols=names,
            start_ms=start_ms,
            speed=speed,
            binance_weight_per_minute=binance_weight,
            usdm_weight_per_minute=usdm_weight,
            bybit_requests_per_5s=bybit_limit,
            bybit_lockout_s=bybit_lockout,
            faults=fault_settings,
            outages=_outages(outages),
            listed=_listed(listed),
        )
    except (CandlevaultError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if speed <= 0:
        typer.echo(f"error: invalid speed {speed}: expected a number above 0", err=True)
        raise typer.Exit(2)
    if not allow_remote and not is_loopback(host):
        typer.echo(
            f"error: refusing to listen on {host!r}: the simulator stays on loopback; "
            "pass --allow-remote to override",
            err=True,
        )
        raise typer.Exit(2)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with SimServer(SimWorld(config), host, port, allow_remote) as server:
            for name, value in server.env().items():
                typer.echo(f"{name}={value}")
            await stop.wait()

    asyncio.run(serve())


def _json(text: str) -> object:
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"--faults is not JSON: {e}") from e


def _outages(text: str) -> tuple[tuple[int, int], ...]:
    if text.strip().lower() == "none":
        return ()
    spans = []
    for item in text.split(","):
        start, sep, end = item.partition("/")
        if not sep:
            raise ValueError(f"invalid outage {item!r}: expected START/END")
        lo, hi = parse_time_ms(start), parse_time_ms(end)
        if hi <= lo:
            raise ValueError(f"invalid outage {item!r}: END must be after START")
        spans.append((lo, hi))
    return tuple(spans)


def _listed(text: str | None) -> tuple[tuple[str, int], ...]:
    if not text:
        return ()
    pairs = []
    for item in text.split(","):
        symbol, sep, date = item.partition("=")
        if not sep:
            raise ValueError(f"invalid listing {item!r}: expected SYMBOL=DATE")
        pairs.append((parse_symbol(symbol), parse_time_ms(date)))
    return tuple(pairs)
