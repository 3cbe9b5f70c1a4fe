"""One stream message writes the states of the entities that read it, and no others."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import async_wait_for
from .entities import ALL_PLATFORMS, async_platforms_set_up, async_reading, entity_id

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
VOLTAGE_12V = "vehicle.electricalSystem.battery.voltage"
CHARGING_STATUS = "vehicle.drivetrain.electricEngine.charging.status"
LOCK = "vehicle.cabin.door.lock.status"


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with every platform, the stream connected."""
    async with async_platforms_set_up(hass, sim, ALL_PLATFORMS) as entry:
        yield entry


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every state write per entity from now on."""
    counted: Counter[str] = Counter()
    write: Callable[[Entity], None] = Entity.async_write_ha_state

    def counting_write(self: Entity) -> None:
        counted[self.entity_id] += 1
        write(self)

    monkeypatch.setattr(Entity, "async_write_ha_state", counting_write)
    return counted


def messages_received(entry: MockConfigEntry) -> int:
    """How many messages the entry's stream received so far."""
    return int(entry.runtime_data.stream.as_diagnostics()["messages_received"])


async def async_messages(hass: HomeAssistant, entry: MockConfigEntry, target: int) -> None:
    """Wait until the stream received `target` messages in all and they were handled."""
    await async_wait_for(
        hass, lambda: messages_received(entry) >= target, f"{target} stream messages"
    )
    await hass.async_block_till_done()


async def test_one_message_writes_only_its_entities(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, writes: Counter[str]
) -> None:
    """Of the two cars' ~100 entities, a message writes those that read its descriptor."""

    def ids(domain: str, vin: str, *keys: str) -> set[str]:
        return {entity_id(hass, domain, vin, key) for key in keys}

    voltage = ids("sensor", VIN_BEV, "battery_12v_voltage")

    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.5, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.5)
    await hass.async_block_till_done()
    # The first news of the car brings its last-message sensor, written once as it appears.
    last_message = ids("sensor", VIN_BEV, "last_stream_message")
    assert writes == Counter(voltage | last_message)

    # Within the minute the last-message sensor waits; only the voltage is written.
    writes.clear()
    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.4, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.4)
    assert writes == Counter(voltage)

    # One descriptor read by a sensor and a binary sensor writes both, once each; charging
    # that starts also fires the car's charging event, once.
    writes.clear()
    await sim.set_telematics(VIN_BEV, {CHARGING_STATUS: "CHARGINGACTIVE"})
    await async_reading(hass, entry, VIN_BEV, CHARGING_STATUS, "CHARGINGACTIVE")
    started = ids("event", VIN_BEV, "charging")
    await async_wait_for(hass, lambda: writes.keys() >= started, "the charging event")
    # The estimated state of charge may say that it now estimates (its attributes).
    writes.pop(entity_id(hass, "sensor", VIN_BEV, "estimated_state_of_charge"), None)
    assert writes == Counter(
        ids("sensor", VIN_BEV, "charging_status")
        | ids("binary_sensor", VIN_BEV, "charging")
        | started
    )

    # The lock state sensor is disabled by default: only the lock binary sensor is written.
    writes.clear()
    await sim.set_telematics(VIN_BEV, {LOCK: "UNLOCKED"})
    await async_reading(hass, entry, VIN_BEV, LOCK, "UNLOCKED")
    assert writes == Counter(ids("binary_sensor", VIN_BEV, "door_lock"))


async def test_repeated_messages_write_nothing_new_measurements_write_once(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, writes: Counter[str]
) -> None:
    """A duplicate changes nothing; the same value measured later updates `measured_at`."""
    voltage = entity_id(hass, "sensor", VIN_BEV, "battery_12v_voltage")
    # BMW's measurement times have whole seconds.
    now = (await sim.now()).replace(microsecond=0)
    await sim.set_quirks(duplicates=True)

    received = messages_received(entry)
    await sim.set_telematics(
        VIN_BEV, {VOLTAGE_12V: {"value": 12.5, "unit": "V", "timestamp": now.isoformat()}}
    )
    await async_messages(hass, entry, received + 2)
    assert writes[voltage] == 1

    writes.clear()
    later = now + timedelta(minutes=1)
    await sim.set_telematics(
        VIN_BEV, {VOLTAGE_12V: {"value": 12.5, "unit": "V", "timestamp": later.isoformat()}}
    )
    await async_messages(hass, entry, received + 4)
    assert writes == Counter({voltage: 1})
    state = hass.states.get(voltage)
    assert state is not None
    assert (state.state, state.attributes["measured_at"]) == ("12.5", later.isoformat())
