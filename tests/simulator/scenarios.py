"""Things a car does, as sequences of telematics updates: parked, driving, charging, unlocking.

A scenario is a generator of steps; each step is the set of points the car reports at that
moment. The runner applies one step, then waits `step_seconds` of real time or until the
simulator's clock jumps, whichever comes first, so tests can step a scenario with
`clock.advance()` or run a whole one in a fraction of a second with a tiny `step_seconds`.
Values start from the vehicle's current state and move realistically; nothing is random.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator, Mapping
import contextlib
from datetime import timedelta
import logging
import math
import threading
from typing import TYPE_CHECKING, Any

from .battery import AC_LOSSES, SMALL_BATTERY_KWH
from .points import TelematicPoint

if TYPE_CHECKING:
    from datetime import datetime

    from .clock import SimClock

_LOGGER = logging.getLogger(__name__)

LATITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
HEADING = "vehicle.cabin.infotainment.navigation.currentLocation.heading"
ODOMETER = "vehicle.vehicle.travelledDistance"
IS_MOVING = "vehicle.isMoving"
LOCK_STATUS = "vehicle.cabin.door.lock.status"
DOOR_STATUS = "vehicle.cabin.door.status"
SOC = "vehicle.drivetrain.batteryManagement.header"
SOC_DISPLAYED = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
CHARGING_LEVEL = "vehicle.drivetrain.electricEngine.charging.level"
SOC_TARGET = "vehicle.powertrain.electric.battery.stateOfCharge.target"
MAX_ENERGY = "vehicle.drivetrain.batteryManagement.maxEnergy"
ELECTRIC_RANGE = "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange"
TOTAL_RANGE = "vehicle.drivetrain.lastRemainingRange"
IS_PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
PORT_STATUS = "vehicle.body.chargingPort.status"
PORT_COMBINED_STATUS = "vehicle.body.chargingPort.combinedStatus"
CHARGING_STATUS = "vehicle.drivetrain.electricEngine.charging.status"
HV_STATUS = "vehicle.drivetrain.electricEngine.charging.hvStatus"
CHARGING_METHOD = "vehicle.drivetrain.electricEngine.charging.method"
PHASE_NUMBER = "vehicle.drivetrain.electricEngine.charging.phaseNumber"
CHARGING_POWER = "vehicle.powertrain.electric.battery.charging.power"
AC_VOLTAGE = "vehicle.drivetrain.electricEngine.charging.acVoltage"
AC_AMPERE = "vehicle.drivetrain.electricEngine.charging.acAmpere"
TIME_REMAINING = "vehicle.drivetrain.electricEngine.charging.timeRemaining"
TIME_TO_FULL = "vehicle.drivetrain.electricEngine.charging.timeToFullyCharged"
FINISH_REASON = "vehicle.drivetrain.electricEngine.charging.hvpmFinishReason"
LOW_VOLTAGE_BATTERY = "vehicle.electricalSystem.battery.voltage"

Steps = Iterator[dict[str, TelematicPoint]]
Scenario = Callable[[Mapping[str, TelematicPoint], "SimClock"], Steps]

# Through Munich: BMW Welt, Petuelring, Leopoldstrasse, Siegestor, Odeonsplatz, Marienplatz.
MUNICH_ROUTE: tuple[tuple[float, float], ...] = (
    (48.177112, 11.556212),
    (48.176550, 11.564100),
    (48.176000, 11.573000),
    (48.173900, 11.582800),
    (48.169600, 11.586100),
    (48.162200, 11.586600),
    (48.156200, 11.584200),
    (48.151500, 11.581700),
    (48.147000, 11.579900),
    (48.142400, 11.577400),
    (48.137400, 11.575500),
)
EARTH_RADIUS_KM = 6371.0
CONSUMPTION_KWH_PER_KM = 0.17
DEFAULT_CAPACITY_KWH = 80.0
CHARGING_STEP_MINUTES = 10
PARKED_REPORT_EVERY = 10  # steps between two 12 V battery reports while parked

# Per-step wiggle of an AC charge, so consecutive updates differ as real ones do.
_POWER_WIGGLE = (0, -30, 20, -10, 10)
_VOLTAGE_WIGGLE = (0.0, -0.6, 0.4, -0.3, 0.8)

# What a car reports about its body when the state has nothing better.
_BODY_DEFAULTS: dict[str, Any] = {
    "vehicle.cabin.door.row1.driver.isOpen": "CLOSED",
    "vehicle.cabin.door.row1.passenger.isOpen": "CLOSED",
    "vehicle.cabin.door.row2.driver.isOpen": "CLOSED",
    "vehicle.cabin.door.row2.passenger.isOpen": "CLOSED",
    "vehicle.cabin.window.row1.driver.status": "CLOSED",
    "vehicle.cabin.window.row1.passenger.status": "CLOSED",
    "vehicle.cabin.window.row2.driver.status": "CLOSED",
    "vehicle.cabin.window.row2.passenger.status": "CLOSED",
    "vehicle.body.trunk.isOpen": "CLOSED",
    "vehicle.body.hood.isOpen": "CLOSED",
    IS_MOVING: "ASN_isFalse",
}


# --- scenarios -----------------------------------------------------------------------------


def parked(state: Mapping[str, TelematicPoint], clock: SimClock) -> Steps:
    """A sleeping car: now and then the 12 V battery voltage, slowly sagging; never ends."""
    base = _number(state, LOW_VOLTAGE_BATTERY, 12.6)
    step = 0
    while True:
        if step % PARKED_REPORT_EVERY == 0:
            report = step // PARKED_REPORT_EVERY
            voltage = round(base - 0.01 * (report % 8), 2)
            yield {LOW_VOLTAGE_BATTERY: TelematicPoint(voltage, "V", clock.now())}
        else:
            yield {}
        step += 1


def driving(state: Mapping[str, TelematicPoint], clock: SimClock) -> Steps:
    """A trip across Munich: moving, locked, position and heading, odometer up, SoC down."""
    battery = _Battery.from_state(state)
    odometer = _number(state, ODOMETER, 10_000.0)
    start = (
        _number(state, LATITUDE, MUNICH_ROUTE[0][0]),
        _number(state, LONGITUDE, MUNICH_ROUTE[0][1]),
    )
    route = route_from(start)

    now = clock.now()
    yield {
        IS_MOVING: TelematicPoint("ASN_isTrue", None, now),
        LOCK_STATUS: TelematicPoint("LOCKED", None, now),
        **_position(route[0], bearing(route[0], route[1]), now, apart=False),
    }
    for index in range(1, len(route)):
        distance = haversine_km(route[index - 1], route[index])
        odometer += distance
        battery.consume(distance * CONSUMPTION_KWH_PER_KM)
        previous, now = now, clock.now()
        # Every other fix has its latitude a second older than its longitude (spec §3.2), but
        # only when that is still newer than the last fix: REST keeps the newest measurement.
        apart = index % 2 == 1 and now - previous >= timedelta(seconds=1)
        yield {
            **_position(route[index], bearing(route[index - 1], route[index]), now, apart=apart),
            ODOMETER: TelematicPoint(int(odometer), "km", now),
            **battery.points(state, now),
        }
    yield {IS_MOVING: TelematicPoint("ASN_isFalse", None, clock.now())}


def charging(state: Mapping[str, TelematicPoint], clock: SimClock) -> Steps:
    """An AC charge: plug in, initialise, charge to the target, end; the plug stays in."""
    battery = _Battery.from_state(state)
    target = _number(state, SOC_TARGET, 80.0)
    raise_target = battery.soc > target - 10
    if raise_target:
        # Nearly at the target already: the owner asks for a full battery instead.
        target = 100.0
    single_phase = battery.capacity < SMALL_BATTERY_KWH
    phases = 1 if single_phase else 3
    amps, volts = 16, 230.0
    power_w = round(phases * amps * volts)
    # The same losses as a charging session's (battery.py), in coarse 10-minute steps.
    kw_into_battery = AC_LOSSES.battery_kw(power_w / 1000)

    now = clock.now()
    plug_in = {
        IS_PLUGGED: TelematicPoint(True, None, now),
        PORT_STATUS: TelematicPoint("CONNECTED", None, now),
        CHARGING_METHOD: TelematicPoint("AC_TYPE2PLUG", None, now),
        PHASE_NUMBER: TelematicPoint(f"{phases}-PHASES", None, now),
        CHARGING_STATUS: TelematicPoint("INITIALIZATION", None, now),
        HV_STATUS: TelematicPoint("WAITING_FOR_CHARGING", None, now),
    }
    if PORT_COMBINED_STATUS in state:
        plug_in[PORT_COMBINED_STATUS] = TelematicPoint("CONNECTED", None, now)
    if raise_target:
        plug_in[SOC_TARGET] = TelematicPoint(int(target), "%", now)
    yield plug_in

    step = 0
    while battery.soc < target:
        now = clock.now()
        wiggle = step % len(_POWER_WIGGLE)
        points = {
            CHARGING_POWER: TelematicPoint(power_w + _POWER_WIGGLE[wiggle], "W", now),
            AC_VOLTAGE: TelematicPoint(round(volts + _VOLTAGE_WIGGLE[wiggle], 1), "V", now),
            AC_AMPERE: TelematicPoint(amps, "A", now),
            **battery.points(state, now),
            TIME_REMAINING: TelematicPoint(
                _minutes(battery.kwh_to(target), kw_into_battery), "min", now
            ),
        }
        if TIME_TO_FULL in state:
            points[TIME_TO_FULL] = TelematicPoint(
                _minutes(battery.kwh_to(100.0), kw_into_battery), "min", now
            )
        if step == 0:
            points = {
                CHARGING_STATUS: TelematicPoint("CHARGINGACTIVE", None, now),
                HV_STATUS: TelematicPoint("CHARGING", None, now),
                **points,
            }
        yield points
        battery.charge(kw_into_battery * CHARGING_STEP_MINUTES / 60, ceiling=target)
        step += 1

    now = clock.now()
    ended = {
        CHARGING_STATUS: TelematicPoint("CHARGINGENDED", None, now),
        HV_STATUS: TelematicPoint(
            "FINISHED_FULLY_CHARGED" if target >= 100 else "FINISHED_NOT_FULL", None, now
        ),
        FINISH_REASON: TelematicPoint("CHARGING_GOAL_REACHED", None, now),
        CHARGING_POWER: TelematicPoint(0, "W", now),
        AC_VOLTAGE: TelematicPoint(0.0, "V", now),
        AC_AMPERE: TelematicPoint(0, "A", now),
        TIME_REMAINING: TelematicPoint(0, "min", now),
        # BMW resets the phase count at the end of a charge (spec §3.2).
        PHASE_NUMBER: TelematicPoint("1-PHASES", None, now),
        **battery.points(state, now),
    }
    yield ended


def unlocking(state: Mapping[str, TelematicPoint], clock: SimClock) -> Steps:
    """The owner unlocks the car: one burst of every selected descriptor within a second."""
    now = clock.now()
    burst = {
        descriptor: TelematicPoint(value, None, now) for descriptor, value in _BODY_DEFAULTS.items()
    }
    for descriptor, point in state.items():
        if point.value is not None:
            burst[descriptor] = TelematicPoint(point.value, point.unit, now)
    burst[LOCK_STATUS] = TelematicPoint("UNLOCKED", None, now)
    if DOOR_STATUS in burst:
        burst[DOOR_STATUS] = TelematicPoint("ASN_unlocked", None, now)
    yield burst


SCENARIOS: dict[str, Scenario] = {
    "parked": parked,
    "driving": driving,
    "charging": charging,
    "unlocking": unlocking,
}


# --- the runner ----------------------------------------------------------------------------


class _Stopping:
    """What stop() returns: the scenarios are cancelled already; await it to see them finish."""

    def __init__(self, tasks: list[asyncio.Task[None]]) -> None:
        self._tasks = tasks

    def __await__(self) -> Generator[Any]:
        if self._tasks:
            yield from asyncio.wait(self._tasks).__await__()


class ScenarioRunner:
    """Runs at most one scenario per VIN, feeding each step to `apply`."""

    names: tuple[str, ...] = tuple(SCENARIOS)

    def __init__(
        self,
        clock: SimClock,
        apply: Callable[[str, dict[str, TelematicPoint]], None],
        initial: Callable[[str], dict[str, TelematicPoint]],
    ) -> None:
        """`apply(vin, points)` stores and publishes a step; `initial(vin)` is the car's state."""
        self._clock = clock
        self._apply = apply
        self._initial = initial
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, str] = {}
        self._wakeups: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._remove_listener: Callable[[], None] | None = None

    @property
    def running(self) -> dict[str, str]:
        """VIN -> name of the scenario it is running."""
        return dict(self._running)

    def start(self, vin: str, name: str, step_seconds: float = 1.0) -> None:
        """Start `name` for `vin`, replacing whatever that car was doing."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(self.names)}")
        if not step_seconds >= 0:
            raise ValueError("step_seconds must not be negative")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._remove_listener is None:
            self._remove_listener = self._clock.add_listener(self._on_clock_jump)
        self.stop(vin)
        steps = SCENARIOS[name](self._initial(vin), self._clock)
        task = self._loop.create_task(
            self._run(vin, steps, step_seconds), name=f"cardata simulator: {name} {vin}"
        )
        self._tasks[vin] = task
        self._running[vin] = name
        _LOGGER.debug("Scenario %s started for %s", name, vin)

    def stop(self, vin: str) -> _Stopping:
        """Cancel the VIN's scenario; awaiting the result waits until it has ended."""
        task = self._tasks.pop(vin, None)
        self._running.pop(vin, None)
        if task is None:
            return _Stopping([])
        task.cancel()
        return _Stopping([task])

    def stop_all(self) -> _Stopping:
        """Cancel every scenario; awaiting the result waits until all have ended."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._running.clear()
        for task in tasks:
            task.cancel()
        return _Stopping(tasks)

    async def wait(self, vin: str) -> None:
        """Wait until the VIN's scenario has finished (a parked car never does)."""
        if (task := self._tasks.get(vin)) is not None:
            await asyncio.wait([task])

    async def _run(self, vin: str, steps: Steps, step_seconds: float) -> None:
        wakeup = asyncio.Event()
        self._wakeups.add(wakeup)
        try:
            for index, points in enumerate(steps):
                if index:
                    await self._pause(wakeup, step_seconds)
                if points:
                    self._apply(vin, points)
        finally:
            self._wakeups.discard(wakeup)
            if self._tasks.get(vin) is asyncio.current_task():
                del self._tasks[vin]
                del self._running[vin]
            if not self._tasks and self._remove_listener is not None:
                self._remove_listener()
                self._remove_listener = None

    @staticmethod
    async def _pause(wakeup: asyncio.Event, step_seconds: float) -> None:
        """Wait one step of real time, or less if the simulator's clock jumps."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(step_seconds):
                await wakeup.wait()
        wakeup.clear()

    def _on_clock_jump(self) -> None:
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake_all()
        else:
            self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for wakeup in self._wakeups:
            wakeup.set()


# --- helpers -------------------------------------------------------------------------------


class _Battery:
    """The traction battery's charge and the range it gives, kept consistent with each other."""

    def __init__(
        self, capacity: float, soc: float, km_per_percent: float, fuel_range: float | None
    ) -> None:
        self.capacity = capacity
        self.soc = soc
        self._km_per_percent = km_per_percent
        self._fuel_range = fuel_range  # the part of the total range a PHEV's tank adds

    @classmethod
    def from_state(cls, state: Mapping[str, TelematicPoint]) -> _Battery:
        capacity = _number(state, MAX_ENERGY, 0.0) or DEFAULT_CAPACITY_KWH
        soc = _number(state, SOC, 80.0)
        electric_range = _number(state, ELECTRIC_RANGE, 0.0)
        km_per_percent = (
            electric_range / soc
            if electric_range > 0 and soc > 0
            else capacity / 100 / CONSUMPTION_KWH_PER_KM
        )
        fuel_range = None
        if TOTAL_RANGE in state:
            fuel_range = max(0.0, _number(state, TOTAL_RANGE, 0.0) - soc * km_per_percent)
        return cls(capacity, soc, km_per_percent, fuel_range)

    def consume(self, kwh: float) -> None:
        self.soc = max(0.0, self.soc - kwh / self.capacity * 100)

    def charge(self, kwh: float, *, ceiling: float) -> None:
        self.soc = min(ceiling, self.soc + kwh / self.capacity * 100)

    def kwh_to(self, target: float) -> float:
        return max(0.0, (target - self.soc) / 100 * self.capacity)

    def points(
        self, state: Mapping[str, TelematicPoint], now: datetime
    ) -> dict[str, TelematicPoint]:
        """SoC and range as the car reports them (only descriptors it has, plus the basics)."""
        soc = round(self.soc, 1)
        electric_range = round(self.soc * self._km_per_percent)
        points = {
            SOC: TelematicPoint(soc, "percent", now),
            ELECTRIC_RANGE: TelematicPoint(float(electric_range), "km", now),
        }
        if SOC_DISPLAYED in state:
            points[SOC_DISPLAYED] = TelematicPoint(soc, "percent", now)
        if CHARGING_LEVEL in state:
            points[CHARGING_LEVEL] = TelematicPoint(soc, "%", now)
        if self._fuel_range is not None:
            points[TOTAL_RANGE] = TelematicPoint(
                float(round(electric_range + self._fuel_range)), "km", now
            )
        return points


