"""Sensors: the curated catalogue, generic sensors for the long tail, and two diagnostics.

Descriptor sensors follow `descriptors.SENSORS`; a descriptor outside it that a car reports
gets a generic sensor, disabled by default, the moment it first appears. The diagnostics
are the REST requests left in BMW's 24-hour budget and the time of the vehicle's last
stream message. The latter appears with the first stream message (like every entity fed by
the car): "Unknown" beside a connected stream would read like a fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .charging_sensor import async_add_charging_sensors
from .const import BUDGET_WINDOW, DOMAIN, LOGGER
from .descriptors import (
    MAX_STATE_LENGTH,
    SENSORS,
    CarDataSensorEntityDescription,
    SensorValue,
    generic_sensor_description,
    needs_generic_sensor,
)
from .entity import (
    ATTR_DATA_SOURCE,
    ATTR_MEASURED_AT,
    CarDataDescriptorEntity,
    CarDataEntity,
    DescriptorReadings,
    async_add_descriptor_entities,
    reading_in_use,
)
from .vehicle import DescriptorState, VehicleChange

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import CarDataCoordinator
    from .quota import Budget
    from .runtime import CarDataConfigEntry

# Entities only read the coordinator's state; nothing here sends requests.
PARALLEL_UPDATES = 0

# A text too long for the state is shown whole in this attribute, up to MAX_FULL_TEXT
# characters: Home Assistant stores every entity's attributes in its restore data.
ATTR_FULL_TEXT: Final = "full_text"
MAX_FULL_TEXT: Final = 16384

# The last-message time changes with every message; writing it once a minute is enough.
LAST_MESSAGE_WRITE_INTERVAL: Final = 60.0

REST_REQUESTS_LEFT: Final = SensorEntityDescription(
    key="rest_requests_left",
    translation_key="rest_requests_left",
    state_class=SensorStateClass.MEASUREMENT,
    entity_category=EntityCategory.DIAGNOSTIC,
)
LAST_STREAM_MESSAGE: Final = SensorEntityDescription(
    key="last_stream_message",
    translation_key="last_stream_message",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every vehicle; generic ones follow as descriptors appear."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    async_add_entities(
        RestRequestsLeftSensor(coordinator, vin, runtime.budget) for vin in coordinator.vehicles
    )
    registry = er.async_get(hass)
    for vin in coordinator.vehicles:
        unique_id = f"{vin}_{LAST_STREAM_MESSAGE.key}"
        if newest_stream_reading(coordinator, vin) is not None or registry.async_get_entity_id(
            "sensor", DOMAIN, unique_id
        ):
            async_add_entities([LastStreamMessageSensor(coordinator, vin)])
        else:
            entry.async_on_unload(
                _add_on_first_stream_message(coordinator, vin, async_add_entities)
            )
    async_add_descriptor_entities(
        entry, async_add_entities, "sensor", SENSORS, CarDataSensor, _generic_description
    )
    async_add_charging_sensors(entry, async_add_entities)


def newest_stream_reading(coordinator: CarDataCoordinator, vin: str) -> datetime | None:
    """When the newest stream reading of the vehicle arrived (kept over restarts), or None."""
    return max(
        (
            state.received_at
            for state in coordinator.state(vin).values()
            if state.source == "stream"
        ),
        default=None,
    )


@callback
def _add_on_first_stream_message(
    coordinator: CarDataCoordinator, vin: str, async_add_entities: AddConfigEntryEntitiesCallback
) -> CALLBACK_TYPE:
    """Add the vehicle's last-stream-message sensor when its first stream reading arrives."""
    unsubscribe: CALLBACK_TYPE | None = None

    @callback
    def handle_change(change: VehicleChange) -> None:
        nonlocal unsubscribe
        if unsubscribe is None or newest_stream_reading(coordinator, vin) is None:
            return
        unsubscribe()
        unsubscribe = None
        async_add_entities([LastStreamMessageSensor(coordinator, vin)])

    unsubscribe = coordinator.async_add_vehicle_listener(vin, handle_change)

    @callback
    def remove() -> None:
        if unsubscribe is not None:
            unsubscribe()

    return remove


def _generic_description(
    descriptor: str, reading: DescriptorState | None
) -> CarDataSensorEntityDescription | None:
    """Describe the generic sensor of a descriptor no curated entity reads."""
    if not needs_generic_sensor(descriptor):
        return None
    if reading is None:
        return generic_sensor_description(descriptor)
    # A text (XML, a list, a name) never becomes a number, whatever its unit says.
    return generic_sensor_description(descriptor, reading.unit, text=isinstance(reading.value, str))


