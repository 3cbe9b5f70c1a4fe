"""What every BMW CarData entity shares: the vehicle's device, descriptor readings, restore.

Descriptor-fed entities (sensors, binary sensors, the device tracker) listen to their own
descriptors only, so a stream message wakes just the entities that read it, and they
write their state only when something a user can see changed. Their readings survive a
restart twice over: the coordinator stores its state, and each entity stores the
readings behind its own state (restore data), so a dashboard shows the car at once even
when the coordinator's store was lost. A restored reading gives way as soon as the
coordinator has one at least as new.

An entity shows the last known value however old it is, with the measurement time in
the `measured_at` attribute; it is unavailable only while no value was ever known.

Entities are created per vehicle when the car reports a value they read (or when they
were created before, so that their restored state comes back): a car without a fuel tank
gets no fuel sensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from homeassistant.core import callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.restore_state import ExtraStoredData, RestoreEntity

from .descriptor_names import DESCRIPTOR_NAMES
from .vehicle import DescriptorState, VehicleChange

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry

# When the car measured the value an entity shows, and which channel delivered it.
ATTR_MEASURED_AT: Final = "measured_at"
ATTR_DATA_SOURCE: Final = "data_source"

type DescriptorReadings = Mapping[str, DescriptorState]


class CarDataEntity(Entity):
    """An entity of one vehicle: its device, a translated name, unique id `<vin>_<key>`."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, coordinator: CarDataCoordinator, vin: str, description: EntityDescription
    ) -> None:
        """Attach the entity to the vehicle's device."""
        self.coordinator = coordinator
        self.vin = vin
        self.entity_description = description
        self._attr_unique_id = f"{vin}_{description.key}"
        self._attr_device_info = coordinator.vehicles[vin].device_info


class ReadingsData(ExtraStoredData):
    """The descriptor readings behind an entity's state, kept over a restart."""

    def __init__(self, readings: DescriptorReadings) -> None:
        """Hold the readings to store."""
        self.readings = readings

    def as_dict(self) -> dict[str, Any]:
        """Return the stored form: descriptor -> DescriptorState.as_dict()."""
        return {
            "readings": {descriptor: state.as_dict() for descriptor, state in self.readings.items()}
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], descriptors: Iterable[str]) -> ReadingsData:
        """Rebuild the readings of `descriptors`; damaged or foreign entries are skipped."""
        stored = data.get("readings")
        readings: dict[str, DescriptorState] = {}
        if isinstance(stored, Mapping):
            for descriptor in descriptors:
                raw = stored.get(descriptor)
                if isinstance(raw, Mapping) and (state := DescriptorState.from_dict(raw)):
                    readings[descriptor] = state
        return cls(readings)


def _has_value(readings: DescriptorReadings, descriptors: Iterable[str]) -> bool:
    """Return True when one of `descriptors` carries a value (not just BMW's placeholder)."""
    return any(
        (state := readings.get(descriptor)) is not None and not state.is_placeholder
        for descriptor in descriptors
    )


