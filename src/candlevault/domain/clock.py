"""Exchange time, injected: whatever decides that a candle is closed asks a `Clock`.

Candle time follows the exchange's clock, not ours: a local clock that runs 2 s fast
would store a forming candle as closed. `AnchoredClock` is the one implementation:
exchange time at an anchor, advanced by a monotonic source at a rate (1 against a real
exchange, the simulator's speed against `candlevault sim`), frozen while paused. The
monotonic source is passed in, so this module reads no clock itself and tests drive it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """The exchange's time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Return the exchange's current time in epoch milliseconds."""
        ...


@dataclass(frozen=True, slots=True)
class AnchoredClock:
    """`anchor_ms` at monotonic instant `anchor_s`, then `speed` ms per monotonic ms."""

    anchor_ms: int
    anchor_s: float
    monotonic: Callable[[], float]
    speed: float = 1.0
    paused: bool = False

    def now_ms(self) -> int:
        """Return the exchange's current time in epoch milliseconds."""
        if self.paused:
            return self.anchor_ms
        return self.anchor_ms + math.floor((self.monotonic() - self.anchor_s) * 1000 * self.speed)


class LiveClock:
    """A clock that is re-anchored while it is in use (the offset kept fresh): whoever
    holds it keeps asking the same object, and `current` is swapped under them."""

    __slots__ = ("current",)

    def __init__(self, current: AnchoredClock) -> None:
        self.current = current

    def now_ms(self) -> int:
        """Return the exchange's current time in epoch milliseconds."""
        return self.current.now_ms()
