"""Event polls: REST is spent when something happened, within the day's share (issue 9.6).

The coordinator runs against the simulator's REST API; the stream's messages are applied as
the stream manager would, at the moments of a driver's day: two trips, plugging in, one
charging session, unplugging.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest

from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.polling import EVENT_POLL_COOLDOWN
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel
from .test_coordinator import (
    VIN_BEV,
    VIN_PHEV,
    Account,
    async_new_account,
    async_step,
    iso,
    stream_message,
)


@pytest.fixture
async def account(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[Account]:
    """An account whose coordinator is stopped when the test ends."""
    new = await async_new_account(hass, sim)
    yield new
    await new.async_stop()


@pytest.fixture
def travel(hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory) -> TimeTravel:
    """Moves Home Assistant's and the simulator's clocks together."""
    return TimeTravel(hass, sim, freezer)


MOVING = "vehicle.isMoving"
ODOMETER = "vehicle.vehicle.travelledDistance"
PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
STATUS = "vehicle.drivetrain.electricEngine.charging.status"
POWER = "vehicle.powertrain.electric.battery.charging.power"
SOC = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
HV_STATUS = "vehicle.drivetrain.electricEngine.charging.hvStatus"


def _point(value: Any, unit: str | None = None) -> dict[str, Any]:
    point: dict[str, Any] = {"timestamp": iso(dt_util.utcnow()), "value": value}
    if unit:
        point["unit"] = unit
    return point


def _day() -> list[tuple[int, dict[str, Any]]]:
    """Minutes after the start of the day, and what the BEV streams then."""
    return [
        (7 * 60 + 30, {MOVING: "ASN_isTrue"}),
        (8 * 60, {MOVING: "ASN_isFalse", ODOMETER: ("+", 25)}),
        (17 * 60, {MOVING: "ASN_isTrue"}),
        (17 * 60 + 30, {MOVING: "ASN_isFalse", ODOMETER: ("+", 25)}),
        (17 * 60 + 40, {PLUGGED: "true"}),
        (17 * 60 + 50, {STATUS: "CHARGINGACTIVE", POWER: 11000, SOC: 40}),
        (21 * 60 + 50, {STATUS: "CHARGINGENDED", POWER: 0}),
        (21 * 60 + 55, {SOC: 80}),
        (23 * 60 + 30, {PLUGGED: "false"}),
    ]


async def test_a_day_with_two_trips_and_a_charge_costs_at_most_eight_requests_a_car(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """Every event is followed by fresh REST-only values; the car costs <= 8 requests a day."""
    coordinator = await account.async_start(stream=StreamState.CONNECTED)
    await async_step(hass, travel, timedelta(minutes=1))
    start = dt_util.utcnow()
    odometer = 10000.0
    events = dict(_day())
    polled: dict[str, list[datetime]] = {VIN_BEV: [], VIN_PHEV: []}
    last = {vin: coordinator.last_rest_fetch(vin) for vin in polled}
    # Trip ended, trip ended, plugged in, charging finished (final SoC), unplugged.
    polling_events = {8 * 60, 17 * 60 + 30, 17 * 60 + 40, 21 * 60 + 55, 23 * 60 + 30}
    event_times: list[datetime] = []

    async def live_until(minute: int, step: int) -> None:
        nonlocal now_minute
        while now_minute < minute:
            advance = min(step, minute - now_minute)
            await async_step(hass, travel, timedelta(minutes=advance))
            now_minute += advance
            for vin, times in polled.items():
                if (fetched := coordinator.last_rest_fetch(vin)) != last[vin]:
                    times.append(dt_util.utcnow())
                    last[vin] = fetched

    now_minute = 0
    for minute, sent in sorted(events.items()):
        await live_until(minute, step=10)
        data: dict[str, Any] = {}
        for descriptor, value in sent.items():
            if descriptor == ODOMETER:
                odometer += value[1]
                data[descriptor] = _point(odometer, "km")
            elif descriptor == POWER:
                data[descriptor] = _point(value, "W")
            elif descriptor == SOC:
                data[descriptor] = _point(value, "percent")
            else:
                data[descriptor] = _point(value)
        coordinator.apply_stream_message(stream_message(VIN_BEV, data))
        if minute in polling_events:
            event_times.append(dt_util.utcnow())
        # Minute steps after an event: when its poll comes is measured to the minute.
        await live_until(minute + 3, step=1)
    await live_until(24 * 60, step=10)

    # After each event the REST-only values were fetched within two minutes, or had been
    # fetched within the cooldown before it.
    for event_at in event_times:
        assert any(
            event_at - EVENT_POLL_COOLDOWN <= at <= event_at + timedelta(minutes=2)
            for at in [start, *polled[VIN_BEV]]
        ), event_at
    history = [r for r in account.budget.spent() if r.endpoint == "charging_history"]
    bev_requests = len(polled[VIN_BEV]) + len(history)
    assert bev_requests <= 8, polled[VIN_BEV]
    assert len(polled[VIN_BEV]) > len(polled[VIN_PHEV])
    assert sum(1 for request in account.budget.spent() if request.automatic) <= 40