class CarDataDescriptorEntity(CarDataEntity, RestoreEntity):
    """An entity whose state comes from descriptor readings.

    Subclasses implement `_compute(readings)`: set their `_attr_*` from the readings and
    return what a user sees (compared to decide whether to write the state) together with
    the reading the state comes from (for the `measured_at` attribute).
    """

    # They change with nearly every message; the recorder need not store each of them.
    _unrecorded_attributes = frozenset({ATTR_MEASURED_AT, ATTR_DATA_SOURCE})

    def __init__(
        self,
        coordinator: CarDataCoordinator,
        vin: str,
        description: EntityDescription,
        descriptors: Sequence[str],
    ) -> None:
        """Read `descriptors` of vehicle `vin`."""
        super().__init__(coordinator, vin, description)
        self._descriptors = tuple(descriptors)
        self._restored: dict[str, DescriptorState] = {}
        self._visible: tuple[Any, ...] | None = None
        self._attr_available = False

    async def async_added_to_hass(self) -> None:
        """Restore the stored readings, show the state and start listening."""
        await super().async_added_to_hass()
        if (extra := await self.async_get_last_extra_data()) is not None:
            self._async_restore(ReadingsData.from_dict(extra.as_dict(), self._descriptors))
        self._refresh()
        self.async_on_remove(
            self.coordinator.async_add_descriptor_listener(
                self.vin, self._descriptors, self._handle_update
            )
        )

    @callback
    def _async_restore(self, data: ReadingsData) -> None:
        """Keep the restored readings until the coordinator has newer ones."""
        self._restored = dict(data.readings)

    @property
    def extra_restore_state_data(self) -> ReadingsData:
        """Return the readings behind the current state."""
        return ReadingsData(
            {
                descriptor: state
                for descriptor, state in self._readings().items()
                if not state.is_placeholder
            }
        )

    def _readings(self) -> dict[str, DescriptorState]:
        """Return the newest reading of each descriptor: the coordinator's or a restored one.

        A restored reading is dropped once the coordinator holds one that is not older
        (the coordinator's newer-wins rule, applied to what the restart brought back).
        """
        live = self.coordinator.state(self.vin)
        readings: dict[str, DescriptorState] = {}
        for descriptor in self._descriptors:
            current = live.get(descriptor)
            restored = self._restored.get(descriptor)
            if restored is not None and current is not None and not restored.supersedes(current):
                del self._restored[descriptor]
                restored = None
            if (reading := restored or current) is not None:
                readings[descriptor] = reading
        return readings

    @callback
    def _handle_update(self) -> None:
        """One of the descriptors changed: write the state if the user would see a change."""
        if self._refresh():
            self.async_write_ha_state()

    @callback
    def _refresh(self) -> bool:
        """Recompute the state from the readings; return True when it visibly changed."""
        readings = self._readings()
        self._attr_available = _has_value(readings, self._descriptors)
        visible, used = self._compute(readings)
        attributes: dict[str, Any] = {}
        if used is not None:
            attributes[ATTR_MEASURED_AT] = used.timestamp.isoformat()
            attributes[ATTR_DATA_SOURCE] = used.source
        self._attr_extra_state_attributes = {**self._extra_attributes(), **attributes}
        shown = (self._attr_available, visible, tuple(sorted(attributes.items())))
        changed = shown != self._visible
        self._visible = shown
        return changed

    def _compute(self, readings: DescriptorReadings) -> tuple[Any, DescriptorState | None]:
        """Set the state from the readings; return (what is shown, the reading used)."""
        raise NotImplementedError

    def _extra_attributes(self) -> dict[str, Any]:
        """Return further attributes of the subclass (already set by `_compute`)."""
        return {}


def reading_in_use(
    readings: DescriptorReadings,
    descriptors: Sequence[str],
    gives_state: Callable[[Mapping[str, DescriptorState]], bool],
) -> DescriptorState | None:
    """Return the reading an entity's state comes from.

    The description takes the newest measurement that gives a state; when none does, the
    newest reading says when the car last reported "no value".
    """
    # Newest first; at equal times the preferred (first listed) descriptor first.
    ordered = sorted(
        ((d, readings[d]) for d in descriptors if d in readings),
        key=lambda item: item[1].timestamp,
        reverse=True,
    )
    for descriptor, state in ordered:
        if gives_state({descriptor: state}):
            return state
    return ordered[0][1] if ordered else None


# --- creating entities per vehicle ----------------------------------------------------------


class DescriptorDescription(Protocol):
    """An entity description that names the descriptors its entity reads."""

    @property
    def key(self) -> str:
        """The unique id's key."""

    @property
    def descriptors(self) -> tuple[str, ...]:
        """The descriptors the entity reads."""


type EntityFactory[D] = Callable[[CarDataCoordinator, str, D], Entity]
type GenericDescription[D] = Callable[[str, DescriptorState | None], D | None]


