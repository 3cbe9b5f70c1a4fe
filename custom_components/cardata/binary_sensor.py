"""Binary sensors: charging, plug, doors, windows, lids, lock, motion, and the stream's link."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.core import HomeAssistant, callback

from .descriptors import (
    BINARY_SENSORS,
    STREAM_CONNECTED,
    CarDataBinarySensorEntityDescription,
)
from .entity import (
    CarDataDescriptorEntity,
    CarDataEntity,
    DescriptorReadings,
    async_add_descriptor_entities,
    reading_in_use,
)

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry
    from .stream_manager import StreamManager
    from .vehicle import DescriptorState

# Entities only read the coordinator's state; nothing here sends requests.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors of every vehicle."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    async_add_entities(
        StreamConnectedBinarySensor(coordinator, vin, runtime.stream)
        for vin in coordinator.vehicles
    )
    async_add_descriptor_entities(
        entry, async_add_entities, "binary_sensor", BINARY_SENSORS, CarDataBinarySensor
    )


class CarDataBinarySensor(CarDataDescriptorEntity, BinarySensorEntity):
    """A binary sensor fed by one or more descriptors."""

    entity_description: CarDataBinarySensorEntityDescription

    def __init__(
        self,
        coordinator: CarDataCoordinator,
        vin: str,
        description: CarDataBinarySensorEntityDescription,
    ) -> None:
        """Read the description's descriptors of vehicle `vin`."""
        super().__init__(coordinator, vin, description, description.descriptors)

    def _compute(self, readings: DescriptorReadings) -> tuple[Any, DescriptorState | None]:
        description = self.entity_description
        self._attr_is_on = description.is_on(readings)

        def gives_state(reading: Mapping[str, DescriptorState]) -> bool:
            return description.is_on(reading) is not None

        return self._attr_is_on, reading_in_use(readings, description.descriptors, gives_state)


class StreamConnectedBinarySensor(CarDataEntity, BinarySensorEntity):
    """Whether the account's stream is connected (shown on each vehicle's device)."""

    def __init__(self, coordinator: CarDataCoordinator, vin: str, stream: StreamManager) -> None:
        """Follow the account's stream."""
        super().__init__(coordinator, vin, STREAM_CONNECTED)
        self._stream = stream
        self._attr_is_on = stream.connected

    async def async_added_to_hass(self) -> None:
        """Listen to the stream's status changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._stream.async_add_listener(self._handle_status))
        self._attr_is_on = self._stream.connected

    @callback
    def _handle_status(self) -> None:
        if self._stream.connected != self._attr_is_on:
            self._attr_is_on = self._stream.connected
            self.async_write_ha_state()
