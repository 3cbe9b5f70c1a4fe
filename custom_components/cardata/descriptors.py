"""Which BMW descriptor becomes which entity, and how its value becomes an entity state.

The curated catalogue below covers the descriptors that matter day to day; every other
descriptor a car reports becomes a generic sensor, named after BMW's catalogue and
disabled by default (`generic_sensor_description`). Descriptions are declarative: the
descriptors an entity reads, a value map for enumerations and one converter per kind of
value. The platforms ask a description for its state with the vehicle's current readings
(`native_value` / `is_on`); when several descriptors feed one entity, the newest usable
reading wins.

Unique ids are `<vin>_<key>`. Keys are part of the stored entity registry: never derive
them from a translation and never change one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
import re
from typing import Any, Final, Protocol

# Newer Home Assistant moved the device class to binary_sensor.const and re-exports it
# implicitly; this import works on every supported version.
from homeassistant.components.binary_sensor import (  # type: ignore[attr-defined, unused-ignore]
    BinarySensorDeviceClass,
    BinarySensorEntityDescription,
)
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfLength,
    UnitOfPower,
    UnitOfPressure,
    UnitOfTemperature,
    UnitOfTime,
    UnitOfVolume,
)
from homeassistant.helpers.entity import EntityDescription

from .api.values import ParsedValue
from .descriptor_names import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from .units import (
    canonical_unit,
    device_class_for_unit,
    lookup_token,
    next_service_date,
    normalize_unit,
    parse_bmw_datetime,
    service_due,
    to_native,
)

# Home Assistant refuses states longer than this.
MAX_STATE_LENGTH: Final = 255


class Reading(Protocol):
    """One descriptor's current state as the entity layer needs it.

    Satisfied by the API's `TelematicValue` and the coordinator's `DescriptorState`.
    """

    @property
    def value(self) -> ParsedValue:
        """Parsed value; None when the car has no valid value."""

    @property
    def raw_value(self) -> Any:
        """The value exactly as BMW sent it."""

    @property
    def unit(self) -> str | None:
        """BMW's unit string, if BMW sent one."""

    @property
    def timestamp(self) -> datetime | None:
        """When the car measured the value."""


type Readings = Mapping[str, Reading]
type SensorValue = str | int | float | date | datetime | None
type SensorConverter = Callable[[CarDataSensorEntityDescription, str, Reading, Any], SensorValue]
type BinaryConverter = Callable[[CarDataBinarySensorEntityDescription, str, Reading], bool | None]


# --- converters: one per kind of value --------------------------------------------------------


def newest_first(readings: Readings, descriptors: Iterable[str]) -> list[tuple[str, Reading]]:
    """Return the readings present among `descriptors`, newest measurement first.

    Readings without timestamp come last; ties keep the order of `descriptors`, which
    lists the preferred descriptor first.
    """
    present = [(d, readings[d]) for d in descriptors if d in readings]
    return sorted(present, key=lambda item: _sort_time(item[1].timestamp), reverse=True)


def _sort_time(moment: datetime | None) -> datetime:
    """Make a timestamp comparable: missing ones sort oldest, naive ones count as UTC."""
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def number_value(
    description: CarDataSensorEntityDescription, descriptor: str, reading: Reading, previous: Any
) -> int | float | None:
    """Return the number in the description's native unit (see units.to_native)."""
    number = to_native(
        reading.value,
        reading.unit,
        description.native_unit_of_measurement,
        raw_value=reading.raw_value,
        previous=previous,
        context=descriptor,
    )
    if number is None or (description.zero_is_unknown and number == 0):
        return None
    return number


def enum_value(
    description: CarDataSensorEntityDescription, descriptor: str, reading: Reading, previous: Any
) -> str | None:
    """Option key of an enumeration value; values the map does not know give None."""
    return lookup_token(description.value_map, reading.value, descriptor)


