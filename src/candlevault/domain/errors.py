"""The one error hierarchy of candlevault.

Every failure a caller may handle derives from `CandlevaultError`; the API maps each
class to an HTTP status in one exception handler, so the classes say *what kind* of
failure it is (the caller's fault, a missing thing, a retryable exchange problem),
not where it happened.
"""

from __future__ import annotations


class CandlevaultError(Exception):
    """Base of every error candlevault raises on purpose."""


class BadRequest(CandlevaultError):
    """The caller asked for something malformed or impossible (HTTP 400)."""


class BadValue(BadRequest):
    """One input value failed to parse; the message names the value and what was expected."""

    def __init__(self, kind: str, value: object, expected: str) -> None:
        self.kind = kind
        self.value = value
        self.expected = expected
        super().__init__(f"invalid {kind} {value!r}: {expected}")


class NotFound(CandlevaultError):
    """The thing asked for does not exist (HTTP 404)."""


class ConfigError(CandlevaultError):
    """A setting is missing or malformed; raised at start-up, naming the setting."""


class StorageError(CandlevaultError):
    """The warm store failed or holds something it must not (a conflicting candle)."""


class ExchangeError(CandlevaultError):
    """Base of every failure talking to an exchange."""


class ExchangeUnavailable(ExchangeError):
    """Retryable: 5xx, time-out, broken connection; `retry_after` seconds if the venue said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ExchangeRejected(ExchangeError):
    """The exchange refused the request or sent a malformed reply; retrying will not help."""


class RateLimited(ExchangeUnavailable):
    """The venue said slow down (HTTP 429); wait `retry_after` seconds."""


class Banned(ExchangeUnavailable):
    """The venue banned this IP (Binance 418, Bybit 403); nothing may be sent until it ends."""
