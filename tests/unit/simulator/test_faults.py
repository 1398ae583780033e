"""The fault switchboard: deterministic request faults, stable archive faults, validation."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.errors import BadRequest, BadValue
from candlevault.simulator.faults import (
    NO_FAULT,
    DarkWindow,
    FaultSettings,
    FaultSwitchboard,
    RequestFault,
    archive_file_key,
    corrupt_kline_row,
    disagree_kline_row,
    parse_settings,
)

KLINES = "/api/v3/klines"
HOUR_MS = 3_600_000
# The first row of binance/rest/api_v3_klines_BTCUSDT_1h_2024-01-15.json (shared fixtures)
BINANCE_ROW: list[object] = [
    1705276800000, "41732.35000000", "42353.94000000", "41718.05000000", "42279.75000000",
    "2433.52283000", 1705280399999, "102456168.22559890", 66725, "1348.93805000",
    "56779695.64663060", "0",
]  # fmt: skip
# The first row of bybit/rest/v5_market_kline_spot_BTCUSDT_D_2023-09-12_to_14_TESTNET.json
BYBIT_ROW: list[object] = [
    "1694649600000", "19289.27", "19321.5", "18580.75", "19265.49", "414.689515",
    "7981068.41994112",
]  # fmt: skip
ZIP = "BTCUSDT-1m-2024-01-15.zip"


def board(seed: int = 1, **settings: object) -> FaultSwitchboard:
    return FaultSwitchboard(parse_settings(settings), seed)


def decisions(switchboard: FaultSwitchboard, n: int, venue: str = "binance") -> list[RequestFault]:
    return [switchboard.decide(venue, KLINES) for _ in range(n)]


def test_by_default_nothing_fails() -> None:
    quiet = board()
    assert set(decisions(quiet, 500)) == {NO_FAULT}
    archived = quiet.archive(ZIP)
    flags = (archived.missing, archived.truncated, archived.bad_checksum, archived.disagree)
    assert flags == (False, False, False, False)
    assert archived.late_s == 0.0
    assert not quiet.is_dark("binance", 0)


def test_settings_round_trip_through_json() -> None:
    full = FaultSettings(
        error_5xx=0.1,
        timeout=0.05,
        timeout_ms=1000,
        slow=0.1,
        slow_ms=250,
        truncated=0.1,
        malformed=0.2,
        malformed_kinds=("off_grid",),
        dark=(DarkWindow("bybit-spot", 10, 20),),
        archive_late_s=3600,
        archive_missing=(ZIP,),
        archive_truncated=0.5,
        archive_bad_checksum=0.25,
        archive_disagree=0.125,
    )
    for settings in (FaultSettings(), full):
        encoded = msgspec.json.encode(settings)
        assert msgspec.json.decode(encoded, type=FaultSettings) == settings
        assert parse_settings(msgspec.json.decode(encoded)) == settings


def test_the_same_seed_gives_the_same_faults() -> None:
    shares = {"error_5xx": 0.2, "slow": 0.2, "timeout": 0.1, "truncated": 0.1, "malformed": 0.2}
    assert decisions(board(7, **shares), 300) == decisions(board(7, **shares), 300)
    assert decisions(board(7, **shares), 300) != decisions(board(8, **shares), 300)


def test_each_venue_has_its_own_stream() -> None:
    alone = board(3, error_5xx=0.5)
    mixed = board(3, error_5xx=0.5)
    expected = decisions(alone, 100)
    got = []
    for _ in range(100):
        mixed.decide("bybit-linear", "/v5/market/kline")
        got.append(mixed.decide("binance", KLINES))
    assert got == expected


def test_shares_are_met_in_proportion() -> None:
    faults = decisions(board(5, error_5xx=0.2, slow=0.1, slow_ms=300), 20_000)
    errors = [f for f in faults if f.kind == "error"]
    slow = [f for f in faults if f.kind == "slow"]
    assert 0.18 < len(errors) / len(faults) < 0.22
    assert 0.08 < len(slow) / len(faults) < 0.12
    assert {f.status for f in errors} == {500, 502, 503}
    assert {f.delay_ms for f in slow} == {300}


def test_timeouts_hold_the_reply_for_timeout_ms() -> None:
    faults = decisions(board(timeout=1.0), 20)
    assert {(f.kind, f.delay_ms) for f in faults} == {("timeout", 30_000)}


def test_raising_one_share_does_not_reshuffle_another() -> None:
    before = decisions(board(9, error_5xx=0.1), 2000)
    after = decisions(board(9, error_5xx=0.1, truncated=0.3), 2000)
    assert [f.kind == "error" for f in before] == [f.kind == "error" for f in after]
    assert any(f.kind == "truncate" for f in after)


def test_malformed_rows_only_on_kline_paths_and_of_the_chosen_kinds() -> None:
    switchboard = board(malformed=1.0, malformed_kinds=["non_numeric", "off_grid"])
    kinds = {f.malformed for f in decisions(switchboard, 200)}
    assert kinds == {"non_numeric", "off_grid"}
    assert {switchboard.decide("bybit-spot", "/v5/market/kline").kind for _ in range(20)} == {
        "malformed"
    }
    assert switchboard.decide("binance-usdm", "/fapi/v1/klines").kind == "malformed"
    assert switchboard.decide("binance", "/api/v3/time") == NO_FAULT


def test_control_paths_never_fail_nor_draw() -> None:
    plain = board(11, error_5xx=0.5)
    probed = board(11, error_5xx=0.5)
    expected = decisions(plain, 50)
    got = []
    for _ in range(50):
        assert probed.decide("binance", "/_sim/clock") == NO_FAULT
        got.append(probed.decide("binance", KLINES))
    assert got == expected


def test_an_unknown_venue_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kraken"):
        board().decide("kraken", KLINES)


@given(st.binary(max_size=500), st.floats(0, 1, exclude_max=True))
def test_a_truncated_body_is_a_strict_prefix(body: bytes, position: float) -> None:
    cut = RequestFault("truncate", position=position).cut(body)
    assert body.startswith(cut)
    assert len(cut) < len(body) or body == b""


@given(st.integers(1, 5000), st.floats(0, 1, exclude_max=True))
def test_the_corrupted_row_is_one_of_the_rows(rows: int, position: float) -> None:
    assert 0 <= RequestFault("malformed", position=position).row_index(rows) < rows


def test_dark_windows_are_half_open_and_per_venue() -> None:
    switchboard = board(dark=[{"venue": "binance", "start_ms": 1000, "end_ms": 2000}])
    assert not switchboard.is_dark("binance", 999)
    assert switchboard.is_dark("binance", 1000)
    assert switchboard.is_dark("binance", 1999)
    assert not switchboard.is_dark("binance", 2000)
    assert not switchboard.is_dark("binance-usdm", 1500)


def test_update_applies_a_partial_patch() -> None:
    switchboard = board()
    patched = switchboard.update({"error_5xx": 0.5, "archive_missing": [ZIP]})
    assert patched == switchboard.settings
    assert (patched.error_5xx, patched.archive_missing, patched.slow_ms) == (0.5, (ZIP,), 2000)
    switchboard.update({"dark": [{"venue": "archive", "start_ms": 0, "end_ms": 10}]})
    assert switchboard.settings.error_5xx == 0.5
    assert switchboard.is_dark("archive", 5)
    settled = switchboard.settings
    assert switchboard.update({}) == settled  # an empty patch changes nothing


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"errors": 0.1}, "errors"),
        ({"error_5xx": 1.5}, "error_5xx"),
        ({"slow": -0.1}, "slow"),
        ({"slow_ms": "fast"}, "slow_ms"),
        ({"timeout_ms": -1}, "timeout_ms"),
        ({"malformed_kinds": ["garbled"]}, "malformed_kinds"),
        ({"malformed_kinds": []}, "malformed_kinds"),
        ({"dark": [{"venue": "kraken", "start_ms": 0, "end_ms": 1}]}, "dark"),
        ({"dark": [{"venue": "binance", "start_ms": 5, "end_ms": 5}]}, "dark"),
        ({"archive_missing": "BTCUSDT.zip"}, "archive_missing"),
        ({"error_5xx": 0.6, "slow": 0.6}, "shares"),
    ],
)
def test_update_rejects_a_bad_patch_and_changes_nothing(
    patch: dict[str, object], named: str
) -> None:
    switchboard = board(error_5xx=0.1)
    before = switchboard.settings
    with pytest.raises(BadValue, match=named):
        switchboard.update(patch)
    assert switchboard.settings == before


def test_update_needs_an_object() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        board().update([("error_5xx", 0.1)])


def test_archive_faults_are_stable_per_file() -> None:
    switchboard = board(21, archive_truncated=0.5, archive_bad_checksum=0.5, archive_disagree=0.5)
    names = [f"BTCUSDT-1m-2024-01-{day:02d}.zip" for day in range(1, 29)]
    first = [switchboard.archive(name) for name in names]
    again = [switchboard.archive(name) for name in reversed(names)][::-1]
    assert first == again
    assert switchboard.archive(f"{ZIP}.CHECKSUM") == switchboard.archive(ZIP)
    assert switchboard.archive(f"/data/spot/daily/klines/BTCUSDT/1m/{ZIP}") == (
        switchboard.archive(ZIP)
    )
    for flag in ("truncated", "bad_checksum", "disagree"):
        hits = sum(getattr(fault, flag) for fault in first)
        assert 0 < hits < len(names), flag
    other_seed = board(22, archive_truncated=0.5)
    assert [f.truncated for f in first] != [other_seed.archive(n).truncated for n in names]


def test_raising_an_archive_share_only_adds_broken_files() -> None:
    names = [
        f"ETHUSDT-1h-2023-{month:02d}-{day:02d}.zip" for month in range(1, 13) for day in (1, 15)
    ]
    low = board(4, archive_bad_checksum=0.2)
    high = board(4, archive_bad_checksum=0.6)
    low_hits = {n for n in names if low.archive(n).bad_checksum}
    high_hits = {n for n in names if high.archive(n).bad_checksum}
    assert low_hits
    assert low_hits < high_hits
    assert all(board(4, archive_disagree=1.0).archive(n).disagree for n in names)


def test_missing_and_late_archive_files() -> None:
    switchboard = board(archive_missing=[f"/data/spot/daily/klines/BTCUSDT/1m/{ZIP}"])
    switchboard.update({"archive_late_s": 7200})
    assert switchboard.archive(ZIP).missing
    assert switchboard.archive(f"{ZIP}.CHECKSUM").missing
    assert not switchboard.archive("BTCUSDT-1m-2024-01-16.zip").missing
    assert switchboard.archive(ZIP).late_s == 7200
    assert archive_file_key(f"a/b/{ZIP}.CHECKSUM") == ZIP


def test_corrupting_a_binance_row() -> None:
    short = corrupt_kline_row(BINANCE_ROW, "field_count", HOUR_MS)
    assert short == BINANCE_ROW[:11]
    nan = corrupt_kline_row(BINANCE_ROW, "non_numeric", HOUR_MS)
    assert nan[4] == "NaN"
    assert nan[:4] + nan[5:] == BINANCE_ROW[:4] + BINANCE_ROW[5:]
    shifted = corrupt_kline_row(BINANCE_ROW, "off_grid", HOUR_MS)
    assert shifted[0] == 1705276800000 + HOUR_MS // 2
    assert shifted[1:] == BINANCE_ROW[1:]
    assert BINANCE_ROW[0] == 1705276800000  # the input is left alone


def test_corrupting_a_bybit_row() -> None:
    assert len(corrupt_kline_row(BYBIT_ROW, "field_count", 86_400_000)) == 6
    assert corrupt_kline_row(BYBIT_ROW, "non_numeric", 86_400_000)[4] == "NaN"
    shifted = corrupt_kline_row(BYBIT_ROW, "off_grid", 86_400_000)
    assert shifted[0] == "1694692800000"
    assert int(str(shifted[0])) % 86_400_000 != 0


def test_off_grid_moves_even_a_one_ms_interval() -> None:
    assert corrupt_kline_row(BYBIT_ROW, "off_grid", 1)[0] == "1694649600001"


@pytest.mark.parametrize("row", [[], BINANCE_ROW[:11], [*BYBIT_ROW, "x"]])
def test_only_kline_rows_can_be_corrupted(row: list[object]) -> None:
    with pytest.raises(ValueError, match="fields"):
        corrupt_kline_row(row, "non_numeric", HOUR_MS)
    with pytest.raises(ValueError, match="fields"):
        disagree_kline_row(row)


@pytest.mark.parametrize(
    ("volume", "changed"),
    [("2433.52283000", "2433.52283001"), ("0.00000000", "0.00000001"), ("25000", "25001")],
)
def test_a_disagreeing_row_differs_in_its_volume_only(volume: str, changed: str) -> None:
    row = [*BINANCE_ROW[:5], volume, *BINANCE_ROW[6:]]
    out = disagree_kline_row(row)
    assert out[5] == changed
    assert Decimal(str(out[5])) > Decimal(volume)
    assert out[:5] + out[6:] == row[:5] + row[6:]
