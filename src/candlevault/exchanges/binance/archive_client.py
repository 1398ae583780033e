"""Fetching kline archives from data.binance.vision, and judging each file once fetched.

The host is an S3 bucket behind CloudFront: a file that does not exist answers 404 with
`<Error><Code>NoSuchKey</Code>...` (binance/binance-public-data#243), which is an answer
("missing"), not a failure. Downloads are not weight-limited, so there is no rate limiter
here; 5xx, dropped connections and time-outs are retried a few times with capped, jittered
exponential backoff, and nothing else is retried: a 4xx or a bad file will not improve.

Every fetched file ends as one `ArchiveOutcome`: `Verified` (checksum, format and
coverage all good), `Missing` (no such file), or `Rejected` with the kind and reason, so
the importer can record why it fell back to REST for that period. A file whose rows
disagree with REST passes every check of its own (its checksum describes it), so the
caller may pass REST candles it already holds as `reference` to spot-check it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from candlevault.domain.candles import Candle
from candlevault.domain.columns import CandleColumns
from candlevault.domain.decimals import Precision
from candlevault.domain.errors import ExchangeRejected, ExchangeUnavailable, RateLimited
from candlevault.domain.times import format_time_ms
from candlevault.exchanges.binance.archive import (
    ArchiveRef,
    ArchiveRejected,
    ParsedKlines,
    check_coverage,
    parse_klines,
    verify_checksum,
)

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10, sock_read=30)
"""Per request: a monthly 1m zip is a few MB, but a stalled read must not hang a bootstrap."""
_TRANSIENT = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
_KLINE_FIELDS = Candle.__struct_fields__[:11]  # the venue's fields, not the flags

RejectKind = Literal["checksum", "parse", "coverage", "disagree"]


@dataclass(frozen=True, slots=True)
class Verified:
    """The file matched its `.CHECKSUM`, parsed whole and holds every expected row."""

    ref: ArchiveRef
    parsed: ParsedKlines

    @property
    def columns(self) -> CandleColumns:
        """The file's candles (closed and complete), times in ms."""
        return self.parsed.columns


@dataclass(frozen=True, slots=True)
class Missing:
    """data.binance.vision has no such file (not published yet, or never)."""

    ref: ArchiveRef


@dataclass(frozen=True, slots=True)
class Rejected:
    """The file exists but cannot be trusted; `reason` says why, for the ledger."""

    ref: ArchiveRef
    kind: RejectKind
    reason: str


ArchiveOutcome = Verified | Missing | Rejected


def disagreements(parsed: ParsedKlines, reference: CandleColumns, limit: int = 5) -> list[str]:
    """Compare a file's rows with closed candles from another source (REST) in its span.

    A disagreeing file passes every other check (its checksum describes it), so only a
    second source can catch it.
    """
    columns, ref = parsed.columns, parsed.ref
    index = {t: i for i, t in enumerate(columns.open_time_ms)}
    found: list[str] = []
    for j, opened in enumerate(reference.open_time_ms):
        theirs = reference.candle(j)
        if not (ref.start_ms <= opened < ref.end_ms and theirs.closed):
            continue
        i = index.get(opened)
        if i is None:
            found.append(f"{format_time_ms(opened)}: the file has no row")
            continue
        ours = columns.candle(i)
        fields = [
            f"{name} {getattr(ours, name)} vs {getattr(theirs, name)}"
            for name in _KLINE_FIELDS
            if getattr(ours, name) != getattr(theirs, name)
        ]
        if fields:
            found.append(f"{format_time_ms(opened)}: {', '.join(fields)}")
    if len(found) > limit:
        found[limit:] = [f"and {len(found) - limit} more"]
    return found


def judge_archive(
    zip_bytes: bytes,
    checksum_text: str | None,
    ref: ArchiveRef,
    *,
    precision: Precision,
    listed_ms: int,
    reference: CandleColumns | None = None,
) -> Verified | Rejected:
    """Verify a fetched zip against its sidecar, parse it, check that it is whole and,
    given `reference` candles from another source, that it agrees with them."""
    try:
        if checksum_text is None:
            return Rejected(ref, "checksum", "no .CHECKSUM beside the file")
        verify_checksum(zip_bytes, checksum_text, ref)
    except ArchiveRejected as e:
        return Rejected(ref, "checksum", e.reason)
    try:
        parsed = parse_klines(zip_bytes, ref=ref, precision=precision, listed_ms=listed_ms)
    except ArchiveRejected as e:
        return Rejected(ref, "parse", e.reason)
    problems = check_coverage(parsed.columns, ref, listed_ms).problems
    if problems:
        return Rejected(ref, "coverage", "; ".join(problems))
    if reference is not None:
        differ = disagreements(parsed, reference)
        if differ:
            return Rejected(ref, "disagree", "differs from the reference: " + "; ".join(differ))
    return Verified(ref, parsed)


