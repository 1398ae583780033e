"""The data.binance.vision kline archive, pure parts: paths, planning, parsing, checksums,
coverage and the verdict on a fetched file. Files are written here with the stdlib (zip)
and the domain's row writer, in each form the real archive uses."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from candlevault.domain.candles import Candle, kline_row
from candlevault.domain.columns import CandleColumns, columns_from
from candlevault.domain.decimals import BINANCE_SPOT, Precision
from candlevault.domain.errors import BadValue, ExchangeRejected
from candlevault.domain.timeframes import (
    D1,
    D3,
    DAY_MS,
    H1,
    HOUR_MS,
    M1,
    M5,
    MINUTE_MS,
    MO1,
    W1,
    Timeframe,
)
from candlevault.domain.times import parse_time_ms
from candlevault.exchanges.binance.archive import (
    ArchiveRef,
    ArchiveRejected,
    check_coverage,
    parse_checksum,
    parse_klines,
    plan_refs,
    verify_checksum,
)
from candlevault.exchanges.binance.archive_client import (
    Rejected,
    Verified,
    backoff_s,
    disagreements,
    judge_archive,
)
from tests.unit.strategies import minute_candle

USDM_BTC = Precision(2, 3, 5)
DAY = ArchiveRef("spot", "BTCUSDT", M1, "daily", date(2024, 1, 15))
HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)


def minutes(ref: ArchiveRef, indexes: list[int], seed: int = 1) -> list[Candle]:
    """Candles opening `indexes` minutes into `ref`'s span."""
    rng = random.Random(seed)
    return [minute_candle(rng, ref.start_ms + i * MINUTE_MS, 10**9, False) for i in indexes]


def csv_lines(
    candles: list[Candle], precision: Precision = BINANCE_SPOT, *, micros: bool = False
) -> list[str]:
    """Write candles as archive lines, times in µs when `micros` (close: ms * 1000 + 999)."""
    out = []
    for candle in candles:
        row = kline_row(candle, precision)
        if micros:
            row[0], row[6] = candle.open_time_ms * 1000, candle.close_time_ms * 1000 + 999
        out.append(",".join(map(str, row)))
    return out


def joined(lines: list[str], header: bool = False) -> bytes:
    return "".join(f"{line}\n" for line in ([HEADER, *lines] if header else lines)).encode()


def zipped(data: bytes, *members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            archive.writestr(member, data)
    return buffer.getvalue()


def sidecar(data: bytes, name: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}  {name}"


# -- refs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        (DAY, "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.zip"),
        (ArchiveRef("um", "ETHUSDT", H1, "daily", date(2022, 8, 24)),
         "data/futures/um/daily/klines/ETHUSDT/1h/ETHUSDT-1h-2022-08-24.zip"),
        (ArchiveRef("spot", "BTCUSDT", MO1, "monthly", date(2024, 1, 1)),
         "data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2024-01.zip"),
        (ArchiveRef("um", "1000PEPEUSDT", W1, "monthly", date(2024, 2, 1)),
         "data/futures/um/monthly/klines/1000PEPEUSDT/1w/1000PEPEUSDT-1w-2024-02.zip"),
    ],
)  # fmt: skip
def test_paths_are_laid_out_as_data_binance_vision(ref: ArchiveRef, path: str) -> None:
    assert ref.path == path
    assert ref.checksum_path == path + ".CHECKSUM"
    assert ref.zip_name == path.rsplit("/", 1)[1]
    assert ref.member_name == ref.zip_name.removesuffix(".zip") + ".csv"


def test_spans_are_the_day_or_the_calendar_month() -> None:
    assert (DAY.start_ms, DAY.end_ms) == (parse_time_ms("2024-01-15"), parse_time_ms("2024-01-16"))
    leap = ArchiveRef("spot", "BTCUSDT", M1, "monthly", date(2024, 2, 1))
    assert (leap.start_ms, leap.end_ms) == (
        parse_time_ms("2024-02-01"),
        parse_time_ms("2024-03-01"),
    )
    assert ArchiveRef.at("spot", "BTCUSDT", M1, "monthly", leap.start_ms + 5 * DAY_MS) == leap