class CarDataSensor(CarDataDescriptorEntity, SensorEntity):
    """A sensor fed by one or more descriptors.

    A text longer than a state may be is shown cut, and whole in the `full_text`
    attribute (up to MAX_FULL_TEXT characters; the diagnostics download has the rest).
    """

    entity_description: CarDataSensorEntityDescription
    # Long and rarely changing: kept out of the recorder's database.
    _unrecorded_attributes = frozenset({ATTR_MEASURED_AT, ATTR_DATA_SOURCE, ATTR_FULL_TEXT})
    _full_text: str | None = None

    def __init__(
        self,
        coordinator: CarDataCoordinator,
        vin: str,
        description: CarDataSensorEntityDescription,
    ) -> None:
        """Read the description's descriptors of vehicle `vin`."""
        super().__init__(coordinator, vin, description, description.descriptors)

    def _compute(self, readings: DescriptorReadings) -> tuple[Any, DescriptorState | None]:
        description = self.entity_description
        # The current value steadies conversions (a km/miles flip does not move the state).
        previous = self._attr_native_value
        value: SensorValue = description.native_value(readings, previous=previous)
        self._attr_native_value = value

        def gives_state(reading: Mapping[str, DescriptorState]) -> bool:
            return description.native_value(reading, previous=previous) is not None

        used = reading_in_use(readings, description.descriptors, gives_state)
        self._full_text = None
        if (
            isinstance(value, str)
            and used is not None
            and isinstance(used.value, str)
            and len(used.value) > MAX_STATE_LENGTH
        ):
            self._full_text = used.value[:MAX_FULL_TEXT]
        return (value, self._full_text), used

    def _extra_attributes(self) -> dict[str, Any]:
        if self._full_text is None:
            return {}
        return {ATTR_FULL_TEXT: self._full_text}


class RestRequestsLeftSensor(CarDataEntity, SensorEntity):
    """REST requests BMW's budget still allows in the current 24 hours (shared by the account).

    The budget tells of every spent request; requests that leave the 24-hour window tell
    nobody, so a timer looks again when the oldest one does.
    """

    def __init__(self, coordinator: CarDataCoordinator, vin: str, budget: Budget) -> None:
        """Show the account's budget on the vehicle's device."""
        super().__init__(coordinator, vin, REST_REQUESTS_LEFT)
        self._budget = budget
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._attr_native_value = budget.remaining()

    async def async_added_to_hass(self) -> None:
        """Follow the budget."""
        await super().async_added_to_hass()
        self.async_on_remove(self._budget.async_add_listener(self._handle_budget))
        self.async_on_remove(self._cancel_timer)
        self._schedule_next_change()

    @callback
    def _handle_timer(self, _now: datetime) -> None:
        self._unsub_timer = None
        self._handle_budget()

    @callback
    def _handle_budget(self) -> None:
        remaining = self._budget.remaining()
        self._schedule_next_change()
        if remaining != self._attr_native_value:
            self._attr_native_value = remaining
            self.async_write_ha_state()

    @callback
    def _schedule_next_change(self) -> None:
        """Look again when the oldest request leaves the window or BMW's block ends."""
        self._cancel_timer()
        now = dt_util.utcnow()
        moments = [request.at + BUDGET_WINDOW for request in self._budget.spent(now)[:1]]
        if (blocked_until := self._budget.blocked_until) is not None:
            moments.append(blocked_until)
        if moments:
            self._unsub_timer = async_track_point_in_utc_time(
                self.hass, self._handle_timer, min(moments)
            )

    @callback
    def _cancel_timer(self) -> None:
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None


class LastStreamMessageSensor(CarDataEntity, SensorEntity):
    """When the stream last brought news of the vehicle (written at most once a minute).

    Messages that repeat what is known change nothing and do not count.
    """

    def __init__(self, coordinator: CarDataCoordinator, vin: str) -> None:
        """Start from the newest stream reading the coordinator holds (stored over restarts)."""
        super().__init__(coordinator, vin, LAST_STREAM_MESSAGE)
        self._attr_native_value = newest_stream_reading(coordinator, vin)
        self._debouncer: Debouncer[None] | None = None

    async def async_added_to_hass(self) -> None:
        """Follow the vehicle's changes."""
        await super().async_added_to_hass()
        self._debouncer = Debouncer(
            self.hass,
            LOGGER,
            cooldown=LAST_MESSAGE_WRITE_INTERVAL,
            immediate=True,
            function=self._nothing_to_write,
        )
        self.async_on_remove(self._debouncer.async_shutdown)
        if self._attr_native_value is not None:
            # The platform writes the known time as soon as this returns: that write opens
            # the minute, as a written message does.
            await self._debouncer.async_call()
        self._debouncer.function = self._write_state
        self.async_on_remove(
            self.coordinator.async_add_vehicle_listener(self.vin, self._handle_change)
        )

    @callback
    def _nothing_to_write(self) -> None:
        """Stand-in while the platform writes the first state itself."""

    @callback
    def _write_state(self) -> None:
        self.async_write_ha_state()

    @callback
    def _handle_change(self, change: VehicleChange) -> None:
        state = self.coordinator.state(self.vin)
        newest = self._attr_native_value
        for descriptor in change.changed:
            reading = state.get(descriptor)
            if reading is not None and reading.source == "stream":
                moment = reading.received_at
                if not isinstance(newest, datetime) or moment > newest:
                    newest = moment
        if newest != self._attr_native_value and self._debouncer is not None:
            self._attr_native_value = newest
            self._debouncer.async_schedule_call()
