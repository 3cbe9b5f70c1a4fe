"""From BMW's units and values to Home Assistant's units and entity states.

BMW spells units as words (`percent`, `Celsius`, `weeks`) or symbols (`%`, `kPa`, `km`),
often leaves the unit out, and now and then tags a distance with `miles` in the middle of
kilometre readings. Entities keep one native unit; every value is converted into it, so a
unit flip does not show up as a jump in the state. Enumerations are looked up in value
maps by a normalised token, and BMW's date formats and service list are parsed here too.

Raw values arrive already parsed by `api.values.parse_value` (quoted numbers, booleans,
`ASN_*` markers, `-NA-`, `INVALID` and null handled there). Nothing here raises on odd
input: an unexpected value gives None (unknown) and one debug log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
import logging
import re
from typing import Any, Final

from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import (
    DEGREE,
    PERCENTAGE,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfLength,
    UnitOfPower,
    UnitOfPressure,
    UnitOfSpeed,
    UnitOfTemperature,
    UnitOfTime,
    UnitOfVolume,
)
from homeassistant.util.unit_conversion import (
    BaseUnitConverter,
    DistanceConverter,
    DurationConverter,
    ElectricCurrentConverter,
    ElectricPotentialConverter,
    EnergyConverter,
    PowerConverter,
    PressureConverter,
    SpeedConverter,
    TemperatureConverter,
    VolumeConverter,
)

from .api.values import ParsedValue, decode_json, parse_timestamp

_LOGGER = logging.getLogger(__name__)

type Number = int | float

# BMW's unit spellings, lower-cased, to Home Assistant units. The enum members (not their
# text) are kept on purpose: UnitOfTime.MONTHS and UnitOfLength.METERS are both "m".
_UNITS: Final[dict[str, str]] = {
    "%": PERCENTAGE,
    "percent": PERCENTAGE,
    "°": DEGREE,
    "deg": DEGREE,
    "degree": DEGREE,
    "degrees": DEGREE,
    "°c": UnitOfTemperature.CELSIUS,
    "c": UnitOfTemperature.CELSIUS,
    "celsius": UnitOfTemperature.CELSIUS,
    "°f": UnitOfTemperature.FAHRENHEIT,
    "f": UnitOfTemperature.FAHRENHEIT,
    "fahrenheit": UnitOfTemperature.FAHRENHEIT,
    "kpa": UnitOfPressure.KPA,
    "bar": UnitOfPressure.BAR,
    "psi": UnitOfPressure.PSI,
    "km": UnitOfLength.KILOMETERS,
    "kilometer": UnitOfLength.KILOMETERS,
    "kilometers": UnitOfLength.KILOMETERS,
    "kilometre": UnitOfLength.KILOMETERS,
    "kilometres": UnitOfLength.KILOMETERS,
    "mi": UnitOfLength.MILES,
    "mile": UnitOfLength.MILES,
    "miles": UnitOfLength.MILES,
    "m": UnitOfLength.METERS,
    "meter": UnitOfLength.METERS,
    "meters": UnitOfLength.METERS,
    "metre": UnitOfLength.METERS,
    "metres": UnitOfLength.METERS,
    "ft": UnitOfLength.FEET,
    "feet": UnitOfLength.FEET,
    "w": UnitOfPower.WATT,
    "watt": UnitOfPower.WATT,
    "kw": UnitOfPower.KILO_WATT,
    "wh": UnitOfEnergy.WATT_HOUR,
    "kwh": UnitOfEnergy.KILO_WATT_HOUR,
    "v": UnitOfElectricPotential.VOLT,
    "volt": UnitOfElectricPotential.VOLT,
    "a": UnitOfElectricCurrent.AMPERE,
    "ampere": UnitOfElectricCurrent.AMPERE,
    "s": UnitOfTime.SECONDS,
    "sec": UnitOfTime.SECONDS,
    "seconds": UnitOfTime.SECONDS,
    "min": UnitOfTime.MINUTES,
    "minutes": UnitOfTime.MINUTES,
    "h": UnitOfTime.HOURS,
    "hours": UnitOfTime.HOURS,
    "d": UnitOfTime.DAYS,
    "days": UnitOfTime.DAYS,
    "weeks": UnitOfTime.WEEKS,
    "months": UnitOfTime.MONTHS,
    "l": UnitOfVolume.LITERS,
    "liter": UnitOfVolume.LITERS,
    "liters": UnitOfVolume.LITERS,
    "litre": UnitOfVolume.LITERS,
    "litres": UnitOfVolume.LITERS,
    "gal": UnitOfVolume.GALLONS,
    "gallons": UnitOfVolume.GALLONS,
    "km/h": UnitOfSpeed.KILOMETERS_PER_HOUR,
    "kmh": UnitOfSpeed.KILOMETERS_PER_HOUR,
    "mph": UnitOfSpeed.MILES_PER_HOUR,
}

# The unit an entity keeps when BMW reports a value in a regional unit: Home Assistant
# converts the metric value for users who prefer imperial units.
_CANONICAL: Final[dict[str, str]] = {
    UnitOfLength.MILES: UnitOfLength.KILOMETERS,
    UnitOfLength.FEET: UnitOfLength.METERS,
    UnitOfVolume.GALLONS: UnitOfVolume.LITERS,
    UnitOfTemperature.FAHRENHEIT: UnitOfTemperature.CELSIUS,
    UnitOfSpeed.MILES_PER_HOUR: UnitOfSpeed.KILOMETERS_PER_HOUR,
    UnitOfPressure.PSI: UnitOfPressure.KPA,
}

_CONVERTERS: Final[dict[type[StrEnum], type[BaseUnitConverter]]] = {
    UnitOfLength: DistanceConverter,
    UnitOfTime: DurationConverter,
    UnitOfElectricCurrent: ElectricCurrentConverter,
    UnitOfElectricPotential: ElectricPotentialConverter,
    UnitOfEnergy: EnergyConverter,
    UnitOfPower: PowerConverter,
    UnitOfPressure: PressureConverter,
    UnitOfSpeed: SpeedConverter,
    UnitOfTemperature: TemperatureConverter,
    UnitOfVolume: VolumeConverter,
}

# Device classes that fit a unit whatever the descriptor measures. Time units are left out
# on purpose: BMW uses `h` and `min` for the clock times of timers, which are no durations.
_DEVICE_CLASSES: Final[dict[type[StrEnum], SensorDeviceClass]] = {
    UnitOfLength: SensorDeviceClass.DISTANCE,
    UnitOfElectricCurrent: SensorDeviceClass.CURRENT,
    UnitOfElectricPotential: SensorDeviceClass.VOLTAGE,
    UnitOfEnergy: SensorDeviceClass.ENERGY,
    UnitOfPower: SensorDeviceClass.POWER,
    UnitOfPressure: SensorDeviceClass.PRESSURE,
    UnitOfSpeed: SensorDeviceClass.SPEED,
    UnitOfTemperature: SensorDeviceClass.TEMPERATURE,
    UnitOfVolume: SensorDeviceClass.VOLUME,
}

# What BMW writes in the unit field of values that have none (spec §3.2: `-` for the fault
# memory's XML), lower-cased. They mean "no unit", not a unit called "-".
_NO_UNIT_MARKERS: Final = frozenset({"-", "--", "n/a", "na", "-na-", "none", "null"})

# What was logged already, so that a car repeating an odd value logs it once; bounded
# because the values come from outside.
_LOGGED: set[tuple[str, str]] = set()
_MAX_LOGGED: Final = 512


def _debug_once(context: str, detail: str, message: str, *args: object) -> None:
    """Log at debug level once per (context, detail): the car decides, the user cannot act."""
    key = (context, detail)
    if key in _LOGGED:
        return
    if len(_LOGGED) < _MAX_LOGGED:
        _LOGGED.add(key)
    _LOGGER.debug(message, *args)


# --- units -----------------------------------------------------------------------------------


def normalize_unit(unit: str | None) -> str | None:
    """Return the Home Assistant unit for a BMW unit string.

    Unknown units (such as `stars`) are returned unchanged, stripped; an absent or blank
    unit, and BMW's placeholders for "no unit" (`-`, `n/a`, ...), give None.
    """
    if unit is None:
        return None
    text = unit.strip()
    if not text or text.lower() in _NO_UNIT_MARKERS:
        return None
    return _UNITS.get(text.lower(), text)


def canonical_unit(unit: str | None) -> str | None:
    """Return the metric unit an entity should keep for values reported in `unit`."""
    if unit is None:
        return None
    return _CANONICAL.get(unit, unit)


def device_class_for_unit(unit: str | None) -> SensorDeviceClass | None:
    """Return the sensor device class implied by a Home Assistant unit, if unambiguous."""
    family = _family(unit)
    return _DEVICE_CLASSES.get(family) if family is not None else None


def to_native(
    value: ParsedValue,
    reported_unit: str | None,
    native_unit: str | None,
    *,
    raw_value: Any = None,
    previous: Any = None,
    context: str = "",
) -> Number | None:
    """Convert a parsed BMW value into the entity's native unit.

    A value without unit is taken to be in the native unit (the catalogue's unit). A value
    in another unit of the same kind is converted (miles to km, kW to W, ...). When the
    converted value lies within the rounding of the number BMW sent from `previous` (the
    entity's current native value), `previous` is kept: a car flipping between km and
    miles then leaves the state as it was instead of wobbling by the rounding error.
    Non-numbers and units that cannot be converted give None.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    source = normalize_unit(reported_unit) or native_unit
    if native_unit is None or _same_unit(source, native_unit):
        return value
    converter = _converter(source, native_unit)
    if converter is None:
        _debug_once(
            context,
            f"unit {source}",
            "Ignoring a value of %s in %s: the entity's unit is %s",
            context or "a descriptor",
            source,
            native_unit,
        )
        return None
    converted = converter.convert(float(value), source, native_unit)
    if isinstance(previous, int | float) and not isinstance(previous, bool):
        half_step = _last_digit_step(value if raw_value is None else raw_value) / 2
        tolerance = abs(
            converter.convert(half_step, source, native_unit)
            - converter.convert(0.0, source, native_unit)
        )
        if abs(converted - previous) <= tolerance * (1 + 1e-9):
            return previous
    return converted


def _same_unit(first: str | None, second: str) -> bool:
    """Whether two units are one (comparing the text alone would take months for metres)."""
    return first == second and _family(first) is _family(second)


def _family(unit: str | None) -> type[StrEnum] | None:
    """Return the Home Assistant unit enum a unit belongs to (None for plain strings)."""
    if isinstance(unit, StrEnum) and type(unit) in _CONVERTERS:
        return type(unit)
    return None


def _converter(source: str | None, target: str) -> type[BaseUnitConverter] | None:
    """Return the converter between two units of the same kind, if there is one."""
    family = _family(source)
    if family is None or family is not _family(target):
        return None
    converter = _CONVERTERS[family]
    if source not in converter.VALID_UNITS or target not in converter.VALID_UNITS:
        return None
    return converter


def _last_digit_step(raw: Any) -> float:
    """Return the value of one unit in the last digit BMW sent (1 for "621", 0.1 for "621.4")."""
    try:
        exponent = Decimal(str(raw).strip()).as_tuple().exponent
    except InvalidOperation:
        return 1.0
    if not isinstance(exponent, int):
        return 1.0
    return float(10 ** min(exponent, 0))


# --- enumerations ------------------------------------------------------------------------------


def bmw_token(value: str | float | bool) -> str:
    """Normalise a BMW enumeration value for lookup in a value map.

    `ASN_selective-Locked`, `SELECTIVE-LOCKED` and `selective_locked` all give
    `SELECTIVE_LOCKED`; `1-PHASES` gives `1_PHASES`; booleans give `TRUE`/`FALSE`.
    """
    text = str(value).strip().removeprefix("ASN_")
    return re.sub(r"[\s-]+", "_", text).upper()


def lookup_token[T](
    value_map: Mapping[str, T | None], value: ParsedValue, context: str
) -> T | None:
    """Look a parsed value up in a value map keyed by `bmw_token`.

    None stays None; a value the map does not know gives None and one debug log line, so a
    new BMW value shows as unknown instead of breaking the entity.
    """
    if value is None:
        return None
    token = bmw_token(value)
    if token in value_map:
        return value_map[token]
    _debug_once(context, token, "Unknown value %r of %s; shown as unknown", value, context)
    return None


# --- dates and services ----------------------------------------------------------------------

_DOTTED_DATE = re.compile(
    r"(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4})"
    r"(?:[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?(?:\s*UTC)?"
)
_SLASHED_DATE = re.compile(
    r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})"
    r"(?:[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?(?:\s*UTC)?"
)
_YEAR_MONTH = re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})")