@pytest.mark.parametrize(
    ("ref", "listed", "rows", "first"),
    [
        (DAY, "2017-08-17T04:00", 1440, "2024-01-15"),
        # USD-M BTCUSDT listed 2019-09-08 17:57: the first day holds 6 h 3 min
        (ArchiveRef("um", "BTCUSDT", M1, "daily", date(2019, 9, 8)), "2019-09-08T17:57", 363,
         "2019-09-08T17:57"),
        (ArchiveRef("um", "BTCUSDT", H1, "daily", date(2019, 9, 8)), "2019-09-08T17:57", 7,
         "2019-09-08T17:00"),
        (ArchiveRef("um", "BTCUSDT", M1, "daily", date(2019, 9, 7)), "2019-09-08T17:57", 0, None),
        (ArchiveRef("spot", "BTCUSDT", M5, "monthly", date(2024, 2, 1)), "2017-08-17", 29 * 288,
         "2024-02-01"),
        # weeks opening in the month (Mondays), the first before the listing day itself
        (ArchiveRef("spot", "ETHUSDT", W1, "monthly", date(2017, 8, 1)), "2017-08-17T04:00", 3,
         "2017-08-14"),
        (ArchiveRef("spot", "ETHUSDT", MO1, "monthly", date(2017, 8, 1)), "2017-08-17T04:00", 1,
         "2017-08-01"),
        # 3d is anchored at the listing day: 08-17, 08-20, ..., 08-29
        (ArchiveRef("spot", "ETHUSDT", D3, "monthly", date(2017, 8, 1)), "2017-08-17T04:00", 5,
         "2017-08-17"),
    ],
)  # fmt: skip
def test_expected_rows_start_with_the_bucket_of_the_listing(
    ref: ArchiveRef, listed: str, rows: int, first: str | None
) -> None:
    opens = ref.expected_opens(parse_time_ms(listed))
    assert ref.expected_rows(parse_time_ms(listed)) == len(opens) == rows
    assert (opens[0] if opens else None) == (parse_time_ms(first) if first else None)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("coin", "BTCUSDT", M1, "daily", date(2024, 1, 1)), "market"),
        (("spot", "BTCUSDT", M1, "weekly", date(2024, 1, 1)), "period"),
        (("spot", "btcusdt", M1, "daily", date(2024, 1, 1)), "upper-case"),
        (("spot", "BTC/USDT", M1, "daily", date(2024, 1, 1)), "symbol"),
        (("spot", "BTCUSDT", W1, "daily", date(2024, 1, 1)), "interval"),
        (("spot", "BTCUSDT", M1, "monthly", date(2024, 1, 2)), "1st of the month"),
    ],
)
def test_refs_that_name_no_archive_file_are_refused(args: tuple[object, ...], why: str) -> None:
    with pytest.raises(BadValue, match=why):
        ArchiveRef(*args)  # type: ignore[arg-type]


# -- planning -------------------------------------------------------------------------

T0 = parse_time_ms("2019-01-01")


