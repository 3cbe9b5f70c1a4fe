"""Sensors against the simulator: what a user sees, generic sensors, diagnostics, a live charge.

Also holds the helpers the other entity test modules share: setting up only some platforms
and a version-independent picture of a platform's entities for snapshots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from enum import Enum
import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE, Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.cardata.api.models import TelematicValue
from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import DOMAIN
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_wait_for

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
SOC = "vehicle.drivetrain.batteryManagement.header"
VOLTAGE_12V = "vehicle.electricalSystem.battery.voltage"
FUEL_LEVEL = "vehicle.drivetrain.fuelSystem.level"
REMAINING_FUEL = "vehicle.drivetrain.fuelSystem.remainingFuel"
FINISH_REASON = "vehicle.drivetrain.electricEngine.charging.hvpmFinishReason"
INTEGRATION = Path(__file__).parents[2] / "custom_components" / "cardata"

# Attributes and states that carry the moment of a test run, not behaviour.
_VOLATILE_ATTRIBUTES = {"measured_at", "access_token", "entity_picture"}
# What newer Home Assistant versions add to every tracker: left out, so one snapshot fits all.
_VERSION_DEPENDENT = {"in_zones", "tracking_type"}


# --- helpers shared by the entity tests --------------------------------------------------------


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in snapshots/, written by Home Assistant's extension."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


ALL_PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.DEVICE_TRACKER,
    Platform.IMAGE,
    Platform.SENSOR,
]


@asynccontextmanager
async def async_platforms_set_up(
    hass: HomeAssistant, sim: SimulatorHandle, platforms: list[Platform]
) -> AsyncIterator[MockConfigEntry]:
    """Set up account "main" with only `platforms`, wait for its stream, unload at the end."""
    with patch("custom_components.cardata.PLATFORMS", platforms):
        entry = await async_add_entry(hass, sim)
        await async_wait_for_stream(hass, entry)
        yield entry
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its sensors, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.SENSOR]) as entry:
        yield entry


async def async_wait_for_stream(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait until the entry's stream is connected."""
    await async_wait_for(
        hass,
        lambda: entry.runtime_data.stream.status.state is StreamState.CONNECTED,
        "the stream",
    )


def entity_id(hass: HomeAssistant, domain: str, vin: str, key: str) -> str:
    """Return the entity id of a vehicle's entity from its unique id."""
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{vin}_{key}")
    assert found is not None, f"no {domain} {key} for {vin}"
    return found


def state_of(hass: HomeAssistant, domain: str, vin: str, key: str) -> str:
    """Return the state of a vehicle's entity."""
    state = hass.states.get(entity_id(hass, domain, vin, key))
    assert state is not None
    return state.state


async def async_reading(
    hass: HomeAssistant, entry: MockConfigEntry, vin: str, descriptor: str, value: Any
) -> None:
    """Wait until the coordinator holds `value` for the descriptor (it came through the stream)."""
    coordinator = entry.runtime_data.coordinator

    def arrived() -> bool:
        reading = coordinator.state(vin).get(descriptor)
        return reading is not None and reading.value == value

    await async_wait_for(hass, arrived, f"{descriptor} = {value!r}")
    await hass.async_block_till_done()


