"""The fault switchboard: which request fails, how, and which archive file is broken.

Settings (`FaultSettings`) come from the command line at start and from
`POST /_sim/faults` at run time (`FaultSwitchboard.update`, a validated partial patch);
`GET /_sim/faults` returns them. Every decision is deterministic given the seed:

- REST requests (`decide`) draw from one `random.Random` stream *per venue*, so the n-th
  request to a venue meets the same fault in every run, whatever the other venues were
  asked in between. Each decision consumes the same three draws whatever the settings,
  so changing one share at run time does not reshuffle the others. The shares are one
  partition of [0, 1): a request meets at most one fault.
- Archive files (`archive`) are decided by a hash of (seed, fault, file name), not by a
  stream: the same file is always broken the same way, however often and in whatever
  order it is fetched, and raising a share only adds files to those already broken.
- Dark windows are in sim time (the venue is down from `start_ms` to `end_ms`, as an
  exchange outage is dated in market time); `is_dark` is asked with the sim clock.

- WebSocket faults (`ws_*` fields) act on the simulated streams (`ws_hub`):
  `ws_drop_every_s` closes every open connection every N wall seconds (0: never; the
  period counts from when it was set); `ws_silent` keeps connections open, answering
  pings and control messages, but sends no market frame (what came due meanwhile is
  lost, as with a dark window); `ws_duplicate` and `ws_reorder` are the shares of market
  frames sent twice, or held back and sent right after the next market frame. Those two
  are decided by `ws_stream`: one `random.Random` per connection, seeded with (seed,
  venue, how many connections that venue had before), drawing two numbers per market
  frame whatever the settings, so the n-th frame of the k-th connection to a venue meets
  the same fault in every run, and REST decisions are left unchanged.
- Dropping every connection *now* is an action, not a setting, so it is no field here
  (the settings stay a JSON round trip): `POST /_sim/ws/drop` (server.py) answers
  `{"dropped": <connections closed>}`.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.domain.venues import Venue

MalformedKind = Literal["field_count", "non_numeric", "off_grid"]
MALFORMED_KINDS: tuple[MalformedKind, ...] = ("field_count", "non_numeric", "off_grid")
FaultKind = Literal["none", "error", "slow", "timeout", "truncate", "malformed"]
ERROR_STATUSES = (500, 502, 503)
ARCHIVE = "archive"
DARK_VENUES = (*(v.value for v in Venue), ARCHIVE)
# A string every strict decimal parser refuses, yet float() and Decimal() accept, so it
# catches the parsers that would let a NaN price into the store.
NON_NUMERIC = "NaN"

Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Millis = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0.0)]
_REQUEST_SHARES = ("error_5xx", "timeout", "slow", "truncated", "malformed")


class DarkWindow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A venue answering nothing useful from `start_ms` to `end_ms` (sim time, half-open)."""

    venue: str
    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.venue not in DARK_VENUES:
            raise ValueError(f"venue {self.venue!r} is not one of {', '.join(DARK_VENUES)}")
        if not 0 <= self.start_ms < self.end_ms:
            raise ValueError(f"need 0 <= start_ms < end_ms, not {self.start_ms}, {self.end_ms}")


class FaultSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Every fault the simulator can inject; all off by default, JSON round-trippable.

    Request shares (`error_5xx`, `timeout`, `slow`, `truncated`, `malformed`) are the
    fractions of REST requests that meet each fault and add up to at most 1. Archive
    shares are fractions of files. `archive_missing` lists file names that 404.
    `ws_*` fields are the WebSocket faults (the module docstring tells what each does).
    """

    error_5xx: Share = 0.0
    timeout: Share = 0.0
    timeout_ms: Millis = 30_000
    slow: Share = 0.0
    slow_ms: Millis = 2_000
    truncated: Share = 0.0
    malformed: Share = 0.0
    malformed_kinds: Annotated[tuple[MalformedKind, ...], msgspec.Meta(min_length=1)] = (
        MALFORMED_KINDS
    )
    dark: tuple[DarkWindow, ...] = ()
    archive_late_s: Seconds = 0.0
    archive_missing: tuple[str, ...] = ()
    archive_truncated: Share = 0.0
    archive_bad_checksum: Share = 0.0
    archive_disagree: Share = 0.0
    ws_drop_every_s: Seconds = 0.0
    ws_silent: bool = False
    ws_duplicate: Share = 0.0
    ws_reorder: Share = 0.0

    def __post_init__(self) -> None:
        total = sum(getattr(self, name) for name in _REQUEST_SHARES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"the request shares ({', '.join(_REQUEST_SHARES)}) exceed 1")


@dataclass(frozen=True, slots=True)
class RequestFault:
    """What to do to one REST request (kind "none": serve it normally).

    - "error": reply with `status` (500, 502 or 503) instead.
    - "slow": wait `delay_ms`, then reply normally.
    - "timeout": hold the reply for `delay_ms`, then drop the connection unanswered.
    - "truncate": send `cut(body)`, the reply cut short.
    - "malformed": replace row `row_index(len(rows))` of a kline reply with
      `corrupt_kline_row(row, malformed, interval_ms)`.
    """

    kind: FaultKind = "none"
    status: int | None = None
    delay_ms: int = 0
    malformed: MalformedKind | None = None
    position: float = 0.0  # in [0, 1): where to cut, which row to corrupt

    def cut(self, body: bytes) -> bytes:
        """Return `body` cut short at `position` (always at least one byte short)."""
        return _cut(body, self.position)

    def row_index(self, rows: int) -> int:
        """Return which of `rows` rows (> 0) to corrupt."""
        return min(rows - 1, int(self.position * rows))


NO_FAULT = RequestFault()


@dataclass(frozen=True, slots=True)
class ArchiveFault:
    """How one archive file (and its `.CHECKSUM`) is served.

    - `missing`: 404 for the file and its checksum.
    - `late_s`: extra seconds after the normal publication lag before it appears.
    - `truncated`: serve `cut(zip_bytes)`; the `.CHECKSUM` still names the whole file.
    - `bad_checksum`: the `.CHECKSUM` holds a hash that does not match the file.
    - `disagree`: row `row_index(n)` of the CSV is `disagree_kline_row(row)`.
    """

    missing: bool = False
    late_s: float = 0.0
    truncated: bool = False
    bad_checksum: bool = False
    disagree: bool = False
    position: float = 0.0

    def cut(self, data: bytes) -> bytes:
        """Return `data` cut short at `position` (always at least one byte short)."""
        return _cut(data, self.position)

    def row_index(self, rows: int) -> int:
        """Return which of `rows` rows (> 0) to alter."""
        return min(rows - 1, int(self.position * rows))


@dataclass(frozen=True, slots=True)
class WsFrameFault:
    """What to do to one market frame of a stream: send it twice, and/or after the next."""

    duplicate: bool = False
    reorder: bool = False


class WsFaultStream:
    """The duplicate/reorder decisions for one connection's market frames, in send order."""

    def __init__(self, board: FaultSwitchboard, rng: random.Random) -> None:
        self._board = board
        self._rng = rng

    def next(self) -> WsFrameFault:
        """Decide the fault for the next market frame (two draws, whatever the settings)."""
        u, v = self._rng.random(), self._rng.random()
        s = self._board.settings
        return WsFrameFault(duplicate=u < s.ws_duplicate, reorder=v < s.ws_reorder)


