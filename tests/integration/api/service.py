"""candlevault's HTTP service, running for real on loopback against a simulator.

`running_service` starts the app with uvicorn on 127.0.0.1:0 (the same server `serve`
runs), with its data dir under the test's tmp path and every venue URL and the clock
pointed at the simulator, and yields an HTTP session on it. Nothing is mocked: requests
cross real sockets twice (client → candlevault → simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn
from fastapi import FastAPI

from candlevault.api.app import create_app
from candlevault.config import Settings, load_settings
from candlevault.service.runtime import Runtime
from tests.integration.exchanges.venues import Sim
from tests.support.waiting import eventually

TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Service:
    """A running candlevault: its URL, an HTTP session, the app and its settings."""

    url: str
    http: aiohttp.ClientSession
    app: FastAPI
    settings: Settings

    @property
    def runtime(self) -> Runtime:
        """The app's runtime (for waiting on its jobs; assertions go through HTTP)."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        """GET `path`; return the status and the decoded JSON body."""
        async with self.http.get(self.url + path, params=_query(params)) as reply:
            return reply.status, orjson.loads(await reply.read())

    async def raw(self, path: str, **params: Any) -> tuple[int, bytes]:
        """GET `path`; return the status and the body bytes."""
        async with self.http.get(self.url + path, params=_query(params)) as reply:
            return reply.status, await reply.read()

    async def admin(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        **params: Any,
    ) -> tuple[int, Any]:  # fmt: skip
        """Call an admin endpoint with the token (or the given headers)."""
        data = None if body is None else orjson.dumps(body)
        async with self.http.request(
            method,
            self.url + path,
            params=_query(params),
            data=data,
            headers={**(ADMIN if headers is None else headers), "Content-Type": "application/json"},
        ) as reply:
            return reply.status, orjson.loads(await reply.read())


async def finished_job(service: Service, kind: str, symbol: str = "ETHUSDT") -> dict[str, Any]:
    """Wait until the newest `kind` job of `symbol` has ended; return it (it must be done)."""

    async def ended() -> dict[str, Any]:
        status, body = await service.admin("GET", "/api/v1/admin/bootstrap/status")
        assert status == 200, body
        jobs = [j for j in body["jobs"] if j["kind"] == kind and j["symbol"] == symbol]
        assert jobs, body
        assert jobs[-1]["state"] != "running", jobs[-1]
        job: dict[str, Any] = jobs[-1]
        return job

    job: dict[str, Any] = await eventually(ended, timeout=20)
    assert job["state"] == "done", job
    return job


async def track(service: Service, symbol: str = "ETHUSDT") -> dict[str, Any]:
    """Track `symbol` through the admin API and wait for its bootstrap; return the job."""
    status, body = await service.admin("POST", "/api/v1/admin/symbols", {"symbols": [symbol]})
    assert status == 202, body
    return await finished_job(service, "bootstrap", symbol)


def _query(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None}


def sim_settings(sim: Sim, data_dir: Path, **overrides: Any) -> Settings:
    """Settings that point every venue and the clock at `sim`."""
    url = sim.server.url
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "binance_rest_url": url,
        "binance_usdm_rest_url": url,
        "binance_archive_url": url,
        "bybit_rest_url": url,
        "clock_url": f"{url}/_sim/clock",
        "admin_token": TOKEN,
        # Streams are tested on their own (test_streams.py): these tests count the
        # exchange's REST requests and run the simulator paused.
        "streams": False,
    }
    values.update(overrides)
    return load_settings(**values)


@contextlib.asynccontextmanager
async def running_service(
    sim: Sim, data_dir: Path, *, start: bool = True, **overrides: Any
) -> AsyncIterator[Service]:
    """Run candlevault on 127.0.0.1:0 against `sim` until the block ends."""
    settings = sim_settings(sim, data_dir, **overrides)
    app = create_app(settings, start=start)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done())
        if task.done():
            task.result()  # the start-up failed: raise its error
        port = server.servers[0].sockets[0].getsockname()[1]
        async with aiohttp.ClientSession() as http:
            yield Service(f"http://127.0.0.1:{port}", http, app, settings)
    finally:
        server.should_exit = True
        await task