def backoff_s(attempt: int, base_s: float, cap_s: float, unit: float) -> float:
    """Return the wait before retry `attempt` (0-based): base * 2**attempt, capped, then
    jittered into its upper half by `unit` in [0, 1) so that retries do not march together."""
    ceiling = min(cap_s, base_s * 2.0**attempt)
    return ceiling / 2 * (1 + unit)


class BinanceArchiveClient:
    """Reads data.binance.vision (or the simulator's stand-in) at `base_url`.

    `sleep` and `jitter` (a uniform draw in [0, 1)) drive the backoff; tests inject both. The
    session is the caller's: this class opens nothing and needs no closing.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        attempts: int = 4,
        base_delay_s: float = 0.5,
        max_delay_s: float = 8.0,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self._session = session
        self._base = base_url.rstrip("/")
        self._attempts = attempts
        self._base_delay_s = base_delay_s
        self._max_s = max_delay_s
        self._timeout = timeout
        self._sleep = sleep
        self._jitter = jitter

    async def fetch(self, ref: ArchiveRef) -> bytes | None:
        """Return the zip's bytes, or None when the archive has no such file."""
        return await self._get(ref.path)

    async def fetch_checksum(self, ref: ArchiveRef) -> str | None:
        """Return the `.CHECKSUM` sidecar's text, or None when there is none."""
        body = await self._get(ref.checksum_path)
        return None if body is None else body.decode("ascii", errors="replace")

    async def fetch_verified(
        self,
        ref: ArchiveRef,
        precision: Precision,
        listed_ms: int,
        *,
        reference: CandleColumns | None = None,
    ) -> ArchiveOutcome:
        """Fetch a file and its sidecar and judge them (see `judge_archive`).

        Raises `ExchangeUnavailable` once the retries are spent, and `ExchangeRejected`
        when the host refuses the request itself (a 4xx other than NoSuchKey).
        """
        data = await self.fetch(ref)
        if data is None:
            return Missing(ref)
        checksum = await self.fetch_checksum(ref)
        # Hashing and parsing a month of 1m takes a good fraction of a second: off the loop.
        return await asyncio.to_thread(
            judge_archive,
            data,
            checksum,
            ref,
            precision=precision,
            listed_ms=listed_ms,
            reference=reference,
        )

    async def _get(self, path: str) -> bytes | None:
        """GET `path`, retrying only what may pass on its own (5xx, connection, time-out)."""
        url = f"{self._base}/{path}"
        failure = ExchangeUnavailable(f"GET {url}: not attempted")
        cause: BaseException | None = None
        for attempt in range(self._attempts):
            if attempt:
                unit = self._jitter()
                await self._sleep(backoff_s(attempt - 1, self._base_delay_s, self._max_s, unit))
            try:
                async with self._session.get(url, timeout=self._timeout) as response:
                    status, headers, body = response.status, response.headers, await response.read()
            except _TRANSIENT as e:
                failure, cause = ExchangeUnavailable(f"GET {url}: {type(e).__name__}: {e}"), e
                continue
            if status < 500:
                return _answer(url, status, headers.get("Retry-After"), body)
            failure, cause = ExchangeUnavailable(f"GET {url}: HTTP {status}"), None
        raise failure from cause


def _answer(url: str, status: int, retry_after: str | None, body: bytes) -> bytes | None:
    """Return a body (200) or None (S3's NoSuchKey); raise for any other answer below 500."""
    if status == 200:
        return body
    if status == 404 and b"<Code>NoSuchKey</Code>" in body:
        return None
    if status == 429:  # not expected from this host; say so rather than hammer it
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise RateLimited(f"GET {url}: HTTP 429", retry_after=seconds)
    # A 404 without NoSuchKey is not S3 speaking: most likely a wrong base URL.
    raise ExchangeRejected(f"GET {url}: HTTP {status}: {body[:200]!r}")