@given(
    start=st.integers(T0, T0 + 800 * DAY_MS),
    length=st.integers(-DAY_MS, 400 * DAY_MS),
    now_after=st.integers(-30 * DAY_MS, 500 * DAY_MS),
    listed_after=st.none() | st.integers(-100 * DAY_MS, 400 * DAY_MS),
    lag=st.sampled_from([0, 7 * DAY_MS]),
    interval=st.sampled_from([M1, H1, D1]),
)
def test_planned_files_cover_each_whole_finished_day_once(
    start: int,
    length: int,
    now_after: int,
    listed_after: int | None,
    lag: int,
    interval: Timeframe,
) -> None:
    end, now = start + length, start + now_after
    listed = None if listed_after is None else start + listed_after
    refs = plan_refs(
        "spot", "BTCUSDT", interval, start, end, now_ms=now, listed_ms=listed, monthly_lag_ms=lag
    )

    def traded(day: int) -> bool:
        return listed is None or day + DAY_MS > listed

    today, this_month = now - now % DAY_MS, MO1.bucket_open(now)
    lo, hi = -(-start // DAY_MS) * DAY_MS, min(end - end % DAY_MS, today)
    covered = [d for r in refs for d in range(r.start_ms, r.end_ms, DAY_MS) if traded(d)]
    assert covered == [d for d in range(lo, hi, DAY_MS) if traded(d)]
    for ref in refs:
        assert lo <= ref.start_ms
        assert ref.end_ms <= hi  # whole days of the window, never today
        assert traded(ref.end_ms - DAY_MS)  # no file that ends before the listing
        assert ref.interval == interval
        if ref.period == "monthly":
            assert ref.end_ms <= this_month
            assert ref.end_ms + lag <= now
    months = {r.start_ms for r in refs if r.period == "monthly"}
    for day in (r.start_ms for r in refs if r.period == "daily"):
        month = MO1.bucket_open(day)
        whole = lo <= month and MO1.next_open(month) <= hi and MO1.next_open(month) + lag <= now
        assert not whole, "a day of a whole finished month was planned alone"
        assert month not in months


def test_a_plan_takes_whole_months_and_fills_in_days() -> None:
    refs = plan_refs(
        "spot", "BTCUSDT", M1, parse_time_ms("2024-01-30T05:00"), parse_time_ms("2024-05-01"),
        now_ms=parse_time_ms("2024-04-03T13:00"), listed_ms=parse_time_ms("2024-01-31T15:00"),
    )  # fmt: skip
    assert [(r.period, r.day.isoformat()) for r in refs] == [
        ("daily", "2024-01-31"),
        ("monthly", "2024-02-01"),
        ("monthly", "2024-03-01"),
        ("daily", "2024-04-01"),
        ("daily", "2024-04-02"),
    ]
    lagging = plan_refs(
        "um", "BTCUSDT", M1, parse_time_ms("2024-03-01"), parse_time_ms("2024-04-01"),
        now_ms=parse_time_ms("2024-04-03"), monthly_lag_ms=7 * DAY_MS,
    )  # fmt: skip
    assert [r.period for r in lagging] == ["daily"] * 31


def test_planning_refuses_intervals_that_straddle_months() -> None:
    with pytest.raises(BadValue, match="derive"):
        plan_refs("spot", "BTCUSDT", W1, 0, DAY_MS * 400, now_ms=DAY_MS * 500)


# -- parsing --------------------------------------------------------------------------


@given(
    indexes=st.lists(st.integers(0, 1439), min_size=1, max_size=40, unique=True),
    micros=st.booleans(),
    header=st.booleans(),
    as_zip=st.booleans(),
    futures=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_parsing_gives_back_the_candles_in_every_archive_form(
    indexes: list[int], micros: bool, header: bool, as_zip: bool, futures: bool, seed: int
) -> None:
    ref = ArchiveRef("um" if futures else "spot", "BTCUSDT", M1, "daily", date(2025, 1, 15))
    precision = USDM_BTC if futures else BINANCE_SPOT
    candles = minutes(ref, sorted(indexes), seed)
    data = joined(csv_lines(candles, precision, micros=micros), header)
    parsed = parse_klines(
        zipped(data, ref.member_name) if as_zip else data, ref=ref, precision=precision
    )
    assert list(parsed.columns.candles()) == candles
    assert set(parsed.columns.flags) == {3}  # closed | complete
    assert (parsed.unit, parsed.header, parsed.ref) == ("us" if micros else "ms", header, ref)


def test_a_month_of_1m_and_coarser_grids_parse() -> None:
    month = ArchiveRef("spot", "ETHUSDT", M1, "monthly", date(2024, 2, 1))
    candles = minutes(month, list(range(29 * 1440)))
    data = zipped(joined(csv_lines(candles)), month.member_name)
    parsed = parse_klines(data, ref=month, precision=BINANCE_SPOT)
    assert len(parsed.columns) == 29 * 1440
    assert check_coverage(parsed.columns, month, 0).problems == []
    one = ArchiveRef("spot", "ETHUSDT", MO1, "monthly", date(2024, 2, 1))
    row = f"{one.start_ms},1.0,2.0,0.5,1.5,10.0,{one.end_ms - 1},12.0,5,1.0,1.0,0"
    assert parse_klines(row.encode(), ref=one, precision=BINANCE_SPOT).columns.high == [2 * 10**8]
    three = ArchiveRef("spot", "ETHUSDT", D3, "monthly", date(2017, 8, 1))
    opens = three.expected_opens(parse_time_ms("2017-08-17T04:00"))
    rows = "\n".join(f"{t},1,1,1,1,0,{t + 3 * DAY_MS - 1},0,0,0,0,0" for t in opens).encode()
    assert len(parse_klines(rows, ref=three, precision=BINANCE_SPOT).columns) == 5
    with pytest.raises(ArchiveRejected, match="off the 3d grid"):  # anchored at another day
        parse_klines(rows, ref=three, precision=BINANCE_SPOT, listed_ms=parse_time_ms("2017-08-18"))


def _edit(line: int, field: int, value: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def apply(lines: list[str]) -> list[str]:
        fields = lines[line].split(",")
        fields[field] = value(fields[field])
        return [*lines[:line], ",".join(fields), *lines[line + 1 :]]

    return apply


def _shift(line: int, ms: int) -> Callable[[list[str]], list[str]]:
    def apply(lines: list[str]) -> list[str]:
        first = _edit(line, 0, lambda t: str(int(t) + ms))(lines)
        return _edit(line, 6, lambda t: str(int(t) + ms))(first)

    return apply


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda ls: [ls[0], ls[1].rsplit(",", 1)[0], ls[2]], "line 2: expected 12 fields, got 11"),
        (lambda ls: [*ls, ""], "line 4: expected 12 fields, got 1"),
        (_edit(1, 4, lambda _: "NaN"), "line 2: invalid decimal 'NaN'"),
        (_edit(0, 2, lambda p: p + "1"), "line 1: invalid decimal .*more than 8 decimals"),
        (_edit(0, 5, lambda _: "1e3"), "line 1: invalid decimal '1e3'"),
        (_edit(1, 0, lambda t: t + ".0"), "line 2: time '.*' is not an integer"),
        (lambda ls: [ls[1], ls[0], ls[2]], "line 2: open time .* out of order"),
        (lambda ls: [ls[0], ls[0], ls[2]], "line 2: open time .* duplicated"),
        (_shift(1, 30_000), "line 2: open time .* off the 1m grid"),
        (_shift(0, -DAY_MS), "line 1: open time .* outside the file's daily span"),
        (_shift(2, DAY_MS), "line 3: open time .* outside the file's daily span"),
        (_edit(2, 6, lambda t: str(int(t) + 1)), "line 3: .*close time"),
        (_edit(1, 6, lambda t: str(int(t) * 1000 + 999)), "line 2: mixed units, open and close"),
        (lambda ls: [ls[0], *csv_lines(minutes(DAY, [1]), micros=True), ls[2]],
         "line 2: mixed units, us after ms"),
    ],
)  # fmt: skip
def test_malformed_rows_reject_the_whole_file(
    change: Callable[[list[str]], list[str]], reason: str
) -> None:
    lines = csv_lines(minutes(DAY, [0, 1, 2]))
    with pytest.raises(ArchiveRejected, match=reason) as caught:
        parse_klines(joined(change(lines)), ref=DAY, precision=BINANCE_SPOT)
    assert isinstance(caught.value, ExchangeRejected)
    assert caught.value.ref == DAY
    assert str(caught.value).startswith("BTCUSDT-1m-2024-01-15.zip: ")


