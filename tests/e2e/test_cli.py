"""The command line as a user runs it: `python -m candlevault` in a clean environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from candlevault import __version__


def _run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in `cwd` with only PATH, HOME and the given variables set."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **env}
    return subprocess.run(
        [sys.executable, "-m", "candlevault", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        check=False,
    )


def _codes(output: str) -> set[str]:
    """Return every interval-looking word ('1m', '12h', '1M') in the output."""
    return set(re.findall(r"\b\d+[mhdwM]\b", output))


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = _run(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert re.search(r"\bconfig\b", result.stdout)
    assert re.search(r"\btimeframes\b", result.stdout)
    assert "--version" in result.stdout


def test_version(tmp_path: Path) -> None:
    result = _run(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"candlevault {__version__}"


def test_config_prints_data_dir_and_masks_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "candles"
    result = _run(
        tmp_path,
        "config",
        CANDLEVAULT_DATA_DIR=str(data_dir),
        CANDLEVAULT_ADMIN_TOKEN="t0p-s3cret-admin-token",
        CANDLEVAULT_SYMBOLS="binance-usdm:BTCUSDT",
    )
    assert result.returncode == 0, result.stderr
    assert str(data_dir) in result.stdout
    assert "CANDLEVAULT_ADMIN_TOKEN" in result.stdout
    assert "********" in result.stdout
    assert "binance-usdm:BTCUSDT" in result.stdout
    assert "t0p-s3cret-admin-token" not in result.stdout + result.stderr


def test_config_reads_the_toml_file(tmp_path: Path) -> None:
    (tmp_path / "candlevault.toml").write_text('bybit_rest_url = "http://127.0.0.1:9200/"\n')
    result = _run(tmp_path, "config")
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:9200" in result.stdout
    assert "candlevault.toml" in result.stdout


def test_config_with_bad_symbol_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = _run(tmp_path, "config", CANDLEVAULT_SYMBOLS="BTCUSDT,BTC/USDT")
    assert result.returncode == 2
    assert "CANDLEVAULT_SYMBOLS" in result.stderr
    assert "'BTC/USDT'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_timeframes_for_all_venues(tmp_path: Path) -> None:
    result = _run(tmp_path, "timeframes")
    assert result.returncode == 0, result.stderr
    expected = {"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"}
    assert expected | {"3d", "1w", "1M"} <= _codes(result.stdout)


def test_timeframes_on_bybit_spot_lack_8h_and_3d(tmp_path: Path) -> None:
    result = _run(tmp_path, "timeframes", "--venue", "bybit-spot")
    assert result.returncode == 0, result.stderr
    codes = _codes(result.stdout)
    assert {"1m", "1h", "12h", "1d", "1w", "1M"} <= codes
    assert "8h" not in codes
    assert "3d" not in codes


def test_timeframes_with_unknown_venue_exits_2(tmp_path: Path) -> None:
    result = _run(tmp_path, "timeframes", "--venue", "nope")
    assert result.returncode == 2
    assert "invalid venue 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
