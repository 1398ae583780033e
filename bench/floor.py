"""The floor for `bench.serve`: the cheapest FastAPI endpoint, served as `serve` serves.

One route at candlevault's candles path returns the same prebuilt body for every
request, through uvicorn with httptools on uvloop, no access log: the framework's and
the server's own cost per request, with nothing of candlevault in it. Whatever a client
measures against it is the ceiling of that client and this stack on this machine.

    .venv/bin/python -m bench.floor BODY_FILE     # prints PORT=<port> once listening
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI
from fastapi.responses import Response


def create_app(body: bytes) -> FastAPI:
    """An app whose one endpoint answers `body` as JSON."""
    app = FastAPI()

    @app.get("/api/v1/market/candles/{symbol}/{timeframe}", response_class=Response)
    async def candles(symbol: str, timeframe: str) -> Response:
        return Response(body, media_type="application/json")

    return app


async def serve(body: bytes) -> None:
    """Serve on a free loopback port until interrupted; print the port first."""
    config = uvicorn.Config(
        create_app(body),
        host="127.0.0.1",
        port=0,
        http="httptools",
        loop="none",  # uvloop.run below, as `candlevault serve` does
        lifespan="on",
        access_log=False,
        log_level="warning",
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(f"PORT={self.servers[0].sockets[0].getsockname()[1]}", flush=True)

    await Server(config).serve()


if __name__ == "__main__":
    uvloop.run(serve(Path(sys.argv[1]).read_bytes()))
