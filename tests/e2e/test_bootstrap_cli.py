"""`candlevault bootstrap` as a user runs it: against `candlevault sim` in another process,
into a data dir of its own; run twice, the second run asks for nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.contract.recorded import fixtures_dir
from tests.e2e.test_sim_cli import running_sim


def _cli(env: dict[str, str], data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "candlevault", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "CANDLEVAULT_DATA_DIR": str(data_dir)},
        timeout=120,
        check=False,
    )


def test_bootstrap_fetches_once_and_resumes_to_nothing(tmp_path: Path) -> None:
    sim_args = ("--start", "2024-01-15T00:00:00Z", "--listed", "BTCUSDT=2024-01-12T00:00:00Z")
    with running_sim(*sim_args) as env:
        before = _cli(env, tmp_path, "gaps", "scan", "BTCUSDT")
        first = _cli(env, tmp_path, "bootstrap", "BTCUSDT", "--venue", "binance")
        second = _cli(env, tmp_path, "gaps", "fill", "BTCUSDT", "--venue", "binance")
        after = _cli(env, tmp_path, "gaps", "scan", "BTCUSDT")
    assert first.returncode == 0, first.stderr
    assert "binance BTCUSDT: 4,320 candles in 5 requests" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "binance BTCUSDT: 0 candles in 0 requests" in second.stderr
    assert (tmp_path / "candles.sqlite3").is_file()
    assert before.returncode == 2  # no store yet: a clear one-line error
    assert "no candle store" in before.stderr
    assert after.returncode == 0, after.stderr
    assert "0 min in 0 ranges" in after.stdout


def test_an_unknown_symbol_is_one_line_and_status_2(tmp_path: Path) -> None:
    with running_sim() as env:
        done = _cli(env, tmp_path, "bootstrap", "NOPEUSDT")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "error: binance does not list NOPEUSDT"


def test_import_from_a_folder_of_real_archive_files(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    klines = Path(fixtures_dir()) / "binance" / "klines"
    for day in ("14", "15"):
        name = f"ETHUSDT-1m-2022-08-{day}.zip"
        (folder / name).write_bytes((klines / name).read_bytes())
    done = _cli({}, tmp_path / "data", "import", "ETHUSDT", "--from", str(folder))
    again = _cli({}, tmp_path / "data", "import", "ETHUSDT", "--from", str(folder))
    assert done.returncode == 0, done.stderr
    assert "ETHUSDT: 2 files, 2,880 candles imported, 0 refused" in done.stderr
    assert again.returncode == 0, again.stderr  # idempotent: the same candles, one row each
