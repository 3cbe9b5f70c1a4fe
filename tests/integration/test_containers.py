"""The integration's telematics container: made once, reused, found again, replaced, limited."""

from __future__ import annotations

from collections.abc import AsyncIterator
import csv
from datetime import timedelta
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest

from custom_components.cardata import issues
from custom_components.cardata.api.models import Container
from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import DOMAIN
from custom_components.cardata.containers import (
    CONTAINER_NAME,
    CONTAINER_PURPOSE,
    REST_DESCRIPTORS,
    container_purpose,
    descriptor_signature,
    is_own_container,
)
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel
from .test_coordinator import (
    LEVEL,
    SOC,
    VIN_BEV,
    VIN_PHEV,
    Account,
    async_new_account,
    async_rest_calls,
    async_step,
    iso,
    stream_message,
)

CATALOGUE = Path("/work/shared/cardata/descriptors.tsv")


@pytest.fixture
async def account(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[Account]:
    """An account whose coordinator is stopped when the test ends."""
    new = await async_new_account(hass, sim)
    yield new
    await new.async_stop()


@pytest.fixture
def travel(hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory) -> TimeTravel:
    """Moves Home Assistant's and the simulator's clocks together."""
    return TimeTravel(hass, sim, freezer)


def _issue(hass: HomeAssistant, account: Account) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(
        DOMAIN, issues.issue_id(issues.CONTAINER_LIMIT, account.entry)
    )


async def _async_our_containers(account: Account) -> list[Container]:
    return [
        container
        for container in await account.action_client.list_containers()
        if container.name == CONTAINER_NAME and container.is_active
    ]


# --- the descriptor set --------------------------------------------------------------------


def test_descriptor_set_is_valid_for_a_container() -> None:
    """BMW (the simulator's catalogue) accepts every key; none is bound to another endpoint."""
    known = fleet.catalogue()
    assert len(set(REST_DESCRIPTORS)) == len(REST_DESCRIPTORS)
    assert 40 <= len(REST_DESCRIPTORS) <= 60
    for descriptor in REST_DESCRIPTORS:
        assert descriptor in known, descriptor
        assert descriptor not in fleet.DEDICATED_ENDPOINT_KEYS, descriptor
    # What the stream does not deliver is the reason to poll at all.
    for rest_only in (
        "vehicle.drivetrain.electricEngine.charging.level",
        "vehicle.drivetrain.electricEngine.charging.hvStatus",
        "vehicle.body.chargingPort.combinedStatus",
        "vehicle.cabin.door.lock.status",
    ):
        assert rest_only in REST_DESCRIPTORS


@pytest.mark.skipif(not CATALOGUE.exists(), reason="the shared descriptor catalogue is absent")
def test_descriptor_set_holds_no_basic_data() -> None:
    """Every key is in BMW's Telematics Data Catalogue and none is basic data."""
    with CATALOGUE.open(encoding="utf-8") as handle:
        catalogue = {row["descriptor"]: row for row in csv.DictReader(handle, delimiter="\t")}
    for descriptor in REST_DESCRIPTORS:
        assert descriptor in catalogue, descriptor
        assert catalogue[descriptor]["category"] != "BASIC_DATA", descriptor


def test_signature_names_the_set_not_its_order() -> None:
    """Reordering the descriptors keeps the container; changing the set does not."""
    assert descriptor_signature(reversed(REST_DESCRIPTORS)) == descriptor_signature(
        REST_DESCRIPTORS
    )
    assert descriptor_signature(REST_DESCRIPTORS[1:]) != descriptor_signature(REST_DESCRIPTORS)


# --- created once, reused ----------------------------------------------------------------


async def test_container_is_created_once_and_reused_across_restarts(
    sim: SimulatorHandle, account: Account
) -> None:
    """The first set-up creates the container; restarts use the cached id without a request."""
    await account.async_start()
    container_id = account.cache.container_id
    assert container_id is not None

    await account.async_restart()
    await account.async_restart()

    calls = await async_rest_calls(sim)
    assert (calls["containers"], calls["container_create"]) == (1, 1)
    assert account.cache.container_id == container_id
    assert [item.container_id for item in await _async_our_containers(account)] == [container_id]


async def test_container_is_found_again_when_the_cache_is_lost(
    sim: SimulatorHandle, account: Account
) -> None:
    """Without the cached id the container list finds ours: no second container."""
    await account.async_start()
    container_id = account.cache.container_id
    await account.async_stop()
    account.cache.clear_container()
    await account.cache.async_save()

    coordinator = await account.async_start()

    calls = await async_rest_calls(sim)
    assert (calls["containers"], calls["container_create"]) == (2, 1)
    assert account.cache.container_id == container_id
    assert coordinator.state(VIN_BEV)[SOC].value == 78


async def test_container_is_recreated_after_bmw_forgot_it(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """CU-105 on telematicData: the id is forgotten, a new container made, polling goes on."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    old_id = account.cache.container_id
    assert old_id is not None
    # Someone deletes it in BMW's portal (or another app): BMW answers CU-105 from now on.
    await account.action_client.delete_container(old_id)

    await async_step(hass, travel, timedelta(minutes=80))
    assert account.cache.container_id is None

    await async_step(hass, travel, timedelta(minutes=40))
    new_id = account.cache.container_id
    assert new_id not in (None, old_id)
    assert (await async_rest_calls(sim))["container_create"] == 2

    await sim.set_telematics(
        VIN_PHEV, {LEVEL: {"value": 52.0, "unit": "%", "timestamp": iso(dt_util.utcnow())}}
    )
    await async_step(hass, travel, timedelta(minutes=40))
    assert coordinator.state(VIN_PHEV)[LEVEL].value == 52
    assert [item.container_id for item in await _async_our_containers(account)] == [new_id]


# --- the limit of ten --------------------------------------------------------------------


async def test_container_limit_raises_issue_listing_containers_until_one_is_freed(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """CU-124: a repair issue lists the account's containers; the stream still feeds values."""
    foreign = await sim.add_foreign_containers(fleet.GCID_MAIN, 10)

    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)

    issue = _issue(hass, account)
    assert issue is not None
    assert issue.translation_placeholders is not None
    listing = issue.translation_placeholders["containers"]
    assert all(container_id in listing for container_id in foreign)
    assert "evcc.io 1" in listing
    calls = await async_rest_calls(sim)
    assert "telematic_data" not in calls
    assert account.cache.container_id is None
    # Values still arrive through the stream.
    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {SOC: {"timestamp": iso(dt_util.utcnow()), "value": 66}})
    )
    assert coordinator.state(VIN_BEV)[SOC].value == 66

    # Hours pass without a request: BMW's answer will not change by asking every tick.
    await async_step(hass, travel, timedelta(hours=3))
    assert await async_rest_calls(sim) == calls

    # The user frees a container; the next retry creates ours and clears the issue.
    await account.action_client.delete_container(foreign[0])
    await async_step(hass, travel, timedelta(hours=3))
    assert account.cache.container_id is not None
    assert _issue(hass, account) is None

    await async_step(hass, travel, timedelta(minutes=40))
    assert coordinator.state(VIN_BEV)[LEVEL].value == 78
    # The stream's newer SoC survives the older REST snapshot.
    assert coordinator.state(VIN_BEV)[SOC].value == 66


