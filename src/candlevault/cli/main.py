"""The `candlevault` command line: thin typer commands over the settings and the domain.

Each command parses its input with the domain parsers, calls one function and prints with
rich. An expected failure (a bad setting, a bad argument) prints one line on stderr and
exits with status 2, the usage-error status, never with a traceback. Modules with weight
(the settings, later the service and the simulator) are imported inside the command that
needs them, so `candlevault --help` loads only typer, rich and the domain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from candlevault import __version__
from candlevault.cli.bootstrap import bootstrap
from candlevault.cli.console import stdout
from candlevault.cli.gaps import gaps
from candlevault.cli.imports import import_archives
from candlevault.cli.serve import serve
from candlevault.cli.sim import sim
from candlevault.domain.errors import CandlevaultError
from candlevault.domain.timeframes import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    TIMEFRAMES,
    GridKind,
    Timeframe,
    venue_timeframes,
)
from candlevault.domain.venues import Venue, parse_venue

if TYPE_CHECKING:
    from candlevault.config import Settings

USAGE_ERROR = 2
_UNITS = ((7 * DAY_MS, "week"), (DAY_MS, "day"), (HOUR_MS, "hour"), (MINUTE_MS, "minute"))

app = typer.Typer(
    name="candlevault",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"candlevault {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Complete, exact crypto candle (OHLCV) history for Binance and Bybit, served fast.

    Settings: CANDLEVAULT_* variables, then candlevault.toml (or $CANDLEVAULT_CONFIG).
    """


@app.command("config")
def show_config() -> None:
    """Print the effective settings, where each comes from, with secrets masked.

    Exits with status 2, naming the setting, when a setting is invalid.
    """
    from candlevault.config import config_file, load_settings, setting_origins

    try:
        settings = load_settings()
        origins = setting_origins()
        path = config_file()
    except CandlevaultError as e:
        _fail(e)
    out = stdout()
    out.print(Text(f"config file: {path}" if path else "config file: none"))
    out.print(_settings_table(settings, origins))


@app.command("timeframes")
def show_timeframes(
    venue: Annotated[
        str | None,
        typer.Option(
            "--venue",
            metavar="NAME",
            help=f"Only the intervals this venue publishes: {', '.join(v.value for v in Venue)}.",
        ),
    ] = None,
) -> None:
    """List the kline intervals: Binance and Bybit codes, duration and bucket alignment.

    Every interval is derived from 1m candles; Bybit publishes neither 8h nor 3d.
    """
    try:
        chosen = parse_venue(venue) if venue is not None else None
    except CandlevaultError as e:
        _fail(e)
    if chosen is None:
        table = _timeframes_table("Timeframes", TIMEFRAMES, with_venues=True)
    else:
        table = _timeframes_table(f"Timeframes on {chosen.value}", venue_timeframes(chosen))
    stdout().print(table)


app.command("serve")(serve)
app.command("sim")(sim)
app.command("bootstrap")(bootstrap)
app.add_typer(gaps, name="gaps")
app.command("import")(import_archives)


def _fail(error: CandlevaultError) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(USAGE_ERROR)


def _settings_table(settings: Settings, origins: dict[str, str]) -> Table:
    from candlevault.config import env_name

    origin_of = {env_name(field): origin for field, origin in origins.items()}
    table = Table("Setting", "Value", "From")
    for variable, value in settings.describe():
        table.add_row(Text(variable), Text(value), Text(origin_of[variable]))
    return table


def _timeframes_table(
    title: str, timeframes: tuple[Timeframe, ...], *, with_venues: bool = False
) -> Table:
    table = Table("Code", "Bybit", "Duration", "Buckets open", title=title)
    if with_venues:
        table.add_column("Venues")
    for tf in timeframes:
        row = [tf.code, tf.bybit_code or "-", _duration(tf), _alignment(tf)]
        if with_venues:
            row.append(_venues_of(tf))
        table.add_row(*(Text(cell) for cell in row))
    return table


def _duration(tf: Timeframe) -> str:
    if tf.kind is GridKind.MONTH:
        return "1 calendar month (28 to 31 days)"
    unit_ms, unit = next((ms, name) for ms, name in _UNITS if tf.duration_ms % ms == 0)
    count = tf.duration_ms // unit_ms
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _alignment(tf: Timeframe) -> str:
    if tf.kind is GridKind.MONTH:
        return "on the 1st of the month, 00:00 UTC"
    if tf.kind is GridKind.LISTING:
        return "from the symbol's listing day (its first daily candle), 00:00 UTC"
    if tf.origin_ms:
        weekday = datetime.fromtimestamp(tf.origin_ms / 1000, UTC).strftime("%A")
        return f"on {weekday}s, 00:00 UTC"
    return "on the UTC epoch grid (every day starts a bucket at 00:00)"


def _venues_of(tf: Timeframe) -> str:
    venues = [v.value for v in Venue if tf in venue_timeframes(v)]
    return "all" if len(venues) == len(Venue) else ", ".join(venues)
