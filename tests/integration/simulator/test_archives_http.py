"""The data.binance.vision stand-in over a real socket: files, lag, faults, ledger.

Every file is checked against the klines REST serves (`KlineView.window`), so an archive
import and a REST bootstrap of the same period must store the same candles.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from xml.etree import ElementTree

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from candlevault.domain.candles import Candle, parse_kline_row
from candlevault.domain.decimals import Precision, parse_units
from candlevault.domain.timeframes import D1, DAY_MS, H1, M1, M15, MO1, W1, Timeframe
from candlevault.domain.times import parse_time_ms
from candlevault.domain.venues import Venue
from candlevault.simulator.archive_routes import ENDPOINTS
from candlevault.simulator.faults import FaultSettings
from candlevault.simulator.world import SimConfig, SimWorld
from tests.integration.simulator.support import app_for

HOUR_MS = 3_600_000
DAILY_LAG_MS = 6 * HOUR_MS
MONTHLY_LAG_MS = 7 * DAY_MS
NOW = parse_time_ms("2025-01-20T00:00Z")
SPOT = "/data/spot/daily/klines"
UM = "/data/futures/um/daily/klines"


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    content_type: str

    def csv(self) -> bytes:
        assert self.status == 200, self.body[:300]
        with zipfile.ZipFile(io.BytesIO(self.body)) as archive:
            (info,) = archive.infolist()
            return archive.read(info)

    def member(self) -> str:
        with zipfile.ZipFile(io.BytesIO(self.body)) as archive:
            (name,) = archive.namelist()
            return name


@dataclass(frozen=True)
class Archive:
    """A client of one world's archive server."""

    world: SimWorld
    server: TestServer
    session: aiohttp.ClientSession

    async def get(self, path: str) -> Fetched:
        async with self.session.get(self.server.make_url(path)) as response:
            return Fetched(response.status, await response.read(), response.content_type)


