"""Events a driver automates on: charging started/finished, cable plugged/unplugged, trip ended.

Each event comes from the stream once; a restart or a REST poll that repeats old values
never fires it again. After an event the car's REST-only values are fetched within two
minutes (an event poll from the automatic budget).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata.const import DOMAIN
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel
from .entities import async_platforms_set_up, async_reading, entity_id

VIN_BEV = fleet.VIN_BEV
SOC_DISPLAYED = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
MAX_ENERGY = "vehicle.drivetrain.batteryManagement.maxEnergy"
POWER = "vehicle.powertrain.electric.battery.charging.power"
STATUS = "vehicle.drivetrain.electricEngine.charging.status"
HV_STATUS = "vehicle.drivetrain.electricEngine.charging.hvStatus"
PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
MOVING = "vehicle.isMoving"
ODOMETER = "vehicle.vehicle.travelledDistance"


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its event entities, the stream connected."""
    async with async_platforms_set_up(hass, sim, [Platform.EVENT]) as entry:
        yield entry


@pytest.fixture
def travel(hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory) -> TimeTravel:
    """Moves Home Assistant's and the simulator's clocks together."""
    return TimeTravel(hass, sim, freezer)


def reading(value: Any, unit: str | None = None) -> dict[str, Any]:
    point: dict[str, Any] = {"value": value, "timestamp": dt_util.utcnow().isoformat()}
    if unit is not None:
        point["unit"] = unit
    return point


@callback
def fired(hass: HomeAssistant, key: str) -> list[dict[str, Any]]:
    """Record every event the car's `key` event entity fires from now on."""
    events: list[dict[str, Any]] = []

    fired_at: set[str] = set()

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        # An event entity's state is the time of its last event; a restart restores it.
        new = event.data["new_state"]
        if new is None or new.state in ("unknown", "unavailable") or new.state in fired_at:
            return
        fired_at.add(new.state)
        events.append(dict(new.attributes))

    async_track_state_change_event(hass, entity_id(hass, "event", VIN_BEV, key), record)
    return events


async def async_rest_calls(sim: SimulatorHandle, endpoint: str) -> int:
    return int((await sim.calls())[fleet.GCID_MAIN]["by_endpoint"].get(endpoint, 0))


async def test_plugging_in_fires_once_and_fetches_rest_only_values(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, travel: TimeTravel
) -> None:
    """Plugged in: one event; within two minutes one REST poll brings hvStatus."""
    await sim.set_telematics(VIN_BEV, {PLUGGED: reading(False)})
    await async_reading(hass, entry, VIN_BEV, PLUGGED, False)
    await travel.async_advance(timedelta(minutes=1))
    cable = fired(hass, "charging_cable")
    polls = await async_rest_calls(sim, "telematic_data")

    await sim.set_telematics(
        VIN_BEV, {PLUGGED: reading(True), HV_STATUS: reading("WAITING_FOR_CHARGING")}
    )
    await async_reading(hass, entry, VIN_BEV, PLUGGED, True)
    assert [event["event_type"] for event in cable] == ["plugged"]

    await travel.async_advance_in_steps(timedelta(minutes=2), timedelta(seconds=30))
    await hass.async_block_till_done()
    assert await async_rest_calls(sim, "telematic_data") == polls + 1
    coordinator = entry.runtime_data.coordinator
    assert coordinator.state(VIN_BEV)[HV_STATUS].value == "WAITING_FOR_CHARGING"
    # The REST poll repeated the plugged state: no second event.
    assert len(cable) == 1

    # A restart restores the state and fires nothing.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert len(cable) == 1

    await travel.async_advance(timedelta(minutes=1))
    await sim.set_telematics(VIN_BEV, {PLUGGED: reading(False)})
    await async_reading(hass, entry, VIN_BEV, PLUGGED, False)
    assert [event["event_type"] for event in cable] == ["plugged", "unplugged"]


