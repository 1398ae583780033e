"""Settings: every knob of candlevault in one frozen object, read once at start-up.

Sources, strongest first: keyword overrides given to `load_settings` (tests, CLI flags),
`CANDLEVAULT_*` environment variables, a TOML file (the path in `$CANDLEVAULT_CONFIG`,
else `./candlevault.toml` when it exists; keys are the field names, e.g.
`data_dir = "/var/lib/candlevault"`), then the defaults written below.

Key decisions:

- Values are parsed by the same domain parsers the API uses (`parse_instrument`,
  `parse_venue`, `parse_time_ms`), so `BTC/USDT` is refused in the same words whether it
  comes from an environment variable or from a request.
- Every failure becomes one `ConfigError` whose lines each name the environment variable
  (and the TOML key and file when the value came from there), so a bad setting stops the
  start-up with a line an operator can act on. URLs are quoted with passwords masked.
- Endpoints are bases without a trailing slash, to which clients append paths; pointing
  them at the simulator is how a test or a demo runs without the real exchanges.
- `symbols` is a comma-separated string in the environment (`NoDecode`: no JSON), a
  string or an array of strings in TOML. Unqualified symbols take `default_venue`.
- Redis and MongoDB are used only when their URL is set; otherwise the embedded engines
  (SQLite under `data_dir`, an in-process cache) serve.
- Empty environment variables count as unset (`CANDLEVAULT_REDIS_URL=` turns Redis off
  without having to remove the line), while unknown `CANDLEVAULT_*` variables are ignored.
  Unknown keys in the TOML file are an error: there a typo is the likely cause.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from candlevault.domain.durations import parse_per_timeframe
from candlevault.domain.errors import BadValue, CandlevaultError, ConfigError
from candlevault.domain.symbols import Instrument, parse_instrument
from candlevault.domain.times import format_time_ms, parse_time_ms
from candlevault.domain.venues import Venue, parse_venue

ENV_PREFIX = "CANDLEVAULT_"
CONFIG_ENV = "CANDLEVAULT_CONFIG"
DEFAULT_CONFIG_FILE = "candlevault.toml"

_HTTP = ("http", "https")
_WS = ("ws", "wss")
_REDIS = ("redis", "rediss", "unix")
_MONGO = ("mongodb", "mongodb+srv")
_MASK = "********"
_SERVICE_URLS = frozenset({"redis_url", "mongo_url"})


class Settings(BaseSettings):
    """The effective configuration; build it with `load_settings`, which names bad settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    data_dir: Path = Path("data")
    redis_url: str | None = None
    mongo_url: str | None = None

    binance_rest_url: str = "https://api.binance.com"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_usdm_rest_url: str = "https://fapi.binance.com"
    binance_usdm_ws_url: str = "wss://fstream.binance.com"
    binance_archive_url: str = "https://data.binance.vision"
    bybit_rest_url: str = "https://api.bybit.com"
    bybit_ws_url: str = "wss://stream.bybit.com"

    # default_venue comes before symbols: the symbols validator reads it.
    default_venue: Venue = Venue.BINANCE
    symbols: Annotated[tuple[Instrument, ...], NoDecode] = ()
    clock_url: str | None = None
    bootstrap_since: int | None = None
    admin_token: SecretStr | None = None

    redis_prefix: str = "cv:"
    hot_retention: str = ""  # overrides such as "1m=48h,1d=2y" (cache.retention)
    forming_ttl_s: float = 3.0  # how long a fetched open candle serves before a refresh
    gap_monitor_s: float = 300.0  # how often serve repairs the tracked symbols' gaps
    gap_settle_s: float = 120.0  # minutes this recent are left to the read path's refreshes
    clock_sync_s: float = 60.0  # how often the exchange clocks' offsets are measured again
    # serve streams its tracked symbols' trades (and 1m klines) over WebSocket
    streams: bool = True
    stream_klines: bool = True  # follow the venue's 1m klines: reconcile, settle, provisional
    stream_silence_s: float = 30.0  # a socket with no frame this long (wall) is reconnected
    stream_grace_s: float = 2.0  # exchange time a minute stays open for late trades

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Keep passwords in the Redis and MongoDB URLs out of logs and tracebacks."""
        for name, value in super().__repr_args__():
            masked = name in _SERVICE_URLS and isinstance(value, str)
            yield name, redact_url(value) if masked else value

    @property
    def bybit_spot_ws_url(self) -> str:
        """Return Bybit's public spot stream endpoint under `bybit_ws_url`."""
        return f"{self.bybit_ws_url}/v5/public/spot"

    @property
    def bybit_linear_ws_url(self) -> str:
        """Return Bybit's public linear (USDT perpetual and futures) stream endpoint."""
        return f"{self.bybit_ws_url}/v5/public/linear"

    def describe(self) -> list[tuple[str, str]]:
        """Return (environment variable, display value) per setting: secrets masked,
        the data dir made absolute."""
        return [
            (env_name(name), _display(name, getattr(self, name)))
            for name in type(self).model_fields
        ]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read overrides, then the environment, then the TOML file if there is one."""
        path = config_file()
        if path is None:
            return (init_settings, env_settings)
        _read_toml(path)  # fails with a ConfigError naming the file and the bad key
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path))

    @field_validator(
        "binance_rest_url", "binance_usdm_rest_url", "binance_archive_url", "bybit_rest_url"
    )
    @classmethod
    def _check_rest_url(cls, value: str) -> str:
        return _base_url(value, _HTTP)

    @field_validator("binance_ws_url", "binance_usdm_ws_url", "bybit_ws_url")
    @classmethod
    def _check_ws_url(cls, value: str) -> str:
        return _base_url(value, _WS)

    @field_validator("redis_url", "mongo_url", "clock_url", "admin_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clock_url")
    @classmethod
    def _check_clock_url(cls, value: str | None) -> str | None:
        return None if value is None else _base_url(value, _HTTP)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return None if value is None else _service_url(value, _REDIS)

    @field_validator("mongo_url")
    @classmethod
    def _check_mongo_url(cls, value: str | None) -> str | None:
        return None if value is None else _service_url(value, _MONGO)

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("hot_retention")
    @classmethod
    def _check_retention(cls, value: str) -> str:
        try:
            parse_per_timeframe(value)
        except CandlevaultError as e:
            raise _invalid(e) from e
        return value

    @field_validator(
        "forming_ttl_s",
        "gap_monitor_s",
        "gap_settle_s",
        "clock_sync_s",
        "stream_silence_s",
        "stream_grace_s",
    )
    @classmethod
    def _check_seconds(cls, value: float) -> float:
        if not value > 0:
            raise _invalid(BadValue("seconds", value, "expected a positive number"))
        return value

    @field_validator("default_venue", mode="before")
    @classmethod
    def _parse_venue(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return parse_venue(value)
        except CandlevaultError as e:
            raise _invalid(e) from e

    @field_validator("symbols", mode="before")
    @classmethod
    def _parse_symbols(cls, value: object, info: ValidationInfo) -> tuple[Instrument, ...]:
        # A bad default_venue is reported on its own; symbols are still checked meanwhile.
        default = info.data.get("default_venue", Venue.BINANCE)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise _invalid(BadValue("symbols", value, "expected a comma-separated string"))
        found: dict[Instrument, None] = {}  # ordered, without duplicates
        for item in items:
            if isinstance(item, Instrument):
                found[item] = None
            elif not isinstance(item, str):
                raise _invalid(BadValue("symbol", item, "expected a string"))
            elif item.strip():
                try:
                    found[parse_instrument(item, default)] = None
                except CandlevaultError as e:
                    raise _invalid(e) from e
        return tuple(found)

    @field_validator("bootstrap_since", mode="before")
    @classmethod
    def _parse_since(cls, value: object) -> int | None:
        try:
            return _since_ms(value)
        except CandlevaultError as e:
            raise _invalid(e) from e


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from overrides, environment, TOML and defaults, or raise ConfigError."""
    unknown = sorted(overrides.keys() - Settings.model_fields.keys())
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_explain(e, overrides)) from e


