"""The cold layer's rate limiters on a fake clock: windows, headers, pauses, bans, fairness.

The server side is the simulator's own limiter (`simulator.limits`) reading the same fake
wall clock, so "never refused" here means what it means against the simulator. Requests
arrive at the server when a test says so, anywhere between their permit and their reply,
as they may on a real network.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings, target
from hypothesis import strategies as st

from candlevault.domain.venues import Venue
from candlevault.exchanges.ratelimit import (
    Permit,
    RateLimiter,
    RollingLimiter,
    WeightLimiter,
    interval_ms,
)
from candlevault.exchanges.weights import (
    BINANCE_SPOT_WEIGHTS,
    BINANCE_USDM_WEIGHTS,
    USDM_KLINES_BANDS,
    request_weight,
    usdm_klines_limit,
    usdm_klines_weight,
)
from candlevault.simulator import binance_rest
from candlevault.simulator.limits import BinanceLimiter, BybitLimiter

T = TypeVar("T")
IP = "127.0.0.1"
MINUTE = 60_000
T0 = 1_705_276_800_000.0  # 2024-01-15T00:00:00Z, the start of a wall-clock minute


async def settle() -> None:
    """Let every task that can run, run (the fake clock stands still meanwhile).

    Yields to the loop until the number of live tasks has stayed put for a few rounds:
    each step of a chain of wake-ups finishes or starts a task within two rounds.
    """
    last, still = -1, 0
    while still < 4:
        await asyncio.sleep(0)  # a bare yield to the loop, not a wait for time
        live = len(asyncio.all_tasks())
        still, last = (still + 1 if live == last else 0), live


class FakeClock:
    """Wall time (epoch ms) that moves only when a test advances it, waking due sleepers."""

    def __init__(self, start_ms: float = T0) -> None:
        self.ms = start_ms
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._made = 0

    def wall_ms(self) -> float:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._made += 1
        heapq.heappush(self._sleepers, (self.ms + seconds * 1000, self._made, future))
        await future

    async def advance(self, ms: float) -> None:
        """Move time on by `ms`, waking each sleeper at its due time, in order."""
        target = self.ms + ms
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                self.ms = max(self.ms, due)
                future.set_result(None)
                await settle()
        self.ms = target
        await settle()


def binance(
    limit: int, clock: FakeClock, *, skew_ms: float = 0, offset_ms: float = 0
) -> tuple[WeightLimiter, BinanceLimiter]:
    """A limiter and the simulator's Binance limit (its clock `offset_ms` off ours)."""
    limiter = WeightLimiter(limit, skew_ms=skew_ms, wall_ms=clock.wall_ms, sleep=clock.sleep)
    return limiter, BinanceLimiter(limit, wall=lambda: (clock.ms + offset_ms) / 1000)


async def call(limiter: WeightLimiter, server: BinanceLimiter, weight: int) -> int:
    """One request answered at once, the way a client does it; return the status."""
    permit = await limiter.acquire(weight)
    verdict = server.admit(IP, weight)
    limiter.observe(verdict.used_weight, permit)
    return verdict.status


def start(make: Callable[[], Coroutine[Any, Any, T]], n: int) -> list[asyncio.Task[T]]:
    """Start `n` tasks of `make()`; they run at the next `settle`."""
    return [asyncio.ensure_future(make()) for _ in range(n)]


