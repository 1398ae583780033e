"""Long admin work in the background: bootstraps and gap fills, with their progress.

An admin request that would take minutes (a bootstrap from inception, a gap fill of
every symbol) starts a job and returns at once; `status()` reports every job's progress
(the same numbers as the CLI's bars: requests, candles, weight, ETA) until it is done.
Jobs are asyncio tasks owned by the board, one per (kind, venue, symbol) at a time: a
second start of the same job returns the running one. `aclose` cancels what still runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from candlevault.bootstrap.runner import Progress
from candlevault.domain.symbols import Instrument

log = logging.getLogger(__name__)
Work = Callable[[Callable[[Progress], None]], Awaitable[Progress]]


class JobStatus(msgspec.Struct):
    """One job: what it is, where it stands, and its latest progress."""

    kind: str
    venue: str
    symbol: str
    state: str  # running, done, failed, cancelled
    started_s: float
    finished_s: float | None = None
    error: str | None = None
    progress: Progress | None = None

    @property
    def running(self) -> bool:
        """True while the job's task runs."""
        return self.state == "running"


class JobBoard:
    """Background jobs and their status."""

    def __init__(self, clock: Callable[[], float] = time.time, keep: int = 200) -> None:
        self._clock = clock
        self._keep = keep
        self._jobs: dict[tuple[str, Instrument], JobStatus] = {}
        self._tasks: dict[tuple[str, Instrument], asyncio.Task[None]] = {}

    def start(self, kind: str, item: Instrument, work: Work) -> JobStatus:
        """Start `work` as a job unless the same job runs already; return its status."""
        key = (kind, item)
        current = self._jobs.get(key)
        if current is not None and current.running:
            return current
        status = JobStatus(kind, item.venue.value, item.symbol, "running", self._clock())
        self._jobs.pop(key, None)
        self._jobs[key] = status  # newest last
        self._tasks[key] = asyncio.create_task(self._run(key, status, work))
        self._trim()
        return status

    def status(self, kind: str | None = None) -> list[JobStatus]:
        """Return every job (of `kind`), oldest first."""
        return [s for (k, _), s in self._jobs.items() if kind is None or k == kind]

    def get(self, kind: str, item: Instrument) -> JobStatus | None:
        """Return one job's status."""
        return self._jobs.get((kind, item))

    def cancel(self, item: Instrument) -> int:
        """Cancel every running job of `item`; return how many."""
        cancelled = 0
        for (_, owner), task in list(self._tasks.items()):
            if owner == item and not task.done():
                task.cancel()
                cancelled += 1
        return cancelled

    async def wait(self, kind: str, item: Instrument) -> JobStatus | None:
        """Wait for a job to end (tests, and the CLI's `--wait`); return its status."""
        task = self._tasks.get((kind, item))
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return self._jobs.get((kind, item))

    async def aclose(self) -> None:
        """Cancel every running job and wait for them to stop."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: tuple[str, Instrument], status: JobStatus, work: Work) -> None:
        def record(progress: Progress) -> None:
            status.progress = progress

        try:
            done = await work(record)
        except asyncio.CancelledError:
            status.state = "cancelled"
            raise
        except Exception as e:  # a job's failure is its status, never the service's crash
            status.state, status.error = "failed", f"{type(e).__name__}: {e}"
            log.warning("%s of %s %s failed: %s", status.kind, status.venue, status.symbol, e)
        else:
            status.state, status.progress = "done", done
        finally:
            status.finished_s = self._clock()
            self._tasks.pop(key, None)

    def _trim(self) -> None:
        ended = [k for k, s in self._jobs.items() if not s.running]
        for key in ended[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[key]
