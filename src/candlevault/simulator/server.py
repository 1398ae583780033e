"""The simulator's HTTP server: every venue's endpoints and the `/_sim` controls on one port.

The real venues live on different hosts, but their paths never collide (`/api/v3`,
`/fapi/v1`, `/v5`, `/data`), so one loopback port serves them all and candlevault is
pointed at it by the `CANDLEVAULT_*_URL` lines that `SimServer.env()` returns. The
controls let tests and benchmarks drive the world: the clock (`/_sim/clock`), the
fault switchboard (`/_sim/faults`) and the request ledger (`/_sim/stats`).
`POST /_sim/ws/drop` closes every open WebSocket now (code 1001) and answers
`{"dropped": <how many>}`; the periodic and per-frame stream faults are settings of
`/_sim/faults` (`ws_*`, see faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import msgspec
import orjson
from aiohttp import web

from candlevault.domain.errors import CandlevaultError
from candlevault.simulator import archive_routes, binance_rest, bybit_rest, ws_binance, ws_bybit
from candlevault.simulator.http import wrap
from candlevault.simulator.world import SimWorld
from candlevault.simulator.ws_hub import WsHub, WsTimings

WORLD = web.AppKey("world", SimWorld)
HUB = web.AppKey("ws_hub", WsHub)


def create_app(world: SimWorld, hub: WsHub | None = None) -> web.Application:
    """Build the aiohttp application serving `world` (and its streams through `hub`)."""
    app = web.Application()
    app[WORLD] = world
    app[HUB] = hub = hub or WsHub()
    for endpoint in (*binance_rest.ENDPOINTS, *bybit_rest.ENDPOINTS, *archive_routes.ENDPOINTS):
        app.router.add_route(endpoint.method, endpoint.path, wrap(world, endpoint))
    for path, handler in (*ws_binance.routes(world, hub), *ws_bybit.routes(world, hub)):
        app.router.add_get(path, handler)
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(_periodic_drops)
    app.router.add_get("/_sim/clock", _control(lambda w, _: w.clock.state()))
    app.router.add_post("/_sim/clock", _control(lambda w, body: w.clock.apply(body)))
    app.router.add_get("/_sim/faults", _control(lambda w, _: w.faults.settings))
    app.router.add_post("/_sim/faults", _control(lambda w, body: w.faults.update(body)))
    app.router.add_post("/_sim/ws/drop", _drop_streams)
    app.router.add_get("/_sim/stats", _control(lambda w, _: _stats(w, hub)))
    app.router.add_post("/_sim/stats/reset", _control(lambda w, _: _reset_stats(w, hub)))
    return app


async def _close_streams(app: web.Application) -> None:
    # Stream handlers only end when their socket closes; without this, shutdown waits.
    await app[HUB].drop_all(b"server shutdown")


async def _periodic_drops(app: web.Application) -> AsyncIterator[None]:
    world, hub = app[WORLD], app[HUB]
    task = asyncio.create_task(hub.drop_every(lambda: world.faults.settings.ws_drop_every_s))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _drop_streams(request: web.Request) -> web.Response:
    return _json({"dropped": await request.app[HUB].drop_all()})


def _stats(world: SimWorld, hub: WsHub) -> object:
    snapshot = world.stats.snapshot()
    snapshot["ws"] = hub.stats.snapshot()
    return snapshot


def _reset_stats(world: SimWorld, hub: WsHub) -> object:
    world.stats.reset()
    hub.stats.reset()
    return _stats(world, hub)


def _control(
    act: Callable[[SimWorld, object], object],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Serve a control: JSON in (for POST), JSON out, 400 with a message on bad input."""

    async def handle(request: web.Request) -> web.Response:
        body: object = None
        if request.method == "POST" and request.can_read_body:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError as e:
                return _json({"error": f"body is not JSON: {e}"}, status=400)
        try:
            result = act(request.app[WORLD], body)
        except (CandlevaultError, ValueError, msgspec.ValidationError) as e:
            return _json({"error": str(e)}, status=400)
        return web.Response(body=msgspec.json.encode(result), content_type="application/json")

    return handle


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class SimServer:
    """Run the simulator on a loopback port (0: a free one) inside this process."""

    def __init__(
        self,
        world: SimWorld,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
        ws_timings: WsTimings | None = None,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host!r}: the simulator stays on loopback "
                "unless allowed explicitly"
            )
        self.world = world
        self.hub = WsHub(ws_timings)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Start listening; `port` becomes the bound port."""
        runner = web.AppRunner(create_app(self.world, self.hub), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:9100."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def env(self) -> dict[str, str]:
        """Return the settings that point candlevault at this simulator."""
        url = self.url
        ws_url = "ws" + url.removeprefix("http")
        return {
            "CANDLEVAULT_BINANCE_REST_URL": url,
            "CANDLEVAULT_BINANCE_USDM_REST_URL": url,
            "CANDLEVAULT_BINANCE_ARCHIVE_URL": url,
            "CANDLEVAULT_BYBIT_REST_URL": url,
            "CANDLEVAULT_BINANCE_WS_URL": ws_url,
            "CANDLEVAULT_BINANCE_USDM_WS_URL": ws_url + ws_binance.USDM_PREFIX,
            "CANDLEVAULT_BYBIT_WS_URL": ws_url,
            "CANDLEVAULT_CLOCK_URL": f"{url}/_sim/clock",
        }


def is_loopback(host: str) -> bool:
    """True for 'localhost' and addresses in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
