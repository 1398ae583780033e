"""`candlevault serve`: the API, the gap monitor and background bootstraps, in one process.

It holds the data dir's writer lock while it runs and writes `<data dir>/serve.json`
(its URL and pid) once it listens, so that `candlevault bootstrap`, `gaps fill` and
`import` send their work to it through the admin API instead of writing beside it.

`--simulate` starts the exchange simulator in this process on a free loopback port and
points every venue URL and the clock at it: a newcomer sees candles, stats and health
with nothing else installed. Unless `CANDLEVAULT_BOOTSTRAP_SINCE` says otherwise, a
simulated run bootstraps the last `--sim-days` days rather than years of history.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from candlevault.domain.errors import CandlevaultError

USAGE_ERROR = 2
ENDPOINT_FILE = "serve.json"


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8000,
    symbols: Annotated[
        str | None,
        typer.Option(help="Comma-separated symbols to track (added to CANDLEVAULT_SYMBOLS)."),
    ] = None,
    venue: Annotated[
        str | None, typer.Option(help="Default venue (CANDLEVAULT_DEFAULT_VENUE).")
    ] = None,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Run the exchange simulator in-process and use it.")
    ] = False,
    sim_days: Annotated[
        int, typer.Option(min=1, help="With --simulate: bootstrap this many days back.")
    ] = 7,
    sim_speed: Annotated[float, typer.Option(help="With --simulate: sim time speed.")] = 1.0,
) -> None:
    """Serve candles over HTTP: hot cache, warm store, open candle, then the exchange.

    Tracked symbols are bootstrapped in the background while already serving; the gap
    monitor repairs what an outage left behind.
    """
    try:
        asyncio_run(_main(host, port, symbols, venue, simulate, sim_days, sim_speed))
    except CandlevaultError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
    except KeyboardInterrupt:
        pass


def asyncio_run(main: Any) -> None:
    """Run `main` on uvloop when it is installed (faster I/O), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _main(
    host: str,
    port: int,
    symbols: str | None,
    venue: str | None,
    simulate: bool,
    sim_days: int,
    sim_speed: float,
) -> None:
    import uvicorn

    from candlevault.api.app import create_app
    from candlevault.config import load_settings

    overrides: dict[str, Any] = {}
    if venue is not None:
        overrides["default_venue"] = venue
    base = load_settings(**overrides)
    if symbols:
        overrides["symbols"] = [*(str(s) for s in base.symbols), *symbols.split(",")]
    simulator = None
    if simulate:
        simulator, urls = await _start_simulator(sim_speed)
        overrides.update(urls)
        if base.bootstrap_since is None:
            overrides["bootstrap_since"] = int((time.time() - sim_days * 86_400) * 1000)
        if not base.symbols and not symbols:
            overrides["symbols"] = "BTCUSDT,ETHUSDT"
    settings = load_settings(**overrides)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        http="httptools",
        loop="none",  # ours: uvloop when installed (asyncio_run)
        lifespan="on",
        access_log=False,
        log_level="info",
    )
    endpoint = settings.data_dir / ENDPOINT_FILE

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening: tell the CLI's other commands where
                bound = int(self.servers[0].sockets[0].getsockname()[1])
                _write_endpoint(endpoint, host, bound)
                typer.echo(f"candlevault serving on http://{host}:{bound}", err=True)

    try:
        await Server(config).serve()
    finally:
        endpoint.unlink(missing_ok=True)
        if simulator is not None:
            await simulator.aclose()


async def _start_simulator(speed: float) -> tuple[Any, dict[str, str]]:
    from candlevault.simulator.server import SimServer
    from candlevault.simulator.world import SimConfig, SimWorld

    server = SimServer(SimWorld(SimConfig(speed=speed)), "127.0.0.1", 0)
    await server.start()
    prefix = "CANDLEVAULT_"
    urls = {name.removeprefix(prefix).lower(): url for name, url in server.env().items()}
    typer.echo(f"simulator on {server.url}", err=True)
    return server, urls


def _write_endpoint(path: Path, host: str, port: int) -> None:
    import orjson

    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"url": f"http://{shown}:{port}", "pid": os.getpid()}
    path.write_bytes(orjson.dumps(doc))
