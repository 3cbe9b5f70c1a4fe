"""Tolerant parsing of the values and timestamps BMW sends over REST and the stream.

BMW quotes numbers in REST payloads but not always in the stream, marks missing data
with `-NA-` or `INVALID`, encodes booleans as `ASN_isTrue`/`ASN_isFalse` or as strings,
and formats timestamps in several ways. Every function here accepts any JSON-like input
and never raises.
"""

from __future__ import annotations

from datetime import UTC, datetime
import json
import math
import re
from typing import Any

type ParsedValue = str | int | float | bool | None

# Markers that mean "the car has no valid value" rather than a value to show.
_NO_VALUE_MARKERS = frozenset({"-NA-", "INVALID", "ASN_isUnknown"})
_BOOLEAN_MARKERS = {
    "ASN_isTrue": True,
    "ASN_isFalse": False,
    "true": True,
    "false": False,
}
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Python's int() refuses very long digit strings; keep those as text instead.
_MAX_INTEGER_DIGITS = 4000
# Numbers above this are read as epoch milliseconds rather than seconds.
_EPOCH_MILLIS_THRESHOLD = 100_000_000_000


def parse_value(raw: Any) -> ParsedValue:
    """Turn a value BMW sent into a Python scalar.

    Numbers (quoted or not) become int or float, boolean markers become bool, the
    markers for "no value" become None, other strings stay strings. Lists and objects
    become their compact JSON text.
    """
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, str):
        return _parse_text(raw)
    try:
        return json.dumps(raw, separators=(",", ":"), sort_keys=True, default=str)
    except (TypeError, ValueError):
        # Circular or otherwise unserialisable structures: keep a readable form.
        return str(raw)


def _parse_text(raw: str) -> ParsedValue:
    """Parse a string value; see parse_value."""
    text = raw.strip()
    if not text or text in _NO_VALUE_MARKERS:
        return None
    lowered = text if text.startswith("ASN_") else text.lower()
    if lowered in _BOOLEAN_MARKERS:
        return _BOOLEAN_MARKERS[lowered]
    if text.isascii():
        if _INTEGER.fullmatch(text) and len(text) <= _MAX_INTEGER_DIGITS:
            return int(text)
        if _DECIMAL.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
    return raw


def parse_timestamp(raw: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp or epoch number into an aware UTC datetime.

    Accepts `Z`, `+0000` and `+00:00` offsets, with or without fractional seconds;
    a timestamp without offset is taken as UTC. Numbers are epoch seconds (or
    milliseconds when too large to be seconds). Anything else gives None.
    """
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, bool):
        return None
    elif isinstance(raw, int | float):
        return parse_epoch(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text or not text.isascii():
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def parse_epoch(raw: Any) -> datetime | None:
    """Parse epoch seconds (or milliseconds), quoted or not, into an aware UTC datetime."""
    number = parse_value(raw) if isinstance(raw, str) else raw
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    if abs(number) >= _EPOCH_MILLIS_THRESHOLD:
        number = number / 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def as_str(raw: Any) -> str | None:
    """Return a non-empty string, or the text of a number; None otherwise."""
    if isinstance(raw, str):
        return raw if raw.strip() else None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    return None


def as_int(raw: Any) -> int | None:
    """Return an integer from a number or a quoted number; None otherwise."""
    value = parse_value(raw)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_float(raw: Any) -> float | None:
    """Return a float from a number or a quoted number; None otherwise."""
    value = parse_value(raw)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def as_bool(raw: Any) -> bool | None:
    """Return a bool from a JSON boolean or a boolean marker string; None otherwise."""
    value = parse_value(raw)
    return value if isinstance(value, bool) else None
