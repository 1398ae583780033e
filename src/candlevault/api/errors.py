"""Every failure as an HTTP answer with a message, never a bare 500.

The domain's error classes say what kind of failure it is, so one table maps them to a
status: the caller's fault 400, something that does not exist 404, the exchange or a
store unavailable 503 (with `Retry-After` when the exchange said how long), the
exchange refusing us 502. FastAPI's own validation errors keep their 422 with the
offending parameter named. The Binance-compatible routes answer in Binance's
`{"code", "msg"}` form instead (`api.binance`).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from candlevault.domain.errors import (
    BadRequest,
    CandlevaultError,
    ExchangeRejected,
    ExchangeUnavailable,
    NotFound,
    StorageError,
)

log = logging.getLogger(__name__)


def status_of(error: CandlevaultError) -> int:
    """The HTTP status of a domain error."""
    if isinstance(error, BadRequest):
        return 400
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, ExchangeRejected):
        return 502
    if isinstance(error, ExchangeUnavailable | StorageError):
        return 503
    return 500


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error body: `{"detail": message}`, as FastAPI writes its own."""
    body = orjson.dumps({"detail": message})
    return Response(body, status, headers=headers, media_type="application/json")


def install(app: FastAPI) -> None:
    """Map domain errors (and anything unexpected) to answers on `app`."""

    async def domain(request: Request, error: Exception) -> Response:
        assert isinstance(error, CandlevaultError)
        status = status_of(error)
        headers = None
        if isinstance(error, ExchangeUnavailable) and error.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(error.retry_after)))}
        if status == 500:
            log.error("unexpected %s on %s: %s", type(error).__name__, request.url.path, error)
        return json_error(status, str(error), headers)

    app.add_exception_handler(CandlevaultError, domain)
