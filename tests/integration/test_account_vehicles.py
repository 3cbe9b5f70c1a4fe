"""An account's set-up and its cars coming and going, with the real entry against the simulator.

- Set-up requests that BMW refuses for good ask the user to log in again; a car BMW does not
  serve is left out; a car without basic data still gets its device.
- When the account's cars change at BMW (found by the weekly mappings refresh), the entry
  reloads: a new car gets its device and entities, a car that is gone loses its device.

The simulator cannot change which cars an account has, so a changed mappings answer is an
injected fault with status 200 and the new list as its body.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata.api.models import VehicleMapping
from custom_components.cardata.cache import AccountCache
from custom_components.cardata.const import DOMAIN
from custom_components.cardata.quota import async_get_budget
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_authorize, async_wait_for

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
# A car of another BMW account: BMW refuses its data to this one (CU-104).
VIN_NOT_SERVED = fleet.VIN_OTHER
# Longer than the week after which the coordinator asks BMW for the mappings again.
OLD_MAPPINGS_AGE = timedelta(days=8)


def mapping_json(vin: str) -> dict[str, str]:
    """One mapping as BMW sends it: this account is the car's primary user."""
    return {"vin": vin, "mappedSince": "2024-03-01T08:00:00Z", "mappingType": "PRIMARY"}


def vins_of_devices(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    """The VINs of the devices the user sees under the entry."""
    registry = dr.async_get(hass)
    return {
        identifier
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        for domain, identifier in device.identifiers
        if domain == DOMAIN
    }


def entity_vins(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    """The VINs whose entities the entity registry holds for the entry."""
    registry = er.async_get(hass)
    return {
        unique_id.split("_", 1)[0]
        for unique_id in (
            entity.unique_id
            for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
        )
    }


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"].get("source") == SOURCE_REAUTH
        and flow["context"].get("entry_id") == entry.entry_id
    ]


async def async_seed_old_mappings(hass: HomeAssistant, gcid: str, vins: list[str]) -> None:
    """Store mappings fetched more than a week ago, as a long-running installation has."""
    cache = AccountCache(hass, gcid)
    await cache.async_load()
    cache.set_mappings(
        [
            mapping
            for vin in vins
            if (mapping := VehicleMapping.from_json(mapping_json(vin))) is not None
        ],
        fetched_at=dt_util.utcnow() - OLD_MAPPINGS_AGE,
    )
    await cache.async_save()


async def async_travel_until(
    hass: HomeAssistant, travel: TimeTravel, done: Callable[[], bool], what: str
) -> None:
    """Let poll ticks run, half an hour of clock time at a time, until `done()` holds."""
    for _ in range(24):
        if done():
            return
        await travel.async_advance(timedelta(minutes=30))
        await hass.async_block_till_done(wait_background_tasks=True)
    await async_wait_for(hass, done, what)


# --- set-up errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error_id",
    [
        # The token stays invalid after the forced refresh.
        "CU-102",
        # The client id lost its CarData API subscription.
        "CU-103",
    ],
)
async def test_a_refused_set_up_request_asks_the_user_to_log_in_again(
    hass: HomeAssistant, sim: SimulatorHandle, error_id: str
) -> None:
    """BMW refusing the account's first request for good starts a reauthentication."""
    body = {"exveErrorId": error_id, "exveErrorMsg": "refused"}
    # Twice: the coordinator retries an invalid token once after a forced refresh.
    await sim.fault("vehicle_mappings", count=2, status=401, body=body)

    entry = await async_add_entry(hass, sim)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass, entry)) == 1
    assert vins_of_devices(hass, entry) == set()