def parse_bmw_datetime(value: ParsedValue) -> datetime | None:
    """Parse BMW's `dd.mm.yyyy hh:mm[:ss] UTC`, `mm/dd/yyyy hh:mm UTC` or ISO 8601 times."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _DOTTED_DATE.fullmatch(text) or _SLASHED_DATE.fullmatch(text)
    if match is None:
        return parse_timestamp(text)
    parts = {name: int(number) for name, number in match.groupdict().items() if number}
    try:
        return datetime(
            parts["year"],
            parts["month"],
            parts["day"],
            parts.get("hour", 0),
            parts.get("minute", 0),
            parts.get("second", 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def condition_based_services(value: ParsedValue) -> list[dict[str, Any]] | None:
    """Entries of BMW's condition based services (a JSON list inside a string)."""
    if not isinstance(value, str):
        return None
    try:
        entries = decode_json(value, context="the condition based services")
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    return [entry for entry in entries if isinstance(entry, dict)]


def _service_date(raw: Any) -> date | None:
    """Due date of one service: `yyyy-mm` (the first of that month) or an ISO date."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    try:
        if match := _YEAR_MONTH.fullmatch(text):
            return date(int(match["year"]), int(match["month"]), 1)
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def next_service_date(value: ParsedValue) -> date | None:
    """Earliest due date among the condition based services, or None."""
    entries = condition_based_services(value) or []
    dates = [due for entry in entries if (due := _service_date(entry.get("date"))) is not None]
    return min(dates, default=None)


def service_due(value: ParsedValue) -> bool | None:
    """Whether any condition based service has a status other than OK; None if unreadable."""
    entries = condition_based_services(value)
    if entries is None:
        return None
    statuses = [entry["status"] for entry in entries if isinstance(entry.get("status"), str)]
    if entries and not statuses:
        return None
    return any(bmw_token(status) != "OK" for status in statuses)