def _plain(value: Any) -> Any:
    """Turn enums, tuples and nested containers into plain JSON-like values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(_plain(key)): _plain(item) for key, item in sorted(value.items(), key=str)}
    return value


def entities_picture(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Return the entry's entities, registry and state, without what changes from run to run.

    Registry fields are picked by hand: the registry entry's own fields differ between
    Home Assistant versions.
    """
    registry = er.async_get(hass)
    picture: dict[str, Any] = {}
    for entity in sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda e: e.entity_id
    ):
        state = hass.states.get(entity.entity_id)
        shown: dict[str, Any] | None = None
        if state is not None:
            volatile_state = entity.domain == "image" or entity.unique_id.endswith(
                "_last_stream_message"
            )
            shown = {
                "state": "<moment>" if volatile_state and state.state != "unknown" else state.state,
                "attributes": {
                    str(_plain(key)): "<volatile>" if key in _VOLATILE_ATTRIBUTES else _plain(value)
                    for key, value in state.attributes.items()
                    if key not in _VERSION_DEPENDENT
                },
            }
        picture[entity.entity_id] = {
            "unique_id": entity.unique_id,
            "translation_key": entity.translation_key,
            "original_name": entity.original_name,
            "has_entity_name": entity.has_entity_name,
            "device_class": _plain(entity.original_device_class),
            "entity_category": _plain(entity.entity_category),
            "disabled_by": _plain(entity.disabled_by),
            "unit_of_measurement": entity.unit_of_measurement,
            "capabilities": _plain(
                {
                    key: value
                    for key, value in (entity.capabilities or {}).items()
                    if key not in _VERSION_DEPENDENT
                }
            ),
            "device": _device_name(hass, entity.device_id),
            "shown": shown,
        }
    return picture


def _device_name(hass: HomeAssistant, device_id: str | None) -> str | None:
    from homeassistant.helpers import device_registry as dr

    device = dr.async_get(hass).async_get(device_id) if device_id else None
    return device.name if device else None


