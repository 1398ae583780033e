"""The archive files' formats, checked against the real data.binance.vision files.

The real files (../shared/fixtures/binance_vision) are parsed and written back with the
simulator's writers: the bytes must come out identical. Then the simulator's own rows
are compared in shape (columns, header, decimals, ms vs µs, True/true) with them.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.candles import Candle, parse_kline_row
from candlevault.domain.decimals import BINANCE_SPOT, Precision, parse_units
from candlevault.domain.timeframes import D1, H1, M1, MO1, W1
from candlevault.domain.times import parse_time_ms
from candlevault.domain.trades import Trade
from candlevault.domain.venues import Venue
from candlevault.simulator.archives import (
    AGG_TRADES_HEADER,
    KLINES_HEADER,
    AggTrade,
    ArchiveKey,
    agg_trade_lines,
    aggregate_trades,
    checksum_text,
    kline_lines,
    no_such_key,
    parse_archive_path,
    zip_date_time,
    zip_file,
)
from candlevault.simulator.instruments import listing
from candlevault.simulator.world import SimConfig, SimWorld
from tests.contract.recorded import fixtures_dir

USDM_BTC = Precision(2, 3, 5)  # what the real um/ files write for BTCUSDT and ETHUSDT


def vision(*parts: str) -> Path:
    return fixtures_dir().joinpath("binance_vision", *parts)


def member(path: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
        return info.filename, archive.read(info)


def lines(data: bytes) -> list[str]:
    text = data.decode()
    assert text.endswith("\n")
    return text.removesuffix("\n").split("\n")


def candles_from(data: bytes, precision: Precision, *, micros: bool) -> list[Candle]:
    out = []
    for line in lines(data):
        if line.startswith("open_time"):
            continue
        row: list[object] = list(line.split(","))
        if micros:
            row[0], row[6] = int(str(row[0])) // 1000, int(str(row[6])) // 1000
        out.append(parse_kline_row(row, precision))
    return out


def aggs_from(data: bytes, precision: Precision, *, micros: bool) -> list[AggTrade]:
    out = []
    for line in lines(data):
        if line.startswith("agg_trade_id"):
            continue
        agg_id, price, qty, first, last, time, maker, *_ = line.split(",")
        out.append(
            AggTrade(
                int(agg_id),
                parse_units(price, precision.price),
                parse_units(qty, precision.base),
                int(first),
                int(last),
                int(time) if micros else int(time) * 1000,
                maker in ("True", "true"),
            )
        )
    return out


# -- the writers reproduce the real files byte for byte -------------------------------


@pytest.mark.parametrize(
    ("name", "precision", "futures", "micros"),
    [
        ("spot/BTCUSDT-1h-2022-09-07.zip", BINANCE_SPOT, False, False),
        ("spot/BTCUSDT-1m-2026-09-15.head4.csv", BINANCE_SPOT, False, True),
        ("um/BTCUSDT-1m-2022-09-05.zip", USDM_BTC, True, False),
        ("um/ETHUSDT-1h-2022-08-24.zip", USDM_BTC, True, False),
        ("um/BTCUSDT-1h-2026-09-15.head3.csv", USDM_BTC, True, False),
    ],
)
def test_kline_lines_reproduce_the_real_files(
    name: str, precision: Precision, futures: bool, micros: bool
) -> None:
    path = vision(*name.split("/"))
    real = member(path)[1] if path.suffix == ".zip" else path.read_bytes()
    candles = candles_from(real, precision, micros=micros)
    assert candles
    assert real.startswith(KLINES_HEADER) == futures
    header = KLINES_HEADER if futures else b""
    assert header + kline_lines(candles, precision, micros=micros) == real


@pytest.mark.parametrize(
    ("name", "precision", "futures", "micros"),
    [
        ("spot/BTCUSDT-aggTrades-2023-11-17.head4.csv", BINANCE_SPOT, False, False),
        ("spot/BTCUSDT-aggTrades-2026-09-15.head5.csv", BINANCE_SPOT, False, True),
        ("um/BTCUSDT-aggTrades-2026-09-15.head5.csv", USDM_BTC, True, False),
    ],
)
def test_agg_trade_lines_reproduce_the_real_files(
    name: str, precision: Precision, futures: bool, micros: bool
) -> None:
    real = vision(*name.split("/")).read_bytes()
    aggs = aggs_from(real, precision, micros=micros)
    assert aggs
    assert real.startswith(AGG_TRADES_HEADER) == futures
    header = AGG_TRADES_HEADER if futures else b""
    assert header + agg_trade_lines(aggs, precision, futures=futures, micros=micros) == real


def test_usdm_float_text_keeps_one_decimal_and_drops_trailing_zeros() -> None:
    agg = AggTrade(1, 7815300, 3000, 1, 1, 1_000_000, False)
    assert agg_trade_lines([agg], USDM_BTC, futures=True, micros=False) == (
        b"1,78153.0,3.0,1,1,1000,false\n"
    )


def test_the_simulators_usdm_precision_is_the_real_files() -> None:
    for symbol in ("BTCUSDT", "ETHUSDT"):
        found = listing(Venue.BINANCE_USDM, symbol)
        assert found is not None
        assert found.precision == USDM_BTC


# -- the simulator's rows have the real files' shape ---------------------------------


def shape(line: str) -> tuple[str, ...]:
    """Each field's form: 'ms'/'us' timestamps, decimals with their places, ints, words."""
    out = []
    for field in line.split(","):
        if re.fullmatch(r"1\d{12}", field):
            out.append("ms")
        elif re.fullmatch(r"1\d{15}", field):
            out.append("us")
        elif re.fullmatch(r"\d+", field):
            out.append("int")
        elif re.fullmatch(r"\d+\.\d+", field):
            out.append(f"dec{len(field.split('.')[1])}")
        else:
            out.append(field)
    return tuple(out)


