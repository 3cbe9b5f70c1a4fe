"""The descriptor catalogue of the entity layer (custom_components/cardata/descriptors.py)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
import importlib.util
import json
import logging
from pathlib import Path
import re
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.sensor import SensorDeviceClass, SensorEntity
from homeassistant.components.sensor.const import DEVICE_CLASS_STATE_CLASSES, DEVICE_CLASS_UNITS
from homeassistant.const import EntityCategory, UnitOfLength, UnitOfTemperature
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockEntityPlatform

from custom_components.cardata import descriptors as catalogue
from custom_components.cardata.api.models import TelematicValue
from custom_components.cardata.descriptor_names import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from custom_components.cardata.descriptors import (
    BINARY_SENSORS,
    CURATED_DESCRIPTORS,
    DEVICE_TRACKER,
    NOT_VALUES,
    SENSORS,
    STREAM_CONNECTED,
    CarDataBinarySensorEntityDescription,
    CarDataSensorEntityDescription,
    Reading,
    SensorValue,
    generic_key,
    generic_name,
    generic_sensor_description,
    needs_generic_sensor,
)
from tests.simulator.fleet import VIN_PHEV, initial_telematics

ROOT = Path(__file__).parents[1]
INTEGRATION = ROOT / "custom_components" / "cardata"
CATALOGUE_TSV = ROOT.parent / "shared" / "cardata" / "descriptors.tsv"
UNITS_LOGGER = "custom_components.cardata.units"
NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)

SENSOR_BY_KEY = {description.key: description for description in SENSORS}
BINARY_BY_KEY = {description.key: description for description in BINARY_SENSORS}

# Keys are part of every user's entity registry (unique id <vin>_<key>): this list changes
# only together with a migration.
STABLE_SENSOR_KEYS = {
    "state_of_charge",
    "charging_level",
    "target_state_of_charge",
    "charging_status",
    "charging_hv_status",
    "charging_power",
    "charging_ac_voltage",
    "charging_ac_current",
    "charging_phases",
    "charging_time_remaining",
    "charging_time_to_full",
    "charging_method",
    "charging_port_status",
    "electric_range",
    "total_range",
    "odometer",
    "fuel_level",
    "remaining_fuel",
    "battery_capacity",
    "battery_energy_content",
    "lock_state",
    *(
        f"{kind}_{wheel}"
        for kind in ("tyre_pressure", "tyre_pressure_target", "tyre_temperature")
        for wheel in ("front_left", "front_right", "rear_left", "rear_right")
    ),
    "battery_12v_voltage",
    "preconditioning",
    "climate_comfort_state",
    "next_service_date",
    "next_service_distance",
    "next_inspection",
}
STABLE_BINARY_KEYS = {
    "charging",
    "plugged_in",
    *(
        f"{kind}_{seat}"
        for kind in ("door", "window")
        for seat in ("driver", "passenger", "rear_driver", "rear_passenger")
    ),
    "sunroof",
    "trunk",
    "hood",
    "door_lock",
    "moving",
    "service_due",
}


def reading(value: Any, unit: str | None = None, *, age: float | None = 60.0) -> TelematicValue:
    """A descriptor state as BMW sends it, measured `age` seconds before NOW."""
    point: dict[str, Any] = {"value": value}
    if unit is not None:
        point["unit"] = unit
    if age is not None:
        point["timestamp"] = (NOW - timedelta(seconds=age)).isoformat()
    return TelematicValue.from_json(point)


def sensor_state(key: str, descriptor_values: dict[str, Any], previous: Any = None) -> Any:
    """State of a curated sensor for readings given as {descriptor: value | TelematicValue}."""
    readings: dict[str, Reading] = {
        d: v if isinstance(v, TelematicValue) else reading(v) for d, v in descriptor_values.items()
    }
    return SENSOR_BY_KEY[key].native_value(readings, previous)


def binary_state(key: str, descriptor_values: dict[str, Any]) -> bool | None:
    """State of a curated binary sensor (see sensor_state)."""
    readings: dict[str, Reading] = {
        d: v if isinstance(v, TelematicValue) else reading(v) for d, v in descriptor_values.items()
    }
    return BINARY_BY_KEY[key].is_on(readings)


def load_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --- value handling ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "descriptor", "raw", "unit", "expected"),
    [
        # quoted and unquoted numbers
        ("state_of_charge", catalogue.SOC_HEADER, "78.0", "percent", 78.0),
        ("state_of_charge", catalogue.SOC_HEADER, 78, "%", 78),
        ("state_of_charge", catalogue.SOC_DISPLAYED, 64.5, None, 64.5),
        ("charging_power", catalogue.CHARGING_POWER, 11260, "W", 11260),
        ("charging_power", catalogue.CHARGING_POWER, "11260", "W", 11260),
        ("charging_power", catalogue.CHARGING_POWER, "11.26", "kW", pytest.approx(11260)),
        ("charging_time_remaining", catalogue.CHARGING_TIME_REMAINING, "95", "min", 95),
        (
            "tyre_pressure_front_left",
            catalogue._tyre("row1", "left", "pressure"),
            "250",
            "kPa",
            250,
        ),
        (
            "tyre_temperature_rear_right",
            catalogue._tyre("row2", "right", "temperature"),
            17.5,
            "Celsius",
            17.5,
        ),
        ("battery_12v_voltage", catalogue.BATTERY_12V_VOLTAGE, "12.62", "V", 12.62),
        ("battery_capacity", catalogue.BATTERY_SIZE, "83.9", "kWh", 83.9),
        ("remaining_fuel", catalogue.REMAINING_FUEL, "42.5", "l", 42.5),
        ("remaining_fuel", catalogue.REMAINING_FUEL, 10, "gal", pytest.approx(37.85, abs=0.01)),
        ("odometer", catalogue.ODOMETER, "31877", "km", 31877),
        ("odometer", catalogue.ODOMETER, 621.4, "miles", pytest.approx(1000.04, abs=0.01)),
        ("electric_range", catalogue.ELECTRIC_RANGE, 392.0, None, 392.0),
        ("target_state_of_charge", catalogue.SOC_TARGET, 80, "%", 80),
        # no value: null, -NA-, INVALID, ASN_isUnknown, empty
        ("state_of_charge", catalogue.SOC_HEADER, None, "percent", None),
        (
            "tyre_pressure_front_left",
            catalogue._tyre("row1", "left", "pressure"),
            "-NA-",
            "kPa",
            None,
        ),
        ("charging_ac_voltage", catalogue.CHARGING_AC_VOLTAGE, "-NA-", "V", None),
        ("target_state_of_charge", catalogue.SOC_TARGET, "INVALID", "%", None),
        ("electric_range", catalogue.ELECTRIC_RANGE, "ASN_isUnknown", None, None),
        ("odometer", catalogue.ODOMETER, "", "km", None),
        # not a number where a number belongs
        ("state_of_charge", catalogue.SOC_HEADER, True, None, None),
        ("state_of_charge", catalogue.SOC_HEADER, "ASN_isTrue", None, None),
        ("odometer", catalogue.ODOMETER, "lots", "km", None),
        ("odometer", catalogue.ODOMETER, 1000, "percent", None),
        # a battery size of 0 kWh (seen on plug-in hybrids) means "not known"
        ("battery_capacity", catalogue.BATTERY_SIZE, "0", "kWh", None),
        # BMW reports 0 min while the car is not charging: unknown, not "0 min" (finished)
        ("charging_time_remaining", catalogue.CHARGING_TIME_REMAINING, 0, "min", None),
        ("charging_time_to_full", catalogue.CHARGING_TIME_TO_FULL, "0", "min", None),
        ("charging_time_to_full", catalogue.CHARGING_TIME_TO_FULL, "35", "min", 35),
        # enumerations
        ("charging_status", catalogue.CHARGING_STATUS, "CHARGINGACTIVE", None, "charging_active"),
        ("charging_status", catalogue.CHARGING_STATUS, "INVALID", None, None),
        ("charging_phases", catalogue.CHARGING_PHASES, "1-PHASES", None, "one_phase"),
        ("charging_phases", catalogue.CHARGING_PHASES, "3-PHASES", None, "three_phases"),
        ("lock_state", catalogue.LOCK_STATUS, "SELECTIVE-LOCKED", None, "selective_locked"),
        ("lock_state", catalogue.DOOR_STATUS, "ASN_secured", None, "secured"),
        ("lock_state", catalogue.DOOR_STATUS, "ASN_unknown", None, None),
        ("preconditioning", catalogue.PRECONDITIONING, "heating", None, "heating"),
        ("climate_comfort_state", catalogue.COMFORT_STATE, "COMFORT_UNDEFINED", None, None),
        ("charging_port_status", catalogue.CHARGING_PORT_STATUS, "-NA-", None, None),
    ],
)
def test_sensor_values(
    key: str, descriptor: str, raw: Any, unit: str | None, expected: Any
) -> None:
    state = sensor_state(key, {descriptor: reading(raw, unit)})
    assert state == expected
    assert not isinstance(state, bool)


# Every value BMW's catalogue (and production) lists for the enumerations, and the state.
ENUM_CASES: list[tuple[str, str, str, str | None]] = [
    ("charging_status", catalogue.CHARGING_STATUS, "NOCHARGING", "not_charging"),
    ("charging_status", catalogue.CHARGING_STATUS, "INITIALIZATION", "initialization"),
    ("charging_status", catalogue.CHARGING_STATUS, "CHARGINGACTIVE", "charging_active"),
    ("charging_status", catalogue.CHARGING_STATUS, "CHARGINGPAUSED", "charging_paused"),
    ("charging_status", catalogue.CHARGING_STATUS, "CHARGINGENDED", "charging_ended"),
    ("charging_status", catalogue.CHARGING_STATUS, "CHARGINGERROR", "charging_error"),
    ("charging_hv_status", catalogue.CHARGING_HV_STATUS, "INVALID", None),
    ("charging_hv_status", catalogue.CHARGING_HV_STATUS, "CHARGING", "charging"),
    ("charging_hv_status", catalogue.CHARGING_HV_STATUS, "ERROR", "error"),
    ("charging_hv_status", catalogue.CHARGING_HV_STATUS, "NOT_CHARGING", "not_charging"),
    (
        "charging_hv_status",
        catalogue.CHARGING_HV_STATUS,
        "WAITING_FOR_CHARGING",
        "waiting_for_charging",
    ),
    (
        "charging_hv_status",
        catalogue.CHARGING_HV_STATUS,
        "FINISHED_FULLY_CHARGED",
        "finished_fully_charged",
    ),
    ("charging_hv_status", catalogue.CHARGING_HV_STATUS, "FINISHED_NOT_FULL", "finished_not_full"),
    ("charging_phases", catalogue.CHARGING_PHASES, "NO_CHARGING", "no_charging"),
    ("charging_phases", catalogue.CHARGING_PHASES, "1-PHASES", "one_phase"),
    ("charging_phases", catalogue.CHARGING_PHASES, "2-PHASES", "two_phases"),
    ("charging_phases", catalogue.CHARGING_PHASES, "3-PHASES", "three_phases"),
    ("charging_phases", catalogue.CHARGING_PHASES, "INVALID", None),
    ("charging_method", catalogue.CHARGING_METHOD, "AC_TYPE1PLUG", "ac_type_1"),
    ("charging_method", catalogue.CHARGING_METHOD, "AC_TYPE2PLUG", "ac_type_2"),
    ("charging_method", catalogue.CHARGING_METHOD, "NOCHARGING", "not_charging"),
    ("charging_port_status", catalogue.CHARGING_PORT_STATUS, "CONNECTED", "connected"),
    ("charging_port_status", catalogue.CHARGING_PORT_STATUS, "DISCONNECTED", "disconnected"),
    ("charging_port_status", catalogue.CHARGING_PORT_STATUS, "INVALID", None),
    ("lock_state", catalogue.LOCK_STATUS, "SECURED", "secured"),
    ("lock_state", catalogue.LOCK_STATUS, "UNLOCKED", "unlocked"),
    ("lock_state", catalogue.LOCK_STATUS, "SELECTIVE-LOCKED", "selective_locked"),
    ("lock_state", catalogue.LOCK_STATUS, "LOCKED", "locked"),
    ("lock_state", catalogue.LOCK_STATUS, "INVALID", None),
    ("lock_state", catalogue.LOCK_STATUS, "UNKNOWN", None),
    ("lock_state", catalogue.DOOR_STATUS, "ASN_unlocked", "unlocked"),
    ("lock_state", catalogue.DOOR_STATUS, "ASN_selective-Locked", "selective_locked"),
    ("lock_state", catalogue.DOOR_STATUS, "ASN_locked", "locked"),
    ("preconditioning", catalogue.PRECONDITIONING, "standby", "standby"),
    ("preconditioning", catalogue.PRECONDITIONING, "heating", "heating"),
    ("preconditioning", catalogue.PRECONDITIONING, "cooling", "cooling"),
    ("preconditioning", catalogue.PRECONDITIONING, "ventilation", "ventilation"),
    ("preconditioning", catalogue.PRECONDITIONING, "inactive", "inactive"),
    ("climate_comfort_state", catalogue.COMFORT_STATE, "NOT_ACTIVE", "not_active"),
    ("climate_comfort_state", catalogue.COMFORT_STATE, "COMFORT_HEATING", "heating"),
    ("climate_comfort_state", catalogue.COMFORT_STATE, "COMFORT_COOLING", "cooling"),
    ("climate_comfort_state", catalogue.COMFORT_STATE, "COMFORT_VENTILATION", "ventilation"),
    ("climate_comfort_state", catalogue.COMFORT_STATE, "DEFROST", "defrost"),
    ("climate_comfort_state", catalogue.COMFORT_STATE, "COMFORT_UNDEFINED", None),
]


@pytest.mark.parametrize(("key", "descriptor", "raw", "expected"), ENUM_CASES)
def test_enum_values_known_to_bmw(
    key: str, descriptor: str, raw: str, expected: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=UNITS_LOGGER)
    state = sensor_state(key, {descriptor: raw})
    assert state == expected
    if expected is not None:
        assert state in (SENSOR_BY_KEY[key].options or [])
    # A value BMW documents is never reported as unknown.
    assert not [r for r in caplog.records if "Unknown value" in r.getMessage()]


def test_every_enum_option_is_reachable() -> None:
    """No option without a BMW value behind it (it would clutter the automation editor)."""
    reached: dict[str, set[str]] = {}
    for key, _, _, expected in ENUM_CASES:
        if expected is not None:
            reached.setdefault(key, set()).add(expected)
    for description in SENSORS:
        if description.device_class is SensorDeviceClass.ENUM:
            assert set(description.options or []) == reached[description.key], description.key


def test_unknown_enum_value_is_unknown_with_one_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=UNITS_LOGGER)
    for _ in range(3):
        assert sensor_state("charging_status", {catalogue.CHARGING_STATUS: "WARP_CHARGING"}) is None
    logged = [r for r in caplog.records if "WARP_CHARGING" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.DEBUG
    assert catalogue.CHARGING_STATUS in logged[0].getMessage()


@pytest.mark.parametrize(
    ("key", "descriptor", "raw", "expected"),
    [
        ("door_driver", "vehicle.cabin.door.row1.driver.isOpen", "OPEN", True),
        ("door_driver", "vehicle.cabin.door.row1.driver.isOpen", "CLOSED", False),
        ("door_driver", "vehicle.cabin.door.row1.driver.isOpen", "INVALID", None),
        ("door_rear_passenger", "vehicle.cabin.door.row2.passenger.isOpen", "UNKNOWN", None),
        ("window_passenger", "vehicle.cabin.window.row1.passenger.status", "INTERMEDIATE", True),
        ("window_rear_driver", "vehicle.cabin.window.row2.driver.status", "OPEN", True),
        ("window_rear_driver", "vehicle.cabin.window.row2.driver.status", "CLOSED", False),
        ("window_driver", "vehicle.cabin.window.row1.driver.status", "INVALID", None),
        ("sunroof", catalogue.SUNROOF, "INTERMEDIATE", True),
        ("sunroof", catalogue.SUNROOF, "CLOSED", False),
        ("trunk", catalogue.TRUNK, "OPEN", True),
        ("trunk", catalogue.TRUNK_DOOR, "false", False),
        ("trunk", catalogue.TRUNK_DOOR, True, True),
        ("hood", catalogue.HOOD, "CLOSED", False),
        ("hood", catalogue.HOOD, "INVALID", None),
        # lock device class: on means unlocked
        ("door_lock", catalogue.LOCK_STATUS, "SECURED", False),
        ("door_lock", catalogue.LOCK_STATUS, "LOCKED", False),
        ("door_lock", catalogue.LOCK_STATUS, "UNLOCKED", True),
        ("door_lock", catalogue.LOCK_STATUS, "SELECTIVE-LOCKED", True),
        ("door_lock", catalogue.LOCK_STATUS, "UNKNOWN", None),
        ("door_lock", catalogue.DOOR_STATUS, "ASN_secured", False),
        ("door_lock", catalogue.DOOR_STATUS, "ASN_unlocked", True),
        ("moving", catalogue.MOVING, "ASN_isTrue", True),
        ("moving", catalogue.MOVING, "ASN_isFalse", False),
        ("moving", catalogue.MOVING, "ASN_isUnknown", None),
        ("charging", catalogue.CHARGING_STATUS, "CHARGINGACTIVE", True),
        ("charging", catalogue.CHARGING_STATUS, "CHARGINGPAUSED", False),
        ("charging", catalogue.CHARGING_STATUS, "NOCHARGING", False),
        ("charging", catalogue.CHARGING_HV_STATUS, "CHARGING", True),
        ("charging", catalogue.CHARGING_HV_STATUS, "FINISHED_FULLY_CHARGED", False),
        ("charging", catalogue.CHARGING_HV_STATUS, "INVALID", None),
        ("plugged_in", catalogue.PLUGGED, True, True),
        ("plugged_in", catalogue.PLUGGED, "false", False),
        ("plugged_in", catalogue.CHARGING_PORT_STATUS, "CONNECTED", True),
        ("plugged_in", catalogue.CHARGING_PORT_STATUS, "DISCONNECTED", False),
        ("plugged_in", catalogue.CHARGING_PORT_STATUS, "-NA-", None),
    ],
)
def test_binary_values(key: str, descriptor: str, raw: Any, expected: bool | None) -> None:
    assert binary_state(key, {descriptor: raw}) is expected


def test_unknown_binary_value_is_unknown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=UNITS_LOGGER)
    assert binary_state("door_lock", {catalogue.LOCK_STATUS: "HALF_LOCKED"}) is None
    assert any("HALF_LOCKED" in r.getMessage() for r in caplog.records)


def test_lock_ignores_booleans() -> None:
    """A boolean does not say whether it means "locked" or "unlocked": unknown, not a guess."""
    assert binary_state("door_lock", {catalogue.DOOR_STATUS: "ASN_isTrue"}) is None


@pytest.mark.parametrize(
    ("status_age", "hv_age", "expected"),
    [(10, 600, False), (600, 10, True), (None, 10, True)],
)
def test_charging_follows_the_newest_descriptor(
    status_age: float | None, hv_age: float, expected: bool
) -> None:
    state = binary_state(
        "charging",
        {
            catalogue.CHARGING_STATUS: reading("CHARGINGENDED", age=status_age),
            catalogue.CHARGING_HV_STATUS: reading("CHARGING", age=hv_age),
        },
    )
    assert state is expected


def test_state_of_charge_merges_header_and_displayed() -> None:
    header, displayed = catalogue.SOC_HEADER, catalogue.SOC_DISPLAYED
    # the newer measurement wins
    assert (
        sensor_state(
            "state_of_charge", {header: reading(72, age=10), displayed: reading(70, age=90)}
        )
        == 72
    )
    assert (
        sensor_state(
            "state_of_charge", {header: reading(72, age=90), displayed: reading(70, age=10)}
        )
        == 70
    )
    # measured together: the displayed value (what the car shows) wins
    assert (
        sensor_state(
            "state_of_charge", {header: reading(72, age=10), displayed: reading(70, age=10)}
        )
        == 70
    )
    # a newer reading without value falls back to the older usable one
    assert (
        sensor_state(
            "state_of_charge", {header: reading("INVALID", age=5), displayed: reading(70, age=90)}
        )
        == 70
    )
    assert sensor_state("state_of_charge", {}) is None


def test_plug_from_either_descriptor() -> None:
    state = binary_state(
        "plugged_in",
        {
            catalogue.PLUGGED: reading(False, age=300),
            catalogue.CHARGING_PORT_STATUS: reading("CONNECTED", age=5),
        },
    )
    assert state is True


def test_odometer_does_not_jump_when_the_car_flips_to_miles() -> None:
    states = []
    previous = None
    for raw, unit in [(18234, "km"), ("11330.1", "miles"), (18234, "km"), ("11330", "miles")]:
        previous = sensor_state("odometer", {catalogue.ODOMETER: reading(raw, unit)}, previous)
        states.append(previous)
    assert states == [18234] * 4


def test_service_sensors() -> None:
    cbs = json.dumps(
        [
            {"date": "2027-07", "status": "OK", "title": "Vehicle check"},
            {"date": "2027-02", "status": "OK", "title": "Brake fluid"},
        ]
    )
    assert sensor_state("next_service_date", {catalogue.SERVICES: cbs}) == date(2027, 2, 1)
    assert binary_state("service_due", {catalogue.SERVICES: cbs}) is False
    due = json.dumps([{"date": "2026-08", "status": "OVERDUE"}])
    assert binary_state("service_due", {catalogue.SERVICES: due}) is True
    # A due day like the next service, not a moment: the device page shows both as dates.
    assert sensor_state(
        "next_inspection", {catalogue.INSPECTION_DATE: "17.01.2027 00:00:00 UTC"}
    ) == date(2027, 1, 17)
    assert sensor_state("next_inspection", {catalogue.INSPECTION_DATE: "soon"}) is None
    assert (
        sensor_state("next_service_distance", {catalogue.SERVICE_DISTANCE: reading("14000", "km")})
        == 14000
    )


# --- device tracker --------------------------------------------------------------------------


def test_tracker_needs_both_coordinates() -> None:
    lat, lon = DEVICE_TRACKER.latitude, DEVICE_TRACKER.longitude
    assert DEVICE_TRACKER.location({lat: reading(48.177), lon: reading("11.556")}) == (
        48.177,
        11.556,
    )
    assert DEVICE_TRACKER.location({lat: reading(48.177)}) is None
    assert DEVICE_TRACKER.location({lat: reading(48.177), lon: reading("-NA-")}) is None
    assert DEVICE_TRACKER.location({lat: reading(148.0), lon: reading(11.5)}) is None
    assert DEVICE_TRACKER.location({lat: reading(True), lon: reading(11.5)}) is None


def test_tracker_heading_and_altitude() -> None:
    assert DEVICE_TRACKER.heading_degrees({DEVICE_TRACKER.heading: reading(271, "degrees")}) == 271
    assert DEVICE_TRACKER.heading_degrees({DEVICE_TRACKER.heading: reading(-5)}) is None
    assert DEVICE_TRACKER.heading_degrees({}) is None
    altitude = DEVICE_TRACKER.altitude
    assert DEVICE_TRACKER.altitude_meters({altitude: reading(521)}) == 521
    assert DEVICE_TRACKER.altitude_meters({altitude: reading(1000, "ft")}) == pytest.approx(304.8)
    assert DEVICE_TRACKER.altitude_meters({altitude: reading("-NA-", "m")}) is None
    assert DEVICE_TRACKER.altitude_meters({}) is None


def test_position_descriptors_belong_to_the_tracker() -> None:
    for descriptor in DEVICE_TRACKER.descriptors:
        assert not needs_generic_sensor(descriptor)
        assert all(descriptor not in d.descriptors for d in (*SENSORS, *BINARY_SENSORS))


# --- generic sensors ---------------------------------------------------------------------------


def test_generic_sensors_only_for_descriptors_without_entity() -> None:
    assert not needs_generic_sensor(catalogue.SOC_HEADER)
    assert not needs_generic_sensor(catalogue.PLUGGED)
    assert not needs_generic_sensor("vehicle.look.image")
    assert needs_generic_sensor("vehicle.cabin.seat.row1.driverSide.heating")
    assert needs_generic_sensor("vehicle.some.futureDescriptor")


def test_generic_sensor_with_catalogue_unit() -> None:
    descriptor = (
        "vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.targetTemperature"
    )
    description = generic_sensor_description(descriptor)
    assert (
        description.key
        == "cabin_hvac_preconditioning_configuration_default_settings_target_temperature"
    )
    assert description.name == "Target temperature"
    assert description.entity_registry_enabled_default is False
    assert description.translation_key is None
    assert description.native_unit_of_measurement == UnitOfTemperature.CELSIUS
    assert description.device_class is SensorDeviceClass.TEMPERATURE
    assert description.native_value({descriptor: reading("21.5", "celsius")}) == 21.5
    assert description.native_value({descriptor: reading("warm")}) is None


def test_generic_sensor_takes_the_reported_unit_and_keeps_km() -> None:
    descriptor = "vehicle.trip.segment.end.travelledDistance"
    assert descriptor not in DESCRIPTOR_UNITS
    description = generic_sensor_description(descriptor, "miles")
    assert description.native_unit_of_measurement == UnitOfLength.KILOMETERS
    assert description.device_class is SensorDeviceClass.DISTANCE
    assert description.native_value({descriptor: reading(100, "miles")}) == pytest.approx(
        160.93, abs=0.01
    )
    assert description.native_value({descriptor: reading(161, "km")}) == 161


def test_generic_sensor_without_unit_shows_text() -> None:
    descriptor = "vehicle.body.lights.isRunningOn"
    description = generic_sensor_description(descriptor)
    assert description.native_unit_of_measurement is None
    assert description.device_class is None
    assert description.name == "Status of lights"
    assert description.native_value({descriptor: reading("ASN_isTrue")}) == "true"
    assert description.native_value({descriptor: reading("ASN_isFalse")}) == "false"
    assert description.native_value({descriptor: reading("ASN_isUnknown")}) is None
    assert description.native_value({descriptor: reading("PRICE_OPTIMIZED")}) == "PRICE_OPTIMIZED"
    assert description.native_value({descriptor: reading("2")}) == 2
    long_text = "x" * 400
    state = description.native_value({descriptor: reading(long_text)})
    assert isinstance(state, str)
    assert len(state) == 255


def test_generic_name_of_a_descriptor_bmw_added_later() -> None:
    assert generic_name("vehicle.cabin.newThing.isActive") == "Cabin new thing is active"
    assert generic_key("vehicle.cabin.newThing.isActive") == "cabin_new_thing_is_active"


def test_generic_keys_are_unique_and_do_not_clash_with_curated_keys() -> None:
    keys = [generic_key(descriptor) for descriptor in DESCRIPTOR_NAMES]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & (
        STABLE_SENSOR_KEYS | STABLE_BINARY_KEYS | {"location", "stream_connected"}
    )
    assert (
        generic_key("vehicle.cabin.seat.row1.driverSide.heating")
        == "cabin_seat_row1_driver_side_heating"
    )
    assert generic_key("vehicle.electricalSystem.battery48V.stateOfHealth.displayed") == (
        "electrical_system_battery48_v_state_of_health_displayed"
    )


# --- the catalogue as a whole ----------------------------------------------------------------


def test_keys_are_stable_snake_case_and_unique() -> None:
    sensor_keys = [d.key for d in SENSORS]
    binary_keys = [d.key for d in BINARY_SENSORS]
    assert len(set(sensor_keys)) == len(sensor_keys)
    assert len(set(binary_keys)) == len(binary_keys)
    assert set(sensor_keys) == STABLE_SENSOR_KEYS
    assert set(binary_keys) == STABLE_BINARY_KEYS
    for key in (*sensor_keys, *binary_keys, DEVICE_TRACKER.key, STREAM_CONNECTED.key):
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", key), key


def test_stream_connected_is_a_diagnostic_without_descriptor() -> None:
    assert STREAM_CONNECTED.entity_category is EntityCategory.DIAGNOSTIC
    assert not hasattr(STREAM_CONNECTED, "descriptors")
    assert STREAM_CONNECTED.key not in BINARY_BY_KEY


def test_curated_descriptors_are_in_the_shipped_catalogue() -> None:
    assert len(DESCRIPTOR_NAMES) == 295
    for descriptor in CURATED_DESCRIPTORS | NOT_VALUES:
        assert descriptor in DESCRIPTOR_NAMES, descriptor


def _tsv_rows() -> list[dict[str, str]]:
    if not CATALOGUE_TSV.is_file():
        pytest.skip(f"{CATALOGUE_TSV} is not beside the checkout")
    with CATALOGUE_TSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_curated_descriptors_are_in_descriptors_tsv() -> None:
    known = {row["descriptor"] for row in _tsv_rows()}
    assert known >= CURATED_DESCRIPTORS
    assert known == set(DESCRIPTOR_NAMES)


def test_generated_names_are_up_to_date() -> None:
    rows = _tsv_rows()
    assert rows
    spec = importlib.util.spec_from_file_location(
        "generate_descriptor_names", ROOT / "scripts" / "generate_descriptor_names.py"
    )
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    expected = generator.render(generator.read_catalogue(CATALOGUE_TSV))
    assert (INTEGRATION / "descriptor_names.py").read_text(encoding="utf-8") == expected


def _check_home_assistant_rules(description: CarDataSensorEntityDescription) -> None:
    """Unit, state class and options fit the device class as Home Assistant requires."""
    device_class = description.device_class
    unit = description.native_unit_of_measurement
    if device_class is SensorDeviceClass.ENUM:
        assert description.options, description.key
        assert unit is None
        assert description.state_class is None
        return
    assert description.options is None
    if device_class in (SensorDeviceClass.DATE, SensorDeviceClass.TIMESTAMP):
        assert unit is None
        assert description.state_class is None
        return
    if device_class is not None and device_class in DEVICE_CLASS_UNITS:
        assert unit in DEVICE_CLASS_UNITS[device_class], description.key
        suggested = description.suggested_unit_of_measurement
        assert suggested is None or suggested in DEVICE_CLASS_UNITS[device_class]
    if device_class is not None and description.state_class is not None:
        assert description.state_class in DEVICE_CLASS_STATE_CLASSES[device_class], description.key


def test_curated_sensors_follow_home_assistant_rules() -> None:
    for description in SENSORS:
        _check_home_assistant_rules(description)
        assert description.translation_key == description.key


def test_generic_sensors_follow_home_assistant_rules() -> None:
    for descriptor in DESCRIPTOR_NAMES:
        _check_home_assistant_rules(generic_sensor_description(descriptor))
    for unit in ("miles", "ft", "gal", "kW", "kWh", "A", "V", "km/h", "°F", "stars", "months"):
        _check_home_assistant_rules(generic_sensor_description("vehicle.new.thing", unit))


# --- translations and icons ----------------------------------------------------------------


def _entity_section(path: Path) -> dict[str, Any]:
    section = load_json(path).get("entity")
    assert isinstance(section, dict), f"{path.name} lacks an entity section"
    return section


TRANSLATION_FILES = [
    INTEGRATION / "strings.json",
    INTEGRATION / "translations" / "en.json",
    INTEGRATION / "translations" / "de.json",
]


@pytest.mark.parametrize("path", TRANSLATION_FILES, ids=lambda path: path.name)
def test_every_entity_is_translated(path: Path) -> None:
    section = _entity_section(path)
    described: list[tuple[str, Any]] = [
        *(("sensor", d) for d in SENSORS),
        *(("binary_sensor", d) for d in BINARY_SENSORS),
        ("binary_sensor", STREAM_CONNECTED),
        ("device_tracker", DEVICE_TRACKER),
    ]
    for platform, description in described:
        entry = section[platform][description.translation_key]
        assert entry["name"].strip(), description.key
        if isinstance(description, CarDataSensorEntityDescription) and description.options:
            assert list(entry["state"]) == description.options, description.key
            assert all(text.strip() for text in entry["state"].values())


def test_option_keys_are_valid_for_home_assistant() -> None:
    for description in SENSORS:
        for option in description.options or []:
            assert re.fullmatch(r"[a-z0-9_-]+", option), option


def test_english_and_german_translate_the_same_entities() -> None:
    english = _entity_section(INTEGRATION / "strings.json")
    german = _entity_section(INTEGRATION / "translations" / "de.json")

    def keys(tree: Any, prefix: str = "") -> set[str]:
        if not isinstance(tree, dict):
            return {prefix}
        return {k for name, sub in tree.items() for k in keys(sub, f"{prefix}.{name}")}

    assert keys(english) == keys(german)
    assert english != german


def test_icons_belong_to_translated_entities() -> None:
    icons = _entity_section(INTEGRATION / "icons.json")
    strings = _entity_section(INTEGRATION / "strings.json")
    options = {d.key: set(d.options or []) for d in SENSORS}
    assert icons
    for platform, entries in icons.items():
        for key, icon in entries.items():
            assert key in strings[platform], f"{platform}.{key} has an icon but no translation"
            assert icon["default"].startswith("mdi:")
            allowed = options.get(key, set()) if platform == "sensor" else {"on", "off"}
            for state, state_icon in icon.get("state", {}).items():
                assert state in allowed, f"{platform}.{key}: no state {state}"
                assert state_icon.startswith("mdi:")


def test_enum_sensors_have_state_icons() -> None:
    icons = _entity_section(INTEGRATION / "icons.json")["sensor"]
    for key in ("charging_status", "charging_method", "lock_state", "preconditioning"):
        assert icons[key]["state"], key


def test_binary_descriptions_read_only_their_value_maps() -> None:
    """Each binary sensor converts through its value map or a dedicated converter."""
    for description in BINARY_SENSORS:
        assert isinstance(description, CarDataBinarySensorEntityDescription)
        assert description.descriptors
        assert description.value_map or description.convert is not catalogue.state_from_token


# --- in Home Assistant ---------------------------------------------------------------------


class _Sensor(SensorEntity):
    """The smallest sensor entity that shows a description's state."""

    def __init__(self, description: CarDataSensorEntityDescription, value: SensorValue) -> None:
        self.entity_description = description
        self._attr_unique_id = f"{VIN_PHEV}_{description.key}"
        self._attr_native_value = value