async def test_a_car_bmw_does_not_serve_is_left_out_with_one_warning(
    hass: HomeAssistant, sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapped car whose data BMW refuses gets no device; the others set up as usual."""
    caplog.set_level(logging.WARNING, logger="custom_components.cardata")
    await sim.fault(
        "vehicle_mappings",
        status=200,
        body=[mapping_json(VIN_BEV), mapping_json(VIN_NOT_SERVED)],
    )

    entry = await async_add_entry(hass, sim)

    assert entry.state is ConfigEntryState.LOADED
    assert vins_of_devices(hass, entry) == {VIN_BEV}
    warnings = [record.getMessage() for record in caplog.records if "refuses" in record.message]
    assert len(warnings) == 1
    # The log names the car by the end of its VIN only.
    assert "…0004" in warnings[0]
    assert all(VIN_NOT_SERVED not in record.getMessage() for record in caplog.records)


async def test_a_car_without_basic_data_still_gets_its_device(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """BMW answering "not found" for a car's basic data does not keep the car out."""
    # The first basic data request is the BEV's (the mappings list it first).
    await sim.fault("basic_data", status=404, body={"exveErrorId": "CU-126"})

    entry = await async_add_entry(hass, sim)

    assert entry.state is ConfigEntryState.LOADED
    assert vins_of_devices(hass, entry) == {VIN_BEV, VIN_PHEV}
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    bev = next(device for device in devices if (DOMAIN, VIN_BEV) in device.identifiers)
    assert bev.manufacturer == "BMW"
    # Its telematics arrive all the same.
    assert VIN_BEV in entity_vins(hass, entry)


# --- cars coming and going ------------------------------------------------------------


async def test_a_car_added_to_the_account_appears_without_a_restart(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The weekly mappings refresh finds a new car: the entry reloads and shows it."""
    caplog.set_level(logging.INFO, logger="custom_components.cardata")
    tokens = await async_authorize(hass, sim)
    # Last week the account had the BEV only.
    await async_seed_old_mappings(hass, tokens.gcid, [VIN_BEV])
    entry = await async_add_entry(hass, sim, tokens=tokens)
    assert vins_of_devices(hass, entry) == {VIN_BEV}
    assert VIN_PHEV not in entity_vins(hass, entry)

    travel = TimeTravel(hass, sim, freezer)
    await async_travel_until(
        hass,
        travel,
        lambda: VIN_PHEV in vins_of_devices(hass, entry) and entry.state is ConfigEntryState.LOADED,
        "the new car's device",
    )

    assert vins_of_devices(hass, entry) == {VIN_BEV, VIN_PHEV}
    assert VIN_PHEV in entity_vins(hass, entry)
    assert any("changed; reloading" in record.getMessage() for record in caplog.records)


async def test_a_car_gone_from_the_account_loses_its_device(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """The weekly mappings refresh no longer lists a car: its device and entities go."""
    tokens = await async_authorize(hass, sim)
    await async_seed_old_mappings(hass, tokens.gcid, [VIN_BEV, VIN_PHEV])
    entry = await async_add_entry(hass, sim, tokens=tokens)
    assert vins_of_devices(hass, entry) == {VIN_BEV, VIN_PHEV}
    assert VIN_PHEV in entity_vins(hass, entry)

    # The PHEV was sold: BMW's next mappings answer lists the BEV alone.
    await sim.fault("vehicle_mappings", status=200, body=[mapping_json(VIN_BEV)])
    travel = TimeTravel(hass, sim, freezer)
    await async_travel_until(
        hass,
        travel,
        lambda: VIN_PHEV not in vins_of_devices(hass, entry)
        and entry.state is ConfigEntryState.LOADED,
        "the sold car's device to go",
    )

    assert vins_of_devices(hass, entry) == {VIN_BEV}
    assert entity_vins(hass, entry) == {VIN_BEV}


async def test_a_failed_mappings_refresh_keeps_the_cars_and_is_tried_again(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """BMW failing the weekly mappings refresh: one warning, no reload, the cars stay."""
    tokens = await async_authorize(hass, sim)
    await async_seed_old_mappings(hass, tokens.gcid, [VIN_BEV, VIN_PHEV])
    entry = await async_add_entry(hass, sim, tokens=tokens)
    await sim.fault("vehicle_mappings", count=1, status=500)
    travel = TimeTravel(hass, sim, freezer)

    async def mappings_calls() -> int:
        return int((await sim.calls())[fleet.GCID_MAIN]["by_endpoint"].get("vehicle_mappings", 0))

    for _ in range(24):
        if await mappings_calls():
            break
        await travel.async_advance(timedelta(minutes=30))
    assert await mappings_calls() == 1

    assert entry.state is ConfigEntryState.LOADED
    assert vins_of_devices(hass, entry) == {VIN_BEV, VIN_PHEV}
    warnings = [r.getMessage() for r in caplog.records if "values kept" in r.getMessage()]
    assert len(warnings) == 1
    assert not any("changed; reloading" in record.getMessage() for record in caplog.records)


async def test_a_spent_budget_at_set_up_retries_later_without_a_request(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """The day's 50 requests spent (by actions): set-up waits instead of asking BMW."""
    tokens = await async_authorize(hass, sim)
    budget = await async_get_budget(hass, tokens.gcid)
    for _ in range(50):
        budget.acquire("vehicle_mappings", automatic=False)

    entry = await async_add_entry(hass, sim, tokens=tokens)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "budget" in (entry.reason or "").lower()
    calls = (await sim.calls())[fleet.GCID_MAIN]["by_endpoint"]
    assert calls.get("vehicle_mappings", 0) == 0


async def test_bmw_rate_limit_at_set_up_retries_and_blocks_the_budget(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """BMW answering the first request with its rate limit: set-up retries, nothing is sent
    until BMW's window ends."""
    tokens = await async_authorize(hass, sim)
    # BMW's answer to a spent daily budget, as observed: 403 with CU-429.
    await sim.fault("vehicle_mappings", status=403, body={"exveErrorId": "CU-429"})

    entry = await async_add_entry(hass, sim, tokens=tokens)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    budget = await async_get_budget(hass, tokens.gcid)
    assert budget.blocked_until is not None
    assert budget.blocked_until > dt_util.utcnow()
