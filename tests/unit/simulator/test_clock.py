"""SimClock: sim time from a fake wall clock, its controls and the POST /_sim/clock body."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.simulator.clock import ClockState, SimClock
from tests.support.fake_wall import FakeWall

START = 1_705_276_800_000  # 2024-01-15T00:00:00Z


def test_sim_time_runs_at_speed_from_the_start() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=60, wall=wall)
    assert clock.now_ms() == START
    wall.t += 1.5
    assert clock.now_ms() == START + 90_000


def test_pause_freezes_time_and_resume_continues_without_a_jump() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=2, wall=wall)
    wall.t += 1
    clock.pause()
    wall.t += 100
    assert clock.now_ms() == START + 2_000
    assert clock.paused
    clock.resume()
    assert clock.now_ms() == START + 2_000
    wall.t += 1
    assert clock.now_ms() == START + 4_000


def test_pause_and_resume_twice_change_nothing() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, wall=wall)
    clock.resume()
    wall.t += 1
    clock.pause()
    clock.pause()
    wall.t += 5
    clock.resume()
    clock.resume()
    wall.t += 1
    assert clock.now_ms() == START + 2_000


def test_step_advances_time_paused_or_running() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, wall=wall)
    clock.step(60_000)
    assert clock.now_ms() == START + 60_000
    clock.pause()
    clock.step(1)
    assert clock.now_ms() == START + 60_001
    assert clock.paused


def test_set_jumps_either_way_and_keeps_the_pause() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, wall=wall)
    wall.t += 10
    clock.set(START - 5)
    assert clock.now_ms() == START - 5
    wall.t += 1
    assert clock.now_ms() == START + 995
    clock.pause()
    clock.set(7)
    wall.t += 3
    assert clock.now_ms() == 7
    assert clock.paused


def test_set_speed_reanchors_so_that_time_does_not_jump() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=1, wall=wall)
    wall.t += 10
    clock.set_speed(100)
    assert clock.now_ms() == START + 10_000
    wall.t += 1
    assert clock.now_ms() == START + 110_000
    assert clock.speed == 100


def test_state_reports_time_speed_and_pause_as_json() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=3, wall=wall)
    clock.pause()
    state = clock.state()
    assert state == ClockState(time_ms=START, speed=3.0, paused=True)
    assert msgspec.json.decode(msgspec.json.encode(state)) == {
        "time_ms": START,
        "speed": 3.0,
        "paused": True,
    }


@pytest.mark.parametrize("speed", [0, -1, math.inf, math.nan, True, "2"])
def test_a_speed_must_be_a_finite_positive_number(speed: object) -> None:
    with pytest.raises(BadValue, match="speed"):
        SimClock(START, speed=speed, wall=FakeWall(1000.0))  # type: ignore[arg-type]
    clock = SimClock(START, wall=FakeWall(1000.0))
    with pytest.raises(BadValue, match="speed"):
        clock.set_speed(speed)  # type: ignore[arg-type]
    assert clock.speed == 1.0


def test_steps_only_go_forward() -> None:
    clock = SimClock(START, wall=FakeWall(1000.0))
    with pytest.raises(BadValue, match="ms"):
        clock.step(-1)
    assert clock.now_ms() == START


def test_apply_performs_each_action_and_returns_the_state() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, wall=wall)
    assert clock.apply({"action": "pause"}).paused
    wall.t += 50
    assert clock.apply({"action": "step", "ms": 60_000}).time_ms == START + 60_000
    assert clock.apply({"action": "resume"}) == ClockState(START + 60_000, 1.0, False)
    assert clock.apply({"action": "speed", "speed": 10}).speed == 10.0
    wall.t += 1
    assert clock.now_ms() == START + 70_000
    assert clock.apply({"action": "set", "time": 1_000}).time_ms == 1_000


@pytest.mark.parametrize(
    "time", ["2024-01-15T00:00:00Z", "2024-01-15", "2024-01-15T01:00:00+01:00", str(START), START]
)
def test_set_accepts_iso_times_and_epoch_ms(time: object) -> None:
    clock = SimClock(0, wall=FakeWall(1000.0))
    clock.pause()
    assert clock.apply({"action": "set", "time": time}).time_ms == START


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"action": "rewind"}, "action"),
        ({}, "action"),
        ({"action": 3}, "action"),
        ({"action": "pause", "ms": 5}, "'ms'"),
        ({"action": "step"}, "'ms'"),
        ({"action": "step", "ms": "60000"}, "ms"),
        ({"action": "step", "ms": 1.5}, "ms"),
        ({"action": "step", "ms": True}, "ms"),
        ({"action": "step", "ms": -60_000}, "ms"),
        ({"action": "step", "ms": 1, "speed": 2}, "'speed'"),
        ({"action": "set"}, "'time'"),
        ({"action": "set", "time": "yesterday"}, "time"),
        ({"action": "set", "time": -1}, "time"),
        ({"action": "set", "time": None}, "time"),
        ({"action": "speed", "speed": 0}, "speed"),
        ({"action": "speed", "speed": "fast"}, "speed"),
        ({"action": "speed"}, "'speed'"),
    ],
)
def test_apply_rejects_a_bad_body_naming_the_field(body: dict[str, object], named: str) -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, wall=wall)
    with pytest.raises(BadRequest, match=named):
        clock.apply(body)
    assert clock.state() == ClockState(START, 1.0, False)


@pytest.mark.parametrize("body", [None, [], "pause"])
def test_apply_rejects_a_body_that_is_not_an_object(body: object) -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        SimClock(START, wall=FakeWall(1000.0)).apply(body)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("wall"), st.floats(0, 3600)),
        st.tuples(st.just("pause"), st.none()),
        st.tuples(st.just("resume"), st.none()),
        st.tuples(st.just("step"), st.integers(0, 10**9)),
        st.tuples(st.just("speed"), st.floats(0.001, 10_000)),
    ),
    max_size=40,
)


@given(operations, st.floats(0.01, 1000))
def test_sim_time_never_runs_backwards_without_set(
    ops: list[tuple[str, float | None]], speed: float
) -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=speed, wall=wall)
    last = clock.now_ms()
    for op, arg in ops:
        before = clock.now_ms()
        if op == "wall":
            assert arg is not None
            wall.t += arg
        elif op == "pause":
            clock.pause()
        elif op == "resume":
            clock.resume()
        elif op == "step":
            clock.step(int(arg or 0))
            assert clock.now_ms() == before + int(arg or 0)
        else:
            clock.set_speed(float(arg or 1))
            assert clock.now_ms() == before  # re-anchoring never jumps
        now = clock.now_ms()
        assert now >= last
        if clock.paused and op == "wall":
            assert now == before
        last = now


@given(st.lists(st.tuples(st.floats(0, 3600), st.integers(0, 10**7)), max_size=20))
def test_a_paused_clock_moves_by_its_steps_alone(moves: list[tuple[float, int]]) -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=500, wall=wall)
    clock.pause()
    for wall_s, step_ms in moves:
        wall.t += wall_s
        clock.step(step_ms)
    assert clock.now_ms() == START + sum(step for _, step in moves)


@given(st.floats(0, 10**6), st.floats(0.001, 10**4))
def test_running_time_is_elapsed_wall_time_times_speed(elapsed_s: float, speed: float) -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(START, speed=speed, wall=wall)
    wall.t += elapsed_s
    assert abs(clock.now_ms() - (START + elapsed_s * 1000 * speed)) <= 1
