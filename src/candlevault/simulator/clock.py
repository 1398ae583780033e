"""The simulator's clock: sim time in epoch ms, running `speed` times faster than wall time.

Sim time is an anchor plus scaled elapsed wall time,
`now = anchor_sim_ms + (wall() - anchor_wall_s) * 1000 * speed`, frozen while paused.
Every control (pause, resume, step, set, speed) re-anchors, so changing the speed never
makes time jump and the clock never runs backwards unless told to with `set`.

Two times, on purpose, as on a real exchange: *candle time is sim time* (what the
market has traded, what `/api/v3/time` and `/v5/market/time` report, when an archive
file is published), while *rate-limit windows, bans and `Retry-After` run in wall time*
(they model a server's load, which does not speed up with the simulation); the limiters
in `simulator.limits` take their own wall callable for that.

`apply()` validates and performs the body of `POST /_sim/clock`:

    {"action": "pause"}
    {"action": "resume"}
    {"action": "step", "ms": 60000}                       # forward only; paused or not
    {"action": "set", "time": "2024-01-15T00:00:00Z"}     # or epoch ms: 1705276800000
    {"action": "speed", "speed": 60}

Each action takes exactly the fields shown; anything else is refused with a
`BadValue`/`BadRequest` naming the field, so a typo in a test fails loudly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import msgspec

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.domain.times import parse_time_ms


class ClockState(msgspec.Struct, frozen=True):
    """What `GET /_sim/clock` returns: sim time (epoch ms), its speed, whether paused."""

    time_ms: int
    speed: float
    paused: bool


# The fields each action of POST /_sim/clock takes, besides "action".
_FIELDS: dict[str, frozenset[str]] = {
    "pause": frozenset(),
    "resume": frozenset(),
    "step": frozenset({"ms"}),
    "set": frozenset({"time"}),
    "speed": frozenset({"speed"}),
}


class SimClock:
    """Sim time that runs `speed` times faster than `wall` (seconds), pausable and settable."""

    def __init__(
        self,
        start_ms: int,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall = wall
        self._speed = _checked_speed(speed)
        self._anchor_sim_ms = _checked_ms("start_ms", start_ms)
        self._anchor_wall_s = wall()
        self._paused = False

    def now_ms(self) -> int:
        """Return the sim time in epoch milliseconds."""
        if self._paused:
            return self._anchor_sim_ms
        elapsed_s = self._wall() - self._anchor_wall_s
        return self._anchor_sim_ms + math.floor(elapsed_s * 1000 * self._speed)

    @property
    def speed(self) -> float:
        """Sim milliseconds per wall millisecond."""
        return self._speed

    @property
    def paused(self) -> bool:
        """Whether sim time is frozen."""
        return self._paused

    def pause(self) -> None:
        """Freeze sim time where it is (no-op if already paused)."""
        if not self._paused:
            self._anchor_sim_ms = self.now_ms()
            self._paused = True

    def resume(self) -> None:
        """Let sim time run again from where it was paused (no-op if running)."""
        if self._paused:
            self._anchor_wall_s = self._wall()
            self._paused = False

    def step(self, ms: int) -> None:
        """Advance sim time by `ms` (>= 0), whether paused or running."""
        self._anchor_sim_ms += _checked_ms("ms", ms)

    def set(self, ms: int) -> None:
        """Jump sim time to `ms` (backwards too); paused stays paused."""
        self._anchor_sim_ms = _checked_ms("time", ms)
        self._anchor_wall_s = self._wall()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, re-anchoring so that sim time does not jump."""
        speed = _checked_speed(speed)
        self._anchor_sim_ms = self.now_ms()
        self._anchor_wall_s = self._wall()
        self._speed = speed

    def state(self) -> ClockState:
        """Return the sim time, speed and paused flag as one consistent reading."""
        return ClockState(time_ms=self.now_ms(), speed=self._speed, paused=self._paused)

    def apply(self, command: object) -> ClockState:
        """Validate and perform one `POST /_sim/clock` body; return the state after it."""
        action, fields = _parse_command(command)
        if action == "pause":
            self.pause()
        elif action == "resume":
            self.resume()
        elif action == "step":
            self.step(_as_int("ms", fields["ms"]))
        elif action == "set":
            self.set(_parse_time(fields["time"]))
        else:
            self.set_speed(_as_speed(fields["speed"]))
        return self.state()


def _parse_command(command: object) -> tuple[str, Mapping[str, object]]:
    if not isinstance(command, Mapping):
        raise BadRequest("the clock command must be a JSON object with an 'action'")
    action = command.get("action")
    if not isinstance(action, str) or action not in _FIELDS:
        raise BadValue("action", action, f"expected one of {', '.join(_FIELDS)}")
    wanted = _FIELDS[action]
    for key in command:
        if key != "action" and key not in wanted:
            expected = ", ".join(sorted(wanted)) or "no other field"
            raise BadValue("clock field", key, f"action {action!r} takes {expected}")
    for key in sorted(wanted):
        if key not in command:
            raise BadRequest(f"action {action!r} needs the field {key!r}")
    return action, command


def _as_int(field: str, value: object) -> int:
    # bool is an int in Python but never a time; floats would hide sub-ms truncation.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(field, value, "expected an integer number of milliseconds")
    return value


def _checked_ms(field: str, value: int) -> int:
    value = _as_int(field, value)
    if value < 0:
        raise BadValue(field, value, "expected milliseconds >= 0")
    return value


def _parse_time(value: object) -> int:
    if isinstance(value, str):
        try:
            return parse_time_ms(value)
        except BadValue as e:
            raise BadValue("time", value, e.expected) from e
    return _checked_ms("time", _as_int("time", value))


def _as_speed(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue("speed", value, "expected a number > 0")
    return float(value)


def _checked_speed(speed: float) -> float:
    speed = _as_speed(speed)
    if not (math.isfinite(speed) and speed > 0):
        raise BadValue("speed", speed, "expected a finite number > 0")
    return speed