async def test_a_charging_session_fires_started_and_finished_with_its_summary(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, travel: TimeTravel
) -> None:
    """Started when charging begins; finished with energy, SoC from and to, type, reason."""
    charging = fired(hass, "charging")
    await sim.set_telematics(
        VIN_BEV,
        {
            MAX_ENERGY: reading(80.0, "kWh"),
            SOC_DISPLAYED: reading(40, "percent"),
            STATUS: reading("CHARGINGACTIVE"),
            POWER: reading(11000, "W"),
        },
    )
    await async_reading(hass, entry, VIN_BEV, POWER, 11000)
    assert [event["event_type"] for event in charging] == ["started"]

    # 40 minutes: the stream's id token is renewed after about 50.
    await travel.async_advance_in_steps(timedelta(minutes=40), timedelta(minutes=5))
    await sim.set_telematics(VIN_BEV, {STATUS: reading("CHARGINGENDED"), POWER: reading(0, "W")})
    await async_reading(hass, entry, VIN_BEV, STATUS, "CHARGINGENDED")
    await travel.async_advance(timedelta(minutes=1))
    await sim.set_telematics(VIN_BEV, {SOC_DISPLAYED: reading(52, "percent")})
    await async_reading(hass, entry, VIN_BEV, SOC_DISPLAYED, 52)
    await travel.async_advance_in_steps(timedelta(minutes=5), timedelta(minutes=1))
    await hass.async_block_till_done()

    assert [event["event_type"] for event in charging] == ["started", "finished"]
    finished = charging[-1]
    assert finished["charging_type"] == "AC"
    assert finished["state_of_charge_from"] == 40
    assert finished["state_of_charge_to"] == 52
    assert 40 <= finished["duration_minutes"] <= 50
    # 40 minutes at 11 kW, as the car reported it.
    assert 6.5 <= finished["energy_added_kwh"] <= 8


async def test_a_trip_end_carries_distance_duration_and_consumption(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle, travel: TimeTravel
) -> None:
    """Driving 30 km in 40 minutes on 6 % of an 80 kWh battery: 16 kWh/100 km."""
    trips = fired(hass, "trip")
    await sim.set_telematics(
        VIN_BEV,
        {
            MAX_ENERGY: reading(80.0, "kWh"),
            SOC_DISPLAYED: reading(70, "percent"),
            ODOMETER: reading(12000, "km"),
            MOVING: reading("ASN_isFalse"),
        },
    )
    await async_reading(hass, entry, VIN_BEV, MOVING, False)
    await travel.async_advance(timedelta(minutes=1))
    await sim.set_telematics(VIN_BEV, {MOVING: reading("ASN_isTrue")})
    await async_reading(hass, entry, VIN_BEV, MOVING, True)
    await travel.async_advance(timedelta(minutes=40))
    await sim.set_telematics(
        VIN_BEV, {ODOMETER: reading(12030, "km"), SOC_DISPLAYED: reading(64, "percent")}
    )
    await async_reading(hass, entry, VIN_BEV, ODOMETER, 12030)
    await sim.set_telematics(VIN_BEV, {MOVING: reading("ASN_isFalse")})
    await async_reading(hass, entry, VIN_BEV, MOVING, False)

    assert len(trips) == 1
    trip = trips[0]
    assert trip["event_type"] == "ended"
    assert trip["distance_km"] == 30
    assert trip["duration_minutes"] == 40
    assert trip["state_of_charge_used"] == 6
    assert trip["consumption_kwh_per_100km"] == 16.0


async def test_event_types_are_translated_for_the_automation_editor(hass: HomeAssistant) -> None:
    """The editor offers the event types by name, in English and German."""
    for language, plugged in (("en", "Plugged in"), ("de", "Eingesteckt")):
        texts = await async_get_translations(hass, language, "entity", {DOMAIN})
        key = f"component.{DOMAIN}.entity.event.charging_cable.state_attributes.event_type.state.plugged"
        assert texts[key] == plugged
