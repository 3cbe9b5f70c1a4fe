"""Setting up, unloading and removing a BMW CarData entry, and BMW's CU-429 budget block."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import json
import logging
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    get_scheduled_timer_handles,
)

import custom_components.cardata
from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import (
    CONF_AUTOMATIC_BUDGET,
    CONF_TOKENS,
    DOMAIN,
    SIMULATOR_ENV,
)
from custom_components.cardata.issues import BUDGET_EXHAUSTED, issue_id
from custom_components.cardata.tokens import token_store_key
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_authorize, async_wait_for, make_entry

INTEGRATION_DIR = str(Path(custom_components.cardata.__file__).parent)


def cardata_tasks() -> list[asyncio.Task[Any]]:
    """Return the running tasks whose code is the integration's."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done()
        and (code := getattr(task.get_coro(), "cr_code", None)) is not None
        and INTEGRATION_DIR in code.co_filename
    ]


def cardata_timers(hass: HomeAssistant) -> list[asyncio.TimerHandle]:
    """Return the pending timers that would call into the integration."""
    return [
        handle
        for handle in get_scheduled_timer_handles(hass.loop)
        if not handle.cancelled() and "cardata" in repr(handle)
    ]


async def test_set_up_wires_the_account_and_unload_leaves_nothing_behind(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """Set-up connects REST and stream; unloading stops the stream, timers and tasks."""
    entry = await async_add_entry(hass, sim)
    assert entry.state is ConfigEntryState.LOADED
    runtime = entry.runtime_data
    assert set(runtime.coordinator.vehicles) == {fleet.VIN_BEV, fleet.VIN_PHEV}
    assert runtime.budget.automatic_limit == 40
    await async_wait_for(hass, lambda: runtime.stream.connected, "the stream to connect")
    assert len(await sim.stream_sessions()) == 1
    assert cardata_timers(hass)  # token renewal and polling are planned
    assert cardata_tasks()  # the stream's supervisor

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not runtime.stream.connected
    assert not cardata_tasks()
    assert not cardata_timers(hass)

    async def no_session() -> bool:
        return not await sim.stream_sessions()

    await async_wait_for(hass, no_session, "the broker to see the stream close")


async def test_home_assistant_stopping_closes_the_stream(
    hass: HomeAssistant, sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """At shutdown (entries stay loaded) the stream says goodbye; renewals and polls stop."""
    entry = await async_add_entry(hass, sim)
    runtime = entry.runtime_data
    await async_wait_for(hass, lambda: runtime.stream.connected, "the stream to connect")

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()

    assert runtime.stream.status.state is StreamState.STOPPED
    assert not cardata_tasks()
    assert not cardata_timers(hass)

    async def no_session() -> bool:
        return not await sim.stream_sessions()

    await async_wait_for(hass, no_session, "the broker to see the stream close")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert "Unable to remove" not in caplog.text


async def test_options_apply_without_a_reload(hass: HomeAssistant, sim: SimulatorHandle) -> None:
    """A new automatic budget from the options form takes effect at once, stream untouched.

    There is no update listener (Home Assistant 2026.12 reserves it for reloads), so token
    rotations and other entry updates do nothing either.
    """
    entry = await async_add_entry(hass, sim)
    runtime = entry.runtime_data
    await async_wait_for(hass, lambda: runtime.stream.connected, "the stream to connect")
    assert entry.update_listeners == []

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_AUTOMATIC_BUDGET: 12}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_AUTOMATIC_BUDGET: 12}
    assert entry.runtime_data is runtime
    assert runtime.stream.connected
    assert runtime.budget.automatic_limit == 12
    assert runtime.budget.as_diagnostics()["automatic_limit"] == 12


async def test_options_of_an_account_not_running_apply_at_set_up(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """Options changed while the account is unloaded are read when it is set up again."""
    entry = await async_add_entry(hass, sim)
    assert await hass.config_entries.async_unload(entry.entry_id)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(result["flow_id"], {CONF_AUTOMATIC_BUDGET: 7})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.runtime_data.budget.automatic_limit == 7


async def test_title_with_a_full_vin_is_shortened_at_set_up(
    hass: HomeAssistant, sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries named by older versions after a car's full VIN lose it at the next start."""
    tokens = await async_authorize(hass, sim)
    entry = make_entry(tokens, client_id=sim.client_id)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, title=f"{fleet.VIN_BEV}, BMW X5 xDrive50e")

    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert entry.title == f"VIN …{fleet.VIN_BEV[-4:]}, BMW X5 xDrive50e"


@pytest.mark.parametrize(
    ("ready_text", "reason"),
    [
        (None, "simulator_unreadable"),
        ("not json", "simulator_unreadable"),
        ('{"api_url": "http://127.0.0.1:1"}', "simulator_unreadable"),
        ("REMOTE", "simulator_not_loopback"),
    ],
)
async def test_unusable_simulator_switch_stops_set_up_before_any_request(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    point_integration_at_simulator: Path,
    caplog: pytest.LogCaptureFixture,
    ready_text: str | None,
    reason: str,
) -> None:
    """A missing, broken or non-loopback switch file: a translated set-up error, no retry.

    Nothing is sent anywhere, so the stored login cannot leak to another machine.
    """
    tokens = await async_authorize(hass, sim)
    ready = json.loads(point_integration_at_simulator.read_text())
    if ready_text is None:
        point_integration_at_simulator.unlink()
    elif ready_text == "REMOTE":
        ready["api_url"] = "http://cardata.example.net:8080"
        point_integration_at_simulator.write_text(json.dumps(ready))
    else:
        point_integration_at_simulator.write_text(ready_text)
    entry = make_entry(tokens, client_id=sim.client_id)
    entry.add_to_hass(hass)
    calls_before = await sim.calls()

    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None
    assert SIMULATOR_ENV in entry.reason
    assert entry.reason != reason  # the translated text, not the key
    assert await sim.calls() == calls_before
    # One error line of ours saying why (Home Assistant adds its own with the set-up error).
    ours = [
        record.getMessage()
        for record in caplog.records
        if record.name == "custom_components.cardata" and record.levelno >= logging.ERROR
    ]
    assert len(ours) == 1
    assert SIMULATOR_ENV in ours[0]
    assert tokens.refresh_token not in caplog.text


async def test_damaged_stored_login_asks_for_reauthentication(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """No usable tokens in the entry nor in the store: the user signs in again."""
    tokens = await async_authorize(hass, sim)
    entry = make_entry(tokens, client_id=sim.client_id)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_TOKENS: {"x": 1}})

    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None
    assert "missing or damaged" in entry.reason
    assert len(list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))) == 1


