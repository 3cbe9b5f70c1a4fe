"""The descriptor states of an account's vehicles, and who is told when they change.

Entities listen per descriptor (`async_add_descriptor_listener`): a stream message with one
descriptor wakes only the entities that read it. Vehicle listeners hear of every change of
a vehicle (entity creation for descriptors seen for the first time, the charging estimate,
events). A listener that fails is logged and the others still run: one entity that cannot
render a value must not hold back every other entity, nor the creation of new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from homeassistant.core import CALLBACK_TYPE, callback

from .api.models import TelematicValue
from .const import LOGGER
from .vehicle import DescriptorState, Source, VehicleChange, VehicleState, redact_vin

type DescriptorListener = Callable[[], None]
type VehicleListener = Callable[[VehicleChange], None]


class _Listener:
    """One registered descriptor listener (an object, so one callback can hold many keys)."""

    __slots__ = ("callback",)

    def __init__(self, listener: DescriptorListener) -> None:
        self.callback = listener


class VehicleStates:
    """Merged descriptor states per VIN, with per-descriptor and per-vehicle listeners.

    `on_change` is called after every merge that changed something (the owner schedules a
    save of the state).
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        """Start with no vehicle state."""
        self._states: dict[str, VehicleState] = {}
        self._descriptor_listeners: dict[tuple[str, str], list[_Listener]] = {}
        self._vehicle_listeners: dict[str, list[VehicleListener]] = {}
        self._on_change = on_change

    # --- Reading ------------------------------------------------------------------------

    @property
    def by_vin(self) -> dict[str, VehicleState]:
        """Return the live mapping of VIN to vehicle state (the coordinator's `data`)."""
        return self._states

    def descriptors(self, vin: str) -> Mapping[str, DescriptorState]:
        """Return the current descriptor states of a vehicle (read-only, live view)."""
        vehicle_state = self._states.get(vin)
        return MappingProxyType(vehicle_state.descriptors if vehicle_state else {})

    def vehicle(self, vin: str) -> VehicleState:
        """Return the state of a vehicle, created empty when there is none yet."""
        return self._states.setdefault(vin, VehicleState())

    # --- Listeners ----------------------------------------------------------------------

    @callback
    def async_add_descriptor_listener(
        self, vin: str, descriptors: Iterable[str], listener: DescriptorListener
    ) -> CALLBACK_TYPE:
        """Call `listener()` whenever one of `descriptors` of vehicle `vin` changes.

        A change is a new value or unit, or a newer measurement of the same value;
        duplicates and older measurements call nobody. When one update changes several
        of the descriptors the listener is called once. Returns the remover.
        """
        registration = _Listener(listener)
        keys = [(vin, descriptor) for descriptor in dict.fromkeys(descriptors)]
        for key in keys:
            self._descriptor_listeners.setdefault(key, []).append(registration)

        @callback
        def remove() -> None:
            for key in keys:
                registered = self._descriptor_listeners.get(key)
                if registered and registration in registered:
                    registered.remove(registration)
                    if not registered:
                        del self._descriptor_listeners[key]

        return remove

    @callback
    def async_add_vehicle_listener(self, vin: str, listener: VehicleListener) -> CALLBACK_TYPE:
        """Call `listener(change)` after every update that changed vehicle `vin`.

        `change.changed` names the changed descriptors, `change.added` those seen for the
        first time. Returns the remover.
        """
        listeners = self._vehicle_listeners.setdefault(vin, [])
        listeners.append(listener)

        @callback
        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    # --- Merging ------------------------------------------------------------------------

    @callback
    def merge(
        self,
        vin: str,
        updates: Mapping[str, TelematicValue],
        source: Source,
        received_at: datetime,
    ) -> VehicleChange | None:
        """Merge what a source sent; tell the listeners; return what changed (None: nothing)."""
        changed, added = self.vehicle(vin).merge(updates, source, received_at)
        if not changed:
            return None
        self._on_change()
        change = VehicleChange(vin, changed, added)
        self._notify(change)
        return change

    @callback
    def _notify(self, change: VehicleChange) -> None:
        """Call the listeners of what changed, each once; a failing one does not stop the rest."""
        due: dict[int, _Listener] = {}
        for descriptor in change.changed:
            for registration in self._descriptor_listeners.get((change.vin, descriptor), ()):
                due[id(registration)] = registration
        for registration in list(due.values()):
            _call_guarded(registration.callback, change)
        for listener in list(self._vehicle_listeners.get(change.vin, ())):
            _call_guarded(listener, change, change)

    # --- Persistence --------------------------------------------------------------------

    def as_dict(self, vins: Iterable[str]) -> dict[str, Any]:
        """Return the JSON-serialisable form of the given vehicles' states."""
        return {vin: self._states[vin].as_dict() for vin in vins if vin in self._states}

    def restore(self, vins: Iterable[str], saved: object) -> None:
        """Take over stored states for the given vehicles (empty where nothing usable is stored)."""
        for vin in vins:
            stored = saved.get(vin) if isinstance(saved, Mapping) else None
            self._states[vin] = (
                VehicleState.from_dict(stored) if isinstance(stored, Mapping) else VehicleState()
            )


def _call_guarded(
    listener: Callable[..., None], change: VehicleChange, *args: VehicleChange
) -> None:
    # Listeners are entity and feature code reacting to BMW's data, which is untidy: any
    # error one raises must stay with that listener, so catching everything is the point.
    try:
        listener(*args)
    except Exception:  # noqa: BLE001
        LOGGER.exception(
            "Error while updating %s of vehicle %s after a change of %s",
            getattr(listener, "__qualname__", "a listener"),
            redact_vin(change.vin),
            ", ".join(sorted(change.changed)),
        )
