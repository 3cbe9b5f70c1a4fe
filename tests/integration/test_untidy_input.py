"""Untidy input from BMW, end to end against the simulator: nothing freezes, nothing is lost.

Each test pushes what a broken car, a wrong clock or a careless BMW service sends through
the simulator (REST and the stream) and checks what a user would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
import logging
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.json import json_bytes
from homeassistant.helpers.restore_state import async_get as async_get_restore_state
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata.api.models import StreamMessage, TelematicValue
from custom_components.cardata.const import DOMAIN
from custom_components.cardata.descriptors import generic_key
from custom_components.cardata.sensor import ATTR_FULL_TEXT
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import async_wait_for
from .entities import async_platforms_set_up, async_reading, entity_id, state_of

VIN_BEV = fleet.VIN_BEV
SOC = "vehicle.drivetrain.batteryManagement.header"
POWER = "vehicle.powertrain.electric.battery.charging.power"
FAULT_MEMORY = "vehicle.electronicControlUnit.diagnosticTroubleCodes.raw"
GRID_ENERGY = (
    "vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.overall.gridEnergy"
)
AVG_SPEED = "vehicle.vehicle.avgSpeed"


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its sensors, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.SENSOR]) as entry:
        yield entry


async def _enable(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> str:
    """Enable a (generic) sensor as a user would, reload, return its entity id."""
    registry = er.async_get(hass)
    sensor = entity_id(hass, "sensor", VIN_BEV, key)
    registry.async_update_entity(sensor, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    return sensor


# --- 10.1: future-stamped readings ------------------------------------------------------------


async def test_a_reading_stamped_a_year_ahead_does_not_freeze_the_value(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """A car clock a year ahead: the next real reading still shows, also after a reload."""
    now = dt_util.utcnow()
    await sim.set_telematics(
        VIN_BEV,
        {SOC: {"value": "11", "unit": "%", "timestamp": (now + timedelta(days=365)).isoformat()}},
    )
    await async_reading(hass, entry, VIN_BEV, SOC, 11)
    assert state_of(hass, "sensor", VIN_BEV, "state_of_charge") == "11"

    # The next real reading, a minute later, comes through the stream.
    later = dt_util.utcnow() + timedelta(minutes=1)
    await sim.set_telematics(
        VIN_BEV, {SOC: {"value": "64", "unit": "%", "timestamp": later.isoformat()}}
    )
    await async_reading(hass, entry, VIN_BEV, SOC, 64)
    assert state_of(hass, "sensor", VIN_BEV, "state_of_charge") == "64"

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator.state(VIN_BEV)[SOC].value == 64
    assert state_of(hass, "sensor", VIN_BEV, "state_of_charge") == "64"


# --- 10.2: values JSON cannot store ---------------------------------------------------------


async def test_values_json_cannot_store_do_not_stop_persistence(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    sim: SimulatorHandle,
    hass_storage: dict[str, Any],
) -> None:
    """A 65-bit integer and a lone surrogate: our store and restore_state are still written."""
    await sim.set_telematics(
        VIN_BEV,
        {
            POWER: {"value": 2**64, "unit": "W"},
            "vehicle.vehicle.avgAuxPower": {"value": "\ud800", "unit": "kW"},
            SOC: {"value": "57", "unit": "%"},
        },
    )
    # The rest of the message survives.
    await async_reading(hass, entry, VIN_BEV, SOC, 57)
    stored_power = entry.runtime_data.coordinator.state(VIN_BEV)[POWER]
    assert stored_power.value == float(2**64)

    # What the integration's Store and Home Assistant's restore_state write (orjson).
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    stored = hass_storage[f"{DOMAIN}.state.{sim.gcid}"]["data"]
    assert stored["vehicles"][VIN_BEV]["descriptors"][SOC]["value"] == 57
    await async_get_restore_state(hass).async_dump_states()
    assert hass_storage["core.restore_state"]["data"]
    json_bytes(hass_storage["core.restore_state"])


# --- 10.10: messages for other cars ------------------------------------------------------------


async def test_stream_messages_for_cars_the_entry_does_not_read_are_dropped(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A secondary user's car on our topic: nothing applied, one debug line, VIN redacted.

    The simulator publishes only the account's own cars, so the message is handed to the
    stream manager's handler directly.
    """
    caplog.set_level(logging.DEBUG, logger="custom_components.cardata")
    stream_manager = entry.runtime_data.stream
    now = dt_util.utcnow()
    stream_manager._on_message(
        StreamMessage(
            vin=fleet.VIN_SECONDARY,
            gcid=fleet.GCID_MAIN,
            timestamp=now,
            updates={SOC: TelematicValue(value=5, raw_value="5", unit="%", timestamp=now)},
        )
    )
    await hass.async_block_till_done()
    assert not entry.runtime_data.coordinator.state(fleet.VIN_SECONDARY)
    assert f"vehicle …{fleet.VIN_SECONDARY[-4:]}" in caplog.text
    assert fleet.VIN_SECONDARY not in caplog.text


# --- 10.11 and 11.6: units, text values, state classes -------------------------------------------


async def test_the_fault_memory_shows_its_text(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """BMW's `-` unit is no unit: the XML shows (cut to a state), whole in an attribute."""
    xml = (
        "<dtcs>" + "".join(f'<dtc code="{n:06X}" status="active"/>' for n in range(40)) + "</dtcs>"
    )
    assert len(xml) > 255
    await sim.set_telematics(VIN_BEV, {FAULT_MEMORY: {"value": xml, "unit": "-"}})
    await async_reading(hass, entry, VIN_BEV, FAULT_MEMORY, xml)
    sensor = await _enable(hass, entry, generic_key(FAULT_MEMORY))
    await async_wait_for(hass, lambda: hass.states.get(sensor) is not None, "the sensor")

    state = hass.states.get(sensor)
    assert state is not None
    assert state.state.startswith("<dtcs><dtc")
    assert len(state.state) == 255
    assert "unit_of_measurement" not in state.attributes
    assert state.attributes[ATTR_FULL_TEXT] == xml


async def test_numeric_generic_sensors_keep_statistics(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """A lifetime counter is total_increasing, another number a measurement."""
    await sim.set_telematics(
        VIN_BEV,
        {
            GRID_ENERGY: {"value": "1234.5", "unit": "kWh"},
            AVG_SPEED: {"value": "42", "unit": "km/h"},
        },
    )
    await async_reading(hass, entry, VIN_BEV, AVG_SPEED, 42)
    registry = er.async_get(hass)
    for key in (generic_key(GRID_ENERGY), generic_key(AVG_SPEED)):
        registry.async_update_entity(entity_id(hass, "sensor", VIN_BEV, key), disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    energy = hass.states.get(entity_id(hass, "sensor", VIN_BEV, generic_key(GRID_ENERGY)))
    speed = hass.states.get(entity_id(hass, "sensor", VIN_BEV, generic_key(AVG_SPEED)))
    assert energy is not None
    assert speed is not None
    assert (energy.state, energy.attributes["state_class"]) == ("1234.5", "total_increasing")
    assert (speed.state, speed.attributes["state_class"]) == ("42", "measurement")
