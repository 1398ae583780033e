"""Imports point inward only, as STYLE.md lays out; read from the source with `ast`.

Nothing is imported: every module under src/candlevault is parsed, its imports (absolute
and relative, at any depth, `TYPE_CHECKING` blocks included) are resolved to dotted names
and checked against the layer order. Layers that do not exist yet simply have no modules;
a new top-level module or package must be added to `TIERS` (or the special cases) before
the test passes, so nothing new escapes the rules by not being listed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "candlevault"
SRC = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# The order from STYLE.md, innermost first: a layer may import its own tier and the ones
# below, never one above. `__main__` (python -m candlevault) is an entry point like cli.
TIERS: dict[str, int] = {
    "domain": 0,
    "aggregation": 1,
    "cache": 2,
    "storage": 2,
    "exchanges": 2,
    "ingest": 3,
    "service": 4,
    "bootstrap": 4,
    "realtime": 4,
    "api": 5,
    "cli": 5,
    "__main__": 5,
}
PURE = frozenset({"domain", "aggregation"})
ROOT = "<root>"  # candlevault/__init__.py (its __version__), importable by anyone
# Layers limited in what they may import from candlevault. The package root imports no
# layer, so that importing any one of them stays cheap. The simulator is a separate world
# that talks to candlevault only over sockets, like a real exchange.
MAY_IMPORT: dict[str, frozenset[str]] = {
    ROOT: frozenset(),
    "domain": frozenset(),
    "config": frozenset({"domain"}),
    "simulator": frozenset({"domain", "aggregation"}),
}
# Layers only some may import. Settings are read at the edges and handed inward as plain
# values, so the engines never know where a value came from (ARCHITECTURE.md: engines are
# chosen in one place); only the CLI starts the simulator.
IMPORTABLE_BY: dict[str, frozenset[str]] = {
    "config": frozenset({"api", "cli", "__main__", "service", "bootstrap", "realtime"}),
    "simulator": frozenset({"cli", "__main__"}),
}
SPECIAL = frozenset({"config", "simulator"})  # the layers outside TIERS

# What domain/ and aggregation/ may not import. They are pure functions of their inputs:
# no network or database clients, no event loop (time and I/O are driven from outside),
# no files, processes or environment, no wall clock (a Clock is injected), no terminal or
# metrics output, and no dynamic import that would slip past this check. Serialization
# and maths are fine: msgspec, decimal, datetime (for formatting; reading the clock
# through it is caught separately below), re, enum, dataclasses, bisect, itertools, ...
IO_MODULES = frozenset(
    {
        # network and databases
        "aiohttp", "anyio", "asyncio", "bson", "fastapi", "ftplib", "hiredis", "http",
        "httpx", "motor", "pymongo", "redis", "requests", "selectors", "select", "smtplib",
        "socket", "socketserver", "sqlite3", "ssl", "starlette", "trio", "urllib",
        "urllib3", "uvicorn", "uvloop", "websocket", "websockets",
        # files, processes, threads, environment
        "bz2", "concurrent", "ctypes", "dbm", "glob", "gzip", "io", "lzma", "mmap",
        "multiprocessing", "os", "pathlib", "pydantic_settings", "shelve", "shutil",
        "signal", "subprocess", "tarfile", "tempfile", "threading", "zipfile",
        # the wall clock, output, dynamic imports
        "importlib", "prometheus_client", "rich", "time", "typer",
    }
)  # fmt: skip
CLOCK_READS = frozenset({"now", "utcnow", "today"})  # datetime.now(), date.today(), ...


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to an absolute dotted name."""

    importer: str
    target: str
    line: int


