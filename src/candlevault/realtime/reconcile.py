"""The stream's closed minutes against the venue's own closed 1m klines: pure.

When the kline stream is followed (Binance `<s>@kline_1m`, Bybit `kline.1.<S>`), the
venue says what each minute it saw trade was: Binance's final `"x":true` event, Bybit's
`"confirm":true` candle (field for field what its REST kline serves). `reconcile` takes
the minutes a builder has just closed and those it could not vouch for, and the venue's
closed klines not yet used:

- a closed minute that differs from the venue's is replaced by the venue's (a
  correction, counted; the differences are logged by the caller), and the flat minutes
  that follow it in the batch are flat at the corrected close;
- a minute the builder could not vouch for (the feed started in it, a drop, an
  unproven stretch) is settled by the venue's kline when there is one, with no REST
  request; the rest stays unknown, for REST to repair.

The exchange has the last word, as it has on REST: a stream-built candle is never kept
against the venue's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from candlevault.domain.candles import Candle
from candlevault.domain.spans import Span
from candlevault.domain.timeframes import MINUTE_MS


@dataclass(slots=True)
class Reconciled:
    """What to write and what is still unknown after `reconcile`."""

    candles: list[Candle] = field(default_factory=list)
    """Closed 1m candles to write, ascending: the builder's, corrected, and settled."""
    unknown: list[Span] = field(default_factory=list)
    """The unknown spans less the minutes the venue's klines settled."""
    corrected: list[tuple[Candle, Candle]] = field(default_factory=list)
    """(the builder's, the venue's) for every minute that differed."""
    settled: int = 0
    """Minutes written from the venue's klines instead of a REST request."""


def is_flat(candle: Candle) -> bool:
    """Tell a zero-volume minute, flat at the previous close, from a traded one."""
    return candle.volume == 0 and not candle.trades


def reconcile(closed: list[Candle], unknown: list[Span], venue: dict[int, Candle]) -> Reconciled:
    """Merge a builder's closing with the venue's closed klines (`venue`, by open time;
    the ones used are removed from it)."""
    out = Reconciled()
    fix: int | None = None  # the corrected close that following flat minutes are flat at
    for candle in closed:
        theirs = venue.pop(candle.open_time_ms, None)
        if theirs is not None and theirs != candle:
            out.corrected.append((candle, theirs))
            candle, fix = theirs, theirs.close
        elif theirs is None and fix is not None and is_flat(candle) and candle.close != fix:
            candle = msgspec.structs.replace(candle, open=fix, high=fix, low=fix, close=fix)
        else:
            fix = None
        out.candles.append(candle)
    for lo, hi in unknown:
        for minute in range(lo, hi, MINUTE_MS):
            theirs = venue.pop(minute, None)
            if theirs is None:
                if out.unknown and out.unknown[-1][1] == minute:
                    out.unknown[-1] = (out.unknown[-1][0], minute + MINUTE_MS)
                else:
                    out.unknown.append((minute, minute + MINUTE_MS))
            else:
                out.candles.append(theirs)
                out.settled += 1
    if out.settled:
        out.candles.sort(key=lambda c: c.open_time_ms)
    return out


def differences(mine: Candle, theirs: Candle) -> dict[str, tuple[object, object]]:
    """The fields in which two versions of a minute differ, for the log."""
    a, b = msgspec.structs.asdict(mine), msgspec.structs.asdict(theirs)
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}
