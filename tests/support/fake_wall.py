"""A wall clock for tests: epoch seconds that move only when a test (or a sleep) says so.

Rate-limit windows, bans and lock-outs run on wall time (ARCHITECTURE.md); the simulator
and candlevault's limiters take the clock injected, so a test hands both this one and
minutes pass at once and the same way every run.
"""

from __future__ import annotations


class FakeWall:
    """Wall time in epoch seconds; `sleep` advances it instead of waiting."""

    def __init__(self, t: float = 1_705_276_815.0) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def ms(self) -> float:
        """The time in epoch milliseconds (what the limiters read)."""
        return self.t * 1000

    async def sleep(self, seconds: float) -> None:
        """An async sleep that takes no time: the clock jumps instead."""
        self.slept.append(seconds)
        self.t += max(0.0, seconds)