def text_value(
    description: CarDataSensorEntityDescription, descriptor: str, reading: Reading, previous: Any
) -> str | int | float | None:
    """Value of a descriptor without unit, as parsed (long texts cut to fit a state)."""
    value = reading.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and len(value) > MAX_STATE_LENGTH:
        return value[: MAX_STATE_LENGTH - 1] + "…"
    return value


def next_service_value(
    description: CarDataSensorEntityDescription, descriptor: str, reading: Reading, previous: Any
) -> date | None:
    """Earliest due date of the condition based services."""
    return next_service_date(reading.value)


def inspection_date_value(
    description: CarDataSensorEntityDescription, descriptor: str, reading: Reading, previous: Any
) -> date | None:
    """Day of the legal inspection, as BMW writes it (BMW sends midnight UTC of that day)."""
    moment = parse_bmw_datetime(reading.value)
    return None if moment is None else moment.date()


def state_from_token(
    description: CarDataBinarySensorEntityDescription, descriptor: str, reading: Reading
) -> bool | None:
    """On/off from the description's value map; values the map does not know give None."""
    return lookup_token(description.value_map, reading.value, descriptor)


def service_due_state(
    description: CarDataBinarySensorEntityDescription, descriptor: str, reading: Reading
) -> bool | None:
    """On when a condition based service is due."""
    return service_due(reading.value)


# --- descriptions ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CarDataSensorEntityDescription(SensorEntityDescription):
    """A sensor fed by one or more descriptors.

    `descriptors` lists the preferred descriptor first; `value_map` maps BMW tokens (see
    `bmw_token`) to option keys for enumerations, None marking known "no value" tokens.
    """

    descriptors: tuple[str, ...]
    convert: SensorConverter = number_value
    value_map: Mapping[str, str | None] = field(default_factory=dict)
    zero_is_unknown: bool = False

    def native_value(self, readings: Readings, previous: Any = None) -> SensorValue:
        """Return the state from the vehicle's readings; `previous` is the current state."""
        for descriptor, reading in newest_first(readings, self.descriptors):
            value = self.convert(self, descriptor, reading, previous)
            if value is not None:
                return value
        return None


@dataclass(frozen=True, kw_only=True)
class CarDataBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor fed by one or more descriptors (see CarDataSensorEntityDescription)."""

    descriptors: tuple[str, ...]
    convert: BinaryConverter = state_from_token
    value_map: Mapping[str, bool | None] = field(default_factory=dict)

    def is_on(self, readings: Readings) -> bool | None:
        """Return the state from the vehicle's readings; None means unknown."""
        for descriptor, reading in newest_first(readings, self.descriptors):
            state = self.convert(self, descriptor, reading)
            if state is not None:
                return state
        return None


@dataclass(frozen=True, kw_only=True)
class CarDataTrackerEntityDescription(EntityDescription):
    """The device tracker: position from latitude and longitude, which arrive separately."""

    latitude: str
    longitude: str
    heading: str
    altitude: str

    @property
    def descriptors(self) -> tuple[str, ...]:
        """Every descriptor the tracker reads."""
        return (self.latitude, self.longitude, self.heading, self.altitude)

    def location(self, readings: Readings) -> tuple[float, float] | None:
        """Return (latitude, longitude), or None unless both are known and plausible."""
        latitude = _coordinate(readings.get(self.latitude), 90)
        longitude = _coordinate(readings.get(self.longitude), 180)
        if latitude is None or longitude is None:
            return None
        return latitude, longitude

    def heading_degrees(self, readings: Readings) -> float | None:
        """Return the heading in degrees (0 = north), or None."""
        number = _coordinate(readings.get(self.heading), 360)
        return None if number is None or number < 0 else number

    def altitude_meters(self, readings: Readings) -> float | None:
        """Return the altitude in metres (BMW may report feet), or None."""
        reading = readings.get(self.altitude)
        if reading is None:
            return None
        number = to_native(reading.value, reading.unit, UnitOfLength.METERS, context=self.altitude)
        return None if number is None else float(number)


def _coordinate(reading: Reading | None, limit: float) -> float | None:
    """Return a numeric reading within ±limit, or None."""
    if reading is None:
        return None
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if -limit <= value <= limit else None


