"""The archive parser against real data.binance.vision files (../shared/fixtures).

Every row parsed is written back with the domain's row writer and must reproduce the
file's line character for character: the decimals survive exactly, never through float.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from datetime import date
from pathlib import Path

import pytest

from candlevault.domain.candles import kline_row
from candlevault.domain.decimals import BINANCE_SPOT, Precision, format_units
from candlevault.domain.timeframes import D1, DAY_MS, H1, M1, M5, MO1, Timeframe
from candlevault.exchanges.binance.archive import (
    ArchiveRef,
    ArchiveRejected,
    Market,
    ParsedKlines,
    Period,
    check_coverage,
    parse_checksum,
    parse_klines,
    verify_checksum,
)
from tests.contract.recorded import fixtures_dir

USDM = Precision(2, 3, 5)  # BTCUSDT and ETHUSDT perpetuals: 78153.00, 5124.846, ...


def lines_of(path: Path) -> list[str]:
    """The file's CSV lines (the zip's one member), header included."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            (member,) = archive.namelist()
            return archive.read(member).decode().splitlines()
    return path.read_text().splitlines()


def written_back(parsed: ParsedKlines, precision: Precision) -> list[str]:
    """The parsed rows as CSV lines, times in the file's own unit."""
    out = []
    for candle in parsed.columns.candles():
        row = kline_row(candle, precision)
        if parsed.unit == "us":
            row[0], row[6] = candle.open_time_ms * 1000, candle.close_time_ms * 1000 + 999
        out.append(",".join(map(str, row)))
    return out


@pytest.mark.parametrize(
    ("name", "market", "interval", "period", "day", "precision", "rows", "header"),
    [
        ("binance/klines/ETHUSDT-1m-2022-08-14.zip", "spot", M1, "daily", "2022-08-14",
         BINANCE_SPOT, 1440, False),
        ("binance/klines/ETHUSDT-1m-2022-08-15.zip", "spot", M1, "daily", "2022-08-15",
         BINANCE_SPOT, 1440, False),
        ("binance/klines/ETHUSDT-1m-2022-08-14.csv", "spot", M1, "daily", "2022-08-14",
         BINANCE_SPOT, 1440, False),
        ("binance/klines/ETHUSDT-1h-2022-08.csv", "spot", H1, "monthly", "2022-08-01",
         BINANCE_SPOT, 744, False),
        ("binance/klines/ETHUSDT-1d-2022-08.csv", "spot", D1, "monthly", "2022-08-01",
         BINANCE_SPOT, 31, False),
        ("binance_vision/spot/BTCUSDT-1h-2022-09-07.zip", "spot", H1, "daily", "2022-09-07",
         BINANCE_SPOT, 24, False),
        ("binance_vision/um/BTCUSDT-1m-2022-09-05.zip", "um", M1, "daily", "2022-09-05",
         USDM, 1440, True),
        ("binance_vision/um/ETHUSDT-1h-2022-08-24.zip", "um", H1, "daily", "2022-08-24",
         USDM, 24, True),
    ],
)  # fmt: skip
def test_whole_real_files_parse_verify_and_write_back_exactly(
    name: str,
    market: Market,
    interval: Timeframe,
    period: Period,
    day: str,
    precision: Precision,
    rows: int,
    header: bool,
) -> None:
    path = fixtures_dir() / name
    symbol = path.name.split("-", 1)[0]
    ref = ArchiveRef(market, symbol, interval, period, date.fromisoformat(day))
    if path.suffix == ".zip":
        assert path.name == ref.zip_name
    parsed = parse_klines(path.read_bytes(), ref=ref, precision=precision)
    assert (len(parsed.columns), parsed.unit, parsed.header) == (rows, "ms", header)
    lines = lines_of(path)
    assert written_back(parsed, precision) == (lines[1:] if header else lines)
    assert check_coverage(parsed.columns, ref, listed_ms=ref.start_ms - DAY_MS).problems == []
    # The file's own hash is what its .CHECKSUM would hold
    data = path.read_bytes()
    verify_checksum(data, f"{hashlib.sha256(data).hexdigest()}  {ref.zip_name}", ref)


def test_the_first_eth_minute_keeps_its_decimal_strings() -> None:
    ref = ArchiveRef("spot", "ETHUSDT", M1, "daily", date(2022, 8, 14))
    path = fixtures_dir() / "binance" / "klines" / "ETHUSDT-1m-2022-08-14.zip"
    first = parse_klines(path.read_bytes(), ref=ref, precision=BINANCE_SPOT).columns.candle(0)
    assert (first.open_time_ms, first.close_time_ms, first.trades) == (
        1660435200000,
        1660435259999,
        288,
    )
    assert [format_units(v, 8) for v in (first.open, first.high, first.low, first.close)] == [
        "1983.55000000",
        "1983.90000000",
        "1982.14000000",
        "1982.29000000",
    ]
    assert format_units(first.volume, 8) == "205.13100000"
    assert format_units(first.quote_volume, 8) == "406814.92308000"
    assert format_units(first.taker_buy_quote or 0, 8) == "208854.93067400"