class Scenario:
    """Requests through a limiter, arriving and answered when a step says so."""

    def __init__(
        self,
        limiter: RateLimiter,
        admit: Callable[[int], tuple[int, int | None]],
        *,
        exact: bool,
    ) -> None:
        self.limiter = limiter
        self.admit = admit  # the server: weight -> (status, used-weight header)
        self.exact = exact  # `stats.used` alone decides admission (no skew to allow for)
        self.waiting: list[tuple[int, asyncio.Task[Permit]]] = []
        self.sent: list[Permit] = []  # granted, not yet at the server
        self.arrived: list[tuple[Permit, int | None]] = []  # counted, not yet answered

    def collect(self) -> None:
        done = [(w, t) for w, t in self.waiting if t.done()]
        self.waiting = [(w, t) for w, t in self.waiting if not t.done()]
        self.sent += [t.result() for _, t in done]

    def step(self, kind: str, a: int, b: int) -> None:
        """Submit `a` requests of weight `b`, or act on `b` requests from index `a`."""
        if kind == "submit":
            self.waiting += [(b, asyncio.ensure_future(self.limiter.acquire(b))) for _ in range(a)]
        elif kind == "pause":
            self.limiter.pause(a / 1000)
        for _ in range(b if kind in ("arrive", "reply") else 1):
            if kind in ("arrive", "lose") and self.sent:
                permit = self.sent.pop(a % len(self.sent))
                if kind == "lose":  # lost before it reached the server
                    self.limiter.release(permit)
                else:
                    status, header = self.admit(permit.weight)
                    assert status == 200, f"the server refused a request: {status}"
                    self.arrived.append((permit, header))
            elif kind in ("reply", "drop") and self.arrived:
                permit, header = self.arrived.pop(a % len(self.arrived))
                if kind == "reply":
                    self.limiter.observe(header, permit)
                else:  # counted, but the reply was lost
                    self.limiter.release(permit)
            elif kind == "cancel" and self.waiting:
                self.waiting.pop(a % len(self.waiting))[1].cancel()

    def check(self) -> None:
        """No budget leaks, and no waiting while the limiter's own count leaves room."""
        stats = self.limiter.stats()
        assert stats.waiting == len(self.waiting)
        assert stats.in_flight == sum(p.weight for p in self.sent) + sum(
            p.weight for p, _ in self.arrived
        )
        if self.exact and self.waiting and stats.in_flight == 0 and not stats.blocked_until_ms:
            assert stats.used + self.waiting[0][0] > stats.budget, "idle while budget remains"

    async def close(self) -> None:
        for _, task in self.waiting:
            task.cancel()
        await asyncio.gather(*(t for _, t in self.waiting), return_exceptions=True)


STEP = st.one_of(
    st.tuples(st.sampled_from(["arrive", "reply"]), st.integers(0, 99), st.integers(1, 8)),
    st.tuples(st.sampled_from(["lose", "drop", "cancel"]), st.integers(0, 99), st.just(1)),
    st.tuples(st.just("submit"), st.integers(1, 8), st.integers(1, 6)),
    st.tuples(st.just("pause"), st.integers(1, 90_000), st.just(0)),
    st.tuples(st.just("advance"), st.integers(1, 2000) | st.integers(1, 70_000), st.just(0)),
)
STEPS = st.lists(STEP, min_size=15, max_size=80)
Steps = list[tuple[str, int, int]]


async def run(scenario: Scenario, clock: FakeClock, steps: Steps) -> None:
    try:
        for kind, a, b in steps:
            if kind == "advance":
                await clock.advance(a)
            else:
                scenario.step(kind, a, b)
                await settle()
            scenario.collect()
            scenario.check()
    finally:
        await scenario.close()


@settings(max_examples=250)
@given(
    steps=STEPS,
    limit=st.integers(6, 30),
    start_ms=st.integers(0, MINUTE - 1),
    skew_ms=st.sampled_from([0, 300, 1000]),
    offset=st.floats(-1, 1),
)
async def test_no_aligned_window_ever_counts_more_than_the_limit(
    steps: Steps, limit: int, start_ms: int, skew_ms: int, offset: float
) -> None:
    clock = FakeClock(T0 + start_ms)
    limiter, server = binance(limit, clock, skew_ms=skew_ms, offset_ms=offset * skew_ms)
    per_window: Counter[int] = Counter()

    def admit(weight: int) -> tuple[int, int | None]:
        verdict = server.admit(IP, weight)
        per_window[math.floor((clock.ms + offset * skew_ms) / MINUTE)] += weight
        return verdict.status, verdict.used_weight

    try:
        await run(Scenario(limiter, admit, exact=skew_ms == 0), clock, steps)
    finally:
        target(max(per_window.values(), default=0) / limit)  # steer towards full windows
    assert all(used <= limit for used in per_window.values())


@settings(max_examples=250)
@given(steps=STEPS, limit=st.integers(3, 20))
async def test_no_rolling_window_ever_counts_more_than_the_limit(steps: Steps, limit: int) -> None:
    clock = FakeClock()
    limiter = RollingLimiter(limit, 5000, wall_ms=clock.wall_ms, sleep=clock.sleep)
    server = BybitLimiter(limit, 5.0, wall=lambda: clock.ms / 1000)
    bybit_steps = [(k, a, 1) if k == "submit" else (k, a, b) for k, a, b in steps]
    peak = [0]

    def admit(_: int) -> tuple[int, int | None]:
        verdict = server.admit(IP)
        peak[0] = max(peak[0], verdict.used)
        return verdict.status, None

    try:
        await run(Scenario(limiter, admit, exact=True), clock, bybit_steps)
    finally:
        target(peak[0] / limit)  # steer towards full windows