@contextlib.asynccontextmanager
async def serve(world: SimWorld) -> AsyncIterator[Archive]:
    world.clock.pause()  # sim time moves only when a test moves it
    async with (
        TestServer(app_for(world, ENDPOINTS), host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
    ):
        yield Archive(world, server, session)


def make_world(seed: int = 1, now_ms: int = NOW) -> SimWorld:
    return SimWorld(SimConfig(seed=seed, start_ms=now_ms, faults=FaultSettings()))


@pytest.fixture
async def archive() -> AsyncIterator[Archive]:
    async with serve(make_world()) as served:
        yield served


def rest_klines(
    world: SimWorld, venue: Venue, symbol: str, tf: Timeframe, start: str
) -> list[Candle]:
    """What REST answers for the candles opening in `start` (a day, or a month YYYY-MM)."""
    view = world.view(venue, symbol)
    assert view is not None
    monthly = len(start) == len("YYYY-MM")
    start_ms = parse_time_ms(start + "-01" if monthly else start)
    end_ms = MO1.next_open(start_ms) if monthly else start_ms + DAY_MS
    return view.window(
        tf, now_ms=world.now_ms(), start_ms=start_ms, end_ms=end_ms - 1, limit=50_000
    )


def file_klines(csv: bytes, precision: Precision, *, micros: bool) -> list[Candle]:
    rows = [line.split(",") for line in csv.decode().splitlines()]
    if rows and rows[0][0] == "open_time":
        rows = rows[1:]
    out = []
    for row in rows:
        fields: list[object] = list(row)
        if micros:
            assert len(row[0]) == len(row[6]) == 16
            assert row[0].endswith("000")
            assert row[6].endswith("999")
            fields[0], fields[6] = int(row[0]) // 1000, int(row[6]) // 1000
        else:
            assert len(row[0]) == len(row[6]) == 13
        out.append(parse_kline_row(fields, precision))
    return out


def precision(world: SimWorld, venue: Venue, symbol: str) -> Precision:
    view = world.view(venue, symbol)
    assert view is not None
    return view.market.listing.precision


def assert_missing(fetched: Fetched, path: str) -> None:
    assert fetched.status == 404
    assert fetched.content_type == "application/xml"
    root = ElementTree.fromstring(fetched.body)
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Key") == path.lstrip("/")


# -- files equal REST ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "venue", "symbol", "tf", "start", "micros", "rows"),
    [
        (f"{SPOT}/BTCUSDT/1m/BTCUSDT-1m-2024-12-31.zip", Venue.BINANCE, "BTCUSDT", M1,
         "2024-12-31", False, 1440),
        (f"{SPOT}/BTCUSDT/1m/BTCUSDT-1m-2025-01-02.zip", Venue.BINANCE, "BTCUSDT", M1,
         "2025-01-02", True, 1440),
        (f"{SPOT}/NEOETH/1h/NEOETH-1h-2025-01-05.zip", Venue.BINANCE, "NEOETH", H1,
         "2025-01-05", True, 24),
        # Binance's 2018-02-08 04:00 to 02-09 08:00 outage: no rows, as REST has none
        (f"{SPOT}/ETHUSDT/1h/ETHUSDT-1h-2018-02-08.zip", Venue.BINANCE, "ETHUSDT", H1,
         "2018-02-08", False, 4),
        (f"{UM}/ETHUSDT/1m/ETHUSDT-1m-2025-01-02.zip", Venue.BINANCE_USDM, "ETHUSDT", M1,
         "2025-01-02", False, 1440),
        ("/data/spot/monthly/klines/BTCUSDT/1w/BTCUSDT-1w-2024-12.zip", Venue.BINANCE,
         "BTCUSDT", W1, "2024-12", False, 5),
        ("/data/spot/monthly/klines/SOLUSDT/1mo/SOLUSDT-1mo-2024-11.zip", Venue.BINANCE,
         "SOLUSDT", MO1, "2024-11", False, 1),
        ("/data/futures/um/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2024-12.zip",
         Venue.BINANCE_USDM, "BTCUSDT", D1, "2024-12", False, 31),
    ],
)  # fmt: skip
async def test_kline_files_hold_exactly_the_rest_klines(
    archive: Archive,
    path: str,
    venue: Venue,
    symbol: str,
    tf: Timeframe,
    start: str,
    micros: bool,
    rows: int,
) -> None:
    fetched = await archive.get(path)
    csv = fetched.csv()
    assert fetched.content_type == "application/zip"
    assert fetched.member() == path.rsplit("/", 1)[1].replace(".zip", ".csv")
    assert csv.startswith(b"open_time,") == (venue is Venue.BINANCE_USDM)
    found = file_klines(csv, precision(archive.world, venue, symbol), micros=micros)
    assert found == rest_klines(archive.world, venue, symbol, tf, start)
    assert len(found) == rows
    checksum = await archive.get(path + ".CHECKSUM")
    assert checksum.status == 200
    assert (
        checksum.body
        == f"{hashlib.sha256(fetched.body).hexdigest()}  {path.rsplit('/', 1)[1]}".encode()
    )


async def test_a_month_of_1m_is_every_minute_and_a_second_download_is_identical(
    archive: Archive,
) -> None:
    path = "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-12.zip"
    first = await archive.get(path)
    rows = file_klines(
        first.csv(), precision(archive.world, Venue.BINANCE, "BTCUSDT"), micros=False
    )
    assert len(rows) == 31 * 1440
    assert rows == rest_klines(archive.world, Venue.BINANCE, "BTCUSDT", M1, "2024-12")
    assert (await archive.get(path)).body == first.body


