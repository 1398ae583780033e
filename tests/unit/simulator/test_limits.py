"""Binance weight windows, 429 → 418 bans, Bybit's rolling window and lock-out (fake wall)."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.simulator.limits import BinanceLimiter, BybitLimiter
from tests.support.fake_wall import FakeWall

IP = "127.0.0.1"
OTHER = "127.0.0.2"


MINUTE_START = 1_705_276_800.0  # 2024-01-15T00:00:00Z, the start of a wall-clock minute


def test_binance_admits_up_to_the_limit_and_reports_the_used_weight() -> None:
    wall = FakeWall(MINUTE_START + 15)
    limiter = BinanceLimiter(10, wall=wall)
    first = limiter.admit(IP, 4)
    second = limiter.admit(IP, 6)
    assert (first.status, first.used_weight, first.body) == (200, 4, None)
    assert (second.status, second.used_weight) == (200, 10)
    assert first.admitted
    assert second.headers() == {"X-MBX-USED-WEIGHT-1M": "10"}
    assert limiter.used(IP) == 10
    assert limiter.used(OTHER) == 0


def test_binance_answers_429_past_the_limit_until_the_minute_ends() -> None:
    wall = FakeWall(MINUTE_START + 15.2)
    limiter = BinanceLimiter(10, wall=wall)
    limiter.admit(IP, 8)
    refused = limiter.admit(IP, 4)
    assert refused.status == 429
    assert not refused.admitted
    assert refused.used_weight == 12  # a refused request still counts
    assert refused.retry_after_s == 45  # 44.8 s to the end of the minute, rounded up
    assert refused.body == {
        "code": -1003,
        "msg": "Too many requests; current limit of IP(127.0.0.1) is 10 requests per minute. "
        "Please use the websocket for live updates to avoid polling the API.",
    }
    assert refused.headers() == {"X-MBX-USED-WEIGHT-1M": "12", "Retry-After": "45"}
    assert refused.headers(lower_case=True) == {
        "x-mbx-used-weight-1m": "12",
        "retry-after": "45",
    }


def test_binance_waiting_out_retry_after_avoids_the_ban() -> None:
    wall = FakeWall(MINUTE_START + 30)
    limiter = BinanceLimiter(10, wall=wall)
    refused = limiter.admit(IP, 11)
    wall.t += refused.retry_after_s
    again = limiter.admit(IP, 2)
    assert (again.status, again.used_weight) == (200, 2)


def test_binance_bans_a_client_that_does_not_back_off() -> None:
    wall = FakeWall(MINUTE_START + 30)
    limiter = BinanceLimiter(10, wall=wall)
    assert limiter.admit(IP, 11).status == 429
    wall.t += 10  # inside the 30 s Retry-After
    banned = limiter.admit(IP, 1)
    until_ms = round((MINUTE_START + 40 + 120) * 1000)
    assert banned.status == 418
    assert banned.retry_after_s == 120
    assert banned.body == {
        "code": -1003,
        "msg": f"Way too many requests; IP(127.0.0.1) banned until {until_ms}. "
        "Please use the websocket for live updates to avoid bans.",
    }
    assert banned.headers()["Retry-After"] == "120"
    assert limiter.admit(OTHER, 1).status == 200  # bans are per IP


def test_binance_a_ban_holds_every_request_and_then_lifts() -> None:
    wall = FakeWall(MINUTE_START + 30)
    limiter = BinanceLimiter(10, wall=wall)
    limiter.admit(IP, 11)
    first = limiter.admit(IP, 1)
    wall.t += 100
    during = limiter.admit(IP, 1)
    assert during.status == 418
    assert during.retry_after_s == 20
    assert during.body == first.body  # not extended by requests made during it
    wall.t += 20
    after = limiter.admit(IP, 1)
    # the minute started at +120 holds the banned request at +130 too
    assert (after.status, after.used_weight) == (200, 2)


def test_binance_bans_double_for_repeat_offenders_up_to_the_cap() -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BinanceLimiter(1, wall=wall, ban_base_s=120, ban_max_s=400)
    durations = []
    for _ in range(4):
        wall.t = math.floor(wall.t / 60) * 60 + 60  # a fresh minute
        assert limiter.admit(IP, 2).status == 429
        banned = limiter.admit(IP, 1)
        assert banned.status == 418
        durations.append(banned.retry_after_s)
        wall.t += banned.retry_after_s
    assert durations == [120, 240, 400, 400]


def test_binance_reset_forgets_weight_bans_and_history() -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BinanceLimiter(1, wall=wall, ban_base_s=120)
    limiter.admit(IP, 2)
    limiter.admit(IP, 1)
    limiter.reset()
    assert limiter.used(IP) == 0
    assert limiter.admit(IP, 1).status == 200
    limiter.admit(IP, 1)
    assert limiter.admit(IP, 1).retry_after_s == 120  # the first ban again


def test_binance_windows_are_aligned_to_wall_clock_minutes() -> None:
    wall = FakeWall(MINUTE_START + 59.999)
    limiter = BinanceLimiter(10, wall=wall)
    limiter.admit(IP, 10)
    wall.t = MINUTE_START + 60
    assert limiter.used(IP) == 0
    fresh = limiter.admit(IP, 10)
    assert (fresh.status, fresh.used_weight) == (200, 10)


def test_binance_limiter_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        BinanceLimiter(0)
    with pytest.raises(ValueError, match="ban"):
        BinanceLimiter(10, ban_base_s=10, ban_max_s=5)
    with pytest.raises(ValueError, match="weight"):
        BinanceLimiter(10).admit(IP, -1)


binance_requests = st.lists(
    st.tuples(st.sampled_from([IP, OTHER]), st.integers(0, 7), st.floats(0, 40)),
    max_size=80,
)


@given(binance_requests, st.integers(1, 30))
def test_binance_never_admits_more_than_the_limit_per_window(
    requests: list[tuple[str, int, float]], limit: int
) -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BinanceLimiter(limit, wall=wall, ban_base_s=30, ban_max_s=90)
    admitted: dict[tuple[str, int], int] = defaultdict(int)
    told_to_wait: dict[str, bool] = defaultdict(bool)
    for ip, weight, gap in requests:
        wall.t += gap
        verdict = limiter.admit(ip, weight)
        assert verdict.status in (200, 429, 418)
        if verdict.status == 200:
            admitted[ip, math.floor(wall.t / 60)] += weight
            assert verdict.used_weight == limiter.used(ip)
            assert verdict.body is None
        else:
            assert verdict.retry_after_s >= 1
            assert verdict.body is not None
            assert verdict.body["code"] == -1003
        if verdict.status == 418:
            assert told_to_wait[ip]  # no ban without a 429 first
        told_to_wait[ip] |= verdict.status == 429
    assert all(used <= limit for used in admitted.values())


def test_bybit_locks_out_past_the_limit() -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BybitLimiter(limit=3, window_s=5, lockout_s=600, wall=wall)
    verdicts = [limiter.admit(IP) for _ in range(3)]
    assert [(v.status, v.used, v.body) for v in verdicts] == [
        (200, 1, None),
        (200, 2, None),
        (200, 3, None),
    ]
    refused = limiter.admit(IP)
    assert (refused.status, refused.retry_after_s) == (403, 600)
    assert refused.body == "403, access too frequent"
    assert not refused.admitted
    assert limiter.admit(OTHER).status == 200


def test_bybit_lockout_holds_every_request_and_ends_with_a_fresh_count() -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BybitLimiter(limit=2, window_s=5, lockout_s=10, wall=wall)
    for _ in range(3):
        limiter.admit(IP)
    wall.t += 9.5
    during = limiter.admit(IP)
    assert (during.status, during.retry_after_s) == (403, 1)
    wall.t += 0.5
    assert [limiter.admit(IP).status for _ in range(3)] == [200, 200, 403]


def test_bybit_window_rolls() -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BybitLimiter(limit=3, window_s=5, lockout_s=60, wall=wall)
    for _ in range(3):
        limiter.admit(IP)
        wall.t += 1
    # t = +3: the three requests at +0, +1, +2 are all inside the last 5 s
    wall.t = MINUTE_START + 4.9
    assert limiter.used(IP) == 3
    wall.t = MINUTE_START + 5  # the request at +0 leaves the window
    assert limiter.used(IP) == 2
    assert limiter.admit(IP).status == 200
    assert limiter.admit(IP).status == 403


def test_bybit_reset_lifts_lockouts() -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BybitLimiter(limit=1, lockout_s=60, wall=wall)
    limiter.admit(IP)
    limiter.admit(IP)
    limiter.reset()
    assert limiter.used(IP) == 0
    assert limiter.admit(IP).status == 200


def test_bybit_limiter_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        BybitLimiter(limit=0)
    with pytest.raises(ValueError, match="window_s"):
        BybitLimiter(window_s=0)


@given(st.lists(st.floats(0, 3), max_size=120), st.integers(1, 20), st.floats(0.5, 10))
def test_bybit_never_admits_more_than_the_limit_in_any_window(
    gaps: list[float], limit: int, window_s: float
) -> None:
    wall = FakeWall(MINUTE_START)
    limiter = BybitLimiter(limit=limit, window_s=window_s, lockout_s=7, wall=wall)
    admitted: list[float] = []
    for gap in gaps:
        wall.t += gap
        verdict = limiter.admit(IP)
        if verdict.status == 200:
            admitted.append(wall.t)
            assert verdict.used == limiter.used(IP)
        else:
            assert verdict.status == 403
            assert verdict.retry_after_s >= 1
    for t in admitted:
        assert sum(1 for s in admitted if t - window_s < s <= t) <= limit
