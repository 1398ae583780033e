"""Shared by the simulator's integration tests: an aiohttp app serving some endpoints.

Each venue's conftest builds its own world and server with this, so every test serves
its endpoints through the same `wrap` (limits, faults, ledger) that `candlevault sim`
uses, on a real socket.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from candlevault.simulator.http import Endpoint, wrap
from candlevault.simulator.world import SimWorld


def app_for(world: SimWorld, endpoints: Iterable[Endpoint]) -> web.Application:
    """Return an aiohttp app that serves `endpoints` from `world`, each behind `wrap`."""
    app = web.Application()
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, wrap(world, endpoint))
    return app