async def test_agg_trade_files_add_up_to_the_rest_klines(archive: Archive) -> None:
    for path, venue, symbol, micros in (
        ("/data/spot/daily/aggTrades/NEOETH/NEOETH-aggTrades-2025-01-02.zip", Venue.BINANCE,
         "NEOETH", True),
        ("/data/spot/monthly/aggTrades/NEOETH/NEOETH-aggTrades-2018-01.zip", Venue.BINANCE,
         "NEOETH", False),
        ("/data/futures/um/daily/aggTrades/SOLUSDT/SOLUSDT-aggTrades-2025-01-02.zip",
         Venue.BINANCE_USDM, "SOLUSDT", False),
    ):  # fmt: skip
        fetched = await archive.get(path)
        lines = fetched.csv().decode().splitlines()
        if venue is Venue.BINANCE_USDM:
            assert lines.pop(0).startswith("agg_trade_id,price,quantity,")
        sums: dict[int, list[int]] = {}
        scale = precision(archive.world, venue, symbol).base
        for line in lines:
            fields = line.split(",")
            time_ms = int(fields[5]) // (1000 if micros else 1)
            minute = sums.setdefault(time_ms - time_ms % 60_000, [0, 0])
            minute[0] += parse_units(fields[2], scale)
            minute[1] += int(fields[4]) - int(fields[3]) + 1
        start = path.rsplit("-aggTrades-", 1)[1].removesuffix(".zip")
        traded = [c for c in rest_klines(archive.world, venue, symbol, M1, start) if c.trades]
        assert sums == {c.open_time_ms: [c.volume, c.trades] for c in traded}


# -- publication ---------------------------------------------------------------------


async def test_a_day_appears_six_hours_after_it_ends(archive: Archive) -> None:
    path = f"{SPOT}/BTCUSDT/5m/BTCUSDT-5m-2025-01-10.zip"
    archive.world.clock.set(parse_time_ms("2025-01-11") + DAILY_LAG_MS - 1)
    assert_missing(await archive.get(path), path)
    assert_missing(await archive.get(path + ".CHECKSUM"), path + ".CHECKSUM")
    archive.world.clock.step(1)
    assert len(file_klines((await archive.get(path)).csv(), Precision(8, 8, 8), micros=True)) == 288
    assert (await archive.get(path + ".CHECKSUM")).status == 200


async def test_a_month_appears_after_its_lag_and_after_its_last_bucket_closes(
    archive: Archive,
) -> None:
    daily = "/data/futures/um/monthly/klines/ETHUSDT/1d/ETHUSDT-1d-2024-12.zip"
    weekly = "/data/futures/um/monthly/klines/ETHUSDT/1w/ETHUSDT-1w-2024-12.zip"
    archive.world.clock.set(parse_time_ms("2025-01-01") + MONTHLY_LAG_MS - 1)
    assert_missing(await archive.get(daily), daily)
    archive.world.clock.step(1)
    assert (await archive.get(daily)).status == 200
    # December's last week opens Monday 2024-12-30 and closes with 2025-01-05
    assert_missing(await archive.get(weekly), weekly)
    archive.world.clock.set(parse_time_ms("2025-01-06") + MONTHLY_LAG_MS)
    weeks = file_klines(
        (await archive.get(weekly)).csv(), precision(archive.world, Venue.BINANCE_USDM, "ETHUSDT"),
        micros=False,
    )  # fmt: skip
    assert weeks[-1].open_time_ms == parse_time_ms("2024-12-30")
    assert weeks[-1].close_time_ms == parse_time_ms("2025-01-06") - 1


async def test_nothing_before_the_listing_and_a_partial_first_day(archive: Archive) -> None:
    before = f"{UM}/BTCUSDT/1m/BTCUSDT-1m-2019-09-07.zip"  # USD-M BTCUSDT: 2019-09-08 17:57
    assert_missing(await archive.get(before), before)
    first = await archive.get(f"{UM}/BTCUSDT/1m/BTCUSDT-1m-2019-09-08.zip")
    rows = file_klines(first.csv(), precision(archive.world, Venue.BINANCE_USDM, "BTCUSDT"),
                       micros=False)  # fmt: skip
    assert rows[0].open_time_ms == parse_time_ms("2019-09-08T17:57Z")
    assert len(rows) == 6 * 60 + 3
    month_before = "/data/spot/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2017-07.zip"
    assert_missing(await archive.get(month_before), month_before)
    assert (await archive.get(month_before.replace("2017-07", "2017-08"))).status == 200


