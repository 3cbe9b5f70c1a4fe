"""Binary sensors against the simulator: doors, lock, charging, and the stream's link."""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import async_wait_for
from .entities import (
    async_platforms_set_up,
    async_reading,
    async_snapshot_platform,
    entity_id,
    record_states,
    state_of,
)

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
DRIVER_DOOR = "vehicle.cabin.door.row1.driver.isOpen"
LOCK = "vehicle.cabin.door.lock.status"
PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its binary sensors, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.BINARY_SENSOR]) as entry:
        yield entry


async def test_binary_sensors_of_the_bev_and_the_phev(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Both cars' binary sensors: device classes, states, diagnostics."""
    await async_snapshot_platform(hass, entry, snapshot)


async def test_doors_lock_and_plug_follow_the_stream(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """An opened door, an unlocked car and a pulled plug show as a user expects."""
    assert state_of(hass, "binary_sensor", VIN_BEV, "door_driver") == "off"
    assert state_of(hass, "binary_sensor", VIN_BEV, "door_lock") == "off"
    assert state_of(hass, "binary_sensor", VIN_PHEV, "plugged_in") == "on"
    assert state_of(hass, "binary_sensor", VIN_PHEV, "charging") == "on"

    await sim.set_telematics(VIN_BEV, {DRIVER_DOOR: "OPEN", LOCK: "UNLOCKED"})
    await async_reading(hass, entry, VIN_BEV, LOCK, "UNLOCKED")
    assert state_of(hass, "binary_sensor", VIN_BEV, "door_driver") == "on"
    # The lock device class is on when unlocked.
    assert state_of(hass, "binary_sensor", VIN_BEV, "door_lock") == "on"

    await sim.set_telematics(VIN_PHEV, {PLUGGED: False})
    await async_reading(hass, entry, VIN_PHEV, PLUGGED, False)
    assert state_of(hass, "binary_sensor", VIN_PHEV, "plugged_in") == "off"


async def test_stream_connection_shows_drops_and_returns(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """The stream sensor of each car goes off when BMW drops the stream and on again."""
    connected = {
        vin: entity_id(hass, "binary_sensor", vin, "stream_connected")
        for vin in (VIN_BEV, VIN_PHEV)
    }
    assert all(hass.states.get(e).state == "on" for e in connected.values())  # type: ignore[union-attr]
    seen = record_states(hass, connected.values())

    await sim.drop_stream()
    await async_wait_for(
        hass,
        lambda: all(states[-2:] == ["off", "on"] for states in seen.values()),
        "the stream to drop and return",
    )
    # Each change is written once; nothing is written while nothing changes.
    assert all(states == ["off", "on"] for states in seen.values())