def _position(
    where: tuple[float, float], heading: float, now: datetime, *, apart: bool
) -> dict[str, TelematicPoint]:
    """Latitude, longitude and heading; with `apart`, latitude was measured a second earlier."""
    return {
        LATITUDE: TelematicPoint(
            round(where[0], 6), "degrees", now - timedelta(seconds=1) if apart else now
        ),
        LONGITUDE: TelematicPoint(round(where[1], 6), "degrees", now),
        HEADING: TelematicPoint(round(heading) % 360, "degrees", now),
    }


def route_from(start: tuple[float, float]) -> list[tuple[float, float]]:
    """The Munich route, driven from whichever end is nearer and moved to begin at `start`."""
    route = list(MUNICH_ROUTE)
    if haversine_km(start, route[-1]) < haversine_km(start, route[0]):
        route.reverse()
    shift_lat, shift_lon = start[0] - route[0][0], start[1] - route[0][1]
    return [(lat + shift_lat, lon + shift_lon) for lat, lon in route]


def haversine_km(origin: tuple[float, float], destination: tuple[float, float]) -> float:
    """Great-circle distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*origin, *destination))
    a = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def bearing(origin: tuple[float, float], destination: tuple[float, float]) -> float:
    """Initial compass bearing from origin to destination, 0-360 degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*origin, *destination))
    x = math.sin(lon2 - lon1) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return (math.degrees(math.atan2(x, y)) + 360) % 360


def _minutes(kwh: float, kw: float) -> int:
    """Charging time in whole minutes, rounded up as the car shows it."""
    return math.ceil(kwh / kw * 60) if kw > 0 else 0


def _number(state: Mapping[str, TelematicPoint], descriptor: str, default: float) -> float:
    """A descriptor's numeric value, accepting numeric strings; `default` when there is none."""
    point = state.get(descriptor)
    if point is None or isinstance(point.value, bool):
        return default
    try:
        return float(point.value)
    except (TypeError, ValueError):
        return default