class _BinarySensor(BinarySensorEntity):
    """The smallest binary sensor entity that shows a description's state."""

    def __init__(
        self, description: CarDataBinarySensorEntityDescription, state: bool | None
    ) -> None:
        self.entity_description = description
        self._attr_unique_id = f"{VIN_PHEV}_{description.key}"
        self._attr_is_on = state


async def test_home_assistant_shows_a_charging_plug_in_hybrid(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """The simulator's charging PHEV, through every description, as a user sees it."""
    readings: dict[str, Reading] = {
        descriptor: TelematicValue.from_json(
            {"value": point.value, "unit": point.unit, "timestamp": point.timestamp}
        )
        for descriptor, point in initial_telematics(VIN_PHEV, NOW).items()
    }
    # Everything enabled, so that disabled-by-default entities are checked too.
    generic = [
        generic_sensor_description(descriptor)
        for descriptor in sorted(readings)
        if needs_generic_sensor(descriptor)
    ]
    sensors = [
        _Sensor(replace(d, entity_registry_enabled_default=True), d.native_value(readings))
        for d in (*SENSORS, *generic)
    ]
    binaries = [
        _BinarySensor(replace(d, entity_registry_enabled_default=True), d.is_on(readings))
        for d in BINARY_SENSORS
    ]
    await MockEntityPlatform(hass, domain="sensor", platform_name="cardata").async_add_entities(
        sensors
    )
    await MockEntityPlatform(
        hass, domain="binary_sensor", platform_name="cardata"
    ).async_add_entities(binaries)
    await hass.async_block_till_done()

    def shown(entity: SensorEntity | BinarySensorEntity) -> tuple[str, Any]:
        state = hass.states.get(entity.entity_id or "")
        assert state is not None
        return state.state, state.attributes.get("unit_of_measurement")

    by_key = {entity.entity_description.key: entity for entity in (*sensors, *binaries)}
    assert shown(by_key["state_of_charge"]) == ("45.0", "%")
    assert shown(by_key["charging_power"]) == ("3.68", "kW")
    assert shown(by_key["tyre_pressure_front_left"]) == ("2.5", "bar")
    assert shown(by_key["charging_status"]) == ("charging_active", None)
    assert shown(by_key["charging_phases"]) == ("one_phase", None)
    assert shown(by_key["odometer"]) == ("31877", "km")
    assert shown(by_key["remaining_fuel"]) == ("42.5", "L")
    assert shown(by_key["battery_capacity"]) == ("unknown", "kWh")
    assert shown(by_key["next_service_date"]) == ("2027-02-01", None)
    assert shown(by_key["next_inspection"]) == ("2027-01-17", None)
    assert shown(by_key["lock_state"]) == ("secured", None)
    assert shown(by_key["charging"])[0] == "on"
    assert shown(by_key["plugged_in"])[0] == "on"
    assert shown(by_key["door_lock"])[0] == "off"
    assert shown(by_key["door_driver"])[0] == "off"
    assert shown(by_key["moving"])[0] == "off"
    assert shown(by_key["service_due"])[0] == "off"
    generic_states = {e.entity_description.name: shown(e) for e in sensors[len(SENSORS) :]}
    assert generic_states["Time threshold for service information"] == ("4", "w")
    assert generic_states["Status of lights"] == ("false", None)
    assert generic_states["Number of CBS reports"] == ("2", None)
    assert generic_states["Low-voltage battery"] == ("unknown", "%")
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "asyncio"]
    assert not problems, caplog.text
