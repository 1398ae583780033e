"""Where the CLI prints: rich consoles that stay readable when piped."""

from __future__ import annotations

import os

from rich.console import Console


def stdout() -> Console:
    """A console on stdout; piped, tables take their natural width instead of wrapping."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 1000
    return console