def config_file() -> Path | None:
    """Return the TOML file to read: `$CANDLEVAULT_CONFIG`, else ./candlevault.toml if present."""
    explicit = os.environ.get(CONFIG_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}: no such file {explicit!r}")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def setting_origins(**overrides: Any) -> dict[str, str]:
    """Return where each setting's value comes from: override, env, the TOML file or default."""
    from_env = EnvSettingsSource(Settings)()
    path = config_file()
    from_toml = _read_toml(path) if path is not None else {}
    origins = {}
    for name in Settings.model_fields:
        if name in overrides:
            origins[name] = "override"
        elif name in from_env:
            origins[name] = "env"
        elif name in from_toml:
            origins[name] = str(path)
        else:
            origins[name] = "default"
    return origins


def env_name(field: str) -> str:
    """Return the environment variable of a settings field ('data_dir' -> CANDLEVAULT_DATA_DIR)."""
    return ENV_PREFIX + field.upper()


def redact_url(url: str) -> str:
    """Return `url` with its password (in the user part or a `password=` query) masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}:{_MASK}@{host}"
    query = parts.query
    if "password=" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, _MASK if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from e
    unknown = sorted(data.keys() - Settings.model_fields.keys())
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(Settings.model_fields)}"
        )
    return data


def _explain(error: ValidationError, overrides: dict[str, Any]) -> str:
    try:
        origins = setting_origins(**overrides)
    except ConfigError:
        origins = {}
    lines = []
    for detail in error.errors(include_url=False, include_input=False):
        field = str(detail["loc"][0]) if detail["loc"] else ""
        where = env_name(field) if field else "settings"
        origin = origins.get(field, "")
        if origin not in ("", "env", "default", "override"):
            where += f" ({field} in {origin})"
        lines.append(f"{where}: {detail['msg']}")
    return "\n".join(lines)


def _invalid(error: CandlevaultError) -> PydanticCustomError:
    # A custom error keeps our message verbatim (no "Value error, " prefix).
    return PydanticCustomError("candlevault", "{reason}", {"reason": str(error)})


def _base_url(value: str, schemes: tuple[str, ...]) -> str:
    """Check a URL that paths get appended to and return it without a trailing slash."""
    text = value.strip()
    expected = f"expected a URL starting with {_either(schemes)}, with a host"
    try:
        parts = urlsplit(text)
        ok = parts.scheme.lower() in schemes and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts, ok = urlsplit(""), False
    if not ok:
        raise _invalid(BadValue("URL", redact_url(text), expected))
    if parts.query or parts.fragment:
        raise _invalid(BadValue("URL", redact_url(text), "expected no query or fragment"))
    return text.rstrip("/")


def _service_url(value: str, schemes: tuple[str, ...]) -> str:
    """Check a Redis or MongoDB connection URL (its driver parses the rest)."""
    text = value.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = urlsplit("")
    scheme = parts.scheme.lower()
    # unix:// names a socket by its path; every other scheme needs a host.
    ok = scheme in schemes and bool(parts.path if scheme == "unix" else parts.netloc)
    if not ok:
        expected = f"expected a URL starting with {_either(schemes)}"
        raise _invalid(BadValue("URL", redact_url(text), expected))
    return text


def _either(schemes: tuple[str, ...]) -> str:
    names = [f"{s}://" for s in schemes]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _since_ms(value: object) -> int | None:
    """Turn a date (string, epoch ms, TOML date or date-time) into epoch ms."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        ms = parse_time_ms(value)
    elif isinstance(value, date):  # TOML dates and date-times; naive means UTC
        ms = parse_time_ms(value.isoformat())
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise BadValue("date", value, "expected YYYY-MM-DD, an ISO date-time or epoch ms")
    if ms < 0:
        raise BadValue("date", value, "expected a time after 1970-01-01")
    return ms


def _display(name: str, value: object) -> str:
    if value is None:
        return "(each symbol's inception)" if name == "bootstrap_since" else "(unset)"
    if name == "bootstrap_since" and isinstance(value, int):
        return f"{format_time_ms(value)} ({value})"
    if isinstance(value, SecretStr):
        return _MASK
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value) or "(none)"
    if isinstance(value, Path):
        return str(value.absolute())
    if isinstance(value, Venue):
        return value.value
    if isinstance(value, str):
        return redact_url(value)
    return str(value)