def agg_shape(line: str) -> tuple[str, ...]:
    """As `shape`, but a price or size written as a float's text (USD-M) is 'float'."""
    fields = shape(line)
    sizes = tuple(
        "float" if re.fullmatch(r"\d+\.(\d*[1-9]|0)", text) and kind != "dec8" else kind
        for text, kind in zip(line.split(",")[1:3], fields[1:3], strict=True)
    )
    return (fields[0], *sizes, *fields[3:])


def world() -> SimWorld:
    return SimWorld(SimConfig(seed=1, start_ms=parse_time_ms("2026-10-01")))


def sim_kline_lines(venue: Venue, day: str, *, micros: bool) -> list[str]:
    view = world().view(venue, "BTCUSDT")
    assert view is not None
    start = parse_time_ms(day)
    candles = view.window(M1, now_ms=start + 86_400_000, start_ms=start, end_ms=None, limit=5)
    return lines(kline_lines(candles, view.market.listing.precision, micros=micros))


def sim_agg_lines(venue: Venue, minute: str, *, micros: bool) -> list[str]:
    market = world().market(venue, "BTCUSDT")
    assert market is not None
    aggs = aggregate_trades(market.trades(parse_time_ms(minute)))
    futures = venue is Venue.BINANCE_USDM
    return lines(agg_trade_lines(aggs, market.listing.precision, futures=futures, micros=micros))[
        :50
    ]


@pytest.mark.parametrize(
    ("real", "venue", "day", "micros"),
    [
        ("spot/BTCUSDT-1h-2022-09-07.zip", Venue.BINANCE, "2022-09-07", False),
        ("spot/BTCUSDT-1m-2026-09-15.head4.csv", Venue.BINANCE, "2026-09-15", True),
        ("um/BTCUSDT-1m-2022-09-05.zip", Venue.BINANCE_USDM, "2022-09-05", False),
        ("um/BTCUSDT-1h-2026-09-15.head3.csv", Venue.BINANCE_USDM, "2026-09-15", False),
    ],
)
def test_simulated_klines_have_the_real_shape(
    real: str, venue: Venue, day: str, micros: bool
) -> None:
    path = vision(*real.split("/"))
    data = member(path)[1] if path.suffix == ".zip" else path.read_bytes()
    real_shapes = {shape(line) for line in lines(data) if not line.startswith("open_time")}
    ours = sim_kline_lines(venue, day, micros=micros)
    assert {shape(line) for line in ours} == real_shapes
    span = 60_000_000 if micros else 60_000
    for line in ours:
        fields = line.split(",")
        assert len(fields) == 12
        assert int(fields[6]) - int(fields[0]) == span - 1


@pytest.mark.parametrize(
    ("real", "venue", "minute", "micros"),
    [
        ("spot/BTCUSDT-aggTrades-2023-11-17.head4.csv", Venue.BINANCE, "2023-11-17T00:00", False),
        ("spot/BTCUSDT-aggTrades-2026-09-15.head5.csv", Venue.BINANCE, "2026-09-15T00:00", True),
        ("um/BTCUSDT-aggTrades-2026-09-15.head5.csv", Venue.BINANCE_USDM, "2026-09-15", False),
    ],
)
def test_simulated_agg_trades_have_the_real_shape(
    real: str, venue: Venue, minute: str, micros: bool
) -> None:
    data = vision(*real.split("/")).read_bytes()
    real_lines = [line for line in lines(data) if not line.startswith("agg_trade_id")]
    real_shapes = {agg_shape(line) for line in real_lines}
    ours = sim_agg_lines(venue, minute, micros=micros)
    assert len(ours) > 1
    assert {agg_shape(line) for line in ours} <= real_shapes
    sides = {"true", "false"} if venue is Venue.BINANCE_USDM else {"True", "False"}
    assert {line.split(",")[6] for line in ours} == sides