@given(headers=st.lists(st.integers(1, 100), min_size=1, max_size=12))
async def test_a_lower_header_never_raises_the_budget(headers: list[int]) -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(100, skew_ms=0, wall_ms=clock.wall_ms, sleep=clock.sleep)
    for i, header in enumerate(headers):
        if limiter.stats().used + 1 > 100:
            headers = headers[:i]
            break
        limiter.observe(header, await limiter.acquire(1))
    tasks = start(lambda: limiter.acquire(1), 100)
    await settle()
    granted = sum(t.done() for t in tasks)
    assert limiter.stats().used == max(headers)
    assert granted == 100 - max(headers)  # all that is left, not one more
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@given(ban_ms=st.integers(1, 300_000), advances=st.lists(st.integers(1, 90_000), max_size=8))
async def test_a_ban_holds_every_request_until_it_ends(ban_ms: int, advances: list[int]) -> None:
    clock = FakeClock(T0 + 5000)
    limiter, server = binance(40, clock)
    limiter.ban(clock.ms + ban_ms)
    tasks = start(lambda: call(limiter, server, 2), 10)
    for step in [*advances, ban_ms + MINUTE]:
        await clock.advance(step)
        ended = clock.ms >= T0 + 5000 + ban_ms
        assert sum(t.done() for t in tasks) == (10 if ended else 0)
    assert [t.result() for t in tasks] == [200] * 10


async def test_the_budget_is_spent_whole_then_the_next_window_starts_with_a_probe() -> None:
    clock = FakeClock(T0 + 1000)
    limiter, server = binance(20, clock)
    tasks = start(lambda: call(limiter, server, 2), 15)
    await settle()
    assert sum(t.done() for t in tasks) == 10  # 20 weight, every bit of it
    assert server.used(IP) == 20
    await clock.advance(MINUTE - 1000)  # the next window
    assert all(t.done() and t.result() == 200 for t in tasks)
    assert server.used(IP) == 10


async def test_the_probe_learns_what_others_on_the_ip_spent_before_a_burst() -> None:
    clock = FakeClock(T0 + 1000)
    limiter, server = binance(20, clock)
    server.admit(IP, 14)  # another process, same IP
    permits = [asyncio.ensure_future(limiter.acquire(2)) for _ in range(5)]
    await settle()
    assert [p.done() for p in permits] == [True, False, False, False, False]  # the probe
    limiter.observe(server.admit(IP, 2).used_weight, permits[0].result())
    await settle()
    assert sum(p.done() for p in permits) == 3  # 14 + 2 + 2 + 2 = 20
    for p in permits:
        p.cancel()
    await asyncio.gather(*permits, return_exceptions=True)


async def test_a_reply_from_the_last_window_does_not_fill_the_new_one() -> None:
    clock = FakeClock(T0 + MINUTE - 5)
    limiter = WeightLimiter(20, skew_ms=0, wall_ms=clock.wall_ms, sleep=clock.sleep)
    late = await limiter.acquire(2)
    await clock.advance(10)  # the reply comes in the next window, saying the last was full
    limiter.observe(20, late)
    assert limiter.stats().used == 2  # charged where it may have landed; header ignored
    permit = await asyncio.wait_for(limiter.acquire(2), timeout=1)
    limiter.observe(6, permit)
    assert limiter.stats().used == 8  # 2 charged twice at worst: the header may include it


async def test_a_server_clock_behind_ours_keeps_its_window_in_force() -> None:
    clock = FakeClock(T0 + 58_000)
    limiter, server = binance(10, clock, skew_ms=1000, offset_ms=-800)
    assert await call(limiter, server, 10) == 200  # the server's window is full
    await clock.advance(2500)  # our minute has rolled over; the server's has not
    late = asyncio.ensure_future(call(limiter, server, 2))
    await settle()
    assert not late.done()
    await clock.advance(600)  # past the boundary by more than the skew allowed for
    assert late.result() == 200