@dataclass(slots=True)
class _VehicleEntities[D: DescriptorDescription]:
    """The descriptor-fed entities of one platform for one vehicle, created on demand."""

    coordinator: CarDataCoordinator
    vin: str
    factory: EntityFactory[D]
    add: AddConfigEntryEntitiesCallback
    generic: GenericDescription[D] | None
    created: set[str] = field(default_factory=set)
    waiting: dict[str, list[D]] = field(default_factory=dict)
    # Descriptors whose entities exist or that need none: later messages skip them.
    settled: set[str] = field(default_factory=set)

    @callback
    def create(self, descriptions: Iterable[D]) -> None:
        """Add entities for the descriptions not created yet."""
        new = [d for d in descriptions if d.key not in self.created]
        if not new:
            return
        self.created.update(d.key for d in new)
        self.add(self.factory(self.coordinator, self.vin, d) for d in new)

    @callback
    def handle_change(self, change: VehicleChange) -> None:
        """Create the entities whose descriptors just got their first value."""
        state = self.coordinator.state(self.vin)
        due: list[D] = []
        for descriptor in change.changed - self.settled:
            if (reading := state.get(descriptor)) is None or reading.is_placeholder:
                continue
            self.settled.add(descriptor)
            if (waiting := self.waiting.pop(descriptor, None)) is not None:
                due.extend(waiting)
            elif (
                self.generic is not None
                and (description := self.generic(descriptor, reading)) is not None
            ):
                due.append(description)
        self.create(due)


@callback
def async_add_descriptor_entities[D: DescriptorDescription](
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    domain: str,
    descriptions: Sequence[D],
    factory: EntityFactory[D],
    generic: GenericDescription[D] | None = None,
) -> None:
    """Create a platform's descriptor-fed entities for every vehicle of the entry.

    An entity is created when its vehicle has a value for one of its descriptors, or when
    the entity registry knows it from before (its restored state comes back even if the
    coordinator's store is gone); otherwise when the car first reports a value for it.
    `generic` describes the entity of a descriptor no description covers (or returns None).
    """
    coordinator = entry.runtime_data.coordinator
    registry = er.async_get(coordinator.hass)
    registered = [
        entity
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
        if entity.domain == domain
    ]
    for vin in coordinator.vehicles:
        prefix = f"{vin}_"
        known = {
            entity.unique_id.removeprefix(prefix): entity.translation_key
            for entity in registered
            if entity.unique_id.startswith(prefix)
        }
        state = coordinator.state(vin)
        vehicle = _VehicleEntities(coordinator, vin, factory, async_add_entities, generic)
        ready: list[D] = []
        for description in descriptions:
            if description.key in known or _has_value(state, description.descriptors):
                ready.append(description)
            else:
                for descriptor in description.descriptors:
                    vehicle.waiting.setdefault(descriptor, []).append(description)
        if generic is not None:
            # Generic entities are the ones without translation (named from BMW's catalogue).
            untranslated = {key for key, translation in known.items() if translation is None}
            ready.extend(
                _generic_descriptions(generic, state, untranslated - {d.key for d in ready})
            )
        vehicle.create(ready)
        entry.async_on_unload(coordinator.async_add_vehicle_listener(vin, vehicle.handle_change))


def _generic_descriptions[D: DescriptorDescription](
    generic: GenericDescription[D], state: DescriptorReadings, registered: set[str]
) -> list[D]:
    """Describe the generic entities of the descriptors with a value or registered before."""
    found: dict[str, D] = {}
    for descriptor, reading in state.items():
        description = generic(descriptor, reading)
        if description is not None and (
            not reading.is_placeholder or description.key in registered
        ):
            found[description.key] = description
    if missing := registered - found.keys():
        # Registered before, but the coordinator lost the readings: BMW's catalogue names
        # the descriptor behind the key.
        for descriptor in DESCRIPTOR_NAMES:
            description = generic(descriptor, None)
            if description is not None and description.key in missing:
                found[description.key] = description
    return list(found.values())
