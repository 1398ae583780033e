"""Per-IP rate limits and bans, enforced as Binance and Bybit enforce them, in wall time.

Rate-limit windows and bans model a server's load, which does not speed up with the
simulation, so they run on a wall clock (`time.time` by default, injected in tests),
never on sim time (see `simulator.clock`).

**Binance** (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits):
request weight per IP is counted in fixed one-minute windows aligned to wall-clock
minutes, which is what `X-MBX-USED-WEIGHT-1M` reports on every reply. A request that
takes the window past the limit gets 429 with `Retry-After` (seconds until the window
ends). "Repeatedly violating rate limits and/or failing to back off after receiving 429s
will result in an automated IP ban (HTTP status 418)": here any request that arrives
while the IP is still inside a 429's `Retry-After` earns the ban. "IP bans are tracked
and scale in duration for repeat offenders, from 2 minutes to 3 days": the n-th ban of
an IP lasts `ban_base_s * 2**(n-1)`, capped at `ban_max_s`. While banned, every request
gets 418 with the remaining time; bans are not extended by requests made during them.

The windows are fixed and aligned as Binance's `web-socket-api.md` (rate limits) puts it:
"Request submitted at 00:01:23.456 counts towards the 00:01:00 minute's limit. Once the
00:02:00 minute starts, the count will reset to zero again." Binance does not say whether
refused requests count; here every request that reaches the limiter counts its weight,
refused or not, so the header of a client that keeps hammering climbs past the limit (an
earlier version of that page shows a 418 reply whose count is 2411 against a limit of
1200). Clients must therefore not infer "admitted" from the header alone.

**Bybit** (https://bybit-exchange.github.io/docs/v5/rate-limit): "You are allowed to send
600 requests within a 5-second window per IP ... If you encounter the error "403, access
too frequent", ... wait for at least 10 minutes. The ban will be lifted automatically."
Their older pages say "No more than 600 requests are allowed in *any* 5-second window",
so the window here is rolling (a request is refused if `limit` requests were admitted in
the `window_s` seconds before it). The refusal is the IP gate's, not the API's: it is not
the `{retCode, ...}` JSON envelope (the docs quote only its text), so it is sent as plain
text and clients must look at the status before parsing. A lock-out starts the count
afresh when it ends.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Both wordings as Binance sends them (code -1003 for both statuses). Binance documents
# the templates (USD-M / COIN-M error-code pages: "Too many requests; current limit is %s
# requests per minute. Please use the websocket for live updates to avoid polling the
# API." and "Way too many requests; IP banned until %s. Please use the websocket for live
# updates to avoid bans."); the bodies actually served name the IP, e.g. "Too many
# requests; current limit of IP(188.163.81.59) is 6000 requests per minute. ..." (spot)
# and "Way too many requests; IP(88.238.33.41) banned until 1721393459728. ..." (USD-M),
# as captured in public client code and in nightshift2k/binance-proxy issue #8. The spot
# errors.md (binance/binance-spot-api-docs) lists an older "Too much request weight used;
# current limit is %s request weight per %s" form; clients key on code -1003, the status
# and the "banned until <ms>" number, which both forms share.
BINANCE_TOO_MANY = (
    "Too many requests; current limit of IP({ip}) is {limit} requests per minute. "
    "Please use the websocket for live updates to avoid polling the API."
)
BINANCE_BANNED = (
    "Way too many requests; IP({ip}) banned until {until_ms}. "
    "Please use the websocket for live updates to avoid bans."
)
BINANCE_CODE_TOO_MANY_REQUESTS = -1003
# The text of Bybit's IP-limit refusal, as its v5 rate-limit page quotes it.
BYBIT_TOO_FREQUENT = "403, access too frequent"

_MINUTE_S = 60


@dataclass(frozen=True, slots=True)
class Admission:
    """Binance's verdict on one request: serve it (200) or refuse it (429, 418).

    `used_weight` goes in `X-MBX-USED-WEIGHT-1M` on every reply; `retry_after_s` in
    `Retry-After` on a 429 or 418; `body` is the JSON error object to send instead of
    the endpoint's reply (None when admitted).
    """

    status: int
    used_weight: int
    retry_after_s: int = 0
    body: dict[str, int | str] | None = None

    @property
    def admitted(self) -> bool:
        """Whether the request may be served."""
        return self.status == 200

    def headers(self, *, lower_case: bool = False) -> dict[str, str]:
        """Return the rate-limit headers (USD-M's host sends the names in lower case)."""
        found = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)}
        if not self.admitted:
            found["Retry-After"] = str(self.retry_after_s)
        return {k.lower(): v for k, v in found.items()} if lower_case else found


@dataclass(slots=True)
class _BinanceIp:
    window: int = -1  # wall-clock minute (epoch seconds // 60) that `used` counts
    used: int = 0
    back_off_until_s: float = 0.0  # end of the last 429's Retry-After
    banned_until_s: float = 0.0
    bans: int = 0