async def test_waiters_are_served_in_order_a_heavy_head_is_not_overtaken() -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(10, skew_ms=0, wall_ms=clock.wall_ms, sleep=clock.sleep)
    limiter.observe(4, await limiter.acquire(4))
    heavy = asyncio.ensure_future(limiter.acquire(8))
    light = asyncio.ensure_future(limiter.acquire(1))
    await settle()
    assert not heavy.done()
    assert not light.done()  # it would fit, but the heavy one came first
    await clock.advance(MINUTE)
    assert heavy.done()
    assert not light.done()  # the new window's probe is out
    limiter.observe(8, heavy.result())
    await settle()
    assert light.done()


async def test_a_cancelled_waiter_takes_nothing_and_lets_the_next_one_through() -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(10, skew_ms=0, wall_ms=clock.wall_ms, sleep=clock.sleep)
    first = await limiter.acquire(8)
    limiter.observe(2, first)  # a probe: the server has counted 2 so far
    held = await limiter.acquire(6)
    head = asyncio.ensure_future(limiter.acquire(4))
    behind = asyncio.ensure_future(limiter.acquire(2))
    await settle()
    limiter.observe(8, held)  # frees room for the head, which is cancelled before it runs
    head.cancel()
    await settle()
    assert head.cancelled()
    assert behind.done()
    stats = limiter.stats()
    assert (stats.in_flight, stats.waiting, stats.used) == (2, 0, 8)


async def test_a_pause_holds_every_request_for_retry_after() -> None:
    clock = FakeClock(T0 + 1000)
    limiter, server = binance(100, clock)
    limiter.pause(30)
    tasks = start(lambda: call(limiter, server, 2), 3)
    await clock.advance(29_999)
    assert not any(t.done() for t in tasks)
    await clock.advance(1)
    assert all(t.done() for t in tasks)
    stats = limiter.stats()
    assert (stats.pauses, stats.bans, stats.blocked_until_ms) == (1, 0, 0)
    assert stats.waited_s == pytest.approx(90)  # three requests, 30 s each


async def test_a_shorter_ban_does_not_shorten_a_longer_one() -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(100, wall_ms=clock.wall_ms, sleep=clock.sleep)
    limiter.ban(clock.ms + 120_000)
    limiter.ban(clock.ms + 10_000)
    limiter.pause(5)
    stats = limiter.stats()
    assert (stats.bans, stats.pauses, stats.blocked_until_ms) == (1, 0, clock.ms + 120_000)


async def test_set_limit_wakes_waiters_and_headroom_keeps_a_share_unused() -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(10, skew_ms=0, headroom=0.1, wall_ms=clock.wall_ms, sleep=clock.sleep)
    assert limiter.stats().budget == 9
    limiter.observe(9, await limiter.acquire(1))
    waiting = asyncio.ensure_future(limiter.acquire(5))
    await settle()
    assert not waiting.done()
    limiter.set_limit(20, interval_ms("MINUTE", 1))
    await settle()
    assert waiting.done()
    assert limiter.stats().budget == 18


async def test_set_limit_below_a_waiting_weight_fails_that_waiter() -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(10, skew_ms=0, wall_ms=clock.wall_ms, sleep=clock.sleep)
    limiter.observe(10, await limiter.acquire(1))
    waiting = asyncio.ensure_future(limiter.acquire(8))
    await settle()
    limiter.set_limit(5)
    await settle()
    with pytest.raises(ValueError, match="exceeds the budget"):
        waiting.result()
    assert limiter.stats().waiting == 0


async def test_a_request_without_a_reply_stays_charged() -> None:
    clock = FakeClock(T0 + 1000)
    limiter = WeightLimiter(10, skew_ms=0, wall_ms=clock.wall_ms, sleep=clock.sleep)
    async with limiter.sending(4):
        pass  # e.g. the connection dropped
    assert limiter.stats().used == 4
    async with limiter.sending(2) as permit:
        limiter.observe(None, permit)  # a reply without the header
    assert (limiter.stats().used, limiter.stats().in_flight) == (6, 0)