# -- the zip and its .CHECKSUM --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("BTCUSDT-1h-2024-01-15.zip.CHECKSUM", 91),
        ("BTCUSDT-1m-2025-01-15.zip.CHECKSUM", 91),
        ("BTCUSDT-1mo-2024-01.zip.CHECKSUM", 89),
    ],
)
def test_checksum_lines_have_the_real_format(name: str, size: int) -> None:
    real = vision("checksum", name).read_bytes()
    zip_name = name.removesuffix(".CHECKSUM")
    ours = checksum_text(b"some zip", zip_name)
    assert len(real) == len(ours) == size
    assert ours[64:] == real[64:] == b"  " + zip_name.encode()
    for text in (real, ours):
        assert re.fullmatch(rb"[0-9a-f]{64}  [A-Z0-9]+-[0-9a-z]+-[0-9-]+\.zip", text)
        assert not text.endswith(b"\n")
    assert ours[:64] == hashlib.sha256(b"some zip").hexdigest().encode()
    wrong = checksum_text(b"some zip", zip_name, wrong=True)
    assert len(wrong) == size
    assert wrong[:64] != ours[:64]
    assert wrong[64:] == ours[64:]


def test_zip_holds_one_member_with_fixed_metadata_like_the_real_ones() -> None:
    stamp = parse_time_ms("2024-01-16T06:00:01")
    data = zip_file("BTCUSDT-1m-2024-01-15.csv", b"a,b\n", stamp)
    assert zip_file("BTCUSDT-1m-2024-01-15.csv", b"a,b\n", stamp) == data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (info,) = archive.infolist()
        assert archive.read(info) == b"a,b\n"
    assert info.filename == "BTCUSDT-1m-2024-01-15.csv"
    assert zip_date_time(stamp) == (2024, 1, 16, 6, 0, 1)
    assert info.date_time == (2024, 1, 16, 6, 0, 0)  # zip times have a 2 s resolution
    assert info.compress_type == zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(vision("spot", "BTCUSDT-1h-2022-09-07.zip")) as real:
        (real_info,) = real.infolist()
    assert real_info.filename == "BTCUSDT-1h-2022-09-07.csv"
    assert (info.create_system, info.external_attr, info.flag_bits) == (
        real_info.create_system,
        real_info.external_attr,
        real_info.flag_bits,
    )


def test_no_such_key_is_s3s_error_document() -> None:
    body = no_such_key("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2030-01-01.zip")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>')
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message") == "The specified key does not exist."
    assert root.findtext("Key") == "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2030-01-01.zip"
    assert ElementTree.fromstring(no_such_key("/data/<&>")).findtext("Key") == "data/<&>"


# -- paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.zip",
            ArchiveKey(
                Venue.BINANCE, "daily", "klines", "BTCUSDT", M1,
                parse_time_ms("2024-01-15"), parse_time_ms("2024-01-16"),
            ),
        ),
        (
            "/data/futures/um/monthly/klines/ETHUSDT/1mo/ETHUSDT-1mo-2024-02.zip.CHECKSUM",
            ArchiveKey(
                Venue.BINANCE_USDM, "monthly", "klines", "ETHUSDT", MO1,
                parse_time_ms("2024-02-01"), parse_time_ms("2024-03-01"), checksum=True,
            ),
        ),
        (
            "/data/spot/monthly/klines/BTCUSDT/1w/BTCUSDT-1w-2023-12.zip",
            ArchiveKey(
                Venue.BINANCE, "monthly", "klines", "BTCUSDT", W1,
                parse_time_ms("2023-12-01"), parse_time_ms("2024-01-01"),
            ),
        ),
        (
            "/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-02-29.zip",
            ArchiveKey(
                Venue.BINANCE, "daily", "aggTrades", "BTCUSDT", None,
                parse_time_ms("2024-02-29"), parse_time_ms("2024-03-01"),
            ),
        ),
        (
            "/data/futures/um/monthly/aggTrades/SOLUSDT/SOLUSDT-aggTrades-2024-12.zip",
            ArchiveKey(
                Venue.BINANCE_USDM, "monthly", "aggTrades", "SOLUSDT", None,
                parse_time_ms("2024-12-01"), parse_time_ms("2025-01-01"),
            ),
        ),
    ],
)  # fmt: skip
def test_archive_paths_parse_and_round_trip(path: str, expected: ArchiveKey) -> None:
    key = parse_archive_path(path)
    assert key == expected
    assert key.path == path


