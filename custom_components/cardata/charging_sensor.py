"""Sensors of the charging estimate: the battery level a driver sees, and charged energy.

The battery level is the one sensor of a car with the battery device class, so the device
page's badge and the dashboards show the most current number: while the car charges it is
the estimate (labelled as one, with the last measured value and its time as attributes);
otherwise it is the measured state of charge. Charged energy is the charging power the car
reported, integrated over time: an energy meter for the Energy dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfEnergy
from homeassistant.core import callback

from .charging import SOC_DISPLAYED, SOC_HEADER
from .entity import CarDataEntity, async_add_descriptor_entities

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .charging import ChargingTracker
    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry

ATTR_ESTIMATED: Final = "estimated"
ATTR_LAST_MEASURED: Final = "last_measured"
ATTR_LAST_MEASURED_AT: Final = "last_measured_at"
ATTR_CHARGING_TYPE: Final = "charging_type"
CHARGING_POWER: Final = "vehicle.powertrain.electric.battery.charging.power"


@dataclass(frozen=True, kw_only=True)
class ChargingSensorEntityDescription(SensorEntityDescription):
    """A sensor of the charging tracker; created once the car reports one of `descriptors`."""

    descriptors: tuple[str, ...]


BATTERY_LEVEL: Final = ChargingSensorEntityDescription(
    key="estimated_state_of_charge",
    translation_key="estimated_state_of_charge",
    descriptors=(SOC_DISPLAYED, SOC_HEADER),
    device_class=SensorDeviceClass.BATTERY,
    state_class=SensorStateClass.MEASUREMENT,
    native_unit_of_measurement=PERCENTAGE,
    suggested_display_precision=0,
)
CHARGED_ENERGY: Final = ChargingSensorEntityDescription(
    key="charged_energy",
    translation_key="charged_energy",
    descriptors=(CHARGING_POWER,),
    device_class=SensorDeviceClass.ENERGY,
    state_class=SensorStateClass.TOTAL_INCREASING,
    native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    suggested_display_precision=2,
)


@callback
def async_add_charging_sensors(
    entry: CarDataConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the charging sensors of every car that reports a state of charge or charging power."""
    async_add_descriptor_entities(
        entry,
        async_add_entities,
        "sensor",
        (BATTERY_LEVEL, CHARGED_ENERGY),
        _make,
    )


def _make(
    coordinator: CarDataCoordinator, vin: str, description: ChargingSensorEntityDescription
) -> SensorEntity:
    if description.key == BATTERY_LEVEL.key:
        return BatteryLevelSensor(coordinator, vin, description)
    return ChargedEnergySensor(coordinator, vin, description)


class _ChargingSensor(CarDataEntity, SensorEntity):
    """A sensor that re-reads the charging tracker whenever it has news for its car."""

    def __init__(
        self,
        coordinator: CarDataCoordinator,
        vin: str,
        description: ChargingSensorEntityDescription,
    ) -> None:
        super().__init__(coordinator, vin, description)
        self._tracker: ChargingTracker = coordinator.charging
        self._attr_native_value = None
        self._attr_extra_state_attributes = {}
        self._refresh()

    async def async_added_to_hass(self) -> None:
        """Listen to the tracker."""
        await super().async_added_to_hass()
        self.async_on_remove(self._tracker.async_add_listener(self.vin, self._handle_update))

    @callback
    def _handle_update(self) -> None:
        if self._refresh():
            self.async_write_ha_state()

    def _refresh(self) -> bool:
        """Read the tracker; return True when what the user sees changed."""
        raise NotImplementedError


class BatteryLevelSensor(_ChargingSensor):
    """The most current state of charge: the estimate while charging, else the measurement."""

    def _refresh(self) -> bool:
        before = (self._attr_native_value, self._attr_extra_state_attributes)
        estimate = self._tracker.estimate(self.vin)
        if estimate is None:
            self._attr_native_value = None
            self._attr_extra_state_attributes = {}
        else:
            self._attr_native_value = round(estimate.soc, 1)
            attributes: dict[str, Any] = {
                ATTR_ESTIMATED: estimate.estimated,
                ATTR_LAST_MEASURED: estimate.measured_soc,
                ATTR_LAST_MEASURED_AT: estimate.measured_at.isoformat()
                if estimate.measured_at
                else None,
            }
            if estimate.charging:
                attributes[ATTR_CHARGING_TYPE] = (
                    estimate.method.upper() if estimate.method else None
                )
            self._attr_extra_state_attributes = attributes
        return before != (self._attr_native_value, self._attr_extra_state_attributes)


class ChargedEnergySensor(_ChargingSensor):
    """Energy the car took from chargers, as its charging power integrated over time."""

    def _refresh(self) -> bool:
        before = self._attr_native_value
        energy = self._tracker.charged_energy(self.vin)
        self._attr_native_value = round(energy, 3) if energy is not None else None
        return before != self._attr_native_value
