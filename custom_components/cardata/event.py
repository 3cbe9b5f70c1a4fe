"""Event entities: charging started/finished, cable plugged/unplugged, trip ended.

The events come from `EventDetector` (vehicle_events.py), which fires only on news from the
stream. Home Assistant keeps an event entity's last event across restarts itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import callback

from .entity import CarDataEntity
from .vehicle_events import CABLE_EVENT, CHARGING_EVENT, EVENT_TYPES, TRIP_EVENT, VehicleEvent

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry

# Entities only relay what the stream reported; nothing here sends requests.
PARALLEL_UPDATES = 0

EVENTS: tuple[EventEntityDescription, ...] = tuple(
    EventEntityDescription(key=key, translation_key=key, event_types=list(EVENT_TYPES[key]))
    for key in (CHARGING_EVENT, CABLE_EVENT, TRIP_EVENT)
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the event entities of every vehicle."""
    coordinator = entry.runtime_data.coordinator
    entities = {
        (vin, description.key): CarDataEventEntity(coordinator, vin, description)
        for vin in coordinator.vehicles
        for description in EVENTS
        if description.key == TRIP_EVENT or coordinator.is_electrified(vin)
    }
    async_add_entities(entities.values())

    @callback
    def relay(event: VehicleEvent) -> None:
        if (entity := entities.get((event.vin, event.entity))) is not None:
            entity.async_fire(event)

    entry.async_on_unload(coordinator.events.async_add_listener(relay))


class CarDataEventEntity(CarDataEntity, EventEntity):
    """One kind of event of one car."""

    def __init__(
        self, coordinator: CarDataCoordinator, vin: str, description: EventEntityDescription
    ) -> None:
        """Attach the entity to the car's device."""
        super().__init__(coordinator, vin, description)

    @callback
    def async_fire(self, event: VehicleEvent) -> None:
        """Record the event and write the state (automations trigger on it)."""
        self._trigger_event(event.event_type, event.attributes)
        self.async_write_ha_state()
