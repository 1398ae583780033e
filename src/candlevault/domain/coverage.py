"""The coverage ledger of one (venue, symbol) at 1m, and the planner that decides fetches.

`Coverage` is what candlevault knows about a symbol's 1m history: where it begins
(`inception_ms`), which minutes it holds (`present`), which the exchange confirmed it
never had (`empty`: an outage such as Binance's of 2018-02-08), which failed to fetch
and why (`failed`, with attempts for backoff), which the exchange returns malformed the
same way every time (`anomalies`), and how far a bootstrap got (`checkpoint_ms`). Higher
timeframes are derived from 1m, so 1m is the only ledger. The storage engines persist it
through `to_doc`/`from_doc`; every change is a pure method that returns a new value.

`plan(coverage, window, now_ms, ...)` turns it into the fewest fetch windows. Because
it is pure, bootstrap, gap fill and read-path misses share it and hypothesis tests it.

Rules, and why:
- Settled minutes are present, confirmed empty or anomalous; they are never planned.
  Everything else after inception and before the forming minute is missing. A failed
  minute is still missing, but is planned only once its backoff has elapsed.
- Present wins: marking present removes a minute from empty and failed, and an empty
  answer never erases a minute already held (the candle is the better evidence).
- An empty answer counts only for minutes that are over, and settled: it is recorded
  for minutes closed at least `EMPTY_SETTLE_MS` before `now_ms`; the rest is ignored, and
  so is planned again later. A range that is not over yet cannot be confirmed empty,
  and a minute that closed moments ago may not be published yet.
- The merge rule: a request costs the same weight whether it returns 10 candles or
  1000, so one window may span present or empty minutes between two missing ones when
  the whole window still fits in `max_candles_per_request`; the upsert is idempotent,
  so re-reading present minutes is harmless. A window never spans an anomaly or a
  failure that is backing off, since their rows could make the whole reply fail again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import msgspec

from candlevault.domain.errors import BadValue
from candlevault.domain.spans import EMPTY_SPANS, Span, SpanSet, check_span
from candlevault.domain.timeframes import HOUR_MS, MINUTE_MS

EMPTY_SETTLE_MS = 5 * MINUTE_MS
"""How long after its close a minute must be before an empty answer confirms it."""


def closed_until(now_ms: int) -> int:
    """Return the end of the last closed minute at `now_ms`: the forming minute's open.

    A 1m candle is closed once its close time (open + 59,999) is before now."""
    return now_ms - now_ms % MINUTE_MS


class Backoff(msgspec.Struct, frozen=True):
    """Exponential backoff for failed spans: `base_ms * 2**(attempts - 1)`, at most `cap_ms`.

    Deterministic (no jitter), so that a plan is a function of the ledger and the time;
    the runner's own retries of a single request are where jitter belongs."""

    base_ms: int = MINUTE_MS
    cap_ms: int = HOUR_MS

    def delay_ms(self, attempts: int) -> int:
        """Return how long to wait after the `attempts`-th failure."""
        if attempts <= 0:
            return 0
        return min(self.cap_ms, self.base_ms << min(attempts - 1, 62))


DEFAULT_BACKOFF = Backoff()


class Marked(msgspec.Struct, frozen=True, array_like=True):
    """A span of minutes with something recorded about it."""

    start_ms: int
    end_ms: int

    @property
    def span(self) -> Span:
        """Return `(start_ms, end_ms)`."""
        return (self.start_ms, self.end_ms)


class Failure(Marked, frozen=True, array_like=True):
    """Minutes whose fetch failed `attempts` times, the last at `last_attempt_ms`."""

    reason: str
    attempts: int
    last_attempt_ms: int

    def retry_at_ms(self, backoff: Backoff = DEFAULT_BACKOFF) -> int:
        """Return when these minutes may be planned again."""
        return self.last_attempt_ms + backoff.delay_ms(self.attempts)


class Anomaly(Marked, frozen=True, array_like=True):
    """Minutes the exchange answers malformed the same way every time (off-grid or flat
    rows around old maintenance): recorded, kept aside, never refetched in a loop."""

    reason: str
    seen_ms: int


M = TypeVar("M", bound=Marked)


def _as_set(spans: SpanSet | Span) -> SpanSet:
    return spans if isinstance(spans, SpanSet) else SpanSet.of(*spans)


def _union(records: Iterable[Marked]) -> SpanSet:
    return SpanSet(r.span for r in records)