async def test_removing_the_entry_forgets_the_account_but_not_its_budget(
    hass: HomeAssistant, sim: SimulatorHandle, hass_storage: dict[str, Any]
) -> None:
    """The budget is BMW's, per account: it survives removing and re-adding the account."""
    entry = await async_add_entry(hass, sim)
    # Let the budget's delayed write happen.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=5))
    await hass.async_block_till_done()
    tokens_key = token_store_key(entry.entry_id)
    cache_key = f"{DOMAIN}.account.{fleet.GCID_MAIN}"
    budget_key = f"{DOMAIN}.budget.{fleet.GCID_MAIN}"
    state_key = f"{DOMAIN}.state.{fleet.GCID_MAIN}"
    image_keys = {f"{DOMAIN}.image.{vin}" for vin in (fleet.VIN_BEV, fleet.VIN_PHEV)}
    assert await hass.config_entries.async_unload(entry.entry_id)  # writes the state
    assert {tokens_key, cache_key, budget_key, state_key, *image_keys} <= hass_storage.keys()

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()

    assert tokens_key not in hass_storage
    assert cache_key not in hass_storage
    assert state_key not in hass_storage
    assert not image_keys & hass_storage.keys()
    assert hass_storage[budget_key]["data"]["spent"]


async def test_bmw_rate_limit_pauses_rest_with_one_warning_and_a_repair_issue(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CU-429: REST pauses until BMW's reset, one warning, a repair issue; no reauthentication."""
    # Both clocks to the next 09:00 UTC, far from BMW's reset at midnight.
    sim_now = await sim.now()
    start = max(sim_now, dt_util.utcnow())
    morning = start.replace(hour=9, minute=0, second=0, microsecond=0)
    if morning <= start:
        morning += timedelta(days=1)
    await sim.advance((morning - sim_now).total_seconds())
    freezer.move_to(morning)
    entry = await async_add_entry(hass, sim)
    runtime = entry.runtime_data
    travel = TimeTravel(hass, sim, freezer, settled=lambda: runtime.stream.connected)
    await async_wait_for(hass, lambda: runtime.stream.connected, "the stream to connect")
    # Another app of the account spent the rest of BMW's budget.
    used = (await sim.calls())[fleet.GCID_MAIN]["used"]
    await sim.set_config(budget_limit=used)
    caplog.clear()

    # 50-minute steps: each passes one token renewal, so no step jumps over an expiry.
    # With the stream up each car is polled every six hours: the next poll is within eight.
    step = timedelta(minutes=50)
    for _ in range(8):
        await travel.async_advance(step)
        if runtime.budget.blocked_until is not None:
            break

    midnight = (dt_util.utcnow() + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert runtime.budget.blocked_until == midnight
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(BUDGET_EXHAUSTED, entry))
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["until"] == dt_util.as_local(midnight).strftime(
        "%Y-%m-%d %H:%M"
    )
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert entry.state is ConfigEntryState.LOADED

    # Until BMW's reset nothing is tried again, and nothing more is said.
    while dt_util.utcnow() + step < midnight:
        await travel.async_advance(step)
    assert (await sim.calls())[fleet.GCID_MAIN]["refused"] == 1
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("custom_components.cardata") and record.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1
    assert "budget as spent" in warnings[0]
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id(BUDGET_EXHAUSTED, entry))

    # BMW's reset: the issue goes away by itself and polling resumes.
    await travel.async_advance(step)
    assert runtime.budget.blocked_until is None
    assert not ir.async_get(hass).async_get_issue(DOMAIN, issue_id(BUDGET_EXHAUSTED, entry))
    assert (await sim.calls())[fleet.GCID_MAIN]["by_endpoint"] == {"telematic_data": 1}
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_clients_use_home_assistants_session(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """The REST clients and the login use Home Assistant's shared aiohttp session."""
    entry = await async_add_entry(hass, sim)
    assert entry.state is ConfigEntryState.LOADED
    runtime = entry.runtime_data
    shared = async_get_clientsession(hass)
    # The clients do not expose their session; the test reaches in.
    assert runtime.client._session is shared
    assert runtime.action_client._session is shared
    assert runtime.tokens._auth._session is shared