_BOOLEAN: Final[dict[str, bool | None]] = {"TRUE": True, "FALSE": False}

# BMW enumeration tokens -> option keys. The option lists of the entity descriptions and of
# strings.json are derived from these maps; None marks tokens that mean "no value".
CHARGING_STATUS_STATES: Final[dict[str, str | None]] = {
    "NOCHARGING": "not_charging",
    "INITIALIZATION": "initialization",
    "CHARGINGACTIVE": "charging_active",
    "CHARGINGPAUSED": "charging_paused",
    "CHARGINGENDED": "charging_ended",
    "CHARGINGERROR": "charging_error",
}
HV_STATUS_STATES: Final[dict[str, str | None]] = {
    "NOT_CHARGING": "not_charging",
    "WAITING_FOR_CHARGING": "waiting_for_charging",
    "CHARGING": "charging",
    "FINISHED_FULLY_CHARGED": "finished_fully_charged",
    "FINISHED_NOT_FULL": "finished_not_full",
    "ERROR": "error",
}
PHASE_STATES: Final[dict[str, str | None]] = {
    "NO_CHARGING": "no_charging",
    "1_PHASES": "one_phase",
    "2_PHASES": "two_phases",
    "3_PHASES": "three_phases",
}
CHARGING_METHOD_STATES: Final[dict[str, str | None]] = {
    "NOCHARGING": "not_charging",
    "AC_TYPE1PLUG": "ac_type_1",
    "AC_TYPE2PLUG": "ac_type_2",
}
CHARGING_PORT_STATES: Final[dict[str, str | None]] = {
    "CONNECTED": "connected",
    "DISCONNECTED": "disconnected",
}
LOCK_STATES: Final[dict[str, str | None]] = {
    "SECURED": "secured",
    "LOCKED": "locked",
    "SELECTIVE_LOCKED": "selective_locked",
    "UNLOCKED": "unlocked",
    "UNKNOWN": None,
}
PRECONDITIONING_STATES: Final[dict[str, str | None]] = {
    "INACTIVE": "inactive",
    "STANDBY": "standby",
    "HEATING": "heating",
    "COOLING": "cooling",
    "VENTILATION": "ventilation",
}
COMFORT_STATES: Final[dict[str, str | None]] = {
    "NOT_ACTIVE": "not_active",
    "COMFORT_HEATING": "heating",
    "COMFORT_COOLING": "cooling",
    "COMFORT_VENTILATION": "ventilation",
    "DEFROST": "defrost",
    "COMFORT_UNDEFINED": None,
}

# Binary states. Home Assistant's lock device class is on when UNLOCKED.
OPEN_STATES: Final[dict[str, bool | None]] = {
    "OPEN": True,
    "INTERMEDIATE": True,
    "OPEN_TILT": True,
    "INTERMEDIATE_TILT": True,
    "CLOSED": False,
    "UNKNOWN": None,
    **_BOOLEAN,
}
UNLOCKED_STATES: Final[dict[str, bool | None]] = {
    "SECURED": False,
    "LOCKED": False,
    "SELECTIVE_LOCKED": True,
    "UNLOCKED": True,
    "UNKNOWN": None,
}
CHARGING_STATES: Final[dict[str, bool | None]] = {
    "CHARGINGACTIVE": True,
    "NOCHARGING": False,
    "INITIALIZATION": False,
    "CHARGINGPAUSED": False,
    "CHARGINGENDED": False,
    "CHARGINGERROR": False,
    "CHARGING": True,
    "NOT_CHARGING": False,
    "WAITING_FOR_CHARGING": False,
    "FINISHED_FULLY_CHARGED": False,
    "FINISHED_NOT_FULL": False,
    "ERROR": False,
}
PLUGGED_STATES: Final[dict[str, bool | None]] = {
    "CONNECTED": True,
    "DISCONNECTED": False,
    **_BOOLEAN,
}


def options_of(states: Mapping[str, str | None]) -> list[str]:
    """Option keys of a value map, in map order, without duplicates."""
    return list(dict.fromkeys(option for option in states.values() if option is not None))