@pytest.mark.parametrize(
    "path",
    [
        f"{SPOT}/XRPUSDT/1m/XRPUSDT-1m-2025-01-02.zip",  # not a simulated symbol
        f"{UM}/NEOETH/1m/NEOETH-1m-2025-01-02.zip",  # not listed on USD-M
        f"{SPOT}/BTCUSDT/7m/BTCUSDT-7m-2025-01-02.zip",  # no such interval
        f"{SPOT}/BTCUSDT/1w/BTCUSDT-1w-2025-01-02.zip",  # weekly files are monthly only
        f"{SPOT}/BTCUSDT/1m/BTCUSDT-1m-2025-01-19.zip",  # published at 06:00 tomorrow
        f"{SPOT}/BTCUSDT/1m/BTCUSDT-1m-2025-02-30.zip",  # no such day
        "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01.zip",  # month not over
    ],
)
async def test_files_that_do_not_exist_answer_no_such_key(archive: Archive, path: str) -> None:
    assert_missing(await archive.get(path), path)
    assert_missing(await archive.get(path + ".CHECKSUM"), path + ".CHECKSUM")


# -- faults --------------------------------------------------------------------------

DAY_FILE = f"{SPOT}/ETHUSDT/15m/ETHUSDT-15m-2025-01-07.zip"


async def test_a_missing_file_404s_with_its_checksum_and_others_stay(archive: Archive) -> None:
    archive.world.faults.update({"archive_missing": ["ETHUSDT-15m-2025-01-07.zip"]})
    assert_missing(await archive.get(DAY_FILE), DAY_FILE)
    assert_missing(await archive.get(DAY_FILE + ".CHECKSUM"), DAY_FILE + ".CHECKSUM")
    assert (await archive.get(DAY_FILE.replace("01-07", "01-08"))).status == 200
    archive.world.faults.update({"archive_missing": []})
    assert (await archive.get(DAY_FILE)).status == 200


async def test_a_late_file_appears_late_s_after_its_lag(archive: Archive) -> None:
    archive.world.faults.update({"archive_late_s": 3600})
    archive.world.clock.set(parse_time_ms("2025-01-08") + DAILY_LAG_MS)
    assert_missing(await archive.get(DAY_FILE), DAY_FILE)
    archive.world.clock.step(HOUR_MS)
    assert (await archive.get(DAY_FILE)).status == 200


async def test_a_truncated_zip_fails_to_open_and_its_checksum_names_the_whole_file(
    archive: Archive,
) -> None:
    archive.world.faults.update({"archive_truncated": 1.0})
    cut = await archive.get(DAY_FILE)
    assert cut.status == 200
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(cut.body))
    checksum = (await archive.get(DAY_FILE + ".CHECKSUM")).body
    assert checksum[:64] != hashlib.sha256(cut.body).hexdigest().encode()
    archive.world.faults.update({"archive_truncated": 0.0})  # the retry gets the whole file
    whole = await archive.get(DAY_FILE)
    assert whole.body.startswith(cut.body)
    assert len(cut.body) < len(whole.body)
    assert checksum[:64] == hashlib.sha256(whole.body).hexdigest().encode()
    assert len(whole.csv().splitlines()) == 96


