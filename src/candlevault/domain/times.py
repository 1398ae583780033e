"""Parsing and writing UTC instants as epoch milliseconds.

Accepted: an epoch in ms (digits), an ISO date ('2017-08-17', meaning 00:00 UTC) or an
ISO date-time ('2017-08-17T12:00', '...Z', '...+02:00'); naive times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from candlevault.domain.errors import BadValue

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time_ms(text: str) -> int:
    """Parse an epoch-ms integer or an ISO date/date-time into epoch milliseconds."""
    value = text.strip() if isinstance(text, str) else ""
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(
            "date", text, "expected YYYY-MM-DD, an ISO date-time or epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_time_ms(ms: int) -> str:
    """Write epoch milliseconds as an ISO UTC date-time ('2017-08-17T04:00:00Z')."""
    seconds, millis = divmod(ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