# --- the curated catalogue -----------------------------------------------------------------

SOC_HEADER: Final = "vehicle.drivetrain.batteryManagement.header"
SOC_DISPLAYED: Final = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
CHARGING_LEVEL: Final = "vehicle.drivetrain.electricEngine.charging.level"
SOC_TARGET: Final = "vehicle.powertrain.electric.battery.stateOfCharge.target"
CHARGING_STATUS: Final = "vehicle.drivetrain.electricEngine.charging.status"
CHARGING_HV_STATUS: Final = "vehicle.drivetrain.electricEngine.charging.hvStatus"
CHARGING_POWER: Final = "vehicle.powertrain.electric.battery.charging.power"
CHARGING_AC_VOLTAGE: Final = "vehicle.drivetrain.electricEngine.charging.acVoltage"
CHARGING_AC_CURRENT: Final = "vehicle.drivetrain.electricEngine.charging.acAmpere"
CHARGING_PHASES: Final = "vehicle.drivetrain.electricEngine.charging.phaseNumber"
CHARGING_TIME_REMAINING: Final = "vehicle.drivetrain.electricEngine.charging.timeRemaining"
CHARGING_TIME_TO_FULL: Final = "vehicle.drivetrain.electricEngine.charging.timeToFullyCharged"
CHARGING_METHOD: Final = "vehicle.drivetrain.electricEngine.charging.method"
CHARGING_PORT_STATUS: Final = "vehicle.body.chargingPort.status"
PLUGGED: Final = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
ELECTRIC_RANGE: Final = "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange"
TOTAL_RANGE: Final = "vehicle.drivetrain.lastRemainingRange"
ODOMETER: Final = "vehicle.vehicle.travelledDistance"
FUEL_LEVEL: Final = "vehicle.drivetrain.fuelSystem.level"
REMAINING_FUEL: Final = "vehicle.drivetrain.fuelSystem.remainingFuel"
BATTERY_SIZE: Final = "vehicle.drivetrain.batteryManagement.batterySizeMax"
BATTERY_MAX_ENERGY: Final = "vehicle.drivetrain.batteryManagement.maxEnergy"
LATITUDE: Final = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE: Final = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
HEADING: Final = "vehicle.cabin.infotainment.navigation.currentLocation.heading"
ALTITUDE: Final = "vehicle.cabin.infotainment.navigation.currentLocation.altitude"
LOCK_STATUS: Final = "vehicle.cabin.door.lock.status"
DOOR_STATUS: Final = "vehicle.cabin.door.status"
SUNROOF: Final = "vehicle.cabin.sunroof.status"
TRUNK: Final = "vehicle.body.trunk.isOpen"
TRUNK_DOOR: Final = "vehicle.body.trunk.door.isOpen"
HOOD: Final = "vehicle.body.hood.isOpen"
BATTERY_12V_VOLTAGE: Final = "vehicle.electricalSystem.battery.voltage"
PRECONDITIONING: Final = "vehicle.vehicle.preConditioning.activity"
COMFORT_STATE: Final = "vehicle.cabin.hvac.preconditioning.status.comfortState"
SERVICES: Final = "vehicle.status.conditionBasedServices"
SERVICE_DISTANCE: Final = "vehicle.status.serviceDistance.next"
INSPECTION_DATE: Final = "vehicle.status.serviceTime.inspectionDateLegal"
MOVING: Final = "vehicle.isMoving"

# (key part, axle row, side) of each wheel.
_WHEELS: Final = (
    ("front_left", "row1", "left"),
    ("front_right", "row1", "right"),
    ("rear_left", "row2", "left"),
    ("rear_right", "row2", "right"),
)
# (key part, row, seat) of each door and window. BMW names them by seat, not by side, so
# the names stay right in right-hand drive cars.
_SEATS: Final = (
    ("driver", "row1", "driver"),
    ("passenger", "row1", "passenger"),
    ("rear_driver", "row2", "driver"),
    ("rear_passenger", "row2", "passenger"),
)


