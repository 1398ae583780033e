"""`create_app(settings)`: the FastAPI app, with a lifespan that opens the runtime.

Nothing connects at import time: the store, the hot cache and the venues open in the
lifespan and close with it, so tests build as many apps as they like.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from candlevault import __version__
from candlevault.api import errors
from candlevault.api.fast import FastReads
from candlevault.api.metrics import registry_for
from candlevault.api.metrics import router as metrics_router
from candlevault.api.routes import admin, binance, market, system
from candlevault.config import Settings
from candlevault.service.runtime import Runtime

DESCRIPTION = """Complete, exact crypto candle (OHLCV) history for Binance and Bybit, served
from memory, then from the embedded store, then from the exchange only for what is
truly missing. Prices and volumes are decimal strings exactly as the exchange sent them.
Binance clients can point at `/api/v3/klines` and `/fapi/v1/klines` unchanged."""


def create_app(settings: Settings, *, start: bool = True) -> FastAPI:
    """Build the app; its lifespan opens the runtime (and `start`s background work)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        app.state.runtime = runtime
        app.state.metrics = registry_for(runtime)
        try:
            if start:
                await runtime.start()
            yield
        finally:
            await runtime.aclose()

    app = FastAPI(
        title="candlevault",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(FastReads, root=app)
    app.include_router(market.router)
    app.include_router(binance.spot)
    app.include_router(binance.usdm)
    app.include_router(admin.router)
    app.include_router(system.router)
    app.include_router(metrics_router)
    return app
