"""Loaders for the real exchange recordings in ../shared/fixtures (see its README).

The recordings stay where they are (they carry their own licences and sha256s); the
tests read them in place. `CANDLEVAULT_FIXTURES_DIR` points elsewhere if needed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from candlevault.domain.candles import Candle, parse_kline_row
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.timeframes import parse_timeframe

_DEFAULT = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


def fixtures_dir() -> Path:
    """Return the recordings folder; fail under CI, skip elsewhere, if it is absent."""
    path = Path(os.environ.get("CANDLEVAULT_FIXTURES_DIR", _DEFAULT))
    if not (path / "README.md").exists():
        message = f"recorded exchange fixtures not found at {path} (CANDLEVAULT_FIXTURES_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def csv_rows(path: Path) -> list[list[str]]:
    """Return the rows of a kline CSV, plain or zipped, without a header row."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            (member,) = archive.namelist()
            text = archive.read(member).decode()
    else:
        text = path.read_text()
    rows = list(csv.reader(io.StringIO(text)))
    return rows[1:] if rows and rows[0][0] == "open_time" else rows


def spot_candles(*names: str) -> list[Candle]:
    """Parse Binance spot kline archives from binance/klines/."""
    folder = fixtures_dir() / "binance" / "klines"
    return [parse_kline_row(row, BINANCE_SPOT) for name in names for row in csv_rows(folder / name)]


def octobot(name: str) -> dict[str, list[Candle]]:
    """Load an OctoBot 2018 file: OHLCV floats whose shortest repr is Binance's decimal.

    Only open time, OHLC and volume are known; the rest are left at 0/None.
    """
    data = json.loads((fixtures_dir() / "binance" / "klines_float_octobot" / name).read_text())
    out = {}
    for code, columns in data.items():
        timeframe = parse_timeframe(code)
        rows = zip(*columns[:6], strict=True)
        out[code] = [
            Candle(
                open_time_ms=int(open_ms),
                open=_units(o),
                high=_units(h),
                low=_units(lo),
                close=_units(c),
                volume=_units(v),
                close_time_ms=0 if timeframe.code == "3d" else timeframe.close_time(int(open_ms)),
                quote_volume=0,
            )
            for open_ms, o, h, lo, c, v in rows
        ]
    return out


def _units(value: float) -> int:
    """Binance's decimal behind an OctoBot float, in units of 1e-8 (exact: via repr)."""
    scaled = Decimal(repr(value)).scaleb(8)
    assert scaled == scaled.to_integral_value(), value
    return int(scaled)


def jsonl_frames(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the received frames of a cryptofeed recording, parsed."""
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("t") == "recv":
            yield json.loads(record["data"])
