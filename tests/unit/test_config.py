"""Settings: defaults, env over TOML over defaults, symbol parsing, and errors that name
the environment variable of the bad setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from candlevault.config import load_settings, setting_origins
from candlevault.domain.errors import ConfigError
from candlevault.domain.symbols import Instrument
from candlevault.domain.venues import Venue


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each test without CANDLEVAULT_* variables, in an empty working directory."""
    for name in list(os.environ):
        if name.upper().startswith("CANDLEVAULT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    return str(caught.value)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.redis_url is None
    assert settings.mongo_url is None
    assert settings.binance_rest_url == "https://api.binance.com"
    assert settings.binance_ws_url == "wss://stream.binance.com:9443"
    assert settings.binance_usdm_rest_url == "https://fapi.binance.com"
    assert settings.binance_usdm_ws_url == "wss://fstream.binance.com"
    assert settings.binance_archive_url == "https://data.binance.vision"
    assert settings.bybit_rest_url == "https://api.bybit.com"
    assert settings.bybit_ws_url == "wss://stream.bybit.com"
    assert settings.symbols == ()
    assert settings.default_venue is Venue.BINANCE
    assert settings.clock_url is None
    assert settings.bootstrap_since is None
    assert settings.admin_token is None
    assert set(setting_origins().values()) == {"default"}


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANDLEVAULT_DATA_DIR", str(tmp_path / "candles"))
    monkeypatch.setenv("CANDLEVAULT_REDIS_URL", "redis://localhost:6379/2")
    monkeypatch.setenv("CANDLEVAULT_MONGO_URL", "mongodb+srv://cluster.example.net/candles")
    monkeypatch.setenv("CANDLEVAULT_BINANCE_REST_URL", "http://127.0.0.1:8900/")
    monkeypatch.setenv("CANDLEVAULT_BINANCE_USDM_WS_URL", "ws://127.0.0.1:8901/")
    monkeypatch.setenv("CANDLEVAULT_DEFAULT_VENUE", "BYBIT-SPOT")
    monkeypatch.setenv("CANDLEVAULT_CLOCK_URL", "http://127.0.0.1:8900/_sim/clock")
    monkeypatch.setenv("CANDLEVAULT_BOOTSTRAP_SINCE", "2020-01-01")
    monkeypatch.setenv("CANDLEVAULT_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("CANDLEVAULT_NOT_A_SETTING", "ignored")

    settings = load_settings()

    assert settings.data_dir == tmp_path / "candles"
    assert settings.redis_url == "redis://localhost:6379/2"
    assert settings.mongo_url == "mongodb+srv://cluster.example.net/candles"
    assert settings.binance_rest_url == "http://127.0.0.1:8900"
    assert settings.binance_usdm_ws_url == "ws://127.0.0.1:8901"
    assert settings.default_venue is Venue.BYBIT_SPOT
    assert settings.clock_url == "http://127.0.0.1:8900/_sim/clock"
    assert settings.bootstrap_since == 1_577_836_800_000
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret"
    assert setting_origins()["redis_url"] == "env"


def test_empty_env_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEVAULT_REDIS_URL", "")
    monkeypatch.setenv("CANDLEVAULT_DATA_DIR", "")
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.data_dir == Path("data")


def test_toml_file_named_by_candlevault_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "etc" / "vault.toml"
    path.parent.mkdir()
    path.write_text(
        'data_dir = "/srv/candles"\n'
        'bybit_ws_url = "ws://127.0.0.1:9100"\n'
        'symbols = ["BTCUSDT", "bybit-linear:ETHUSDT"]\n'
        "bootstrap_since = 2021-03-01\n"
    )
    monkeypatch.setenv("CANDLEVAULT_CONFIG", str(path))

    settings = load_settings()

    assert settings.data_dir == Path("/srv/candles")
    assert settings.bybit_ws_url == "ws://127.0.0.1:9100"
    assert settings.symbols == (
        Instrument(Venue.BINANCE, "BTCUSDT"),
        Instrument(Venue.BYBIT_LINEAR, "ETHUSDT"),
    )
    assert settings.bootstrap_since == 1_614_556_800_000
    assert setting_origins()["data_dir"] == str(path)


def test_toml_file_in_working_directory(tmp_path: Path) -> None:
    (tmp_path / "candlevault.toml").write_text('redis_url = "unix:///run/redis.sock"\n')
    assert load_settings().redis_url == "unix:///run/redis.sock"


def test_env_beats_toml_and_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("candlevault.toml").write_text(
        'data_dir = "from-toml"\nbinance_rest_url = "http://toml.example"\n'
    )
    monkeypatch.setenv("CANDLEVAULT_DATA_DIR", "from-env")

    settings = load_settings()
    assert settings.data_dir == Path("from-env")
    assert settings.binance_rest_url == "http://toml.example"
    assert load_settings(data_dir=Path("from-override")).data_dir == Path("from-override")


def test_symbols_comma_separated_with_venues_and_dated_contracts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CANDLEVAULT_SYMBOLS",
        "BTCUSDT_250328, binance-usdm:BTCUSDT,bybit-linear:BTCUSDT-14AUG26, ethusdt,",
    )
    assert load_settings().symbols == (
        Instrument(Venue.BINANCE, "BTCUSDT_250328"),
        Instrument(Venue.BINANCE_USDM, "BTCUSDT"),
        Instrument(Venue.BYBIT_LINEAR, "BTCUSDT-14AUG26"),
        Instrument(Venue.BINANCE, "ETHUSDT"),
    )


def test_unqualified_symbols_take_the_default_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEVAULT_DEFAULT_VENUE", "bybit-spot")
    monkeypatch.setenv("CANDLEVAULT_SYMBOLS", "BTCUSDT,binance:BTCUSDT,btcusdt")
    assert load_settings().symbols == (
        Instrument(Venue.BYBIT_SPOT, "BTCUSDT"),
        Instrument(Venue.BINANCE, "BTCUSDT"),
    )


def test_bybit_ws_endpoints_hang_off_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    default = load_settings()
    assert default.bybit_spot_ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert default.bybit_linear_ws_url == "wss://stream.bybit.com/v5/public/linear"

    monkeypatch.setenv("CANDLEVAULT_BYBIT_WS_URL", "ws://127.0.0.1:9100/bybit/")
    simulated = load_settings()
    assert simulated.bybit_spot_ws_url == "ws://127.0.0.1:9100/bybit/v5/public/spot"
    assert simulated.bybit_linear_ws_url == "ws://127.0.0.1:9100/bybit/v5/public/linear"


def test_bad_symbol_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEVAULT_SYMBOLS", "BTCUSDT,BTC/USDT")
    assert _config_error() == (
        "CANDLEVAULT_SYMBOLS: invalid symbol 'BTC/USDT': expected 1 to 32 of A-Z, 0-9, '_' or '-'"
    )


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("CANDLEVAULT_SYMBOLS", "nope:BTCUSDT", "invalid venue 'nope'"),
        ("CANDLEVAULT_SYMBOLS", "BTCUSDT_" + "X" * 30, "invalid symbol"),
        ("CANDLEVAULT_DEFAULT_VENUE", "okx", "invalid venue 'okx'"),
        ("CANDLEVAULT_BINANCE_REST_URL", "ftp://api.binance.com", "invalid URL"),
        ("CANDLEVAULT_BINANCE_REST_URL", "api.binance.com", "invalid URL"),
        ("CANDLEVAULT_BINANCE_ARCHIVE_URL", "wss://data.binance.vision", "invalid URL"),
        ("CANDLEVAULT_BYBIT_REST_URL", "https://api.bybit.com?x=1", "no query"),
        ("CANDLEVAULT_BINANCE_WS_URL", "https://stream.binance.com", "ws:// or wss://"),
        ("CANDLEVAULT_BYBIT_WS_URL", "wss://", "invalid URL"),
        ("CANDLEVAULT_CLOCK_URL", "ws://127.0.0.1:8900/_sim/clock", "http:// or https://"),
        ("CANDLEVAULT_BOOTSTRAP_SINCE", "last tuesday", "invalid date 'last tuesday'"),
        ("CANDLEVAULT_BOOTSTRAP_SINCE", "1960-01-01", "after 1970-01-01"),
        ("CANDLEVAULT_REDIS_URL", "http://localhost:6379", "redis://, rediss:// or unix://"),
        ("CANDLEVAULT_REDIS_URL", "redis://", "invalid URL"),
        ("CANDLEVAULT_MONGO_URL", "postgres://localhost/db", "mongodb:// or mongodb+srv://"),
    ],
)
def test_each_bad_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = _config_error()
    assert message.startswith(f"{variable}: ")
    assert reason in message