async def test_a_bad_checksum_does_not_match_the_file(archive: Archive) -> None:
    archive.world.faults.update({"archive_bad_checksum": 1.0})
    data = (await archive.get(DAY_FILE)).body
    bad = (await archive.get(DAY_FILE + ".CHECKSUM")).body
    assert bad[64:] == b"  ETHUSDT-15m-2025-01-07.zip"
    assert bad[:64] != hashlib.sha256(data).hexdigest().encode()
    archive.world.faults.update({"archive_bad_checksum": 0.0})
    good = (await archive.get(DAY_FILE + ".CHECKSUM")).body
    assert good[:64] == hashlib.sha256(data).hexdigest().encode()


async def test_a_disagreeing_file_differs_from_rest_in_exactly_one_volume(archive: Archive) -> None:
    spot = Precision(8, 8, 8)
    honest = file_klines((await archive.get(DAY_FILE)).csv(), spot, micros=True)
    archive.world.faults.update({"archive_disagree": 1.0})
    fetched = await archive.get(DAY_FILE)
    altered = file_klines(fetched.csv(), spot, micros=True)
    rest = rest_klines(archive.world, Venue.BINANCE, "ETHUSDT", M15, "2025-01-07")
    assert honest == rest
    differ = [(a, r) for a, r in zip(altered, rest, strict=True) if a != r]
    assert len(differ) == 1
    ((wrong, right),) = differ
    assert wrong.volume == right.volume + 1
    assert wrong == msgspec.structs.replace(right, volume=right.volume + 1)
    checksum = (await archive.get(DAY_FILE + ".CHECKSUM")).body  # a valid file, wrong data
    assert checksum[:64] == hashlib.sha256(fetched.body).hexdigest().encode()


# -- determinism and the ledger ------------------------------------------------------


async def test_two_worlds_with_one_seed_serve_identical_bytes() -> None:
    paths = (
        f"{UM}/SOLUSDT/1h/SOLUSDT-1h-2025-01-03.zip",
        "/data/futures/um/daily/aggTrades/SOLUSDT/SOLUSDT-aggTrades-2020-10-01.zip",
        "/data/spot/monthly/klines/NEOETH/3d/NEOETH-3d-2024-11.zip",
    )
    bodies = []
    for seed in (7, 7, 8):
        async with serve(make_world(seed)) as served:
            bodies.append([(await served.get(p)).body for p in paths])
    assert bodies[0] == bodies[1]
    assert all(a != b for a, b in zip(bodies[0], bodies[2], strict=True))


async def test_the_ledger_counts_file_rows_as_candles(archive: Archive) -> None:
    await archive.get(f"{SPOT}/BTCUSDT/1h/BTCUSDT-1h-2025-01-02.zip")
    await archive.get(f"{SPOT}/BTCUSDT/1h/BTCUSDT-1h-2025-01-02.zip.CHECKSUM")
    await archive.get(f"{UM}/BTCUSDT/4h/BTCUSDT-4h-2025-01-02.zip")
    await archive.get(f"{UM}/BTCUSDT/4h/BTCUSDT-4h-2099-01-02.zip")
    await archive.get("/data/spot/daily/aggTrades/NEOETH/NEOETH-aggTrades-2025-01-02.zip")
    ledger = archive.world.stats.snapshot()["venues"]["archive"]
    assert ledger["requests"] == {
        "/data/futures/um/daily/klines/*.zip": 2,
        "/data/spot/daily/aggTrades/*.zip": 1,
        "/data/spot/daily/klines/*.CHECKSUM": 1,
        "/data/spot/daily/klines/*.zip": 1,
    }
    assert ledger["candles"] == 24 + 6
    assert ledger["status"] == {"200": 4, "429": 0, "418": 0, "404": 1}
    assert ledger["weight"] == 0


async def test_the_archive_goes_dark_on_its_own(archive: Archive) -> None:
    now = archive.world.now_ms()
    window = {"venue": "archive", "start_ms": now, "end_ms": now + HOUR_MS}
    archive.world.faults.update({"dark": [window]})
    assert (await archive.get(DAY_FILE)).status == 503
    archive.world.clock.step(HOUR_MS)
    assert (await archive.get(DAY_FILE)).status == 200