def test_micros_must_be_whole_milliseconds_closing_at_999() -> None:
    (line,) = csv_lines(minutes(DAY, [0]), micros=True)
    fields = line.split(",")
    fields[0] = str(int(fields[0]) + 1)
    with pytest.raises(ArchiveRejected, match="µs times not ms"):
        parse_klines(",".join(fields).encode(), ref=DAY, precision=BINANCE_SPOT)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 not really", "not a readable zip"),
        (b"", "neither a zip nor a kline CSV"),
        (b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>', "neither a zip nor"),
        (b"1705276800000,\xff", "not ASCII"),
        (HEADER.encode() + b"\n", "holds no rows"),
        (b"open_time,open,high\n", "header .* does not have 12 columns"),
    ],
)
def test_data_that_is_not_an_archive_is_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(ArchiveRejected, match=reason):
        parse_klines(data, ref=DAY, precision=BINANCE_SPOT)


def test_a_zip_must_hold_exactly_the_member_the_ref_names() -> None:
    data = joined(csv_lines(minutes(DAY, [0])))
    whole = zipped(data, DAY.member_name)
    assert len(parse_klines(whole, ref=DAY, precision=BINANCE_SPOT).columns) == 1
    for members in (["BTCUSDT-1m-2024-01-16.csv"], [DAY.member_name, "extra.csv"], []):
        with pytest.raises(ArchiveRejected, match="expected one member"):
            parse_klines(zipped(data, *members), ref=DAY, precision=BINANCE_SPOT)
    with pytest.raises(ArchiveRejected, match="not a readable zip"):
        parse_klines(whole[: len(whole) // 2], ref=DAY, precision=BINANCE_SPOT)
    daily_1d = ArchiveRef("spot", "BTCUSDT", D1, "daily", date(2024, 1, 15))
    with pytest.raises(ArchiveRejected, match="too big"):  # a 1d file has one row, not 4 KB
        parse_klines(zipped(data * 30, daily_1d.member_name), ref=daily_1d, precision=BINANCE_SPOT)


@given(st.data())
def test_a_corrupted_zip_is_rejected_or_still_reads_the_same(data: st.DataObject) -> None:
    candles = minutes(DAY, list(range(0, 1440, 97)))
    whole = zipped(joined(csv_lines(candles)), DAY.member_name)
    broken = bytearray(whole)
    for at, value in data.draw(
        st.lists(st.tuples(st.integers(0, len(whole) - 1), st.integers(0, 255)), max_size=3)
    ):
        broken[at] = value
    del broken[data.draw(st.integers(1, len(whole))) :]
    try:
        parsed = parse_klines(bytes(broken), ref=DAY, precision=BINANCE_SPOT)
    except ArchiveRejected:
        return  # the only exception a damaged download may raise
    assert list(parsed.columns.candles()) == candles


# -- checksum -------------------------------------------------------------------------


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=200))
def test_a_checksum_accepts_its_own_file_only(data: bytes, other: bytes) -> None:
    text = sidecar(data, DAY.zip_name)
    verify_checksum(data, text, DAY)
    assert parse_checksum(text, DAY) == hashlib.sha256(data).hexdigest()
    if other != data:
        with pytest.raises(ArchiveRejected, match="checksum mismatch"):
            verify_checksum(other, text, DAY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "malformed .CHECKSUM"),
        ("abc  BTCUSDT-1m-2024-01-15.zip", "malformed"),
        ("0" * 64 + " BTCUSDT-1m-2024-01-15.zip", "malformed"),  # one space
        ("0" * 64 + "  BTCUSDT-1m-2024-01-15.zip\n\n", "malformed"),
        ("0" * 64 + "  ", "malformed"),
        ("<Error><Code>NoSuchKey</Code></Error>", "malformed"),
        ("0" * 64 + "  BTCUSDT-1m-2024-01-16.zip", "names 'BTCUSDT-1m-2024-01-16.zip'"),
    ],
)
def test_a_malformed_sidecar_or_one_for_another_file_is_rejected(text: str, reason: str) -> None:
    with pytest.raises(ArchiveRejected, match=reason):
        verify_checksum(b"", text, DAY)


