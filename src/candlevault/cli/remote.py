"""The CLI's write commands while `candlevault serve` runs: through its admin API.

A data dir has one writer. When `serve` holds it (its writer lock is taken and it left
`<data dir>/serve.json` with its URL), `bootstrap`, `gaps fill` and `import` start the
same work as background jobs of the server and follow their progress from
`/api/v1/admin/bootstrap/status`, with the same progress bars, instead of failing on
the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from candlevault.config import Settings
from candlevault.domain.errors import BadRequest, CandlevaultError, ExchangeUnavailable, NotFound
from candlevault.storage.lock import DataDirLock

ENDPOINT_FILE = "serve.json"
POLL_S = 0.5
Show = Callable[[dict[str, Any]], None]


def serving_url(settings: Settings) -> str | None:
    """The URL of the `serve` process writing this data dir, if one runs."""
    path = settings.data_dir / ENDPOINT_FILE
    if not path.is_file():
        return None
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except CandlevaultError:  # held: the server is alive
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            url = orjson.loads(path.read_bytes()).get("url")
            return url if isinstance(url, str) else None
        return None
    lock.release()  # nobody holds it: the file is left from a server that died
    return None


async def run_jobs(
    settings: Settings, url: str, starts: list[tuple[str, dict[str, str]]], show: Show
) -> list[dict[str, Any]]:
    """POST each (path, params) to start a job, then follow the jobs until all end;
    `show` gets each job's status as it changes. Return the final statuses."""
    if settings.admin_token is None:
        raise BadRequest(
            f"candlevault serve runs at {url} and holds the data dir; "
            "set CANDLEVAULT_ADMIN_TOKEN to send it this work"
        )
    headers = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        keys = []
        for path, params in starts:
            job = await _call(http, "POST", url + path, params)
            keys.append((job["kind"], job["venue"], job["symbol"]))
        done: dict[tuple[str, str, str], dict[str, Any]] = {}
        for _ in iter(int, 1):  # until every job has ended
            status = await _call(http, "GET", url + "/api/v1/admin/bootstrap/status", {})
            for job in status["jobs"]:
                key = (job["kind"], job["venue"], job["symbol"])
                if key in keys:
                    show(job)
                    if job["state"] != "running":
                        done[key] = job
            if len(done) == len(keys):
                return [done[k] for k in keys]
            await asyncio.sleep(POLL_S)
    raise AssertionError("unreachable")


async def _call(http: aiohttp.ClientSession, method: str, url: str, params: dict[str, str]) -> Any:
    try:
        async with http.request(method, url, params=params) as reply:
            body = orjson.loads(await reply.read())
            status = reply.status
    except (aiohttp.ClientError, orjson.JSONDecodeError) as e:
        raise ExchangeUnavailable(f"candlevault serve at {url}: {e}") from e
    if status == 404:
        raise NotFound(body.get("detail", str(body)))
    if status >= 400:
        raise BadRequest(f"candlevault serve refused: {body.get('detail', body)}")
    return body


def folder_param(source: Path | None) -> dict[str, str]:
    """The import's folder as the server sees it (an absolute path on this machine)."""
    return {} if source is None else {"folder": str(source.resolve())}
