"""State after a restart: the last readings come back before any REST request.

The coordinator stores its own state too; these tests remove that store, so what shows
comes from the entities' restore data alone (as when the store was lost).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_restore_state_shutdown_restart,
    mock_restore_cache_with_extra_data,
)

from custom_components.cardata.const import DOMAIN
from custom_components.cardata.descriptors import generic_key
from custom_components.cardata.vehicle import DescriptorState
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import async_authorize, make_entry
from .entities import (
    async_platforms_set_up,
    async_reading,
    async_wait_for_stream,
    entity_id,
)

VIN_BEV = fleet.VIN_BEV
SOC_DISPLAYED = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
LOCK = "vehicle.cabin.door.lock.status"
LATITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
FUEL_LEVEL = "vehicle.drivetrain.fuelSystem.level"
SERVICE_WEEKS = "vehicle.status.serviceTime.yellow"
PLATFORMS = [Platform.BINARY_SENSOR, Platform.DEVICE_TRACKER, Platform.SENSOR]


def reading(value: Any, unit: str | None, moment: datetime) -> dict[str, Any]:
    """A stored reading, as an entity's restore data holds it."""
    return DescriptorState(
        value=value,
        raw_value=value,
        unit=unit,
        timestamp=moment,
        source="stream",
        received_at=moment,
    ).as_dict()


async def async_without_rest(sim: SimulatorHandle) -> None:
    """Make BMW's telematics endpoint fail: only restored readings can show."""
    await sim.fault("telematic_data", count=20, status=500, body={"exveErrorId": "CU-500"})


@asynccontextmanager
async def async_loaded(hass: HomeAssistant, entry: MockConfigEntry) -> AsyncIterator[None]:
    """Set up an entry already added to hass with the test's platforms; unload at the end."""
    with patch("custom_components.cardata.PLATFORMS", PLATFORMS):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        await async_wait_for_stream(hass, entry)
        yield
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)


async def test_restored_readings_show_before_any_rest_request(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """Last week's values show with their time; newer readings replace them, older do not."""
    await async_without_rest(sim)
    entry = make_entry(await async_authorize(hass, sim), client_id=sim.client_id)
    entry.add_to_hass(hass)
    registry = er.async_get(hass)

    def registered(domain: str, key: str) -> str:
        return registry.async_get_or_create(
            domain, DOMAIN, f"{VIN_BEV}_{key}", config_entry=entry
        ).entity_id

    soc = registered("sensor", "state_of_charge")
    lock = registered("binary_sensor", "door_lock")
    tracker = registered("device_tracker", "location")
    weeks = registered("sensor", generic_key(SERVICE_WEEKS))
    fuel = registered("sensor", "fuel_level")
    charging = registered("binary_sensor", "charging")
    week_ago = (dt_util.utcnow() - timedelta(days=7)).replace(microsecond=0)
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State(soc, "64"), {"readings": {SOC_DISPLAYED: reading(64.0, "%", week_ago)}}),
            (State(lock, "on"), {"readings": {LOCK: reading("UNLOCKED", None, week_ago)}}),
            (
                State(tracker, "not_home"),
                {
                    "readings": {
                        LATITUDE: reading(48.0, "degrees", week_ago),
                        LONGITUDE: reading(11.0, "degrees", week_ago),
                    }
                },
            ),
            (State(weeks, "3"), {"readings": {SERVICE_WEEKS: reading(3, "weeks", week_ago)}}),
            # Damaged restore data counts as none.
            (State(fuel, "40"), {"readings": {FUEL_LEVEL: {"value": 40}}}),
            (State(charging, "on"), {"readings": "not readings"}),
        ],
    )

    async with async_loaded(hass, entry):
        assert (await sim.calls())[sim.gcid]["by_endpoint"]["telematic_data"] >= 1
        shown = hass.states.get(soc)
        assert shown is not None
        assert float(shown.state) == 64
        assert shown.attributes["measured_at"] == week_ago.isoformat()
        assert hass.states.get(lock).state == "on"  # type: ignore[union-attr]
        tracked = hass.states.get(tracker)
        assert tracked is not None
        assert (tracked.attributes["latitude"], tracked.attributes["longitude"]) == (48.0, 11.0)
        assert hass.states.get(weeks).state == "3"  # type: ignore[union-attr]
        # Never a value, nothing restored: the one case of "unavailable".
        assert hass.states.get(fuel).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
        assert hass.states.get(charging).state == STATE_UNAVAILABLE  # type: ignore[union-attr]

        # An older measurement arriving late does not replace the restored one.
        older = week_ago - timedelta(days=1)
        await sim.set_telematics(
            VIN_BEV, {SOC_DISPLAYED: {"value": 50, "unit": "%", "timestamp": older.isoformat()}}
        )
        await async_reading(hass, entry, VIN_BEV, SOC_DISPLAYED, 50)
        assert float(hass.states.get(soc).state) == 64  # type: ignore[union-attr]

        # A newer one does.
        await sim.set_telematics(VIN_BEV, {SOC_DISPLAYED: {"value": 70, "unit": "%"}})
        await async_reading(hass, entry, VIN_BEV, SOC_DISPLAYED, 70)
        assert float(hass.states.get(soc).state) == 70  # type: ignore[union-attr]

        # The restored position stays until a complete newer fix arrived.
        await sim.set_telematics(VIN_BEV, {LATITUDE: {"value": 48.5, "unit": "degrees"}})
        await async_reading(hass, entry, VIN_BEV, LATITUDE, 48.5)
        tracked = hass.states.get(tracker)
        assert tracked is not None
        assert (tracked.attributes["latitude"], tracked.attributes["longitude"]) == (48.0, 11.0)
        await sim.set_telematics(VIN_BEV, {LONGITUDE: {"value": 11.5, "unit": "degrees"}})
        await async_reading(hass, entry, VIN_BEV, LONGITUDE, 11.5)
        tracked = hass.states.get(tracker)
        assert tracked is not None
        assert (tracked.attributes["latitude"], tracked.attributes["longitude"]) == (48.5, 11.5)

        await sim.set_telematics(VIN_BEV, {FUEL_LEVEL: {"value": 30, "unit": "%"}})
        await async_reading(hass, entry, VIN_BEV, FUEL_LEVEL, 30)
        assert hass.states.get(fuel).state == "30"  # type: ignore[union-attr]