def _before(spans: SpanSet, end_ms: int) -> SpanSet:
    first = spans.first
    return spans if first is None else spans.clip(first[0], max(first[0], end_ms))


def _without(records: Iterable[M], spans: SpanSet) -> list[M]:
    """Return the records with the minutes of `spans` cut out of them."""
    out: list[M] = []
    for r in records:
        if not spans.overlaps(r.start_ms, r.end_ms):
            out.append(r)
            continue
        out += [msgspec.structs.replace(r, start_ms=s, end_ms=e) for s, e in spans.gaps(*r.span)]
    return out


def _within(records: Iterable[M], spans: SpanSet) -> list[M]:
    """Return the parts of the records inside `spans`."""
    return [
        msgspec.structs.replace(r, start_ms=s, end_ms=e)
        for r in records
        for s, e in spans.clip(*r.span)
    ]


def _coalesced(records: Iterable[M]) -> tuple[M, ...]:
    """Sort records and merge neighbours that touch and say the same thing."""
    out: list[M] = []
    for r in sorted(records, key=lambda r: r.start_ms):
        last = out[-1] if out else None
        if (
            last is not None
            and last.end_ms == r.start_ms
            and msgspec.structs.astuple(last)[2:] == msgspec.structs.astuple(r)[2:]
        ):
            out[-1] = msgspec.structs.replace(last, end_ms=r.end_ms)
        else:
            out.append(r)
    return tuple(out)


def _check_instant(kind: str, ms: int | None) -> None:
    if ms is not None and (type(ms) is not int or ms % MINUTE_MS):
        raise BadValue(kind, ms, "expected epoch milliseconds on the 1m grid")


def _check_records(kind: str, records: Sequence[Marked]) -> None:
    for r in records:
        check_span(r.start_ms, r.end_ms)
        if r.start_ms == r.end_ms:
            raise BadValue(kind, r, "expected a non-empty span")
    if sum(r.end_ms - r.start_ms for r in records) != _union(records).total_ms:
        raise BadValue(kind, list(records), "expected disjoint spans")