class BinanceLimiter:
    """Binance's per-IP weight limit with 429, then 418 bans that grow for repeat offenders."""

    def __init__(
        self,
        limit_per_minute: int,
        wall: Callable[[], float] = time.time,
        ban_base_s: float = 120,
        ban_max_s: float = 3 * 86_400,
    ) -> None:
        if limit_per_minute < 1:
            raise ValueError(f"limit_per_minute must be >= 1, not {limit_per_minute}")
        if not 0 < ban_base_s <= ban_max_s:
            raise ValueError(f"need 0 < ban_base_s <= ban_max_s, not {ban_base_s}, {ban_max_s}")
        self.limit_per_minute = limit_per_minute
        self._wall = wall
        self._ban_base_s = ban_base_s
        self._ban_max_s = ban_max_s
        self._ips: dict[str, _BinanceIp] = {}

    def admit(self, ip: str, weight: int) -> Admission:
        """Count a request of `weight` from `ip` and say whether to serve it."""
        if weight < 0:
            raise ValueError(f"weight must be >= 0, not {weight}")
        now = self._wall()
        state = self._ips.setdefault(ip, _BinanceIp())
        window = math.floor(now / _MINUTE_S)
        if state.window != window:
            state.window, state.used = window, 0
        state.used += weight
        if state.banned_until_s > now:
            return self._banned(ip, state, now)
        if state.back_off_until_s > now:
            state.bans += 1
            duration = min(self._ban_base_s * 2 ** (state.bans - 1), self._ban_max_s)
            state.banned_until_s = now + duration
            state.back_off_until_s = 0.0
            return self._banned(ip, state, now)
        if state.used <= self.limit_per_minute:
            return Admission(200, state.used)
        window_end = (window + 1) * _MINUTE_S
        state.back_off_until_s = window_end
        message = BINANCE_TOO_MANY.format(ip=ip, limit=self.limit_per_minute)
        return Admission(
            429,
            state.used,
            _seconds_until(window_end, now),
            {"code": BINANCE_CODE_TOO_MANY_REQUESTS, "msg": message},
        )

    def used(self, ip: str) -> int:
        """Return the weight `ip` has used in the current wall-clock minute."""
        state = self._ips.get(ip)
        if state is None or state.window != math.floor(self._wall() / _MINUTE_S):
            return 0
        return state.used

    def reset(self) -> None:
        """Forget every IP's weight, back-off, ban and ban history."""
        self._ips.clear()

    def _banned(self, ip: str, state: _BinanceIp, now: float) -> Admission:
        until_ms = math.ceil(state.banned_until_s * 1000)
        message = BINANCE_BANNED.format(ip=ip, until_ms=until_ms)
        return Admission(
            418,
            state.used,
            _seconds_until(state.banned_until_s, now),
            {"code": BINANCE_CODE_TOO_MANY_REQUESTS, "msg": message},
        )


@dataclass(frozen=True, slots=True)
class BybitAdmission:
    """Bybit's verdict on one request: serve it (200) or refuse it (403, locked out).

    On a 403 send `body` as `text/plain` in place of the JSON envelope; `retry_after_s`
    is how long the lock-out still lasts (Bybit itself sends no `Retry-After`).
    """

    status: int
    used: int
    retry_after_s: int = 0
    body: str | None = None

    @property
    def admitted(self) -> bool:
        """Whether the request may be served."""
        return self.status == 200


@dataclass(slots=True)
class _BybitIp:
    admitted_at: deque[float] = field(default_factory=deque)
    locked_until_s: float = 0.0


class BybitLimiter:
    """Bybit's per-IP request limit over a rolling window, with a lock-out (403) past it."""

    def __init__(
        self,
        limit: int = 600,
        window_s: float = 5.0,
        lockout_s: float = 600,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1 or window_s <= 0 or lockout_s <= 0:
            raise ValueError(f"need limit >= 1, window_s > 0, lockout_s > 0: {limit}, {window_s}")
        self.limit = limit
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._wall = wall
        self._ips: dict[str, _BybitIp] = {}

    def admit(self, ip: str) -> BybitAdmission:
        """Count a request from `ip` and say whether to serve it."""
        now = self._wall()
        state = self._ips.setdefault(ip, _BybitIp())
        if state.locked_until_s > now:
            return self._refused(state, now)
        self._expire(state, now)
        if len(state.admitted_at) >= self.limit:
            state.locked_until_s = now + self.lockout_s
            return self._refused(state, now)
        state.admitted_at.append(now)
        return BybitAdmission(200, len(state.admitted_at))

    def used(self, ip: str) -> int:
        """Return how many requests of `ip` were admitted in the last `window_s` seconds."""
        state = self._ips.get(ip)
        if state is None:
            return 0
        self._expire(state, self._wall())
        return len(state.admitted_at)

    def reset(self) -> None:
        """Forget every IP's requests and lock-outs."""
        self._ips.clear()

    def _expire(self, state: _BybitIp, now: float) -> None:
        horizon = now - self.window_s
        while state.admitted_at and state.admitted_at[0] <= horizon:
            state.admitted_at.popleft()

    def _refused(self, state: _BybitIp, now: float) -> BybitAdmission:
        remaining = _seconds_until(state.locked_until_s, now)
        return BybitAdmission(403, len(state.admitted_at), remaining, BYBIT_TOO_FREQUENT)


def _seconds_until(deadline_s: float, now: float) -> int:
    """Whole seconds to wait so that `deadline_s` has passed (at least 1)."""
    return max(1, math.ceil(deadline_s - now))
