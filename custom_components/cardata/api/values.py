"""Tolerant parsing of the values and timestamps BMW sends over REST and the stream.

BMW quotes numbers in REST payloads but not always in the stream, marks missing data
with `-NA-` or `INVALID`, encodes booleans as `ASN_isTrue`/`ASN_isFalse` or as strings,
and formats timestamps in several ways. Every function here accepts any JSON-like input
and never raises, except `decode_json`, which raises ValueError for a body that is not JSON.

Everything BMW sends goes through `decode_json`, which keeps only what JSON can store again:
Home Assistant writes our state and every entity's restore data as JSON, and one value it
cannot write (an integer beyond 64 bits, a lone surrogate, NaN) would stop those writes for
every integration. So the parse repairs such values instead of passing them on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
import json
import logging
import math
import re
import time
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

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
# Texts longer than this are never numbers (and a regular expression over a megabyte of
# digits would take seconds).
_MAX_NUMBER_LENGTH: Final = 400
# Integers JSON stores everywhere (Home Assistant's orjson refuses wider ones).
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
# Objects and arrays nested deeper than this are cut off (replaced by null): no BMW payload
# nests more than a few levels, and the JSON writers refuse deep nesting.
MAX_JSON_DEPTH: Final = 32
# Code points that are only half a UTF-16 pair: no UTF-8 file can hold them.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# One log line about repaired input per this many seconds at most: a broken sender must
# not flood the log.
_REPAIR_LOG_INTERVAL: Final = 3600.0
# Numbers above this are read as epoch milliseconds rather than seconds.
_EPOCH_MILLIS_THRESHOLD = 100_000_000_000


class _Repairs:
    """What `decode_json` repaired in one body, for the log line."""

    __slots__ = ("kinds",)

    def __init__(self) -> None:
        self.kinds: set[str] = set()


_last_repair_log: float | None = None


def _log_repairs(kinds: set[str], context: str) -> None:
    """Say once an hour that values were repaired; never what they were (no secrets)."""
    global _last_repair_log  # noqa: PLW0603 - one rate limit for the whole process
    now = time.monotonic()
    if _last_repair_log is not None and now - _last_repair_log < _REPAIR_LOG_INTERVAL:
        return
    _last_repair_log = now
    _LOGGER.warning(
        "BMW sent values JSON cannot store in %s (%s); they were replaced "
        "(further ones within the hour are not logged)",
        context,
        ", ".join(sorted(kinds)),
    )


def decode_json(body: bytes | str, *, context: str = "a message") -> Any:
    """Decode JSON from BMW into values that JSON can store again.

    - NaN, Infinity and numbers beyond a float's range become null;
    - integers beyond 64 bits become floats (null if beyond a float's range too);
    - lone surrogates (half a UTF-16 pair, such as U+D800) become U+FFFD, in
      keys and in values;
    - objects and arrays nested deeper than MAX_JSON_DEPTH become null.

    Raises ValueError (json.JSONDecodeError, UnicodeDecodeError) when `body` is not
    JSON, also when it nests too deeply for the decoder. `context` names the source in
    the (rate-limited) warning about repaired values.
    """
    repairs = _Repairs()
    try:
        decoded = json.loads(
            body,
            parse_constant=_constant_hook(repairs),
            parse_float=_float_hook(repairs),
            parse_int=_int_hook(repairs),
        )
    except RecursionError as err:
        raise ValueError("JSON nested too deeply") from err
    result = _sanitise(decoded, repairs)
    if repairs.kinds:
        _log_repairs(repairs.kinds, context)
    return result


def _constant_hook(repairs: _Repairs) -> Callable[[str], None]:
    def parse(_text: str) -> None:
        repairs.kinds.add("NaN or Infinity")

    return parse


def _float_hook(repairs: _Repairs) -> Callable[[str], float | None]:
    def parse(text: str) -> float | None:
        number = float(text)
        if math.isfinite(number):
            return number
        repairs.kinds.add("number out of range")
        return None

    return parse


def _int_hook(repairs: _Repairs) -> Callable[[str], int | float | None]:
    def parse(text: str) -> int | float | None:
        if len(text) <= _MAX_NUMBER_LENGTH:
            number = int(text)
            if _INT64_MIN <= number <= _INT64_MAX:
                return number
        repairs.kinds.add("integer beyond 64 bits")
        approximation = float(text)
        return approximation if math.isfinite(approximation) else None

    return parse


def _clean_text(text: str, repairs: _Repairs) -> str:
    if _LONE_SURROGATE.search(text) is None:
        return text
    repairs.kinds.add("lone surrogate")
    return _LONE_SURROGATE.sub("\ufffd", text)


def _sanitise(decoded: Any, repairs: _Repairs) -> Any:
    """Repair texts and cut off deep nesting, without recursion (any depth is safe)."""
    if isinstance(decoded, str):
        return _clean_text(decoded, repairs)
    if not isinstance(decoded, dict | list):
        return decoded
    root: list[Any] = [None]
    # (container to fill, key or index in it, value to place, depth of that value)
    pending: list[tuple[Any, Any, Any, int]] = [(root, 0, decoded, 1)]
    while pending:
        target, slot, value, depth = pending.pop()
        if isinstance(value, str):
            target[slot] = _clean_text(value, repairs)
        elif isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
            repairs.kinds.add("nesting too deep")
            target[slot] = None
        elif isinstance(value, dict):
            copy: dict[str, Any] = {}
            for key, item in value.items():
                clean_key = _clean_text(key, repairs)
                copy[clean_key] = None
                pending.append((copy, clean_key, item, depth + 1))
            target[slot] = copy
        elif isinstance(value, list):
            items: list[Any] = [None] * len(value)
            pending.extend((items, index, item, depth + 1) for index, item in enumerate(value))
            target[slot] = items
        else:
            target[slot] = value
    return root[0]


def parse_value(raw: Any) -> ParsedValue:
    """Turn a value BMW sent into a Python scalar.

    Numbers (quoted or not) become int or float, boolean markers become bool, the
    markers for "no value" become None, other strings stay strings. Lists and objects
    become their compact JSON text.
    """
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return _storable_int(raw)
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, str):
        return _parse_text(raw)
    try:
        return json.dumps(raw, separators=(",", ":"), sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
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
    if text.isascii() and len(text) <= _MAX_NUMBER_LENGTH:
        if _INTEGER.fullmatch(text):
            return _storable_int(int(text))
        if _DECIMAL.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
    return raw


def _storable_int(number: int) -> int | float | None:
    """Return an integer JSON can store: a float beyond 64 bits, None beyond a float."""
    if _INT64_MIN <= number <= _INT64_MAX:
        return number
    try:
        return float(number)
    except OverflowError:
        return None


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
    try:
        if abs(number) >= _EPOCH_MILLIS_THRESHOLD:
            number = number / 1000
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
