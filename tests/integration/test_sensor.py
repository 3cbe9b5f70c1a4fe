"""Sensors against the simulator: what a user sees, generic sensors, diagnostics, a live charge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
import json
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.cardata.api.models import TelematicValue
from custom_components.cardata.const import DOMAIN
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_wait_for
from .entities import (
    ALL_PLATFORMS,
    async_enable_all,
    async_platforms_set_up,
    async_reading,
    async_snapshot_platform,
    entity_id,
    record_states,
    state_of,
)

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
SOC = "vehicle.drivetrain.batteryManagement.header"
VOLTAGE_12V = "vehicle.electricalSystem.battery.voltage"
FUEL_LEVEL = "vehicle.drivetrain.fuelSystem.level"
REMAINING_FUEL = "vehicle.drivetrain.fuelSystem.remainingFuel"
FINISH_REASON = "vehicle.drivetrain.electricEngine.charging.hvpmFinishReason"
INTEGRATION = Path(__file__).parents[2] / "custom_components" / "cardata"


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its sensors, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.SENSOR]) as entry:
        yield entry


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
    """The sensor appears with the first news; news within the minute shows at its end."""
    registry = er.async_get(hass)
    # No "Unknown" beside a connected stream before the car said anything.
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{VIN_BEV}_last_stream_message") is None

    # Timestamp sensors show whole seconds.
    first = dt_util.utcnow().replace(microsecond=0)
    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.5, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.5)
    await hass.async_block_till_done()
    last_message = entity_id(hass, "sensor", VIN_BEV, "last_stream_message")
    assert hass.states.get(last_message).state == first.isoformat()  # type: ignore[union-attr]
    seen = record_states(hass, [last_message])

    freezer.tick(timedelta(seconds=20))
    second = dt_util.utcnow().replace(microsecond=0)
    await sim.set_telematics(VIN_BEV, {VOLTAGE_12V: {"value": 12.4, "unit": "V"}})
    await async_reading(hass, entry, VIN_BEV, VOLTAGE_12V, 12.4)
    assert seen[last_message] == []

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
    assert seen[last_message] == [second.isoformat()]
    # The other car heard nothing: it has no such sensor yet.
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{VIN_PHEV}_last_stream_message") is None


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
    # The time remaining counts down; once the charge has ended BMW reports 0 min, which
    # shows as unknown (no charge, no time remaining) rather than "0 min".
    remaining = seen[watched["charging_time_remaining"]]
    assert remaining[-1] == "unknown"
    minutes = [float(state) for state in remaining if state != "unknown"]
    assert minutes == sorted(minutes, reverse=True)
    assert len(minutes) > 3
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
