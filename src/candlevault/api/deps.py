"""Dependencies of the routes: the runtime of the app, and the admin guard.

Admin endpoints take a bearer token (`CANDLEVAULT_ADMIN_TOKEN`) compared in constant
time; with no token configured they are disabled (403 with the way to enable them),
never open.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from candlevault.domain.errors import CandlevaultError, NotFound
from candlevault.domain.venues import Venue, parse_venue
from candlevault.service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime (set by the lifespan). Async: FastAPI runs a sync dependency
    in a worker thread, which cost ~20% of a hot read."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_admin(request: Request, runtime: RuntimeDep) -> None:
    """Let the request through only with the configured admin bearer token."""
    token = runtime.settings.admin_token
    if token is None:
        raise HTTPException(
            403, "admin endpoints are disabled: set CANDLEVAULT_ADMIN_TOKEN to enable them"
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            401,
            "admin endpoints need 'Authorization: Bearer <CANDLEVAULT_ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)


def venue_or_default(runtime: Runtime, venue: str | None) -> Venue:
    """The asked venue (404 for one candlevault does not know), else the default."""
    if venue is None:
        return runtime.settings.default_venue
    try:
        return parse_venue(venue)
    except CandlevaultError as e:
        raise NotFound(str(e)) from None
