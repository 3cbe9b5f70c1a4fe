"""The car's GPS position, from latitude and longitude that BMW sends in separate messages.

Latitude and longitude of one fix arrive one after the other (in either order, often with
timestamps a second or more apart), so the tracker never combines a new latitude with the
previous longitude: it keeps showing the last complete pair until both coordinates have
been measured again. Heading and altitude are attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

# The tracker classes moved between modules over Home Assistant versions; the package
# re-exports them implicitly on every supported version.
from homeassistant.components.device_tracker import (  # type: ignore[attr-defined, unused-ignore]
    TrackerEntity,
)
from homeassistant.components.device_tracker.const import SourceType
from homeassistant.core import HomeAssistant, callback

from .descriptors import DEVICE_TRACKER, CarDataTrackerEntityDescription
from .entity import (
    CarDataDescriptorEntity,
    DescriptorReadings,
    ReadingsData,
    async_add_descriptor_entities,
)

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry
    from .vehicle import DescriptorState

# Entities only read the coordinator's state; nothing here sends requests.
PARALLEL_UPDATES = 0

ATTR_HEADING: Final = "heading"
ATTR_ALTITUDE: Final = "altitude"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the tracker of every vehicle that reports (or reported) its position."""
    async_add_descriptor_entities(
        entry, async_add_entities, "device_tracker", (DEVICE_TRACKER,), CarDataDeviceTracker
    )


class CarDataDeviceTracker(CarDataDescriptorEntity, TrackerEntity):
    """Where the car is: one consistent latitude/longitude pair at a time."""

    _attr_source_type = SourceType.GPS
    # Home Assistant files trackers under "Diagnostic" (for phones found on the network);
    # where a car is belongs with its state of charge among the device page's sensors.
    # Home Assistant types the tracker's category as never None, although None is valid.
    _attr_entity_category = None  # type: ignore[assignment, unused-ignore]

    def __init__(
        self,
        coordinator: CarDataCoordinator,
        vin: str,
        description: CarDataTrackerEntityDescription,
    ) -> None:
        """Read the position descriptors of vehicle `vin`."""
        super().__init__(coordinator, vin, description, description.descriptors)
        # Not a TrackerEntityDescription (the catalogue's own type), so kept by its type here.
        self._tracker = description
        self._pair: tuple[DescriptorState, DescriptorState] | None = None
        self._attributes: dict[str, Any] = {}

    @callback
    def _async_restore(self, data: ReadingsData) -> None:
        """Show the pair shown before the restart until a newer complete pair arrives."""
        super()._async_restore(data)
        description = self._tracker
        latitude = data.readings.get(description.latitude)
        longitude = data.readings.get(description.longitude)
        if latitude is not None and longitude is not None:
            self._take_pair(latitude, longitude)

    @property
    def extra_restore_state_data(self) -> ReadingsData:
        """Store the pair shown (not a newer half pair) with heading and altitude."""
        data = super().extra_restore_state_data
        readings = dict(data.readings)
        description = self._tracker
        readings.pop(description.latitude, None)
        readings.pop(description.longitude, None)
        if self._pair is not None:
            readings[description.latitude], readings[description.longitude] = self._pair
        return ReadingsData(readings)

    def _take_pair(self, latitude: DescriptorState, longitude: DescriptorState) -> None:
        """Show this pair if it is a plausible position."""
        description = self._tracker
        readings = {description.latitude: latitude, description.longitude: longitude}
        if description.location(readings) is not None:
            self._pair = (latitude, longitude)

    def _is_newer_fix(self, latitude: DescriptorState, longitude: DescriptorState) -> bool:
        """Return True when both coordinates belong to a fix newer than the one shown.

        Both must have been measured after the coordinates shown; or both at the same moment
        (one fix), and not before the coordinates shown.
        """
        if self._pair is None:
            return True
        shown_latitude, shown_longitude = self._pair
        if (latitude, longitude) == self._pair:
            return False
        if (
            latitude.timestamp > shown_latitude.timestamp
            and longitude.timestamp > shown_longitude.timestamp
        ):
            return True
        return (
            latitude.timestamp == longitude.timestamp
            and latitude.timestamp >= shown_latitude.timestamp
            and longitude.timestamp >= shown_longitude.timestamp
        )

    def _compute(self, readings: DescriptorReadings) -> tuple[Any, DescriptorState | None]:
        description = self._tracker
        latitude = readings.get(description.latitude)
        longitude = readings.get(description.longitude)
        if (
            latitude is not None
            and longitude is not None
            and self._is_newer_fix(latitude, longitude)
        ):
            self._take_pair(latitude, longitude)
        location = None
        used = None
        if self._pair is not None:
            pair_latitude, pair_longitude = self._pair
            location = description.location(
                {description.latitude: pair_latitude, description.longitude: pair_longitude}
            )
            used = max(self._pair, key=lambda state: state.timestamp)
        self._attr_available = location is not None
        self._attr_latitude, self._attr_longitude = location or (None, None)
        self._attributes = {
            name: value
            for name, value in (
                (ATTR_HEADING, description.heading_degrees(readings)),
                (ATTR_ALTITUDE, description.altitude_meters(readings)),
            )
            if value is not None
        }
        return (location, tuple(self._attributes.items())), used

    def _extra_attributes(self) -> dict[str, Any]:
        return self._attributes
