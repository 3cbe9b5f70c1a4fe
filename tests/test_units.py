"""BMW units and values into Home Assistant units and states (custom_components/cardata/units.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
import json
import logging
from typing import Any

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
import pytest

from custom_components.cardata.api.values import parse_value
from custom_components.cardata.units import (
    bmw_token,
    canonical_unit,
    condition_based_services,
    device_class_for_unit,
    lookup_token,
    next_service_date,
    normalize_unit,
    parse_bmw_datetime,
    service_due,
    to_native,
)

KM = UnitOfLength.KILOMETERS
UNITS_LOGGER = "custom_components.cardata.units"


@pytest.mark.parametrize(
    ("bmw_unit", "expected"),
    [
        ("percent", PERCENTAGE),
        ("%", PERCENTAGE),
        ("Celsius", UnitOfTemperature.CELSIUS),
        ("celsius", UnitOfTemperature.CELSIUS),
        ("kPa", UnitOfPressure.KPA),
        ("km", UnitOfLength.KILOMETERS),
        (" KM ", UnitOfLength.KILOMETERS),
        ("KILOMETER", UnitOfLength.KILOMETERS),
        ("miles", UnitOfLength.MILES),
        ("mi", UnitOfLength.MILES),
        ("m", UnitOfLength.METERS),
        ("ft", UnitOfLength.FEET),
        ("W", UnitOfPower.WATT),
        ("kW", UnitOfPower.KILO_WATT),
        ("kWh", UnitOfEnergy.KILO_WATT_HOUR),
        ("min", UnitOfTime.MINUTES),
        ("s", UnitOfTime.SECONDS),
        ("h", UnitOfTime.HOURS),
        ("weeks", UnitOfTime.WEEKS),
        ("months", UnitOfTime.MONTHS),
        ("V", UnitOfElectricPotential.VOLT),
        ("A", UnitOfElectricCurrent.AMPERE),
        ("l", UnitOfVolume.LITERS),
        ("gal", UnitOfVolume.GALLONS),
        ("degrees", DEGREE),
        ("km/h", UnitOfSpeed.KILOMETERS_PER_HOUR),
        ("stars", "stars"),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_normalize_unit(bmw_unit: str | None, expected: str | None) -> None:
    assert normalize_unit(bmw_unit) == expected


def test_months_are_not_metres() -> None:
    """UnitOfTime.MONTHS and UnitOfLength.METERS share the text "m"; they must not mix."""
    months = normalize_unit("months")
    assert isinstance(months, UnitOfTime)
    assert isinstance(normalize_unit("m"), UnitOfLength)
    assert to_native(3, "months", UnitOfLength.METERS, context="test.months") is None
    assert device_class_for_unit(months) is None


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (UnitOfLength.MILES, UnitOfLength.KILOMETERS),
        (UnitOfLength.FEET, UnitOfLength.METERS),
        (UnitOfVolume.GALLONS, UnitOfVolume.LITERS),
        (UnitOfTemperature.FAHRENHEIT, UnitOfTemperature.CELSIUS),
        (UnitOfSpeed.MILES_PER_HOUR, UnitOfSpeed.KILOMETERS_PER_HOUR),
        (UnitOfLength.KILOMETERS, UnitOfLength.KILOMETERS),
        (PERCENTAGE, PERCENTAGE),
        ("stars", "stars"),
        (None, None),
    ],
)
def test_canonical_unit(unit: str | None, expected: str | None) -> None:
    assert canonical_unit(unit) == expected


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (UnitOfLength.KILOMETERS, SensorDeviceClass.DISTANCE),
        (UnitOfPressure.KPA, SensorDeviceClass.PRESSURE),
        (UnitOfTemperature.CELSIUS, SensorDeviceClass.TEMPERATURE),
        (UnitOfPower.KILO_WATT, SensorDeviceClass.POWER),
        (UnitOfEnergy.KILO_WATT_HOUR, SensorDeviceClass.ENERGY),
        (UnitOfElectricCurrent.AMPERE, SensorDeviceClass.CURRENT),
        (UnitOfSpeed.KILOMETERS_PER_HOUR, SensorDeviceClass.SPEED),
        # Timer hours and minutes are clock times, not durations.
        (UnitOfTime.HOURS, None),
        (UnitOfTime.MINUTES, None),
        (PERCENTAGE, None),
        (DEGREE, None),
        ("stars", None),
        (None, None),
    ],
)
def test_device_class_for_unit(unit: str | None, expected: SensorDeviceClass | None) -> None:
    assert device_class_for_unit(unit) == expected


@pytest.mark.parametrize(
    ("raw", "unit", "native", "expected"),
    [
        # numbers, quoted or not, in the native unit
        (18234, "km", KM, 18234),
        ("18234", "km", KM, 18234),
        ("78.0", "percent", PERCENTAGE, 78.0),
        (78, "%", PERCENTAGE, 78),
        ("12.62", "V", UnitOfElectricPotential.VOLT, 12.62),
        ("17.5", "Celsius", UnitOfTemperature.CELSIUS, 17.5),
        # no unit: the catalogue's (native) unit is assumed
        (250, None, UnitOfPressure.KPA, 250),
        ("250", "", UnitOfPressure.KPA, 250),
        # other units of the same kind are converted
        (621.4, "miles", KM, pytest.approx(1000.04, abs=0.01)),
        ("621.4", "miles", KM, pytest.approx(1000.04, abs=0.01)),
        (11.26, "kW", UnitOfPower.WATT, pytest.approx(11260)),
        ("1640", "ft", UnitOfLength.METERS, pytest.approx(499.87, abs=0.01)),
        (10, "gal", UnitOfVolume.LITERS, pytest.approx(37.85, abs=0.01)),
        (68, "°F", UnitOfTemperature.CELSIUS, pytest.approx(20.0)),
        (2.5, "bar", UnitOfPressure.KPA, pytest.approx(250)),
        (2, "h", UnitOfTime.MINUTES, pytest.approx(120)),
        # no value
        ("-NA-", "kPa", UnitOfPressure.KPA, None),
        ("INVALID", "%", PERCENTAGE, None),
        ("ASN_isUnknown", None, PERCENTAGE, None),
        (None, "km", KM, None),
        ("", "km", KM, None),
        # not a number
        (True, "km", KM, None),
        ("ASN_isTrue", None, KM, None),
        ("CLOSED", "km", KM, None),
        ('[{"a":1}]', None, KM, None),
        # a unit of another kind is not converted into nonsense
        (5, "percent", KM, None),
        (5, "stars", KM, None),
    ],
)
def test_to_native(raw: Any, unit: str | None, native: str, expected: Any) -> None:
    assert to_native(parse_value(raw), unit, native, raw_value=raw) == expected


def test_unitless_entity_keeps_value() -> None:
    assert to_native(4.5, "stars", None) == 4.5


def test_incompatible_unit_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=UNITS_LOGGER)
    for _ in range(3):
        assert to_native(5, "percent", KM, context="test.incompatible") is None
    messages = [r.getMessage() for r in caplog.records if "test.incompatible" in r.getMessage()]
    assert len(messages) == 1
    assert "%" in messages[0]


def _sequence(points: list[tuple[Any, str | None]]) -> list[Any]:
    """Feed readings one after the other, as an entity does, passing its previous state."""
    states: list[Any] = []
    previous = None
    for raw, unit in points:
        previous = to_native(parse_value(raw), unit, KM, raw_value=raw, previous=previous)
        states.append(previous)
    return states


@pytest.mark.parametrize(
    "points",
    [
        [(1000, "km"), ("621.4", "miles"), (1000, "km")],
        [(1000, "km"), (621, "miles"), ("621.4", "miles"), (1000, "km")],
        [("1000", "km"), ("621.37", "miles"), ("1000", "km"), ("621.4", "miles")],
    ],
)
def test_km_miles_flip_keeps_the_state(points: list[tuple[Any, str | None]]) -> None:
    assert _sequence(points) == [1000] * len(points)


def test_miles_without_previous_are_converted() -> None:
    assert (
        _sequence([("621.4", "miles"), ("621.4", "miles")])
        == [pytest.approx(1000.04, abs=0.01)] * 2
    )


def test_real_change_reported_in_miles_is_not_swallowed() -> None:
    states = _sequence([(1000, "km"), (625, "miles"), (1006, "km")])
    assert states[0] == 1000
    assert states[1] == pytest.approx(1005.84, abs=0.01)
    assert states[2] == 1006


def test_flip_after_a_miles_state_returns_to_km() -> None:
    states = _sequence([("621.4", "miles"), (1001, "km"), ("622", "miles")])
    assert states[1] == 1001
    # 622 mi = 1001.0 km ± 0.8 km: the km state stays.
    assert states[2] == 1001


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("CHARGINGACTIVE", "CHARGINGACTIVE"),
        ("1-PHASES", "1_PHASES"),
        ("SELECTIVE-LOCKED", "SELECTIVE_LOCKED"),
        ("ASN_selective-Locked", "SELECTIVE_LOCKED"),
        ("ASN_secured", "SECURED"),
        (" heating ", "HEATING"),
        ("open tilt", "OPEN_TILT"),
        (True, "TRUE"),
        (False, "FALSE"),
        (3, "3"),
    ],
)
def test_bmw_token(value: str | int | bool, token: str) -> None:
    assert bmw_token(value) == token


def test_lookup_token() -> None:
    states = {"CHARGINGACTIVE": "charging_active", "UNKNOWN": None}
    assert lookup_token(states, "CHARGINGACTIVE", "test.lookup") == "charging_active"
    assert lookup_token(states, "chargingActive", "test.lookup") == "charging_active"
    assert lookup_token(states, "UNKNOWN", "test.lookup") is None
    assert lookup_token(states, None, "test.lookup") is None


def test_unknown_token_is_unknown_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=UNITS_LOGGER)
    for _ in range(3):
        assert lookup_token({"A": "a"}, "SOMETHING_NEW", "test.unknown_token") is None
    assert lookup_token({"A": "a"}, "OTHER_NEW", "test.unknown_token") is None
    logged = [r.getMessage() for r in caplog.records if "test.unknown_token" in r.getMessage()]
    assert len(logged) == 2
    assert "SOMETHING_NEW" in logged[0]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("17.01.2027 00:00:00 UTC", datetime(2027, 1, 17, tzinfo=UTC)),
        ("17.01.2027 08:30 UTC", datetime(2027, 1, 17, 8, 30, tzinfo=UTC)),
        ("7.1.2027 08:30", datetime(2027, 1, 7, 8, 30, tzinfo=UTC)),
        ("01/17/2027 08:30 UTC", datetime(2027, 1, 17, 8, 30, tzinfo=UTC)),
        ("2027-01-17T08:30:00Z", datetime(2027, 1, 17, 8, 30, tzinfo=UTC)),
        ("17.01.2027", datetime(2027, 1, 17, tzinfo=UTC)),
        ("31.02.2027 00:00 UTC", None),
        ("next week", None),
        (20270117, None),
        (None, None),
    ],
)
def test_parse_bmw_datetime(value: Any, expected: datetime | None) -> None:
    assert parse_bmw_datetime(value) == expected


CBS = json.dumps(
    [
        {"date": "2027-07", "status": "OK", "title": "Vehicle check"},
        {"date": "2027-02", "status": "OK", "title": "Brake fluid"},
        {"status": "OK", "title": "No date"},
    ]
)


def test_condition_based_services() -> None:
    assert condition_based_services(CBS) is not None
    assert len(condition_based_services(CBS) or []) == 3
    assert condition_based_services("not json") is None
    assert condition_based_services('{"date": "2027-07"}') is None
    assert condition_based_services(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (CBS, date(2027, 2, 1)),
        (json.dumps([{"date": "2026-11-15"}, {"date": "2027-01"}]), date(2026, 11, 15)),
        (json.dumps([{"date": "soon"}]), None),
        ("[]", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_next_service_date(value: Any, expected: date | None) -> None:
    assert next_service_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (CBS, False),
        (json.dumps([{"status": "OK"}, {"status": "PENDING"}]), True),
        (json.dumps([{"status": "overdue"}]), True),
        ("[]", False),
        (json.dumps([{"title": "no status"}]), None),
        ("garbage", None),
        (None, None),
    ],
)
def test_service_due(value: Any, expected: bool | None) -> None:
    assert service_due(value) is expected
