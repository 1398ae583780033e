"""One writer per data dir, across real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from candlevault.domain.errors import StorageError
from candlevault.storage.lock import DataDirLock

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from candlevault.storage.lock import DataDirLock\n"
    "lock = DataDirLock(Path(sys.argv[1])); lock.acquire()\n"
    "print('held', flush=True); sys.stdin.readline()\n"
)


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StorageError, match=f"pid {holder.pid}"):
            DataDirLock(tmp_path).acquire()
        holder.communicate("\n", timeout=10)
    with DataDirLock(tmp_path):  # the holder exited: the lock is free again
        pass


def test_a_crashed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = HOLD.replace("sys.stdin.readline()", "import os; os._exit(9)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True)
    assert done.returncode == 9
    with DataDirLock(tmp_path):
        pass


def test_one_process_cannot_take_it_twice(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(StorageError, match="writer already"):
        DataDirLock(tmp_path).acquire()
