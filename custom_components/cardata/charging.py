"""The charging estimate of each car, fed by the vehicle states and kept across restarts.

`charging_estimator.py` holds the logic and knows nothing of Home Assistant; this module
feeds it every change of the descriptors it reads, wakes the entities that show it (once a
minute on its own while a car charges, because a car streams on change and may send nothing
for most of an hour at a steady power), hands finished sessions to whoever listens (the
event entities), and stores what each estimator learned and the session it is in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .charging_estimator import ChargingEstimator, FinishedSession, SocEstimate
from .const import DOMAIN
from .listeners import Listeners
from .vehicle import Vehicle, VehicleChange
from .vehicle_states import VehicleStates

STORAGE_VERSION: Final = 1
SAVE_DELAY: Final = 60
# How often a charging car's estimate is re-read between the car's own messages.
ESTIMATE_INTERVAL: Final = timedelta(minutes=1)

SOC_HEADER: Final = "vehicle.drivetrain.batteryManagement.header"
SOC_DISPLAYED: Final = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
CHARGING_POWER: Final = "vehicle.powertrain.electric.battery.charging.power"
AC_VOLTAGE: Final = "vehicle.drivetrain.electricEngine.charging.acVoltage"
AC_AMPERE: Final = "vehicle.drivetrain.electricEngine.charging.acAmpere"
PHASE_NUMBER: Final = "vehicle.drivetrain.electricEngine.charging.phaseNumber"
CHARGING_STATUS: Final = "vehicle.drivetrain.electricEngine.charging.status"
FINISH_REASON: Final = "vehicle.drivetrain.electricEngine.charging.hvpmFinishReason"
SOC_TARGET: Final = "vehicle.powertrain.electric.battery.stateOfCharge.target"
MAX_ENERGY: Final = "vehicle.drivetrain.batteryManagement.maxEnergy"
IS_PLUGGED: Final = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"

# Every descriptor the estimator reads.
ESTIMATOR_INPUTS: Final = frozenset(
    {
        SOC_HEADER,
        SOC_DISPLAYED,
        CHARGING_POWER,
        AC_VOLTAGE,
        AC_AMPERE,
        PHASE_NUMBER,
        CHARGING_STATUS,
        FINISH_REASON,
        SOC_TARGET,
        MAX_ENERGY,
        IS_PLUGGED,
    }
)

type FinishedListener = Callable[[str, FinishedSession], None]


class ChargingTracker:
    """One estimator per electrified car of an account, with its timer and its Store."""

    def __init__(self, hass: HomeAssistant, account: str, states: VehicleStates) -> None:
        """Create the tracker; `async_start` loads what was stored and starts listening."""
        self._hass = hass
        self._states = states
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.charging.{account}"
        )
        self._estimators: dict[str, ChargingEstimator] = {}
        self._listeners: dict[str, Listeners[()]] = {}
        self._finished_listeners: Listeners[str, FinishedSession] = Listeners()
        self._unsubs: list[CALLBACK_TYPE] = []
        self._unsub_timer: CALLBACK_TYPE | None = None

    async def async_start(self, vehicles: Mapping[str, Vehicle]) -> None:
        """Restore each car's estimator and feed it what the vehicle state already knows."""
        stored = await self._store.async_load() or {}
        now = dt_util.utcnow()
        for vin, vehicle in vehicles.items():
            saved = stored.get(vin)
            estimator = ChargingEstimator(
                capacity_fallback_kwh=_capacity(vehicle),
                stored=saved if isinstance(saved, Mapping) else None,
            )
            self._estimators[vin] = estimator
            self._listeners[vin] = Listeners()
            readings = self._readings(vin, ESTIMATOR_INPUTS)
            if readings:
                estimator.update(readings, now)
            # Sessions that ended while Home Assistant was away are not news any more.
            estimator.pop_finished()
            self._unsubs.append(self._states.async_add_vehicle_listener(vin, self._handle_change))
        self._update_timer()

    async def async_stop(self) -> None:
        """Stop listening and write what was learned."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None
        if self._estimators:
            await self._store.async_save(self._data_to_save())

    # --- What entities read ------------------------------------------------------------

    def estimate(self, vin: str) -> SocEstimate | None:
        """Return the state-of-charge estimate of a car now (None before any is known)."""
        estimator = self._estimators.get(vin)
        return estimator.estimate(dt_util.utcnow()) if estimator else None

    def charged_energy(self, vin: str) -> float | None:
        """Return the car's charged energy in kWh (integrated charging power, never lower)."""
        estimator = self._estimators.get(vin)
        return estimator.total_energy_kwh if estimator else None

    def diagnostics(self, vin: str) -> dict[str, Any]:
        """Return what the estimator learned about the car (nothing personal)."""
        estimator = self._estimators.get(vin)
        return {"efficiencies": estimator.efficiencies} if estimator else {}

    @callback
    def async_add_listener(self, vin: str, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener()` whenever a car's estimate or charged energy may have changed."""
        return self._listeners.setdefault(vin, Listeners()).add(listener)

    @callback
    def async_add_finished_listener(self, listener: FinishedListener) -> CALLBACK_TYPE:
        """Call `listener(vin, session)` when a charging session has ended."""
        return self._finished_listeners.add(listener)

    # --- Feeding -----------------------------------------------------------------------

    @callback
    def _handle_change(self, change: VehicleChange) -> None:
        inputs = change.changed & ESTIMATOR_INPUTS
        estimator = self._estimators.get(change.vin)
        if not inputs or estimator is None:
            return
        estimator.update(self._readings(change.vin, inputs), dt_util.utcnow())
        self._after_update(change.vin, estimator)

    def _readings(self, vin: str, descriptors: frozenset[str]) -> dict[str, tuple[Any, datetime]]:
        states = self._states.descriptors(vin)
        return {
            descriptor: (state.value, state.timestamp)
            for descriptor in descriptors
            if (state := states.get(descriptor)) is not None and not state.is_placeholder
        }

    @callback
    def _after_update(self, vin: str, estimator: ChargingEstimator) -> None:
        for session in estimator.pop_finished():
            self._finished_listeners.notify(vin, session)
        self._listeners[vin].notify()
        self._store.async_delay_save(self._data_to_save, SAVE_DELAY)
        self._update_timer()

    @callback
    def _update_timer(self) -> None:
        """Tick once a minute while any car charges, and not at all otherwise."""
        charging = any(estimator.needs_timer for estimator in self._estimators.values())
        if charging and self._unsub_timer is None:
            self._unsub_timer = async_track_time_interval(
                self._hass, self._handle_tick, ESTIMATE_INTERVAL, name=f"{DOMAIN} estimate"
            )
        elif not charging and self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    @callback
    def _handle_tick(self, _now: datetime) -> None:
        now = dt_util.utcnow()
        for vin, estimator in self._estimators.items():
            if estimator.needs_timer:
                # No new reading: the estimator only advances along the last power.
                estimator.update({}, now)
                self._after_update(vin, estimator)
        self._update_timer()

    def _data_to_save(self) -> dict[str, Any]:
        return {vin: estimator.as_dict() for vin, estimator in self._estimators.items()}


def _capacity(vehicle: Vehicle) -> float | None:
    """Return the usable battery capacity BMW's basic data names, if any (kWh)."""
    basic_data = vehicle.basic_data
    if basic_data is None:
        return None
    capacity = basic_data.hvs_max_energy_absolute
    return capacity if capacity is not None and capacity > 0 else None