def test_every_bad_setting_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEVAULT_SYMBOLS", "BTC/USDT")
    monkeypatch.setenv("CANDLEVAULT_MONGO_URL", "mysql://db")
    lines = _config_error().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == [
        "CANDLEVAULT_MONGO_URL",
        "CANDLEVAULT_SYMBOLS",
    ]


def test_url_passwords_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEVAULT_REDIS_URL", "http://:hunter2@localhost:6379")
    message = _config_error()
    assert "hunter2" not in message
    assert "localhost:6379" in message

    monkeypatch.setenv("CANDLEVAULT_REDIS_URL", "rediss://app:hunter2@cache.example:6380/0")
    settings = load_settings()
    assert settings.redis_url == "rediss://app:hunter2@cache.example:6380/0"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.describe())


def test_admin_token_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEVAULT_ADMIN_TOKEN", "s3cret-token")
    settings = load_settings()
    described = dict(settings.describe())
    assert described["CANDLEVAULT_ADMIN_TOKEN"] == "********"
    assert "s3cret-token" not in repr(settings)
    assert "s3cret-token" not in str(described)


def test_bad_value_in_toml_names_variable_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "candlevault.toml").write_text('symbols = "BTCUSDT, BTC/USDT"\n')
    message = _config_error()
    assert message.startswith("CANDLEVAULT_SYMBOLS (symbols in candlevault.toml): ")
    assert "'BTC/USDT'" in message


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "candlevault.toml").write_text('data_directory = "x"\n')
    assert "unknown setting(s) data_directory" in _config_error()


def test_malformed_toml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "candlevault.toml").write_text("data_dir = \n")
    assert _config_error().startswith("candlevault.toml: ")


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANDLEVAULT_CONFIG", str(tmp_path / "missing.toml"))
    assert _config_error().startswith("CANDLEVAULT_CONFIG: no such file")


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="datadir"):
        load_settings(datadir="x")
