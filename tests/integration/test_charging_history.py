"""BMW's charging history in Home Assistant's long-term statistics (the Energy dashboard).

A real recorder (pytest-homeassistant-custom-component's `recorder_mock`, an in-memory
database) takes the statistics; the sessions come from the simulator's REST history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder, get_instance
from homeassistant.components.recorder.statistics import (
    get_last_statistics,
    list_statistic_ids,
)
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.cardata.charging_history import LOOK_BACK, statistic_id
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_authorize


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder first: its database must exist before Home Assistant starts."""


@pytest.fixture(autouse=True)
def _enable_custom_integrations(auto_enable_custom_integrations: None) -> None:
    """Replaced: the fixture above enables the integration after the recorder."""


async def _last_sum(hass: HomeAssistant, vin: str) -> float | None:
    await async_wait_recording_done(hass)
    rows: dict[str, list[Any]] = await get_instance(hass).async_add_executor_job(
        get_last_statistics, hass, 1, statistic_id(vin), True, {"sum"}
    )
    found = rows.get(statistic_id(vin))
    return float(found[0]["sum"]) if found else None


def _history_requests(entry: MockConfigEntry) -> int:
    """Charging-history requests sent in the last 24 hours (BMW's own count resets at midnight)."""
    return sum(1 for r in entry.runtime_data.budget.spent() if r.endpoint == "charging_history")


async def test_a_finished_session_brings_the_history_into_statistics_once(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
) -> None:
    """After a session ends the history is imported; importing again counts nothing twice."""
    entry = await async_add_entry(hass, sim)
    travel = TimeTravel(hass, sim, freezer)
    coordinator = entry.runtime_data.coordinator
    now = dt_util.utcnow()
    history = await entry.runtime_data.action_client.get_charging_history(
        fleet.VIN_BEV, now - LOOK_BACK, now
    )
    expected = sum(s.energy_kwh or 0 for s in history.sessions if s.start_time is not None)
    assert expected > 0
    before = _history_requests(entry)

    coordinator.note_charging_session_ended(fleet.VIN_BEV, now)
    await travel.async_advance_in_steps(timedelta(minutes=15), timedelta(minutes=1))
    await hass.async_block_till_done()

    assert _history_requests(entry) == before + 1
    assert abs((await _last_sum(hass, fleet.VIN_BEV) or 0) - expected) < 0.01
    ids = await get_instance(hass).async_add_executor_job(list_statistic_ids, hass)
    listed = {item["statistic_id"]: item for item in ids}
    assert listed[statistic_id(fleet.VIN_BEV)]["statistics_unit_of_measurement"] == "kWh"
    assert listed[statistic_id(fleet.VIN_BEV)]["has_sum"] is True

    # Another session ends two hours later: within a day of the import it costs no request;
    # the import after a day brings the same sessions again and counts none of them twice.
    budget = entry.runtime_data.budget
    since = dt_util.utcnow()
    coordinator.note_charging_session_ended(fleet.VIN_BEV, since)
    await travel.async_advance_in_steps(timedelta(hours=2), timedelta(minutes=10))
    assert not [r for r in budget.spent() if r.endpoint == "charging_history" and r.at > since]
    await travel.async_advance_in_steps(timedelta(hours=23), timedelta(minutes=30))
    await hass.async_block_till_done()
    imports = [r for r in budget.spent() if r.endpoint == "charging_history" and r.at > since]
    assert len(imports) == 1
    assert abs((await _last_sum(hass, fleet.VIN_BEV) or 0) - expected) < 0.01

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_a_damaged_import_record_starts_the_history_afresh(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """What was stored about earlier imports is unreadable: the import counts everything once."""
    tokens = await async_authorize(hass, sim)
    hass_storage[f"cardata.charging_history.{tokens.gcid}"] = {
        "version": 1,
        "key": f"cardata.charging_history.{tokens.gcid}",
        "data": {
            fleet.VIN_PHEV: "not a record",
            fleet.VIN_BEV: {"fetched_at": 17, "sessions": ["no session", {"start": "yesterday"}]},
        },
    }
    entry = await async_add_entry(hass, sim, tokens=tokens)
    travel = TimeTravel(hass, sim, freezer)
    now = dt_util.utcnow()
    history = await entry.runtime_data.action_client.get_charging_history(
        fleet.VIN_BEV, now - LOOK_BACK, now
    )
    expected = sum(s.energy_kwh or 0 for s in history.sessions if s.start_time is not None)

    entry.runtime_data.coordinator.note_charging_session_ended(fleet.VIN_BEV, now)
    await travel.async_advance_in_steps(timedelta(minutes=15), timedelta(minutes=1))
    await hass.async_block_till_done()

    assert abs((await _last_sum(hass, fleet.VIN_BEV) or 0) - expected) < 0.01

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
