"""Things a driver automates on, derived from the stream: charging, the cable, trips.

An event fires on a change the stream reports: a new value that differs from the last one
known, measured after the last event of its kind. Restored states (a restart) and REST
polls (which repeat what the car said before, or fill a gap long after) never fire one, so
an automation runs once per real event. Each event also asks the poller to fetch the car's
REST-only values (predicted state of charge, high-voltage charging state) soon after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from homeassistant.core import CALLBACK_TYPE, callback

from .charging import (
    CHARGING_STATUS,
    IS_PLUGGED,
    MAX_ENERGY,
    SOC_DISPLAYED,
    SOC_HEADER,
    ChargingTracker,
)
from .charging_estimator import FinishedSession
from .listeners import Listeners
from .vehicle import DescriptorState, VehicleChange
from .vehicle_states import VehicleStates

IS_MOVING: Final = "vehicle.isMoving"
ODOMETER: Final = "vehicle.vehicle.travelledDistance"
PORT_STATUS: Final = "vehicle.body.chargingPort.status"

# Event entities (key) and the event types each fires.
CHARGING_EVENT: Final = "charging"
CABLE_EVENT: Final = "charging_cable"
TRIP_EVENT: Final = "trip"
EVENT_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    CHARGING_EVENT: ("started", "finished"),
    CABLE_EVENT: ("plugged", "unplugged"),
    TRIP_EVENT: ("ended",),
}
_ACTIVE: Final = "CHARGINGACTIVE"
_SESSION_STATES: Final = frozenset({"CHARGINGACTIVE", "CHARGINGPAUSED", "INITIALIZATION"})
_WATCHED: Final = frozenset({CHARGING_STATUS, IS_PLUGGED, PORT_STATUS, IS_MOVING})


@dataclass(frozen=True, slots=True)
class VehicleEvent:
    """One event of one car: which entity fires it, its type and what it carries."""

    vin: str
    entity: str
    event_type: str
    attributes: dict[str, Any]


class EventPoller(Protocol):
    """The part of the coordinator that polls a car after an event."""

    def request_event_poll(self, vin: str, reason: str) -> bool:
        """Poll the car soon; False when declined (cooldown, budget)."""


@dataclass(slots=True)
class _Trip:
    started_at: datetime
    odometer: float | None
    soc: float | None


class EventDetector:
    """Watches the stream's changes of an account's cars and tells the event entities."""

    def __init__(
        self, states: VehicleStates, charging: ChargingTracker, poller: EventPoller
    ) -> None:
        """Create the detector; `async_start` begins watching."""
        self._states = states
        self._charging = charging
        self._poller = poller
        self._listeners: Listeners[VehicleEvent] = Listeners()
        self._last: dict[tuple[str, str], DescriptorState] = {}
        self._trips: dict[str, _Trip] = {}
        self._plugged: dict[str, bool] = {}
        self._unsubs: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self, vehicles: Iterable[str]) -> None:
        """Remember what the cars last said, so that only news fires an event; then watch."""
        for vin in vehicles:
            known = self._states.descriptors(vin)
            for descriptor in _WATCHED:
                if (state := known.get(descriptor)) is not None and not state.is_placeholder:
                    self._last[(vin, descriptor)] = state
            for descriptor in (IS_PLUGGED, PORT_STATUS):
                if (state := self._last.get((vin, descriptor))) is not None and (
                    plugged := _plugged(descriptor, state.value)
                ) is not None:
                    self._plugged[vin] = plugged
                    break
            self._unsubs.append(self._states.async_add_vehicle_listener(vin, self._handle_change))
        self._unsubs.append(self._charging.async_add_finished_listener(self._handle_finished))

    @callback
    def async_add_listener(self, listener: Callable[[VehicleEvent], None]) -> CALLBACK_TYPE:
        """Call `listener(event)` for every event of every car; returns the remover."""
        return self._listeners.add(listener)

    @callback
    def async_stop(self) -> None:
        """Stop watching."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()

    # --- Detection ----------------------------------------------------------------------

    @callback
    def _handle_change(self, change: VehicleChange) -> None:
        if not change.changed & _WATCHED:
            return
        states = self._states.descriptors(change.vin)
        for descriptor in sorted(change.changed & _WATCHED):
            state = states.get(descriptor)
            if state is None or state.is_placeholder:
                continue
            previous = self._last.get((change.vin, descriptor))
            self._last[(change.vin, descriptor)] = state
            if state.source != "stream" or not _is_news(state, previous):
                # Known now, but no event: REST repeats the past, a restart restores it.
                if (
                    descriptor in (IS_PLUGGED, PORT_STATUS)
                    and (plugged := _plugged(descriptor, state.value)) is not None
                ):
                    self._plugged[change.vin] = plugged
                continue
            self._on_transition(change.vin, descriptor, state, previous)

    def _on_transition(
        self,
        vin: str,
        descriptor: str,
        state: DescriptorState,
        previous: DescriptorState | None,
    ) -> None:
        value, before = state.value, previous.value if previous else None
        if descriptor == CHARGING_STATUS:
            if value == _ACTIVE and before not in _SESSION_STATES:
                self._fire(vin, CHARGING_EVENT, "started", {"state_of_charge": self._soc(vin)})
        elif descriptor in (IS_PLUGGED, PORT_STATUS):
            plugged = _plugged(descriptor, value)
            # Both descriptors report the cable; the first to tell of a change fires.
            if plugged is not None and plugged != self._plugged.get(vin):
                self._plugged[vin] = plugged
                event_type = "plugged" if plugged else "unplugged"
                self._fire(vin, CABLE_EVENT, event_type, {})
                self._poller.request_event_poll(vin, event_type)
        elif descriptor == IS_MOVING:
            if value is True and before is not True:
                self._trips[vin] = _Trip(
                    state.timestamp, self._number(vin, ODOMETER), self._soc(vin)
                )
            elif value is False and before is True:
                self._fire(
                    vin, TRIP_EVENT, "ended", self._trip_summary(vin, state.timestamp, previous)
                )
                self._poller.request_event_poll(vin, "trip ended")

    @callback
    def _handle_finished(self, vin: str, session: FinishedSession) -> None:
        duration = (session.ended_at - session.started_at).total_seconds() / 60
        self._fire(
            vin,
            CHARGING_EVENT,
            "finished",
            {
                "energy_added_kwh": round(session.energy_kwh, 2),
                "state_of_charge_from": _rounded(session.soc_from),
                "state_of_charge_to": _rounded(session.soc_to),
                "duration_minutes": round(duration),
                "charging_type": session.method.upper() if session.method else None,
                "finish_reason": session.finish_reason,
            },
        )
        self._poller.request_event_poll(vin, "charging finished")

    def _trip_summary(
        self, vin: str, ended_at: datetime, moving: DescriptorState | None
    ) -> dict[str, Any]:
        trip = self._trips.pop(vin, None)
        started_at = trip.started_at if trip else (moving.timestamp if moving else None)
        odometer = self._number(vin, ODOMETER)
        distance = (
            odometer - trip.odometer
            if trip and trip.odometer is not None and odometer is not None
            else None
        )
        soc = self._soc(vin)
        used = trip.soc - soc if trip and trip.soc is not None and soc is not None else None
        capacity = self._number(vin, MAX_ENERGY)
        consumption = (
            used / 100 * capacity / distance * 100
            if used is not None and used > 0 and capacity and distance and distance > 0
            else None
        )
        return {
            "distance_km": _rounded(distance, 1)
            if distance is not None and distance >= 0
            else None,
            "duration_minutes": round((ended_at - started_at).total_seconds() / 60)
            if started_at
            else None,
            "state_of_charge_used": _rounded(used),
            "consumption_kwh_per_100km": _rounded(consumption, 1),
        }

    # --- Helpers ------------------------------------------------------------------------

    def _fire(self, vin: str, entity: str, event_type: str, attributes: dict[str, Any]) -> None:
        self._listeners.notify(VehicleEvent(vin, entity, event_type, attributes))

    def _number(self, vin: str, descriptor: str) -> float | None:
        state = self._states.descriptors(vin).get(descriptor)
        value = state.value if state is not None else None
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    def _soc(self, vin: str) -> float | None:
        return self._number(vin, SOC_DISPLAYED) or self._number(vin, SOC_HEADER)


def _is_news(state: DescriptorState, previous: DescriptorState | None) -> bool:
    """Return True for a value that differs from the last known one and was measured later."""
    if previous is None:
        return False
    return state.value != previous.value and state.timestamp > previous.timestamp


def _plugged(descriptor: str, value: Any) -> bool | None:
    if descriptor == IS_PLUGGED:
        return value if isinstance(value, bool) else None
    if value == "CONNECTED":
        return True
    if value == "DISCONNECTED":
        return False
    return None


def _rounded(value: float | None, digits: int = 0) -> float | None:
    if value is None:
        return None
    return round(value, digits) if digits else float(round(value))