def test_a_sidecar_with_upper_case_hex_or_one_newline_still_verifies() -> None:
    digest = hashlib.sha256(b"zip").hexdigest()
    verify_checksum(b"zip", f"{digest.upper()}  {DAY.zip_name}", DAY)
    verify_checksum(b"zip", f"{digest}  {DAY.zip_name}\n", DAY)


# -- coverage, agreement, the verdict -------------------------------------------------


def test_coverage_reports_the_missing_runs_of_a_truncated_file() -> None:
    present = [*range(0, 600), *range(700, 1439)]  # 10:00-11:39 and 23:59 missing
    coverage = check_coverage(columns_from(minutes(DAY, present)), DAY, 0)
    assert (coverage.expected, coverage.found, len(coverage.missing_ms)) == (1440, 1339, 101)
    assert coverage.problems == [
        "missing 101 of 1440 rows: 2024-01-15T10:00:00Z..2024-01-15T11:39:00Z (100), "
        "2024-01-15T23:59:00Z"
    ]
    assert check_coverage(columns_from(minutes(DAY, list(range(1440)))), DAY, 0).problems == []


def test_coverage_counts_from_the_listing_and_flags_rows_before_it() -> None:
    listed = DAY.start_ms + 20 * HOUR_MS
    late = check_coverage(columns_from(minutes(DAY, list(range(1200, 1440)))), DAY, listed)
    assert (late.expected, late.problems) == (240, [])
    early = check_coverage(columns_from(minutes(DAY, list(range(1198, 1440)))), DAY, listed)
    assert early.problems == [
        "2 rows open before the listing: 2024-01-15T19:58:00Z..2024-01-15T19:59:00Z (2)"
    ]