def _tyre(row: str, side: str, quantity: str) -> str:
    """Descriptor of one tyre quantity (pressure, pressureTarget, temperature)."""
    return f"vehicle.chassis.axle.{row}.wheel.{side}.tire.{quantity}"


SENSORS: Final[tuple[CarDataSensorEntityDescription, ...]] = (
    CarDataSensorEntityDescription(
        key="state_of_charge",
        translation_key="state_of_charge",
        descriptors=(SOC_DISPLAYED, SOC_HEADER),
        # Not the battery class: the battery level sensor (charging_sensor.py) carries it,
        # so the device page's badge shows the most current number, estimated while charging.
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="charging_level",
        translation_key="charging_level",
        descriptors=(CHARGING_LEVEL,),
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="target_state_of_charge",
        translation_key="target_state_of_charge",
        descriptors=(SOC_TARGET,),
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="charging_status",
        translation_key="charging_status",
        descriptors=(CHARGING_STATUS,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(CHARGING_STATUS_STATES),
        value_map=CHARGING_STATUS_STATES,
        convert=enum_value,
    ),
    CarDataSensorEntityDescription(
        key="charging_hv_status",
        translation_key="charging_hv_status",
        descriptors=(CHARGING_HV_STATUS,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(HV_STATUS_STATES),
        value_map=HV_STATUS_STATES,
        convert=enum_value,
        entity_registry_enabled_default=False,
    ),
    CarDataSensorEntityDescription(
        key="charging_power",
        translation_key="charging_power",
        descriptors=(CHARGING_POWER,),
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_unit_of_measurement=UnitOfPower.KILO_WATT,
        suggested_display_precision=1,
    ),
    CarDataSensorEntityDescription(
        key="charging_ac_voltage",
        translation_key="charging_ac_voltage",
        descriptors=(CHARGING_AC_VOLTAGE,),
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
    ),
    CarDataSensorEntityDescription(
        key="charging_ac_current",
        translation_key="charging_ac_current",
        descriptors=(CHARGING_AC_CURRENT,),
        device_class=SensorDeviceClass.CURRENT,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
    ),
    CarDataSensorEntityDescription(
        key="charging_phases",
        translation_key="charging_phases",
        descriptors=(CHARGING_PHASES,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(PHASE_STATES),
        value_map=PHASE_STATES,
        convert=enum_value,
    ),
    CarDataSensorEntityDescription(
        key="charging_time_remaining",
        translation_key="charging_time_remaining",
        descriptors=(CHARGING_TIME_REMAINING,),
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        # BMW reports 0 min whenever the car is not charging; "0 min" would read as "done".
        zero_is_unknown=True,
    ),
    CarDataSensorEntityDescription(
        key="charging_time_to_full",
        translation_key="charging_time_to_full",
        descriptors=(CHARGING_TIME_TO_FULL,),
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
        zero_is_unknown=True,
    ),
    CarDataSensorEntityDescription(
        key="charging_method",
        translation_key="charging_method",
        descriptors=(CHARGING_METHOD,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(CHARGING_METHOD_STATES),
        value_map=CHARGING_METHOD_STATES,
        convert=enum_value,
        entity_registry_enabled_default=False,
    ),
    CarDataSensorEntityDescription(
        key="charging_port_status",
        translation_key="charging_port_status",
        descriptors=(CHARGING_PORT_STATUS,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(CHARGING_PORT_STATES),
        value_map=CHARGING_PORT_STATES,
        convert=enum_value,
        entity_registry_enabled_default=False,
    ),
    CarDataSensorEntityDescription(
        key="electric_range",
        translation_key="electric_range",
        descriptors=(ELECTRIC_RANGE,),
        device_class=SensorDeviceClass.DISTANCE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="total_range",
        translation_key="total_range",
        descriptors=(TOTAL_RANGE,),
        device_class=SensorDeviceClass.DISTANCE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="odometer",
        translation_key="odometer",
        descriptors=(ODOMETER,),
        device_class=SensorDeviceClass.DISTANCE,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="fuel_level",
        translation_key="fuel_level",
        descriptors=(FUEL_LEVEL,),
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="remaining_fuel",
        translation_key="remaining_fuel",
        descriptors=(REMAINING_FUEL,),
        device_class=SensorDeviceClass.VOLUME_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfVolume.LITERS,
        suggested_display_precision=0,
    ),
    CarDataSensorEntityDescription(
        key="battery_capacity",
        translation_key="battery_capacity",
        descriptors=(BATTERY_SIZE,),
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Some plug-in hybrids report a battery size of 0 kWh.
        zero_is_unknown=True,
    ),
    CarDataSensorEntityDescription(
        key="battery_energy_content",
        translation_key="battery_energy_content",
        descriptors=(BATTERY_MAX_ENERGY,),
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        zero_is_unknown=True,
    ),
    CarDataSensorEntityDescription(
        key="lock_state",
        translation_key="lock_state",
        descriptors=(LOCK_STATUS, DOOR_STATUS),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(LOCK_STATES),
        value_map=LOCK_STATES,
        convert=enum_value,
        entity_registry_enabled_default=False,
    ),
    *(
        CarDataSensorEntityDescription(
            key=f"tyre_pressure_{wheel}",
            translation_key=f"tyre_pressure_{wheel}",
            descriptors=(_tyre(row, side, "pressure"),),
            device_class=SensorDeviceClass.PRESSURE,
            state_class=SensorStateClass.MEASUREMENT,
            native_unit_of_measurement=UnitOfPressure.KPA,
            suggested_unit_of_measurement=UnitOfPressure.BAR,
            suggested_display_precision=1,
        )
        for wheel, row, side in _WHEELS
    ),
    *(
        CarDataSensorEntityDescription(
            key=f"tyre_pressure_target_{wheel}",
            translation_key=f"tyre_pressure_target_{wheel}",
            descriptors=(_tyre(row, side, "pressureTarget"),),
            device_class=SensorDeviceClass.PRESSURE,
            native_unit_of_measurement=UnitOfPressure.KPA,
            suggested_unit_of_measurement=UnitOfPressure.BAR,
            suggested_display_precision=1,
            entity_category=EntityCategory.DIAGNOSTIC,
        )
        for wheel, row, side in _WHEELS
    ),
    *(
        CarDataSensorEntityDescription(
            key=f"tyre_temperature_{wheel}",
            translation_key=f"tyre_temperature_{wheel}",
            descriptors=(_tyre(row, side, "temperature"),),
            device_class=SensorDeviceClass.TEMPERATURE,
            state_class=SensorStateClass.MEASUREMENT,
            native_unit_of_measurement=UnitOfTemperature.CELSIUS,
            suggested_display_precision=0,
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
        )
        for wheel, row, side in _WHEELS
    ),
    CarDataSensorEntityDescription(
        key="battery_12v_voltage",
        translation_key="battery_12v_voltage",
        descriptors=(BATTERY_12V_VOLTAGE,),
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    CarDataSensorEntityDescription(
        key="preconditioning",
        translation_key="preconditioning",
        descriptors=(PRECONDITIONING,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(PRECONDITIONING_STATES),
        value_map=PRECONDITIONING_STATES,
        convert=enum_value,
    ),
    CarDataSensorEntityDescription(
        key="climate_comfort_state",
        translation_key="climate_comfort_state",
        descriptors=(COMFORT_STATE,),
        device_class=SensorDeviceClass.ENUM,
        options=options_of(COMFORT_STATES),
        value_map=COMFORT_STATES,
        convert=enum_value,
        entity_registry_enabled_default=False,
    ),
    CarDataSensorEntityDescription(
        key="next_service_date",
        translation_key="next_service_date",
        descriptors=(SERVICES,),
        device_class=SensorDeviceClass.DATE,
        convert=next_service_value,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    CarDataSensorEntityDescription(
        key="next_service_distance",
        translation_key="next_service_distance",
        descriptors=(SERVICE_DISTANCE,),
        device_class=SensorDeviceClass.DISTANCE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    CarDataSensorEntityDescription(
        key="next_inspection",
        translation_key="next_inspection",
        descriptors=(INSPECTION_DATE,),
        # A date, like the next service: a due day, not a moment to count down to.
        device_class=SensorDeviceClass.DATE,
        convert=inspection_date_value,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
)

BINARY_SENSORS: Final[tuple[CarDataBinarySensorEntityDescription, ...]] = (
    CarDataBinarySensorEntityDescription(
        key="charging",
        translation_key="charging",
        descriptors=(CHARGING_STATUS, CHARGING_HV_STATUS),
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
        value_map=CHARGING_STATES,
    ),
    CarDataBinarySensorEntityDescription(
        key="plugged_in",
        translation_key="plugged_in",
        descriptors=(PLUGGED, CHARGING_PORT_STATUS),
        device_class=BinarySensorDeviceClass.PLUG,
        value_map=PLUGGED_STATES,
    ),
    *(
        CarDataBinarySensorEntityDescription(
            key=f"door_{seat_key}",
            translation_key=f"door_{seat_key}",
            descriptors=(f"vehicle.cabin.door.{row}.{seat}.isOpen",),
            device_class=BinarySensorDeviceClass.DOOR,
            value_map=OPEN_STATES,
        )
        for seat_key, row, seat in _SEATS
    ),
    *(
        CarDataBinarySensorEntityDescription(
            key=f"window_{seat_key}",
            translation_key=f"window_{seat_key}",
            descriptors=(f"vehicle.cabin.window.{row}.{seat}.status",),
            device_class=BinarySensorDeviceClass.WINDOW,
            value_map=OPEN_STATES,
        )
        for seat_key, row, seat in _SEATS
    ),
    CarDataBinarySensorEntityDescription(
        key="sunroof",
        translation_key="sunroof",
        descriptors=(SUNROOF,),
        device_class=BinarySensorDeviceClass.WINDOW,
        value_map=OPEN_STATES,
    ),
    CarDataBinarySensorEntityDescription(
        key="trunk",
        translation_key="trunk",
        descriptors=(TRUNK, TRUNK_DOOR),
        device_class=BinarySensorDeviceClass.OPENING,
        value_map=OPEN_STATES,
    ),
    CarDataBinarySensorEntityDescription(
        key="hood",
        translation_key="hood",
        descriptors=(HOOD,),
        device_class=BinarySensorDeviceClass.OPENING,
        value_map=OPEN_STATES,
    ),
    CarDataBinarySensorEntityDescription(
        key="door_lock",
        translation_key="door_lock",
        descriptors=(LOCK_STATUS, DOOR_STATUS),
        device_class=BinarySensorDeviceClass.LOCK,
        value_map=UNLOCKED_STATES,
    ),
    CarDataBinarySensorEntityDescription(
        key="moving",
        translation_key="moving",
        descriptors=(MOVING,),
        device_class=BinarySensorDeviceClass.MOVING,
        value_map=_BOOLEAN,
    ),
    CarDataBinarySensorEntityDescription(
        key="service_due",
        translation_key="service_due",
        descriptors=(SERVICES,),
        device_class=BinarySensorDeviceClass.PROBLEM,
        convert=service_due_state,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
)

DEVICE_TRACKER: Final = CarDataTrackerEntityDescription(
    key="location",
    translation_key="location",
    latitude=LATITUDE,
    longitude=LONGITUDE,
    heading=HEADING,
    altitude=ALTITUDE,
)

# Not fed by a descriptor: the binary_sensor platform sets it from the stream's status.
STREAM_CONNECTED: Final = BinarySensorEntityDescription(
    key="stream_connected",
    translation_key="stream_connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)

CURATED_DESCRIPTORS: Final[frozenset[str]] = frozenset(
    (
        *(d for description in SENSORS for d in description.descriptors),
        *(d for description in BINARY_SENSORS for d in description.descriptors),
        *DEVICE_TRACKER.descriptors,
    )
)

# Catalogue entries that name a REST endpoint or a picture rather than a value; they never
# become sensors (the image platform shows the picture).
NOT_VALUES: Final[frozenset[str]] = frozenset(
    {
        "vehicle.look.image",
        "vehicle.vehicleIdentification.basicVehicleData",
        "vehicle.powertrain.electric.battery.charging.history.sessionsList",
        "vehicle.powertrain.electric.battery.charging.settingsList",
        "vehicle.chassis.axle.wheel.tire.diagnosis",
        "vehicle.learningNavigation",
    }
)


# --- generic sensors -------------------------------------------------------------------------


def needs_generic_sensor(descriptor: str) -> bool:
    """Whether a descriptor the car reports should get a generic sensor."""
    return descriptor not in CURATED_DESCRIPTORS and descriptor not in NOT_VALUES


def generic_key(descriptor: str) -> str:
    """Stable snake_case key for a descriptor without curated entity.

    `vehicle.cabin.seat.row1.driverSide.heating` gives `cabin_seat_row1_driver_side_heating`.
    """
    path = descriptor.removeprefix("vehicle.")
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", path)
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")


def generic_name(descriptor: str) -> str:
    """English name from BMW's catalogue; descriptors BMW added since get a readable path."""
    if name := DESCRIPTOR_NAMES.get(descriptor):
        return name
    return generic_key(descriptor).replace("_", " ").capitalize()


# Generic descriptors that count up over the car's life: statistics sum their increases.
_LIFETIME_COUNTER: Final = re.compile(
    r"\.consumptionOverLifeTime\.|^vehicle\.vehicle\.travelledDistance$"
)
# Generic descriptors whose numbers are settings, not measurements (clock times of timers):
# statistics of them would mean nothing.
_SETTING: Final = re.compile(r"\.timers\.")
# An amount of energy or fuel that is no lifetime counter is what the car holds or can hold
# (battery size, energy to full); Home Assistant's `energy`/`volume` classes are meters.
_STORED_AMOUNT: Final = {
    SensorDeviceClass.ENERGY: SensorDeviceClass.ENERGY_STORAGE,
    SensorDeviceClass.VOLUME: SensorDeviceClass.VOLUME_STORAGE,
}


def generic_state_class(descriptor: str) -> SensorStateClass | None:
    """Return the state class of a numeric generic sensor (see generic_sensor_description)."""
    if _LIFETIME_COUNTER.search(descriptor):
        return SensorStateClass.TOTAL_INCREASING
    if _SETTING.search(descriptor):
        return None
    return SensorStateClass.MEASUREMENT


def generic_sensor_description(
    descriptor: str, reported_unit: str | None = None, *, text: bool = False
) -> CarDataSensorEntityDescription:
    """Describe the generic, disabled-by-default sensor of a descriptor.

    The unit comes from the catalogue, else from the first value the car reported
    (`reported_unit`); imperial units are kept in their metric counterpart. Descriptors with
    a unit are numeric, unless the car reported text for them (`text`); the others show
    their value as text. Numeric ones get a state class, so that they keep statistics:
    lifetime counters `total_increasing`, settings none, everything else `measurement`.
    """
    unit = canonical_unit(normalize_unit(DESCRIPTOR_UNITS.get(descriptor) or reported_unit))
    key = generic_key(descriptor)
    name = generic_name(descriptor)
    if unit is None or text:
        return CarDataSensorEntityDescription(
            key=key,
            name=name,
            descriptors=(descriptor,),
            convert=text_value,
            entity_registry_enabled_default=False,
        )
    device_class = device_class_for_unit(unit)
    state_class = generic_state_class(descriptor)
    if state_class is SensorStateClass.MEASUREMENT and device_class in _STORED_AMOUNT:
        device_class = _STORED_AMOUNT[device_class]
    return CarDataSensorEntityDescription(
        key=key,
        name=name,
        descriptors=(descriptor,),
        device_class=device_class,
        state_class=state_class,
        native_unit_of_measurement=unit,
        convert=number_value,
        entity_registry_enabled_default=False,
    )
