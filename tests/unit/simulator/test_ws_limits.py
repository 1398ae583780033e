"""The rolling windows behind the simulator's WebSocket limits (fake wall)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.simulator.ws_limits import (
    ConnectionGate,
    RollingWindow,
    WsLimits,
    message_window,
    venue_limits,
)
from tests.support.fake_wall import FakeWall


def test_the_defaults_are_binance_documented_limits() -> None:
    limits = venue_limits()
    spot, usdm = limits["binance"], limits["binance-usdm"]
    assert (spot.messages, spot.messages_per_s, spot.streams) == (5, 1.0, 1024)
    assert (spot.connections, spot.connections_per_s) == (300, 300.0)
    assert (usdm.messages, usdm.messages_per_s, usdm.streams) == (10, 1.0, 1024)
    assert usdm.connections is None
    assert set(limits) == {"binance", "binance-usdm"}  # Bybit: none here


def test_a_window_admits_the_limit_then_refuses_until_the_oldest_is_a_span_old() -> None:
    wall = FakeWall()
    window = RollingWindow(5, 1.0, wall)
    assert [window.admit() for _ in range(5)] == [True] * 5
    assert not window.admit()
    wall.t += 0.999
    assert not window.admit()
    wall.t += 0.001  # the first five are now exactly one span old: out of the window
    assert window.admit()


def test_a_steady_four_a_second_is_never_refused() -> None:
    wall = FakeWall()
    window = RollingWindow(5, 1.0, wall)
    for _ in range(100):
        assert window.admit()
        wall.t += 0.25


@given(
    limit=st.integers(1, 6),
    gaps=st.lists(st.floats(0.0, 0.7, allow_nan=False), min_size=1, max_size=60),
)
def test_a_window_refuses_exactly_when_the_last_span_holds_the_limit(
    limit: int, gaps: list[float]
) -> None:
    wall = FakeWall(0.0)
    window = RollingWindow(limit, 1.0, wall)
    admitted: list[float] = []
    for gap in gaps:
        wall.t += gap
        recent = [t for t in admitted if t > wall.t - 1.0]
        assert window.admit() == (len(recent) < limit)
        if len(recent) < limit:
            admitted.append(wall.t)
    for i, j in itertools.combinations(range(len(admitted)), 2):
        if j - i >= limit:
            assert admitted[j] - admitted[i] >= 1.0  # never more than `limit` in a span


def test_the_connection_gate_counts_per_venue_and_ip() -> None:
    wall = FakeWall()
    gate = ConnectionGate(wall)
    two = WsLimits(connections=2, connections_per_s=300.0)
    assert [gate.admit("binance", "10.0.0.1", two) for _ in range(3)] == [True, True, False]
    assert gate.admit("binance", "10.0.0.2", two)
    assert gate.admit("binance-usdm", "10.0.0.1", two)
    wall.t += 300.0
    assert gate.admit("binance", "10.0.0.1", two)
    unlimited = WsLimits(connections=None)
    assert all(gate.admit("binance", "10.0.0.3", unlimited) for _ in range(1000))


def test_no_message_limit_gives_no_window() -> None:
    assert message_window(None) is None
    assert message_window(WsLimits(messages=None)) is None
    window = message_window(WsLimits(messages=10))
    assert window is not None
    assert window.limit == 10


def test_a_window_needs_a_span() -> None:
    with pytest.raises(ValueError, match="span_s"):
        RollingWindow(5, 0.0)