def test_the_unpacked_csv_is_the_zip_member() -> None:
    ref = ArchiveRef("spot", "ETHUSDT", M1, "daily", date(2022, 8, 14))
    folder = fixtures_dir() / "binance" / "klines"
    from_zip = parse_klines((folder / ref.zip_name).read_bytes(), ref=ref, precision=BINANCE_SPOT)
    from_csv = parse_klines(
        (folder / ref.member_name).read_bytes(), ref=ref, precision=BINANCE_SPOT
    )
    assert from_zip.columns == from_csv.columns


def test_a_2026_spot_head_is_in_micros_and_reported_truncated() -> None:
    ref = ArchiveRef("spot", "BTCUSDT", M1, "daily", date(2026, 9, 15))
    path = fixtures_dir() / "binance_vision" / "spot" / "BTCUSDT-1m-2026-09-15.head4.csv"
    parsed = parse_klines(path.read_bytes(), ref=ref, precision=BINANCE_SPOT)
    assert (parsed.unit, parsed.header, len(parsed.columns)) == ("us", False, 4)
    first = parsed.columns.candle(0)
    assert (first.open_time_ms, first.close_time_ms) == (1789430400000, 1789430459999)
    assert format_units(first.open, 8) == "78189.20000000"
    assert format_units(first.quote_volume, 8) == "272165.78776570"
    assert written_back(parsed, BINANCE_SPOT) == lines_of(path)
    # only the head of the day was recorded: as a whole file it is truncated
    assert check_coverage(parsed.columns, ref, listed_ms=0).problems == [
        "missing 1436 of 1440 rows: 2026-09-15T00:04:00Z..2026-09-15T23:59:00Z (1436)"
    ]


def test_a_2026_usdm_head_keeps_its_header_ms_and_contract_decimals() -> None:
    ref = ArchiveRef("um", "BTCUSDT", H1, "daily", date(2026, 9, 15))
    path = fixtures_dir() / "binance_vision" / "um" / "BTCUSDT-1h-2026-09-15.head3.csv"
    parsed = parse_klines(path.read_bytes(), ref=ref, precision=USDM)
    assert (parsed.unit, parsed.header, len(parsed.columns)) == ("ms", True, 3)
    first = parsed.columns.candle(0)
    assert first.open_time_ms == 1789430400000
    assert [format_units(first.open, 2), format_units(first.volume, 3)] == ["78153.00", "5124.846"]
    assert written_back(parsed, USDM) == lines_of(path)[1:]


def test_a_file_read_with_too_few_decimals_is_rejected() -> None:
    ref = ArchiveRef("um", "ETHUSDT", H1, "daily", date(2022, 8, 24))
    path = fixtures_dir() / "binance_vision" / "um" / "ETHUSDT-1h-2022-08-24.zip"
    with pytest.raises(ArchiveRejected, match=r"line 2: invalid decimal '1664\.19'"):
        parse_klines(path.read_bytes(), ref=ref, precision=Precision(1, 3, 5))


def test_two_days_of_5m_are_not_one_daily_file() -> None:
    ref = ArchiveRef("spot", "ETHUSDT", M5, "daily", date(2022, 8, 14))
    path = fixtures_dir() / "binance" / "klines" / "ETHUSDT-5m-2022-08-14_to_15.csv"
    with pytest.raises(ArchiveRejected, match="line 289: open time 2022-08-15T00:00:00Z outside"):
        parse_klines(path.read_bytes(), ref=ref, precision=BINANCE_SPOT)


@pytest.mark.parametrize(
    ("name", "ref", "digest", "size"),
    [
        ("BTCUSDT-1h-2024-01-15.zip.CHECKSUM",
         ArchiveRef("spot", "BTCUSDT", H1, "daily", date(2024, 1, 15)),
         "ea666c96c3441451554ba118c469805b34455156c8f1da0234bd7f2546874d99", 91),
        ("BTCUSDT-1m-2025-01-15.zip.CHECKSUM",
         ArchiveRef("spot", "BTCUSDT", M1, "daily", date(2025, 1, 15)),
         "19da1082d8d1d64b38418ea0d056d3938b71c518da7cc8b7e235b7fa43401f55", 91),
        ("BTCUSDT-1mo-2024-01.zip.CHECKSUM",
         ArchiveRef("spot", "BTCUSDT", MO1, "monthly", date(2024, 1, 1)),
         "335005030ad9a2e7ae95f4457c356231a71b714037cb82811c27e280ba9a4ec0", 89),
    ],
)  # fmt: skip
def test_real_sidecars_parse_and_guard_their_own_file(
    name: str, ref: ArchiveRef, digest: str, size: int
) -> None:
    raw = (fixtures_dir() / "binance_vision" / "checksum" / name).read_bytes()
    assert len(raw) == size
    assert not raw.endswith(b"\n")
    assert ref.checksum_path.endswith("/" + name)
    text = raw.decode()
    assert parse_checksum(text, ref) == digest
    # the zips themselves were not obtainable: any other bytes must fail as a mismatch
    with pytest.raises(ArchiveRejected, match="checksum mismatch"):
        verify_checksum(b"PK\x03\x04", text, ref)
    other = ArchiveRef(ref.market, ref.symbol, D1, "monthly", date(2024, 1, 1))
    with pytest.raises(ArchiveRejected, match=re.escape(f"names '{ref.zip_name}', not this file")):
        verify_checksum(b"", text, other)