async def test_outdated_own_container_makes_room_at_the_limit(
    sim: SimulatorHandle, account: Account
) -> None:
    """At the limit, a container an earlier version of the integration made is replaced."""
    outdated = await account.action_client.create_container(
        CONTAINER_NAME, container_purpose("0123456789abcdef"), REST_DESCRIPTORS[:5]
    )
    await sim.add_foreign_containers(fleet.GCID_MAIN, 9)

    await account.async_start()

    ours = await _async_our_containers(account)
    assert [item.container_id for item in ours] == [account.cache.container_id]
    assert outdated.container_id != account.cache.container_id
    assert _issue(account.hass, account) is None
    assert (await async_rest_calls(sim))["container_delete"] == 1


def test_only_our_name_purpose_and_set_count_as_ours() -> None:
    """A container of another app, or ours for another set, is not reused."""
    signature = descriptor_signature(REST_DESCRIPTORS)

    def container(name: str, purpose: str, state: str = "ACTIVE") -> Container:
        return Container(
            container_id="ABCDEFGHIJKLM",
            name=name,
            purpose=purpose,
            state=state,
            created=None,
            technical_descriptors=(),
            raw={},
        )

    assert is_own_container(
        container(CONTAINER_NAME, container_purpose(signature)), REST_DESCRIPTORS
    )
    assert not is_own_container(
        container(CONTAINER_NAME, container_purpose(signature), "DELETED"), REST_DESCRIPTORS
    )
    assert not is_own_container(
        container("evcc.io", container_purpose(signature)), REST_DESCRIPTORS
    )
    assert not is_own_container(container(CONTAINER_NAME, CONTAINER_PURPOSE), REST_DESCRIPTORS)