@dataclass(frozen=True, slots=True)
class Coverage:
    """What is known about one (venue, symbol)'s 1m history; see the module docstring."""

    inception_ms: int | None = None
    present: SpanSet = EMPTY_SPANS
    empty: SpanSet = EMPTY_SPANS
    failed: tuple[Failure, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    checkpoint_ms: int | None = None
    settled: SpanSet = field(init=False, repr=False, compare=False)
    """Present, confirmed empty or anomalous: minutes that are never planned."""
    failed_spans: SpanSet = field(init=False, repr=False, compare=False)
    anomaly_spans: SpanSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_instant("inception", self.inception_ms)
        _check_instant("checkpoint", self.checkpoint_ms)
        if self.present & self.empty:
            raise BadValue("coverage", self.present & self.empty, "present and empty overlap")
        _check_records("failures", self.failed)
        _check_records("anomalies", self.anomalies)
        if any(f.attempts < 1 for f in self.failed):
            raise BadValue("failures", self.failed, "expected at least one attempt each")
        anomaly_spans = _union(self.anomalies)
        settled = self.present | self.empty | anomaly_spans
        failed_spans = _union(self.failed)
        if settled & failed_spans:
            raise BadValue("failures", settled & failed_spans, "expected unsettled minutes")
        object.__setattr__(self, "settled", settled)
        object.__setattr__(self, "failed_spans", failed_spans)
        object.__setattr__(self, "anomaly_spans", anomaly_spans)

    # --- changes ---------------------------------------------------------------------

    def with_present(self, spans: SpanSet | Span) -> Coverage:
        """Record minutes as held: they leave empty and failed."""
        add = _as_set(spans)
        return replace(
            self,
            present=self.present | add,
            empty=self.empty - add,
            failed=tuple(_without(self.failed, add)),
        )

    def with_empty(
        self, spans: SpanSet | Span, now_ms: int, *, settle_ms: int = EMPTY_SETTLE_MS
    ) -> Coverage:
        """Record that the exchange returned nothing for `spans`, for the minutes that were
        over `settle_ms` before `now_ms` and are not present; ignore the rest."""
        add = _before(_as_set(spans), closed_until(now_ms - settle_ms)) - self.present
        return replace(self, empty=self.empty | add, failed=tuple(_without(self.failed, add)))

    def with_answer(self, window: Span, got: SpanSet, now_ms: int) -> Coverage:
        """Record one reply for `window` (asked with a limit of at least its minutes):
        the minutes it returned are present, the others of the window confirmed empty."""
        check_span(*window)
        got = got.clip(*window)
        return self.with_present(got).with_empty(SpanSet.of(*window) - got, now_ms)

    def with_failure(self, spans: SpanSet | Span, reason: str, now_ms: int) -> Coverage:
        """Record a failed fetch of the unsettled, closed minutes of `spans`: one more
        attempt for each, with this reason and time."""
        hit = _before(_as_set(spans), closed_until(now_ms)) - self.settled
        bumped = [
            msgspec.structs.replace(
                f, reason=reason, attempts=f.attempts + 1, last_attempt_ms=now_ms
            )
            for f in _within(self.failed, hit)
        ]
        fresh = [Failure(s, e, reason, 1, now_ms) for s, e in hit - self.failed_spans]
        failed = _coalesced([*_without(self.failed, hit), *bumped, *fresh])
        return replace(self, failed=failed)

    def with_anomaly(self, spans: SpanSet | Span, reason: str, now_ms: int) -> Coverage:
        """Record minutes the exchange answers malformed every time; they are not planned
        again until `forget` clears them."""
        add = _as_set(spans)
        marked = [Anomaly(s, e, reason, now_ms) for s, e in add]
        anomalies = _coalesced([*_without(self.anomalies, add), *marked])
        return replace(self, anomalies=anomalies, failed=tuple(_without(self.failed, add)))

    def forget(self, spans: SpanSet | Span) -> Coverage:
        """Drop all knowledge of these minutes (deleted candles, a re-check): missing again."""
        drop = _as_set(spans)
        return replace(
            self,
            present=self.present - drop,
            empty=self.empty - drop,
            failed=tuple(_without(self.failed, drop)),
            anomalies=tuple(_without(self.anomalies, drop)),
        )

    def with_inception(self, inception_ms: int) -> Coverage:
        """Record the open time of the symbol's first 1m candle."""
        return replace(self, inception_ms=inception_ms)

    def with_checkpoint(self, checkpoint_ms: int) -> Coverage:
        """Record bootstrap progress: every minute before it, from the bootstrap's start,
        is handled. Informational (progress, resume reports): planning reads the spans."""
        return replace(self, checkpoint_ms=checkpoint_ms)

    # --- questions -------------------------------------------------------------------

    def missing(self, window: Span, now_ms: int) -> SpanSet:
        """Return the minutes of `window` after inception and closed at `now_ms` that are
        neither present, nor confirmed empty, nor anomalous (failed ones included)."""
        check_span(*window)
        start, end = window
        if self.inception_ms is not None:
            start = max(start, self.inception_ms)
        end = min(end, closed_until(now_ms))
        return self.settled.gaps(start, end) if start < end else EMPTY_SPANS

    def retryable(self, now_ms: int, backoff: Backoff = DEFAULT_BACKOFF) -> SpanSet:
        """Return the failed minutes whose backoff has elapsed at `now_ms`."""
        return _union(f for f in self.failed if f.retry_at_ms(backoff) <= now_ms)

    def backing_off(self, now_ms: int, backoff: Backoff = DEFAULT_BACKOFF) -> SpanSet:
        """Return the failed minutes that may not be tried yet at `now_ms`."""
        return _union(f for f in self.failed if f.retry_at_ms(backoff) > now_ms)

    def handled_until(self, start_ms: int) -> int:
        """Return where the run of handled minutes (settled, failed or before inception)
        that begins at `start_ms` ends: the value to checkpoint a bootstrap at."""
        if self.inception_ms is not None:
            start_ms = max(start_ms, self.inception_ms)
        run = (self.settled | self.failed_spans).span_at(start_ms)
        return start_ms if run is None else run[1]

    # --- storage ---------------------------------------------------------------------

    def to_doc(self) -> dict[str, object]:
        """Return the ledger as JSON/BSON-ready builtins (spans as [start_ms, end_ms])."""
        doc = _CoverageDoc(
            inception_ms=self.inception_ms,
            checkpoint_ms=self.checkpoint_ms,
            present=self.present.to_pairs(),
            empty=self.empty.to_pairs(),
            failed=list(self.failed),
            anomalies=list(self.anomalies),
        )
        built: dict[str, object] = msgspec.to_builtins(doc)
        return built

    @classmethod
    def from_doc(cls, doc: Mapping[str, object]) -> Coverage:
        """Rebuild a ledger from `to_doc` output, refusing one that breaks the rules."""
        try:
            parsed = msgspec.convert(doc, _CoverageDoc)
        except msgspec.ValidationError as e:
            raise BadValue("coverage document", str(e), "expected Coverage.to_doc's layout") from e
        return cls(
            inception_ms=parsed.inception_ms,
            present=SpanSet.from_pairs(parsed.present),
            empty=SpanSet.from_pairs(parsed.empty),
            failed=tuple(parsed.failed),
            anomalies=tuple(parsed.anomalies),
            checkpoint_ms=parsed.checkpoint_ms,
        )


class _CoverageDoc(msgspec.Struct, forbid_unknown_fields=True):
    """The stored form; `version` lets a later layout migrate old documents."""

    version: int = 1
    inception_ms: int | None = None
    checkpoint_ms: int | None = None
    present: list[list[int]] = []
    empty: list[list[int]] = []
    failed: list[Failure] = []
    anomalies: list[Anomaly] = []


# --- planning --------------------------------------------------------------------------


class FetchWindow(msgspec.Struct, frozen=True):
    """One kline request: minutes `[start_ms, end_ms)`, of which `missing_minutes` are
    missing (the rest present or empty, bridged by the merge rule), costing `cost`."""

    start_ms: int
    end_ms: int
    missing_minutes: int
    cost: int

    @property
    def minutes(self) -> int:
        """Return the candles the request asks for: its `limit`."""
        return (self.end_ms - self.start_ms) // MINUTE_MS

    @property
    def span(self) -> Span:
        """Return `(start_ms, end_ms)`."""
        return (self.start_ms, self.end_ms)

    def inclusive_bounds(self) -> tuple[int, int]:
        """Return `(startTime, endTime)` as Binance and Bybit take them: both bound the
        open time inclusively, so the last minute opens at `end_ms - MINUTE_MS` and
        `end_ms - 1` excludes the minute opening at `end_ms`. Send `limit=minutes`."""
        return (self.start_ms, self.end_ms - 1)


RequestCost = int | Callable[[int], int]
"""The weight of one kline request, fixed or as a function of its `limit`."""


def plan(
    coverage: Coverage,
    window: Span,
    now_ms: int,
    *,
    max_candles_per_request: int,
    request_cost: RequestCost = 1,
    backoff: Backoff = DEFAULT_BACKOFF,
    bridge: bool = True,
) -> list[FetchWindow]:
    """Return the fewest windows, in time order, that fetch every missing minute of
    `window` that is not backing off, each at most `max_candles_per_request` long.

    Windows start and end on wanted minutes, so they never reach before inception,
    into the forming minute or past `window`. With `bridge` (the merge rule) a window
    also spans the settled minutes between two wanted ones when it still fits in one
    request; without it, windows hold wanted minutes only. Left-greedy: each window
    opens at the first uncovered wanted minute and reaches as far as it may, which is
    the minimum count for covering points with bounded intervals.
    """
    if type(max_candles_per_request) is not int or max_candles_per_request < 1:
        raise BadValue("max candles per request", max_candles_per_request, "expected >= 1")
    waiting = coverage.backing_off(now_ms, backoff)
    wanted = coverage.missing(window, now_ms) - waiting
    barriers = waiting | coverage.anomaly_spans
    spans = _greedy(wanted, barriers, max_candles_per_request * MINUTE_MS, bridge)
    return [
        FetchWindow(s, e, wanted.clip(s, e).minutes, _cost(request_cost, (e - s) // MINUTE_MS))
        for s, e in spans
    ]


def _cost(request_cost: RequestCost, limit: int) -> int:
    return request_cost(limit) if callable(request_cost) else request_cost


def _greedy(wanted: SpanSet, barriers: SpanSet, max_ms: int, bridge: bool) -> list[Span]:
    """Cover `wanted` with the fewest spans of at most `max_ms`, none touching `barriers`."""
    out: list[Span] = []
    current: Span | None = None
    for start, end in wanted:
        if current is not None:
            open_ms, reached = current
            if bridge and start < open_ms + max_ms and not barriers.overlaps(reached, start):
                reached = min(end, open_ms + max_ms)
                current, start = (open_ms, reached), reached
                if start == end:
                    continue
            out.append(current)
        while end - start > max_ms:
            out.append((start, start + max_ms))
            start += max_ms
        current = (start, end)
    if current is not None:
        out.append(current)
    return out