async def test_bybit_lock_out_and_the_rolling_window() -> None:
    clock = FakeClock()
    limiter = RollingLimiter(3, 5000, wall_ms=clock.wall_ms, sleep=clock.sleep)
    for _ in range(3):
        limiter.observe(None, await limiter.acquire())
    fourth = asyncio.ensure_future(limiter.acquire())
    await clock.advance(4999)
    assert not fourth.done()
    await clock.advance(1)  # the first request leaves the window
    limiter.ban(clock.ms + 600_000)  # a 403: locked out for 10 minutes
    assert fourth.done()  # already granted before the lock-out
    fifth = asyncio.ensure_future(limiter.acquire())
    await clock.advance(599_999)
    assert not fifth.done()
    await clock.advance(1)
    assert fifth.done()
    assert limiter.stats().bans == 1


async def test_bybit_charges_a_request_until_a_window_after_its_reply() -> None:
    clock = FakeClock()
    limiter = RollingLimiter(2, 5000, wall_ms=clock.wall_ms, sleep=clock.sleep)
    server = BybitLimiter(2, 5.0, wall=lambda: clock.ms / 1000)
    slow = [await limiter.acquire(), await limiter.acquire()]
    await clock.advance(4000)  # they reach the server late: it counts them from now
    assert [server.admit(IP).status for _ in slow] == [200, 200]
    for permit in slow:
        limiter.observe(None, permit)
    nxt = asyncio.ensure_future(limiter.acquire())
    await clock.advance(4999)  # 9 s after sending, 5 s after arriving: not yet
    assert not nxt.done()
    await clock.advance(1)
    assert server.admit(IP).status == 200
    limiter.observe(None, nxt.result())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="headroom"):
        WeightLimiter(10, headroom=1.0)
    with pytest.raises(ValueError, match="limit"):
        RollingLimiter(0)
    with pytest.raises(ValueError, match="skew"):
        WeightLimiter(10, skew_ms=-1)
    with pytest.raises(ValueError, match="interval"):
        interval_ms("WEEK")


async def test_a_weight_beyond_the_budget_can_never_be_sent() -> None:
    with pytest.raises(ValueError, match="weight"):
        await WeightLimiter(10).acquire(11)


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(None, 5), (1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10)],
)
def test_usdm_klines_weight_follows_the_bands(limit: int | None, weight: int) -> None:
    assert usdm_klines_weight(limit) == weight


@pytest.mark.parametrize("limit", [0, 1501])
def test_usdm_klines_weight_refuses_limits_the_venue_refuses(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        usdm_klines_weight(limit)


@pytest.mark.parametrize(
    ("wanted", "limit"), [(1, 1), (99, 99), (150, 150), (500, 499), (1000, 1000), (10_000, 499)]
)
def test_usdm_klines_limit_picks_the_cheapest_page(wanted: int, limit: int) -> None:
    assert usdm_klines_limit(wanted) == limit


def _plan_weight(wanted: int, page: int) -> int:
    full, rest = divmod(wanted, page)
    return full * usdm_klines_weight(page) + (usdm_klines_weight(rest) if rest else 0)


@given(st.integers(1, 20_000))
def test_no_other_page_size_fetches_the_candles_for_less(wanted: int) -> None:
    chosen = _plan_weight(wanted, usdm_klines_limit(wanted))
    top = USDM_KLINES_BANDS[-1][0]
    assert chosen == min(_plan_weight(wanted, page) for page in range(1, min(wanted, top) + 1))


def test_the_weight_tables_match_what_the_simulator_charges() -> None:
    venues = {"binance": Venue.BINANCE, "binance-usdm": Venue.BINANCE_USDM}
    for endpoint in binance_rest.ENDPOINTS:
        venue = venues[str(endpoint.venue)]
        if isinstance(endpoint.weight, int):
            assert request_weight(venue, endpoint.path) == endpoint.weight, endpoint.path
        else:
            for n in (1, 99, 100, 499, 500, 1000, 1001, 1500):
                charged = endpoint.weight(make_mocked_request("GET", f"{endpoint.path}?limit={n}"))
                assert request_weight(venue, endpoint.path, n) == charged
    assert set(BINANCE_SPOT_WEIGHTS) | set(BINANCE_USDM_WEIGHTS) <= {
        e.path for e in binance_rest.ENDPOINTS
    }
    assert request_weight(Venue.BYBIT_LINEAR, "/v5/market/kline") == 1
    with pytest.raises(ValueError, match="no known weight"):
        request_weight(Venue.BINANCE, "/api/v3/depth")