def test_disagreements_name_the_minute_and_the_fields() -> None:
    candles = minutes(DAY, [0, 1, 2])
    parsed = parse_klines(joined(csv_lines(candles)), ref=DAY, precision=BINANCE_SPOT)
    altered = [candles[0], replace(candles[1], volume=candles[1].volume + 1)]
    outside = minutes(DAY, [1440])  # the next day: not this file's business
    forming = [replace(candles[2], close=1, closed=False)]
    assert disagreements(parsed, columns_from(candles + outside)) == []
    assert disagreements(parsed, columns_from(altered + forming)) == [
        f"2024-01-15T00:01:00Z: volume {candles[1].volume} vs {candles[1].volume + 1}"
    ]
    later = minutes(DAY, [3])
    assert disagreements(parsed, columns_from(later)) == [
        "2024-01-15T00:03:00Z: the file has no row"
    ]


def test_the_verdict_on_a_file_names_the_first_check_it_fails() -> None:
    candles = minutes(DAY, list(range(1440)))
    good = zipped(joined(csv_lines(candles)), DAY.member_name)
    short = zipped(joined(csv_lines(candles[:-1])), DAY.member_name)
    bad = zipped(b"1,2,3\n", DAY.member_name)

    def judge(
        data: bytes, checksum: str | None = "ok", reference: CandleColumns | None = None
    ) -> Verified | Rejected:
        text = sidecar(data, DAY.zip_name) if checksum == "ok" else checksum
        return judge_archive(
            data, text, DAY, precision=BINANCE_SPOT, listed_ms=0, reference=reference
        )

    verified = judge(good)
    assert isinstance(verified, Verified)
    assert list(verified.columns.candles()) == candles
    assert judge(good, None) == Rejected(DAY, "checksum", "no .CHECKSUM beside the file")
    wrong = judge(good, sidecar(short, DAY.zip_name))
    assert isinstance(wrong, Rejected)
    assert (wrong.kind, wrong.reason[:17]) == ("checksum", "checksum mismatch")
    parse = judge(bad)
    assert isinstance(parse, Rejected)
    assert (parse.kind, parse.reason) == ("parse", "line 1: expected 12 fields, got 3")
    assert judge(short) == Rejected(DAY, "coverage", "missing 1 of 1440 rows: 2024-01-15T23:59:00Z")
    reference = columns_from([replace(candles[5], trades=0)])
    disagree = judge(good, reference=reference)
    assert isinstance(disagree, Rejected)
    assert disagree.kind == "disagree"
    assert "2024-01-15T00:05:00Z: trades" in disagree.reason


@given(st.integers(0, 30), st.floats(0, 1, exclude_max=True))
def test_backoff_doubles_up_to_the_cap_and_jitters_in_its_upper_half(
    attempt: int, unit: float
) -> None:
    delay = backoff_s(attempt, 0.5, 8.0, unit)
    ceiling = min(8.0, 0.5 * 2**attempt)
    assert ceiling / 2 <= delay <= ceiling  # < ceiling but for float rounding
    assert backoff_s(attempt, 0.5, 8.0, 0.0) == ceiling / 2
