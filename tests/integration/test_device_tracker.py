"""The device tracker against the simulator: never a half-updated position."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .entities import async_platforms_set_up, async_reading, async_snapshot_platform, entity_id

VIN_BEV = fleet.VIN_BEV
LATITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
HEADING = "vehicle.cabin.infotainment.navigation.currentLocation.heading"
ALTITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.altitude"
HOME = fleet.VEHICLES[VIN_BEV].home


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its trackers, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.DEVICE_TRACKER]) as entry:
        yield entry


def position(hass: HomeAssistant) -> tuple[float, float]:
    """The BEV's position as the tracker shows it."""
    state = hass.states.get(entity_id(hass, "device_tracker", VIN_BEV, "location"))
    assert state is not None
    return state.attributes["latitude"], state.attributes["longitude"]


def point(value: float, moment: datetime, unit: str = "degrees") -> dict[str, object]:
    """A telematics point with its measurement time."""
    return {"value": value, "unit": unit, "timestamp": moment.isoformat()}


async def test_trackers_of_the_bev_and_the_phev(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Both cars' trackers: GPS position, heading and altitude."""
    await async_snapshot_platform(hass, entry, snapshot)


async def test_a_new_fix_shows_only_when_both_coordinates_arrived(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """Latitude first: the old pair stays; then longitude: the new pair."""
    assert position(hass) == HOME
    now = await sim.now()

    await sim.set_telematics(VIN_BEV, {LATITUDE: point(48.2, now)})
    await async_reading(hass, entry, VIN_BEV, LATITUDE, 48.2)
    assert position(hass) == HOME

    await sim.set_telematics(VIN_BEV, {LONGITUDE: point(11.6, now + timedelta(seconds=1))})
    await async_reading(hass, entry, VIN_BEV, LONGITUDE, 11.6)
    assert position(hass) == (48.2, 11.6)


async def test_longitude_first_and_late_old_readings_keep_the_pair(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """Out of order: a newer longitude waits for its latitude; an old latitude changes nothing."""
    now = await sim.now()

    await sim.set_telematics(VIN_BEV, {LONGITUDE: point(11.7, now)})
    await async_reading(hass, entry, VIN_BEV, LONGITUDE, 11.7)
    assert position(hass) == HOME

    # A latitude measured before the one shown: the coordinator keeps the newer one, and the
    # tracker shows nothing of it. The heading after it marks that it was handled.
    await sim.set_telematics(
        VIN_BEV,
        {LATITUDE: point(47.0, now - timedelta(days=1)), HEADING: point(90, now)},
    )
    await async_reading(hass, entry, VIN_BEV, HEADING, 90)
    assert position(hass) == HOME

    await sim.set_telematics(VIN_BEV, {LATITUDE: point(48.3, now)})
    await async_reading(hass, entry, VIN_BEV, LATITUDE, 48.3)
    assert position(hass) == (48.3, 11.7)


async def test_a_fix_measured_at_one_moment_replaces_a_pair_measured_apart(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """Equal timestamps make a pair even when one coordinate is not newer than the one shown."""
    now = await sim.now()
    await sim.set_telematics(
        VIN_BEV, {LATITUDE: point(48.1, now), LONGITUDE: point(11.5, now + timedelta(seconds=5))}
    )
    await async_reading(hass, entry, VIN_BEV, LONGITUDE, 11.5)
    assert position(hass) == (48.1, 11.5)

    # A latitude measured with the longitude shown completes a fix of that moment.
    await sim.set_telematics(VIN_BEV, {LATITUDE: point(48.15, now + timedelta(seconds=5))})
    await async_reading(hass, entry, VIN_BEV, LATITUDE, 48.15)
    assert position(hass) == (48.15, 11.5)


async def test_heading_and_altitude_are_attributes(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """Heading in degrees, altitude in metres (BMW may report feet)."""
    tracker = entity_id(hass, "device_tracker", VIN_BEV, "location")
    state = hass.states.get(tracker)
    assert state is not None
    assert (state.attributes["heading"], state.attributes["altitude"]) == (271, 521)

    now = await sim.now()
    await sim.set_telematics(
        VIN_BEV, {HEADING: point(45, now), ALTITUDE: point(1000, now, unit="ft")}
    )
    await async_reading(hass, entry, VIN_BEV, ALTITUDE, 1000)
    state = hass.states.get(tracker)
    assert state is not None
    assert state.attributes["heading"] == 45
    assert state.attributes["altitude"] == pytest.approx(304.8)
    # The position is unchanged and its measurement time still that of the pair.
    assert (state.attributes["latitude"], state.attributes["longitude"]) == HOME
    # Of the pair, the longitude was measured last (two seconds after the latitude).
    pair_measured = entry.runtime_data.coordinator.state(VIN_BEV)[LONGITUDE].timestamp
    assert state.attributes["measured_at"] == pair_measured.isoformat()


async def test_implausible_coordinates_never_show(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """A latitude beyond the pole with a fine longitude is no fix; the last one stays."""
    now = await sim.now()
    await sim.set_telematics(VIN_BEV, {LATITUDE: point(91.5, now), LONGITUDE: point(11.6, now)})
    await async_reading(hass, entry, VIN_BEV, LONGITUDE, 11.6)
    assert position(hass) == HOME