@pytest.mark.parametrize(
    "path",
    [
        "/data/spot/daily/klines/BTCUSDT/1w/BTCUSDT-1w-2024-01-15.zip",  # not a daily interval
        "/data/spot/monthly/klines/BTCUSDT/1M/BTCUSDT-1M-2024-01.zip",  # the archive says 1mo
        "/data/spot/daily/klines/BTCUSDT/1s/BTCUSDT-1s-2024-01-15.zip",  # not simulated
        "/data/spot/daily/klines/btcusdt/1m/btcusdt-1m-2024-01-15.zip",  # keys are case-sensitive
        "/data/spot/daily/klines/BTCUSDT/1m/ETHUSDT-1m-2024-01-15.zip",  # name vs folder
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-5m-2024-01-15.zip",
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02-30.zip",  # no such day
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip",  # a month in daily/
        "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.zip",
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.csv",
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.zip.sha256",
        "/data/futures/cm/daily/klines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2024-01-15.zip",
        "/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-trades-2024-01-15.zip",
    ],
)
def test_paths_that_name_no_file(path: str) -> None:
    assert parse_archive_path(path) is None


def test_spot_files_switch_to_microseconds_on_2025_01_01() -> None:
    def key(day: str, market: str = "spot") -> ArchiveKey:
        found = parse_archive_path(f"/data/{market}/daily/klines/BTCUSDT/1d/BTCUSDT-1d-{day}.zip")
        assert found is not None
        assert found.interval is D1
        return found

    assert not key("2024-12-31").micros
    assert key("2025-01-01").micros
    assert not key("2025-01-01", "futures/um").micros
    monthly = parse_archive_path("/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01.zip")
    assert monthly is not None
    assert monthly.interval is H1
    assert monthly.micros


# -- aggTrades ------------------------------------------------------------------------


def test_runs_of_one_price_and_side_fold_into_one_agg_trade() -> None:
    trades = [
        Trade(10, 500, 1, 1000, True),
        Trade(11, 500, 2, 1001, True),
        Trade(12, 500, 4, 1002, False),
        Trade(13, 501, 8, 1003, False),
        Trade(14, 501, 16, 1004, False),
        Trade(15, 500, 32, 1005, True),
    ]
    assert aggregate_trades(trades) == [
        AggTrade(10, 500, 3, 10, 11, 1_000_000, True),
        AggTrade(12, 500, 4, 12, 12, 1_002_000, False),
        AggTrade(13, 501, 24, 13, 14, 1_003_000, False),
        AggTrade(15, 500, 32, 15, 15, 1_005_000, True),
    ]
    assert aggregate_trades([]) == []


@given(st.lists(st.tuples(st.integers(1, 3), st.booleans(), st.integers(1, 99)), max_size=60))
def test_agg_trades_cover_every_trade_once(draws: list[tuple[int, bool, int]]) -> None:
    trades = [Trade(100 + i, p, q, 5000 + i, m) for i, (p, m, q) in enumerate(draws)]
    aggs = aggregate_trades(trades)
    covered = [i for a in aggs for i in range(a.first_id, a.last_id + 1)]
    assert covered == [t.trade_id for t in trades]
    assert sum(a.qty for a in aggs) == sum(t.qty for t in trades)
    for a in aggs:
        assert a.agg_id == a.first_id
        run = trades[a.first_id - 100 : a.last_id - 100 + 1]
        assert {(t.price, t.buyer_is_maker) for t in run} == {(a.price, a.buyer_is_maker)}
    for before, after in itertools.pairwise(aggs):
        assert (before.price, before.buyer_is_maker) != (after.price, after.buyer_is_maker)


# -- determinism across processes -----------------------------------------------------

_BUILD = """
import asyncio, hashlib
from candlevault.domain.times import parse_time_ms
from candlevault.simulator.archive_routes import build_file
from candlevault.simulator.archives import parse_archive_path
from candlevault.simulator.world import SimConfig, SimWorld

world = SimWorld(SimConfig(seed=3, start_ms=parse_time_ms("2025-03-01")))
for path in (
    "/data/spot/daily/klines/ETHUSDT/5m/ETHUSDT-5m-2025-01-02.zip",
    "/data/futures/um/daily/aggTrades/SOLUSDT/SOLUSDT-aggTrades-2024-11-05.zip",
):
    key = parse_archive_path(path)
    built = asyncio.run(build_file(world, key, world.faults.archive(key.zip_name)))
    print(hashlib.sha256(built.data).hexdigest(), built.rows)
"""


def test_the_same_seed_builds_the_same_bytes_in_another_process() -> None:
    runs = [
        subprocess.run(
            [sys.executable, "-c", _BUILD],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout
        for seed in (1, 2)
    ]
    assert runs[0] == runs[1]
    assert len(runs[0].split()) == 4
    assert all(int(rows) > 0 for rows in runs[0].split()[1::2])
