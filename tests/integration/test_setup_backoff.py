"""A set-up that cannot reach BMW backs off instead of spending the day's budget (issue 10.4).

Home Assistant retries a failed set-up within seconds at first, then about every 80 seconds;
each try used to cost a REST request. These tests run a fresh install against a simulator
whose REST API is down, with Home Assistant's own retry timers.
"""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry


async def _async_mapping_calls(sim: SimulatorHandle) -> int:
    calls = await sim.calls()
    return int(calls.get(fleet.GCID_MAIN, {}).get("by_endpoint", {}).get("vehicle_mappings", 0))


async def test_rest_outage_at_set_up_costs_a_few_requests_an_hour(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """An hour of BMW answering 503: at most five requests, then set-up succeeds by itself."""
    # Down for the first seven requests: more than two hours if set-up backs off as it should.
    await sim.fault("vehicle_mappings", count=7, status=503)
    entry = await async_add_entry(hass, sim)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert await _async_mapping_calls(sim) == 1

    travel = TimeTravel(hass, sim, freezer)
    await travel.async_advance_in_steps(timedelta(hours=1), timedelta(seconds=20))
    await hass.async_block_till_done()
    spent_in_first_hour = await _async_mapping_calls(sim)
    # Tries at 0, 2, 6, 14 and 30 minutes (the wait doubles up to half an hour).
    assert spent_in_first_hour <= 5
    assert entry.state is ConfigEntryState.SETUP_RETRY

    # Another hour costs at most two more.
    await travel.async_advance_in_steps(timedelta(hours=1), timedelta(seconds=30))
    await hass.async_block_till_done()
    assert await _async_mapping_calls(sim) <= spent_in_first_hour + 2

    # BMW is back: the next allowed try sets the entry up, no user action needed.
    await travel.async_advance_in_steps(timedelta(minutes=31), timedelta(seconds=30))
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