async def test_a_restart_brings_back_what_was_shown(
    hass: HomeAssistant, sim: SimulatorHandle, hass_storage: dict[str, Any]
) -> None:
    """Home Assistant's own restore round trip, with the coordinator's store gone."""
    async with async_platforms_set_up(hass, sim, PLATFORMS) as entry:
        watched = [
            entity_id(hass, "sensor", VIN_BEV, "state_of_charge"),
            entity_id(hass, "sensor", VIN_BEV, "charging_status"),
            entity_id(hass, "binary_sensor", VIN_BEV, "plugged_in"),
            entity_id(hass, "device_tracker", VIN_BEV, "location"),
        ]
        before = {entity: hass.states.get(entity) for entity in watched}
        await async_mock_restore_state_shutdown_restart(hass)
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        hass_storage.pop(f"{DOMAIN}.state.{sim.gcid}")
        await async_without_rest(sim)

        async with async_loaded(hass, entry):
            for entity, shown in before.items():
                restored = hass.states.get(entity)
                assert restored is not None
                assert shown is not None
                assert restored.state == shown.state, entity
                assert restored.attributes == shown.attributes, entity
            assert not entry.runtime_data.coordinator.state(VIN_BEV)


async def test_a_tracker_without_a_complete_fix_stays_unavailable(
    hass: HomeAssistant, sim: SimulatorHandle, hass_storage: dict[str, Any]
) -> None:
    """A restored half pair is no position, and no half pair is stored at the next stop."""
    await async_without_rest(sim)
    entry = make_entry(await async_authorize(hass, sim), client_id=sim.client_id)
    entry.add_to_hass(hass)
    tracker = (
        er.async_get(hass)
        .async_get_or_create("device_tracker", DOMAIN, f"{VIN_BEV}_location", config_entry=entry)
        .entity_id
    )
    moment = dt_util.utcnow().replace(microsecond=0)
    mock_restore_cache_with_extra_data(
        hass,
        [(State(tracker, "not_home"), {"readings": {LATITUDE: reading(48.0, "degrees", moment)}})],
    )

    async with async_loaded(hass, entry):
        assert hass.states.get(tracker).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
        await async_mock_restore_state_shutdown_restart(hass)

    stored = {
        state["state"]["entity_id"]: state["extra_data"]
        for state in hass_storage["core.restore_state"]["data"]
    }
    assert stored[tracker] == {"readings": {}}
