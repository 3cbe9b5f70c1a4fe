"""The state of charge a driver sees while charging, charged energy, and the battery badge.

The car's readings go through the simulator's stream to the real integration; Home
Assistant's and the simulator's clocks travel together. These tests check what a user
notices (the number moves on its own, never backwards, never past the target, is labelled
as an estimate, survives a restart), not how far it moves: the estimate's accuracy against
a physically simulated car is measured by bench/charging_soc.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import ATTR_DEVICE_CLASS, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel
from .entities import async_platforms_set_up, async_reading, entity_id

VIN_BEV = fleet.VIN_BEV
SOC = "vehicle.drivetrain.batteryManagement.header"
SOC_DISPLAYED = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
TARGET = "vehicle.powertrain.electric.battery.stateOfCharge.target"
MAX_ENERGY = "vehicle.drivetrain.batteryManagement.maxEnergy"
POWER = "vehicle.powertrain.electric.battery.charging.power"
STATUS = "vehicle.drivetrain.electricEngine.charging.status"
PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its sensors, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.SENSOR]) as entry:
        yield entry


@pytest.fixture
def travel(hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory) -> TimeTravel:
    """Moves Home Assistant's and the simulator's clocks together."""
    return TimeTravel(hass, sim, freezer)


def reading(value: Any, unit: str | None = None) -> dict[str, Any]:
    """A reading measured now (the simulator's clock, which travels with Home Assistant's)."""
    point: dict[str, Any] = {"value": value, "timestamp": dt_util.utcnow().isoformat()}
    if unit is not None:
        point["unit"] = unit
    return point


async def async_start_charging(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, soc: float
) -> None:
    """The car reports: plugged in, 80 % target, charging at 11 kW from `soc` percent."""
    await sim.set_telematics(
        VIN_BEV,
        {
            PLUGGED: reading(True),
            TARGET: reading(80, "%"),
            MAX_ENERGY: reading(80.0, "kWh"),
            SOC: reading(soc, "percent"),
            SOC_DISPLAYED: reading(soc, "percent"),
            STATUS: reading("CHARGINGACTIVE"),
            POWER: reading(11000, "W"),
        },
    )
    await async_reading(hass, entry, VIN_BEV, POWER, 11000)


def shown(hass: HomeAssistant, key: str) -> tuple[float, dict[str, Any]]:
    state = hass.states.get(entity_id(hass, "sensor", VIN_BEV, key))
    assert state is not None
    return float(state.state), dict(state.attributes)


async def test_estimate_moves_on_its_own_while_the_car_is_silent(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, travel: TimeTravel
) -> None:
    """A steady 11 kW sends nothing; the estimate still climbs each minute, the measurement stays."""
    await async_start_charging(hass, entry, sim, soc=50)
    start, attributes = shown(hass, "estimated_state_of_charge")
    assert start == 50
    seen = [start]

    for _ in range(30):
        await travel.async_advance(timedelta(minutes=1))
        await hass.async_block_till_done()
        seen.append(shown(hass, "estimated_state_of_charge")[0])

    assert seen == sorted(seen), "the estimate went down while charging"
    assert seen[-1] > start
    assert seen[-1] <= 80
    value, attributes = shown(hass, "estimated_state_of_charge")
    assert attributes["estimated"] is True
    assert attributes["last_measured"] == 50
    assert attributes["charging_type"] == "AC"
    assert dt_util.parse_datetime(attributes["last_measured_at"]) is not None
    # The measurement itself stays as the car reported it.
    assert shown(hass, "state_of_charge")[0] == 50

    # The car's own next measurement is taken as it is.
    await sim.set_telematics(VIN_BEV, {SOC_DISPLAYED: reading(value + 0.5, "percent")})
    await async_reading(hass, entry, VIN_BEV, SOC_DISPLAYED, value + 0.5)
    assert shown(hass, "estimated_state_of_charge")[1]["last_measured"] == value + 0.5


async def test_estimate_stops_at_the_target(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, travel: TimeTravel
) -> None:
    """Hours of silence at 11 kW: the estimate never passes the target."""
    await async_start_charging(hass, entry, sim, soc=75)
    await travel.async_advance_in_steps(timedelta(hours=3), timedelta(minutes=5))
    await hass.async_block_till_done()
    assert shown(hass, "estimated_state_of_charge")[0] <= 80


async def test_one_battery_sensor_per_car_and_it_is_the_estimate(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """The device page's badge has exactly one battery sensor to show: the most current one."""
    registry = er.async_get(hass)
    by_car: dict[str, list[str]] = {}
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        state = hass.states.get(entity.entity_id)
        if state is not None and state.attributes.get(ATTR_DEVICE_CLASS) == "battery":
            assert entity.device_id is not None
            by_car.setdefault(entity.device_id, []).append(entity.unique_id)
    assert sorted(by_car.values()) == [
        [f"{fleet.VIN_BEV}_estimated_state_of_charge"],
        [f"{fleet.VIN_PHEV}_estimated_state_of_charge"],
    ]


async def test_charged_energy_counts_up_and_survives_a_restart(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, travel: TimeTravel
) -> None:
    """An energy meter the Energy dashboard can use: kWh, energy, total_increasing, kept."""
    await async_start_charging(hass, entry, sim, soc=40)
    before, attributes = shown(hass, "charged_energy")
    assert attributes["device_class"] == SensorDeviceClass.ENERGY
    assert attributes["state_class"] == SensorStateClass.TOTAL_INCREASING
    assert attributes["unit_of_measurement"] == "kWh"

    await travel.async_advance_in_steps(timedelta(minutes=30), timedelta(minutes=1))
    await hass.async_block_till_done()
    charged, _ = shown(hass, "charged_energy")
    # Half an hour at 11 kW: the meter moved by a plausible amount for that.
    assert 3 < charged - before < 7

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert shown(hass, "charged_energy")[0] >= charged