class FaultSwitchboard:
    """Deterministic fault decisions for REST requests, archive files and streams."""

    def __init__(self, settings: FaultSettings, seed: int) -> None:
        self._settings = parse_settings(msgspec.to_builtins(settings))
        self._seed = seed
        self._streams = {v: random.Random(f"{seed}:faults:{v.value}") for v in Venue}
        self._ws_connections: Counter[str] = Counter()

    @property
    def settings(self) -> FaultSettings:
        """The settings in force (what `GET /_sim/faults` returns)."""
        return self._settings

    def update(self, patch: object) -> FaultSettings:
        """Apply a partial `POST /_sim/faults` body, all or nothing; return the new settings."""
        if not isinstance(patch, Mapping):
            raise BadRequest("the fault settings must be a JSON object")
        merged = msgspec.to_builtins(self._settings)
        for key, value in patch.items():
            if key not in merged:
                raise BadValue("fault setting", key, f"expected one of {', '.join(merged)}")
            try:  # alone first, so that the error names the field
                msgspec.convert({key: value}, FaultSettings)
            except msgspec.ValidationError as e:
                raise BadValue(key, value, str(e)) from e
            merged[key] = value
        self._settings = parse_settings(merged)
        return self._settings

    def is_dark(self, venue: str, sim_ms: int) -> bool:
        """Whether `venue` (or "archive") is down at sim time `sim_ms`."""
        return any(
            w.venue == venue and w.start_ms <= sim_ms < w.end_ms for w in self._settings.dark
        )

    def decide(self, venue: str, path: str) -> RequestFault:
        """Decide the fault for the next REST request to `venue` at `path`."""
        stream = self._streams[Venue(venue)]
        if path.startswith("/_sim"):
            return NO_FAULT  # control endpoints never fail and draw nothing
        u, v, w = stream.random(), stream.random(), stream.random()
        kind = self._band(u)
        s = self._settings
        if kind == "error":
            return RequestFault("error", status=ERROR_STATUSES[int(v * len(ERROR_STATUSES))])
        if kind == "timeout":
            return RequestFault("timeout", delay_ms=s.timeout_ms)
        if kind == "slow":
            return RequestFault("slow", delay_ms=s.slow_ms)
        if kind == "truncate":
            return RequestFault("truncate", position=w)
        if kind == "malformed" and is_klines_path(path):
            chosen = s.malformed_kinds[int(v * len(s.malformed_kinds))]
            return RequestFault("malformed", malformed=chosen, position=w)
        return NO_FAULT

    def ws_stream(self, venue: str) -> WsFaultStream:
        """Return the frame decisions of a new connection to `venue` (its own seeded stream)."""
        index = self._ws_connections[venue]
        self._ws_connections[venue] += 1
        return WsFaultStream(self, random.Random(f"{self._seed}:ws:{venue}:{index}"))

    def archive(self, name: str) -> ArchiveFault:
        """Decide how the archive file `name` (a path or file name; zip or .CHECKSUM) is served."""
        key = archive_file_key(name)
        s = self._settings
        return ArchiveFault(
            missing=key in {archive_file_key(m) for m in s.archive_missing},
            late_s=s.archive_late_s,
            truncated=self._unit("truncated", key) < s.archive_truncated,
            bad_checksum=self._unit("bad_checksum", key) < s.archive_bad_checksum,
            disagree=self._unit("disagree", key) < s.archive_disagree,
            position=self._unit("position", key),
        )

    def _band(self, u: float) -> FaultKind:
        s = self._settings
        edge = 0.0
        bands: tuple[tuple[FaultKind, float], ...] = (
            ("error", s.error_5xx),
            ("timeout", s.timeout),
            ("slow", s.slow),
            ("truncate", s.truncated),
            ("malformed", s.malformed),
        )
        for kind, share in bands:
            edge += share
            if u < edge:
                return kind
        return "none"

    def _unit(self, salt: str, key: str) -> float:
        digest = hashlib.sha256(f"{self._seed}\0{salt}\0{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


def parse_settings(data: object) -> FaultSettings:
    """Validate fault settings given as JSON-like data (e.g. from the command line)."""
    try:
        return msgspec.convert(data, FaultSettings)
    except msgspec.ValidationError as e:
        raise BadValue("fault settings", data, str(e)) from e


def is_klines_path(path: str) -> bool:
    """Whether `path` serves kline rows (Binance spot/USD-M or Bybit v5)."""
    return path.endswith("/klines") or path == "/v5/market/kline"


def archive_file_key(name: str) -> str:
    """Return the zip's file name that decides a file's faults (its .CHECKSUM shares it)."""
    base = name.rsplit("/", 1)[-1]
    return base.removesuffix(".CHECKSUM")


def corrupt_kline_row(row: Sequence[object], kind: MalformedKind, interval_ms: int) -> list[object]:
    """Return a copy of a kline row broken as `kind` says.

    The row is a Binance one (12 fields: open time as int or text, then decimals as
    text) or a Bybit one (7 strings). "field_count" drops the last field; "non_numeric"
    puts "NaN" in the close; "off_grid" moves the open time half an interval off the grid.
    """
    if len(row) not in (12, 7):
        raise ValueError(f"a kline row has 12 (Binance) or 7 (Bybit) fields, not {len(row)}")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, not {interval_ms}")
    out = list(row)
    if kind == "field_count":
        return out[:-1]
    if kind == "non_numeric":
        out[4] = NON_NUMERIC
        return out
    shift = max(1, interval_ms // 2)
    opened = out[0]
    if isinstance(opened, int) and not isinstance(opened, bool):
        out[0] = opened + shift
    elif isinstance(opened, str):
        out[0] = str(int(opened) + shift)
    else:
        raise ValueError(f"a kline open time is an int or a string, not {opened!r}")
    return out


def disagree_kline_row(row: Sequence[object]) -> list[object]:
    """Return a copy of a kline row whose volume is one unit of its last decimal higher."""
    if len(row) not in (12, 7):
        raise ValueError(f"a kline row has 12 (Binance) or 7 (Bybit) fields, not {len(row)}")
    out = list(row)
    volume = out[5]
    if not isinstance(volume, str):
        raise ValueError(f"a kline volume is a decimal string, not {volume!r}")
    value = Decimal(volume)
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"a kline volume is a finite decimal, not {volume!r}")
    out[5] = format(value + Decimal((0, (1,), exponent)), "f")
    return out


def _cut(data: bytes, position: float) -> bytes:
    return data[: min(len(data) - 1, int(position * len(data)))] if data else data