def module_name(path: Path, src: Path = SRC) -> str:
    """Return the dotted module name of `path` inside the package at `src`."""
    parts = [PACKAGE, *path.relative_to(src).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(src: Path = SRC) -> Iterator[tuple[str, Path]]:
    """Yield (dotted name, path) of every module in the package."""
    for path in sorted(src.rglob("*.py")):
        yield module_name(path, src), path


def imports_of(tree: ast.AST, module: str, *, is_package: bool) -> list[Import]:
    """Return every import in `tree`, relative ones resolved against `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    raise ValueError(f"{module}:{node.lineno} imports beyond the package")
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from candlevault import config` imports candlevault.config: keep the names.
            found += [
                Import(
                    module, source if alias.name == "*" else f"{source}.{alias.name}", node.lineno
                )
                for alias in node.names
            ]
    return found


def layer_of(module: str, src: Path = SRC) -> str | None:
    """Return the layer of a candlevault module, or None for anything else."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return ROOT
    head = parts[1]
    if head in TIERS or head in SPECIAL:
        return head
    if (src / head).is_dir() or (src / f"{head}.py").is_file():
        return f"<unclassified {head}>"
    return ROOT  # an attribute of the package root, e.g. `from candlevault import __version__`


def rule_broken(importer: str, target: str) -> str | None:
    """Return why layer `importer` may not import layer `target`, or None if it may."""
    unclassified = [layer for layer in (importer, target) if layer.startswith("<unclassified")]
    if unclassified:
        return f"{unclassified[0]}: add it to TIERS (or the special cases) in this test"
    if target in (importer, ROOT):
        return None
    if importer in MAY_IMPORT and target not in MAY_IMPORT[importer]:
        allowed = ", ".join(sorted(MAY_IMPORT[importer])) or "no other layer"
        return f"{importer} may import only {allowed}"
    if target in IMPORTABLE_BY and importer not in IMPORTABLE_BY[target]:
        return f"only {', '.join(sorted(IMPORTABLE_BY[target]))} may import {target}"
    if importer in TIERS and target in TIERS and TIERS[target] > TIERS[importer]:
        return f"{importer} is inside {target}; imports point inward only"
    return None


def clock_reads(tree: ast.AST) -> Iterator[int]:
    """Yield the lines that read the wall clock through datetime/date (`.now()` etc.)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_READS
            and _terminal_name(node.func.value) in {"datetime", "date"}
        ):
            yield node.lineno


def _terminal_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def violations(source: str, module: str, *, is_package: bool = False, src: Path = SRC) -> list[str]:
    """Return every layering rule that the module `module` with `source` breaks."""
    tree = ast.parse(source)
    own = layer_of(module, src)
    assert own is not None, f"{module} is not in {PACKAGE}"
    found: list[str] = []
    for imp in imports_of(tree, module, is_package=is_package):
        where = f"{module}:{imp.line} imports {imp.target}"
        target = layer_of(imp.target, src)
        if target is None:
            if own in PURE and imp.target.split(".")[0] in IO_MODULES:
                found.append(f"{where}: {own} does no I/O (see IO_MODULES)")
        elif (why := rule_broken(own, target)) is not None:
            found.append(f"{where}: {why}")
    if own in PURE:
        found += [
            f"{module}:{line} reads the wall clock; inject a Clock" for line in clock_reads(tree)
        ]
    return found


def test_the_source_tree_is_where_the_test_looks() -> None:
    names = [name for name, _ in package_modules()]
    assert "candlevault.domain.candles" in names  # guards against an empty, vacuous scan
    assert "candlevault" in names


def test_every_module_respects_the_layers() -> None:
    found = [
        problem
        for name, path in package_modules()
        for problem in violations(path.read_text(), name, is_package=path.name == "__init__.py")
    ]
    assert found == [], "layering violations:\n" + "\n".join(found)


# The checker itself: each case must be caught, so the test above cannot pass vacuously.
@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("candlevault.domain.candles", "from candlevault.aggregation import aggregate"),
        ("candlevault.domain.candles", "from ..storage import sqlite"),
        ("candlevault.domain.candles", "import candlevault.config"),
        ("candlevault.domain.candles", "from candlevault import config"),
        ("candlevault.domain.candles", "import aiohttp"),
        ("candlevault.domain.candles", "from os import path"),
        ("candlevault.domain.times", "from datetime import datetime\nx = datetime.now()"),
        ("candlevault.aggregation.trades", "def f():\n    import time\n    return time.time()"),
        ("candlevault.aggregation.trades", "import asyncio"),
        ("candlevault.aggregation.trades", "from candlevault.cache.keys import KEY"),
        ("candlevault.aggregation.trades", "from .. import config"),
        ("candlevault.storage.sqlite", "from candlevault.ingest import ingest"),
        ("candlevault.cache.redis", "from candlevault.config import Settings"),
        ("candlevault.ingest.writer", "from ..service.read import CandleService"),
        ("candlevault.service.read", "from candlevault.api.schemas import Out"),
        ("candlevault.realtime.supervisor", "from candlevault.cli.main import app"),
        ("candlevault.exchanges.rest", "from ..bootstrap import plan"),
        ("candlevault.simulator.market", "from candlevault.storage.sqlite import Store"),
        ("candlevault.simulator.rest", "from candlevault.config import Settings"),
        ("candlevault.api.app", "from candlevault.simulator import run"),
        ("candlevault.config", "from candlevault.storage import sqlite"),
        ("candlevault", "from candlevault.domain import Candle"),
        ("candlevault.domain.candles", "from typing import TYPE_CHECKING\n"
         "if TYPE_CHECKING:\n    from candlevault.service import S"),
    ],
)  # fmt: skip
def test_the_checker_catches_a_violation(module: str, source: str) -> None:
    assert violations(source, module) != []


def test_an_unlisted_top_level_module_must_be_classified(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "__init__.py").write_text("")
    (tmp_path / "clock.py").write_text("")
    source = "from candlevault.metrics import counter\nfrom candlevault import clock"
    found = violations(source, "candlevault.storage.sqlite", src=tmp_path)
    assert len(found) == 2
    assert all("add it to TIERS" in problem for problem in found)
    assert violations(source, "candlevault.metrics.counter", src=tmp_path) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("candlevault.domain.candles", "import msgspec\nfrom decimal import Decimal"),
        ("candlevault.domain.candles", "from .errors import BadValue\nfrom . import venues"),
        ("candlevault.domain.times", "from datetime import UTC, datetime\n"
         "x = datetime.fromtimestamp(0, UTC)"),
        ("candlevault.aggregation.candles", "from candlevault.domain.candles import Candle"),
        ("candlevault.aggregation.candles", "from ..domain import timeframes"),
        ("candlevault.ingest.writer", "from ..storage.ports import CandleStore\nimport asyncio"),
        ("candlevault.storage.sqlite", "import sqlite3\n"
         "from candlevault.aggregation import aggregate"),
        ("candlevault.service.read", "from candlevault.realtime.builder import Open\n"
         "from candlevault.config import Settings"),
        ("candlevault.cli.main", "from candlevault.simulator.app import serve\n"
         "from candlevault.api.app import create_app\nfrom candlevault import config"),
        ("candlevault.simulator.market", "from candlevault.aggregation import aggregate\n"
         "from .model import Model\nimport asyncio"),
        ("candlevault.config", "import os\nfrom candlevault.domain.venues import Venue"),
        ("candlevault.api", "from candlevault import __version__"),
    ],
)  # fmt: skip
def test_the_checker_allows_inward_imports(module: str, source: str) -> None:
    assert violations(source, module) == []


def test_relative_imports_resolve_from_modules_and_packages() -> None:
    tree = ast.parse("from . import a\nfrom ..b import c\nfrom .d import *")
    as_module = imports_of(tree, "candlevault.x.y", is_package=False)
    as_package = imports_of(tree, "candlevault.x.y", is_package=True)
    assert [i.target for i in as_module] == [
        "candlevault.x.a",
        "candlevault.b.c",
        "candlevault.x.d",
    ]
    assert [i.target for i in as_package] == [
        "candlevault.x.y.a",
        "candlevault.x.b.c",
        "candlevault.x.y.d",
    ]
    with pytest.raises(ValueError, match="beyond the package"):
        imports_of(ast.parse("from .... import z"), "candlevault.x.y", is_package=False)
