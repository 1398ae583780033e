"""The coverage ledger and the fetch planner: hypothesis properties on a small minute
grid (with a brute-force minimum for the window count), then the cases that matter."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candlevault.domain.coverage import (
    DEFAULT_BACKOFF,
    EMPTY_SETTLE_MS,
    Backoff,
    Coverage,
    FetchWindow,
    closed_until,
    plan,
)
from candlevault.domain.errors import BadValue
from candlevault.domain.spans import EMPTY_SPANS, Span, SpanSet, inclusive_to_span
from candlevault.domain.timeframes import DAY_MS, HOUR_MS, MINUTE_MS
from candlevault.domain.times import parse_time_ms

BASE = 25_000_000 * MINUTE_MS  # 2017-07-13, on the grid
GRID = 48  # minutes in the property tests


def ms(minute: int) -> int:
    return BASE + minute * MINUTE_MS


def minutes_of(spans: SpanSet) -> set[int]:
    return {m for s, e in spans for m in range((s - BASE) // MINUTE_MS, (e - BASE) // MINUTE_MS)}


def window_minutes(window: Span) -> set[int]:
    return minutes_of(SpanSet.of(*window))


# --- strategies ------------------------------------------------------------------------

grid_minutes = st.integers(0, GRID)
grid_spans = st.tuples(grid_minutes, grid_minutes).map(sorted).map(lambda p: (ms(p[0]), ms(p[1])))
# now: anywhere past the grid's start, on or off a minute, sometimes well past its end
instants = st.integers(ms(0), ms(GRID + 30))
reasons = st.sampled_from(["HTTP 503", "timeout", "bad JSON"])


@st.composite
def ledgers(draw: st.DrawFn) -> Coverage:
    """A ledger built only through its public changes, as the runner would build it."""
    inception = draw(st.none() | grid_minutes.map(ms))
    coverage = Coverage(inception_ms=inception)
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["present", "empty", "failure", "anomaly", "forget"]))
        span = draw(grid_spans)
        now = draw(instants)
        if kind == "present":
            coverage = coverage.with_present(span)
        elif kind == "empty":
            coverage = coverage.with_empty(span, now)
        elif kind == "failure":
            coverage = coverage.with_failure(span, draw(reasons), now)
        elif kind == "anomaly":
            coverage = coverage.with_anomaly(span, "off-grid rows", now)
        else:
            coverage = coverage.forget(span)
    return coverage


@st.composite
def holey_ledgers(draw: st.DrawFn) -> Coverage:
    """Everything present but scattered minutes: many short runs and bridges to choose."""
    coverage = Coverage(inception_ms=ms(0)).with_present((ms(0), ms(GRID)))
    for m in draw(st.lists(st.integers(0, GRID - 1), max_size=GRID)):
        coverage = coverage.forget((ms(m), ms(m + 1)))
    return coverage


@dataclass(frozen=True)
class Case:
    coverage: Coverage
    window: Span
    now_ms: int
    max_per_request: int
    bridge: bool

    def planned(self) -> list[FetchWindow]:
        return plan(
            self.coverage,
            self.window,
            self.now_ms,
            max_candles_per_request=self.max_per_request,
            bridge=self.bridge,
        )

    def wanted(self) -> SpanSet:
        waiting = self.coverage.backing_off(self.now_ms)
        return self.coverage.missing(self.window, self.now_ms) - waiting

    def barriers(self) -> SpanSet:
        return self.coverage.backing_off(self.now_ms) | self.coverage.anomaly_spans


cases = st.builds(
    Case, ledgers() | holey_ledgers(), grid_spans, instants, st.integers(1, 12), st.booleans()
)


def brute_force_count(wanted: set[int], allowed: set[int], max_len: int) -> int:
    """The fewest windows of at most `max_len` minutes, each inside `allowed`, that cover
    `wanted`: every choice of every window, memoised."""
    last = max(wanted, default=-1)

    @cache
    def fewest(i: int) -> int:
        if i > last:
            return 0
        if i not in wanted:
            return fewest(i + 1)
        best = math.inf
        for length in range(1, max_len + 1):
            if i + length - 1 not in allowed:
                break
            best = min(best, 1 + fewest(i + length))
        return int(best)

    return fewest(0)


# --- ledger properties -----------------------------------------------------------------


@given(ledgers())
def test_the_ledger_rules_hold_after_any_changes(coverage: Coverage) -> None:
    assert not coverage.present & coverage.empty
    assert not coverage.failed_spans & coverage.settled
    failed = [f.span for f in coverage.failed]
    assert sum(e - s for s, e in failed) == coverage.failed_spans.total_ms  # disjoint
    assert all(f.attempts >= 1 for f in coverage.failed)


@given(ledgers(), grid_spans, instants)
def test_missing_is_the_unsettled_closed_part_after_inception(
    coverage: Coverage, window: Span, now: int
) -> None:
    missing = coverage.missing(window, now)
    lo = window[0] if coverage.inception_ms is None else max(window[0], coverage.inception_ms)
    closed_part = window_minutes(window) & window_minutes((lo, max(lo, closed_until(now))))
    assert minutes_of(missing) <= closed_part
    assert not missing & coverage.settled
    assert minutes_of(missing | coverage.settled) >= closed_part
    # failed minutes are still missing, whether or not they may be retried yet
    failed = coverage.failed_spans & SpanSet.of(*window)
    assert minutes_of(failed) & closed_part <= minutes_of(missing)


@given(ledgers(), instants)
def test_failed_minutes_are_retryable_or_backing_off(coverage: Coverage, now: int) -> None:
    ready, waiting = coverage.retryable(now), coverage.backing_off(now)
    assert not ready & waiting
    assert ready | waiting == coverage.failed_spans


@given(ledgers())
def test_the_stored_form_round_trips(coverage: Coverage) -> None:
    assert Coverage.from_doc(coverage.to_doc()) == coverage


# --- plan properties -------------------------------------------------------------------


@given(cases)
def test_plan_covers_exactly_the_wanted_minutes(case: Case) -> None:
    windows = case.planned()
    wanted = case.wanted()
    covered = SpanSet(w.span for w in windows)
    assert all(a.end_ms <= b.start_ms for a, b in pairwise(windows))  # ordered, disjoint
    assert all(1 <= w.minutes <= case.max_per_request for w in windows)
    assert wanted - covered == EMPTY_SPANS  # every wanted minute is fetched
    assert not covered & case.barriers()  # no anomaly, no failure still backing off
    for w in windows:  # begins and ends on a wanted minute: nothing outside is asked for
        assert wanted.contains(w.start_ms)
        assert wanted.contains(w.end_ms - MINUTE_MS)
        assert w.end_ms <= closed_until(case.now_ms)
        assert case.coverage.inception_ms is None or w.start_ms >= case.coverage.inception_ms
        assert case.window[0] <= w.start_ms
        assert w.end_ms <= case.window[1]
        assert w.missing_minutes == (wanted & SpanSet.of(*w.span)).minutes
        assert w.cost == 1
    if not case.bridge:
        assert covered == wanted  # no settled minute at all, so no empty one
    assert not (covered - wanted) & case.coverage.failed_spans


@settings(max_examples=1000)  # cheap, and where an off-by-one in the reach would hide
@given(cases)
def test_plan_makes_the_fewest_requests(case: Case) -> None:
    wanted = minutes_of(case.wanted())
    allowed = set(range(-1, GRID + 1)) - minutes_of(case.barriers()) if case.bridge else wanted
    assert len(case.planned()) == brute_force_count(wanted, allowed, case.max_per_request)


@given(cases)
def test_fetching_every_window_leaves_nothing_to_plan(case: Case) -> None:
    fetched = case.coverage
    for w in case.planned():
        fetched = fetched.with_present(w.span)
    assert plan(fetched, case.window, case.now_ms, max_candles_per_request=7) == []


@given(cases)
def test_windows_answered_empty_are_not_planned_once_settled(case: Case) -> None:
    later = case.now_ms + EMPTY_SETTLE_MS
    answered = case.coverage
    for w in case.planned():
        answered = answered.with_answer(w.span, EMPTY_SPANS, later)
    assert plan(answered, case.window, case.now_ms, max_candles_per_request=5) == []


@given(ledgers(), grid_spans, instants, st.integers(1, 12))
def test_a_confirmed_empty_minute_is_never_wanted(
    coverage: Coverage, window: Span, now: int, max_per_request: int
) -> None:
    windows = plan(coverage, window, now, max_candles_per_request=max_per_request, bridge=False)
    assert not SpanSet(w.span for w in windows) & coverage.empty


@given(st.integers(1, 8), grid_spans, st.integers(0, 3 * HOUR_MS))
def test_a_failed_span_is_planned_again_only_after_its_backoff(
    attempts: int, span: Span, wait_ms: int
) -> None:
    failed_at = ms(GRID + 5)
    coverage = Coverage(inception_ms=BASE)
    for _ in range(attempts):
        coverage = coverage.with_failure(span, "HTTP 503", failed_at)
    assert all(f.attempts == attempts for f in coverage.failed)
    now = failed_at + wait_ms
    windows = plan(coverage, (ms(0), ms(GRID)), now, max_candles_per_request=GRID)
    covered = SpanSet(w.span for w in windows)
    due = wait_ms >= DEFAULT_BACKOFF.delay_ms(attempts)
    assert covered.covers(*span) == due or span[0] == span[1]
    if not due:
        assert not covered & SpanSet.of(*span)


# --- examples --------------------------------------------------------------------------

BTCUSDT_LISTED = parse_time_ms("2017-08-17T04:00Z")
OUTAGE = (parse_time_ms("2018-02-08T04:00Z"), parse_time_ms("2018-02-09T08:00Z"))


def test_a_bootstrap_from_inception_plans_ceil_minutes_over_1000_windows() -> None:
    now = parse_time_ms("2018-03-01T00:00:00Z") + 42_000  # 42 s into the forming minute
    coverage = Coverage().with_inception(BTCUSDT_LISTED)
    windows = plan(coverage, (0, parse_time_ms("2030-01-01")), now, max_candles_per_request=1000)
    minutes = (closed_until(now) - BTCUSDT_LISTED) // MINUTE_MS
    assert len(windows) == math.ceil(minutes / 1000)
    assert windows[0].start_ms == BTCUSDT_LISTED
    assert windows[-1].end_ms == parse_time_ms("2018-03-01")  # the forming minute is left out
    assert all(a.end_ms == b.start_ms for a, b in pairwise(windows))
    assert sum(w.missing_minutes for w in windows) == minutes


def test_one_missing_minute_in_a_day_is_one_request_of_one_minute() -> None:
    day = parse_time_ms("2021-05-19")
    hole = parse_time_ms("2021-05-19T12:34Z")
    coverage = Coverage(inception_ms=BTCUSDT_LISTED).with_present(
        SpanSet.of(day, day + DAY_MS).remove(hole, hole + MINUTE_MS)
    )
    (window,) = plan(coverage, (day, day + DAY_MS), day + 2 * DAY_MS, max_candles_per_request=1000)
    assert window == FetchWindow(hole, hole + MINUTE_MS, missing_minutes=1, cost=1)
    assert window.inclusive_bounds() == (hole, hole + MINUTE_MS - 1)  # startTime, endTime
    assert inclusive_to_span(*window.inclusive_bounds()) == window.span


def test_the_binance_2018_02_08_outage_marked_empty_is_never_planned() -> None:
    month = (parse_time_ms("2018-02-01"), parse_time_ms("2018-03-01"))
    now = parse_time_ms("2024-01-01")
    coverage = Coverage(inception_ms=BTCUSDT_LISTED).with_present(
        SpanSet.of(*month) - SpanSet.of(*OUTAGE)
    )
    (asked,) = plan(coverage, month, now, max_candles_per_request=2000)
    assert asked.span == OUTAGE  # unknown until the exchange answers
    coverage = coverage.with_answer(asked.span, EMPTY_SPANS, now)  # it had nothing
    assert coverage.empty == SpanSet.of(*OUTAGE)
    assert plan(coverage, month, now, max_candles_per_request=1000) == []
    everything = plan(coverage, (0, now), now, max_candles_per_request=1000)
    assert not SpanSet(w.span for w in everything) & SpanSet.of(*OUTAGE)


def test_two_nearby_holes_share_one_request_when_it_fits() -> None:
    a, b = ms(0), ms(500)
    coverage = Coverage(inception_ms=ms(0)).with_present((ms(0), ms(600)))
    coverage = coverage.forget((a, a + MINUTE_MS)).forget((b, b + MINUTE_MS))
    window, now = (ms(0), ms(600)), ms(700)
    (one,) = plan(coverage, window, now, max_candles_per_request=1000)
    assert one == FetchWindow(a, b + MINUTE_MS, missing_minutes=2, cost=1)
    assert len(plan(coverage, window, now, max_candles_per_request=500)) == 2  # 501 > 500
    assert len(plan(coverage, window, now, max_candles_per_request=1000, bridge=False)) == 2
    # an anomaly or a failure still backing off between them keeps them apart
    blocked = coverage.with_anomaly((ms(100), ms(101)), "off-grid rows", now)
    assert len(plan(blocked, window, now, max_candles_per_request=1000)) == 2
    failing = coverage.forget((ms(100), ms(101))).with_failure((ms(100), ms(101)), "500", now)
    assert len(plan(failing, window, now, max_candles_per_request=1000)) == 2


@pytest.mark.parametrize("gap", [997, 998, 999])
def test_a_bridge_reaches_exactly_the_request_size(gap: int) -> None:
    # holes at minute 0 and minute `gap`: one request while gap + 1 <= 1000 minutes
    coverage = Coverage(inception_ms=ms(0)).with_present((ms(1), ms(gap)))
    window, now = (ms(0), ms(gap + 1)), ms(2000)
    (one,) = plan(coverage, window, now, max_candles_per_request=1000)
    assert one.span == (ms(0), ms(gap + 1))
    assert len(plan(coverage, window, now, max_candles_per_request=gap)) == 2


def test_request_cost_may_follow_the_limit() -> None:
    def usdm_weight(limit: int) -> int:  # Binance USD-M klines weight bands
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10

    coverage = Coverage(inception_ms=ms(0))
    windows = plan(
        coverage, (ms(0), ms(1050)), ms(2000), max_candles_per_request=499, request_cost=usdm_weight
    )
    assert [(w.minutes, w.cost) for w in windows] == [(499, 2), (499, 2), (52, 1)]


def test_an_empty_answer_counts_only_for_minutes_that_are_over_and_settled() -> None:
    now = ms(100) + 30_000  # minute 100 is forming
    coverage = Coverage().with_empty((ms(80), ms(110)), now)
    assert coverage.empty == SpanSet.of(ms(80), ms(100) - EMPTY_SETTLE_MS)
    later = coverage.with_empty((ms(80), ms(110)), ms(200))
    assert later.empty == SpanSet.of(ms(80), ms(110))


def test_present_wins_over_empty_and_failed() -> None:
    now = ms(100)
    coverage = Coverage().with_present((ms(10), ms(20)))
    assert coverage.with_empty((ms(0), ms(30)), now).empty == SpanSet(
        [(ms(0), ms(10)), (ms(20), ms(30))]
    )
    failed = coverage.with_failure((ms(0), ms(30)), "timeout", now)
    assert failed.failed_spans == SpanSet([(ms(0), ms(10)), (ms(20), ms(30))])
    healed = failed.with_present((ms(0), ms(30)))
    assert healed.failed == ()
    assert healed.with_empty((ms(0), ms(5)), now).empty == EMPTY_SPANS
    assert failed.with_empty((ms(0), ms(5)), now).failed_spans == SpanSet(
        [(ms(5), ms(10)), (ms(20), ms(30))]
    )


def test_repeated_failures_count_attempts_and_keep_the_last_reason() -> None:
    coverage = Coverage().with_failure((ms(0), ms(10)), "timeout", ms(50))
    coverage = coverage.with_failure((ms(5), ms(15)), "HTTP 503", ms(60))
    assert [(f.span, f.attempts, f.reason, f.last_attempt_ms) for f in coverage.failed] == [
        ((ms(0), ms(5)), 1, "timeout", ms(50)),
        ((ms(5), ms(10)), 2, "HTTP 503", ms(60)),
        ((ms(10), ms(15)), 1, "HTTP 503", ms(60)),
    ]
    assert coverage.retryable(ms(60) + MINUTE_MS) == SpanSet.of(ms(0), ms(5)).add(ms(10), ms(15))
    assert coverage.retryable(ms(60) + 2 * MINUTE_MS) == SpanSet.of(ms(0), ms(15))


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base_ms=MINUTE_MS, cap_ms=HOUR_MS)
    assert [backoff.delay_ms(n) for n in range(1, 5)] == [
        MINUTE_MS,
        2 * MINUTE_MS,
        4 * MINUTE_MS,
        8 * MINUTE_MS,
    ]
    assert backoff.delay_ms(10_000) == HOUR_MS


def test_forget_makes_minutes_missing_again() -> None:
    now = ms(500)
    coverage = (
        Coverage(inception_ms=ms(0))
        .with_present((ms(0), ms(10)))
        .with_empty((ms(10), ms(20)), now)
        .with_anomaly((ms(20), ms(30)), "flat rows", now)
    )
    assert coverage.missing((ms(0), ms(30)), now) == EMPTY_SPANS
    assert coverage.forget((ms(5), ms(25))).missing((ms(0), ms(30)), now) == SpanSet.of(
        ms(5), ms(25)
    )


def test_handled_until_is_where_a_bootstrap_may_checkpoint() -> None:
    now = ms(500)
    coverage = (
        Coverage(inception_ms=ms(10))
        .with_present((ms(10), ms(40)))
        .with_failure((ms(40), ms(45)), "timeout", now)
        .with_present((ms(50), ms(60)))
    )
    assert coverage.handled_until(ms(0)) == ms(45)
    assert coverage.handled_until(ms(45)) == ms(45)
    assert coverage.with_checkpoint(ms(45)).checkpoint_ms == ms(45)


def test_malformed_ledgers_are_refused() -> None:
    with pytest.raises(BadValue):
        Coverage(inception_ms=BASE + 1)
    with pytest.raises(BadValue):
        Coverage().with_checkpoint(BASE + 30_000)
    with pytest.raises(BadValue):
        Coverage(present=SpanSet.of(ms(0), ms(2)), empty=SpanSet.of(ms(1), ms(3)))
    doc = Coverage(present=SpanSet.of(ms(0), ms(2))).to_doc()
    with pytest.raises(BadValue):
        Coverage.from_doc({**doc, "empty": [[ms(1), ms(3)]]})
    with pytest.raises(BadValue):
        Coverage.from_doc({**doc, "present": "everything"})
    with pytest.raises(BadValue):
        Coverage.from_doc({**doc, "surprise": 1})
    with pytest.raises(BadValue):
        plan(Coverage(), (ms(0), ms(5)), ms(10), max_candles_per_request=0)
    with pytest.raises(BadValue):
        Coverage().missing((ms(0) + 1, ms(5)), ms(10))