async def async_enable_all(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Enable the entities disabled by default and reload, as a user would."""
    registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.disabled_by is not None:
            registry.async_update_entity(entity.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await async_wait_for_stream(hass, entry)


async def async_snapshot_platform(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Compare the entities with the snapshot: as set up, then every one enabled."""
    as_set_up = entities_picture(hass, entry)
    await async_enable_all(hass, entry)
    enabled = entities_picture(hass, entry)
    for picture in enabled.values():
        assert picture["shown"] is not None
    assert {"as_set_up": as_set_up, "all_enabled": enabled} == snapshot


@callback
def record_states(hass: HomeAssistant, entity_ids: Iterable[str]) -> dict[str, list[str]]:
    """Record every state the entities take from now on."""
    seen: dict[str, list[str]] = {entity: [] for entity in entity_ids}

    @callback
    def on_change(event: Event[EventStateChangedData]) -> None:
        new_state = event.data["new_state"]
        if event.data["entity_id"] in seen and new_state is not None:
            seen[event.data["entity_id"]].append(new_state.state)

    hass.bus.async_listen("state_changed", on_change)
    return seen


# --- sensors -------------------------------------------------------------------------------


async def test_sensors_of_the_bev_and_the_phev(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Both cars' sensors: names, units, device and state classes, states, enabled or not."""
    await async_snapshot_platform(hass, entry, snapshot)


async def test_what_a_user_sees(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Sensible units and translated enum states; a BEV has no fuel sensors."""
    soc = hass.states.get(entity_id(hass, "sensor", VIN_BEV, "state_of_charge"))
    assert soc is not None
    assert (soc.state, soc.attributes["unit_of_measurement"]) == ("78", "%")
    assert soc.attributes["data_source"] == "rest"
    measured = entry.runtime_data.coordinator.state(VIN_BEV)[
        "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
    ].timestamp
    assert soc.attributes["measured_at"] == measured.isoformat()
    power = hass.states.get(entity_id(hass, "sensor", VIN_PHEV, "charging_power"))
    assert power is not None
    assert (power.state, power.attributes["unit_of_measurement"]) == ("3.68", "kW")
    assert state_of(hass, "sensor", VIN_PHEV, "charging_status") == "charging_active"
    assert state_of(hass, "sensor", VIN_BEV, "charging_status") == "not_charging"
    registry = er.async_get(hass)
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{VIN_BEV}_fuel_level") is None
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{VIN_PHEV}_fuel_level") is not None


async def test_entities_appear_when_the_car_first_reports_them(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """A curated sensor and a generic, disabled one are created by the first value."""
    registry = er.async_get(hass)
    await sim.set_telematics(
        VIN_BEV,
        {
            FUEL_LEVEL: {"value": 5, "unit": "%"},
            FINISH_REASON: "CHARGING_GOAL_REACHED",
        },
    )
    await async_reading(hass, entry, VIN_BEV, FINISH_REASON, "CHARGING_GOAL_REACHED")

    assert state_of(hass, "sensor", VIN_BEV, "fuel_level") == "5"
    generic = registry.async_get(
        entity_id(hass, "sensor", VIN_BEV, "drivetrain_electric_engine_charging_hvpm_finish_reason")
    )
    assert generic is not None
    assert generic.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert generic.original_name == fleet_name(FINISH_REASON)

    # BMW naming a descriptor without value (REST's placeholder) creates nothing.
    entry.runtime_data.coordinator.apply_rest_values(
        VIN_BEV, {REMAINING_FUEL: TelematicValue.from_json({"value": None, "unit": "l"})}
    )
    await hass.async_block_till_done()
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{VIN_BEV}_remaining_fuel") is None

    # A second value changes nothing in the registry (no second entity).
    count = len(er.async_entries_for_config_entry(registry, entry.entry_id))
    await sim.set_telematics(VIN_BEV, {FINISH_REASON: "CHARGING_ENDED_BY_USER"})
    await async_reading(hass, entry, VIN_BEV, FINISH_REASON, "CHARGING_ENDED_BY_USER")
    assert len(er.async_entries_for_config_entry(registry, entry.entry_id)) == count


def fleet_name(descriptor: str) -> str:
    """BMW's catalogue name of a descriptor."""
    from custom_components.cardata.descriptor_names import DESCRIPTOR_NAMES

    return DESCRIPTOR_NAMES[descriptor]


async def test_last_stream_message_is_written_at_most_once_a_minute(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The first news shows at once; news within the minute shows at its end."""
    last_message = entity_id(hass, "sensor", VIN_BEV, "last_stream_message")
    assert hass.states.get(last_message).state == "unknown"  # type: ignore[union-attr]
    seen = record_states(hass, [last_message])

    # Timestamp sensors show whole seconds.
    first = dt_util.utcnow().replace(microsecond=0)
    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.5, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.5)
    assert seen[last_message] == [first.isoformat()]

    freezer.tick(timedelta(seconds=20))
    second = dt_util.utcnow().replace(microsecond=0)
    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.4, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.4)
    assert seen[last_message] == [first.isoformat()]

    # News at the same instant, and news from REST, change nothing of it.
    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.3, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.3)
    entry.runtime_data.coordinator.apply_rest_values(
        VIN_BEV, {FUEL_LEVEL: TelematicValue.from_json({"value": 5, "unit": "%"})}
    )

    freezer.tick(timedelta(seconds=41))
    from pytest_homeassistant_custom_component.common import async_fire_time_changed

    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert seen[last_message] == [first.isoformat(), second.isoformat()]
    # The other car heard nothing.
    assert (
        hass.states.get(entity_id(hass, "sensor", VIN_PHEV, "last_stream_message")).state
        == "unknown"
    )  # type: ignore[union-attr]


async def test_rest_requests_left_follow_the_budget(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Spent requests count down at once; they count up again as they leave the 24 hours."""
    left = entity_id(hass, "sensor", VIN_BEV, "rest_requests_left")
    other_car = entity_id(hass, "sensor", VIN_PHEV, "rest_requests_left")
    used = (await sim.calls())[sim.gcid]["used"]
    assert hass.states.get(left).state == str(50 - used)  # type: ignore[union-attr]

    await hass.services.async_call(
        DOMAIN,
        "fetch_basic_data",
        {"config_entry_id": entry.entry_id, "vin": VIN_BEV},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done()
    assert hass.states.get(left).state == str(49 - used)  # type: ignore[union-attr]
    assert hass.states.get(other_car).state == str(49 - used)  # type: ignore[union-attr]

    # BMW says the budget is spent (another app of the account used it): nothing is left
    # until BMW's reset.
    budget = entry.runtime_data.budget
    budget.note_rate_limited()
    await hass.async_block_till_done()
    assert hass.states.get(left).state == "0"  # type: ignore[union-attr]
    # Saying it again changes nothing a user sees.
    seen = record_states(hass, [left])
    budget.note_rate_limited()
    await hass.async_block_till_done()
    assert seen[left] == []

    travel = TimeTravel(hass, sim, freezer)
    await travel.async_advance(timedelta(hours=24, minutes=1))
    assert budget.blocked_until is None
    assert hass.states.get(left).state == str(budget.remaining())  # type: ignore[union-attr]
    assert budget.remaining() > 49 - used


async def test_a_charge_drives_the_sensors_live(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """The simulator's charging scenario, through the real stream, as the user sees it."""
    watched = {
        key: entity_id(hass, "sensor", VIN_BEV, key)
        for key in (
            "charging_status",
            "charging_power",
            "state_of_charge",
            "charging_time_remaining",
        )
    }
    seen = record_states(hass, watched.values())

    await sim.start_scenario(VIN_BEV, "charging", step_seconds=0.02)
    # The last step says "ended" first, then the final state of charge.
    await async_wait_for(
        hass,
        lambda: "charging_ended" in seen[watched["charging_status"]]
        and [float(soc) for soc in seen[watched["state_of_charge"]][-1:]] == [100],
        "the end of the charge",
    )
    await hass.async_block_till_done()

    assert seen[watched["charging_status"]] == [
        "initialization",
        "charging_active",
        "charging_ended",
    ]
    power = [float(state) for state in seen[watched["charging_power"]]]
    assert max(power) == pytest.approx(11.0, abs=0.1)
    assert power[-1] == 0
    soc = [float(state) for state in seen[watched["state_of_charge"]]]
    assert soc == sorted(soc)
    assert len(soc) > 3
    assert soc[-1] == 100
    remaining = [float(state) for state in seen[watched["charging_time_remaining"]]]
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == 0
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert hass.states.get(watched["state_of_charge"]).state == STATE_UNAVAILABLE  # type: ignore[union-attr]


# --- translations -----------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "de"])
async def test_every_entity_and_state_is_translated(
    hass: HomeAssistant, sim: SimulatorHandle, language: str
) -> None:
    """Every entity the platforms create has a name, every enum option a text, in each language."""
    async with async_platforms_set_up(hass, sim, ALL_PLATFORMS) as entry:
        await async_enable_all(hass, entry)
        await _assert_translated(hass, entry, language)


async def _assert_translated(hass: HomeAssistant, entry: MockConfigEntry, language: str) -> None:
    translations = await async_get_translations(hass, language, "entity", [DOMAIN])
    registry = er.async_get(hass)
    entities = er.async_entries_for_config_entry(registry, entry.entry_id)
    translated = [entity for entity in entities if entity.translation_key]
    # The platforms' own entities are among them.
    keys = {(entity.domain, entity.translation_key) for entity in translated}
    assert {
        ("sensor", "rest_requests_left"),
        ("sensor", "last_stream_message"),
        ("binary_sensor", "stream_connected"),
        ("image", "image"),
        ("button", "refresh_image"),
    } <= keys
    for entity in translated:
        prefix = f"component.{DOMAIN}.entity.{entity.domain}.{entity.translation_key}"
        assert translations.get(f"{prefix}.name", "").strip(), f"{language}: {prefix}"
        for option in (entity.capabilities or {}).get("options", []):
            assert translations.get(f"{prefix}.state.{option}", "").strip(), (
                f"{language}: {prefix} option {option}"
            )
    # Entities without translation are the generic ones, named from BMW's catalogue.
    for entity in entities:
        if not entity.translation_key:
            assert entity.domain == "sensor"
            assert entity.original_name


def test_the_platforms_own_entities_have_icons() -> None:
    """Icons of the entities the catalogue does not describe, in icons.json."""
    icons = json.loads((INTEGRATION / "icons.json").read_text(encoding="utf-8"))["entity"]
    assert icons["sensor"]["rest_requests_left"]["default"].startswith("mdi:")
    assert icons["sensor"]["last_stream_message"]["default"].startswith("mdi:")
    assert icons["button"]["refresh_image"]["default"].startswith("mdi:")
    assert icons["binary_sensor"]["stream_connected"]["state"]["on"].startswith("mdi:")
