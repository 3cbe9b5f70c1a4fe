"""The vehicle picture and its refresh button against the simulator: BMW is asked once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from http import HTTPStatus
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.cardata.api.errors import RequestRefusedError, ServerError
from custom_components.cardata.api.models import VehicleImage
from custom_components.cardata.image import VehicleImageKeeper
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle
from tests.simulator.images import vehicle_png

from .entities import async_platforms_set_up, async_snapshot_platform, entity_id

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
PLATFORMS = [Platform.BUTTON, Platform.IMAGE]


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with its pictures and buttons."""
    async with async_platforms_set_up(hass, sim, PLATFORMS) as entry:
        yield entry


async def image_requests(sim: SimulatorHandle) -> int:
    """How many image requests BMW counted for account main."""
    return int((await sim.calls())[sim.gcid]["by_endpoint"].get("image", 0))


async def press(hass: HomeAssistant, vin: str) -> None:
    """Press a vehicle's "Refresh image" button."""
    await hass.services.async_call(
        "button",
        "press",
        {ATTR_ENTITY_ID: entity_id(hass, "button", vin, "refresh_image")},
        blocking=True,
    )


async def served_picture(
    hass: HomeAssistant, client: ClientSessionGenerator, vin: str
) -> tuple[int, bytes, str]:
    """What the image proxy serves for the vehicle's picture: status, body, content type."""
    http = await client()
    response = await http.get(f"/api/image_proxy/{entity_id(hass, 'image', vin, 'image')}")
    return response.status, await response.read(), response.content_type


async def test_pictures_and_buttons_of_the_bev_and_the_phev(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Both cars get a picture and a diagnostic refresh button."""
    await async_snapshot_platform(hass, entry, snapshot)


async def test_picture_is_fetched_once_and_kept_over_restarts(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    sim: SimulatorHandle,
    hass_client: ClientSessionGenerator,
) -> None:
    """The first set-up asks BMW once per car; reloads serve the stored picture for free."""
    assert await image_requests(sim) == 2
    assert await served_picture(hass, hass_client, VIN_BEV) == (
        HTTPStatus.OK,
        vehicle_png(VIN_BEV),
        "image/png",
    )

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    assert await image_requests(sim) == 2
    assert await served_picture(hass, hass_client, VIN_PHEV) == (
        HTTPStatus.OK,
        vehicle_png(VIN_PHEV),
        "image/png",
    )


async def test_refresh_button_spends_one_action_request(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A press asks BMW once, from the user's share, and shows the new picture's time."""
    picture = entity_id(hass, "image", VIN_BEV, "image")
    before = hass.states.get(picture)
    assert before is not None
    budget = entry.runtime_data.budget
    automatic_before = budget.remaining_automatic()

    freezer.tick(timedelta(minutes=5))
    await press(hass, VIN_BEV)
    await hass.async_block_till_done()

    assert await image_requests(sim) == 3
    assert budget.spent()[-1].endpoint == "image"
    assert budget.spent()[-1].automatic is False
    assert budget.remaining_automatic() == automatic_before
    after = hass.states.get(picture)
    assert after is not None
    assert after.state != before.state
    # The other car's picture is untouched.
    assert await image_requests(sim) == 3


async def test_refresh_refused_by_the_budget_says_when(
    hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatorHandle
) -> None:
    """With no request left, a press fails with a translated message and sends nothing."""
    budget = entry.runtime_data.budget
    while budget.remaining() > 0:
        budget.acquire("elsewhere", automatic=False)

    with pytest.raises(HomeAssistantError) as caught:
        await press(hass, VIN_BEV)

    assert caught.value.translation_key == "action_budget_spent"
    assert await image_requests(sim) == 2


async def test_no_picture_at_bmw_is_not_asked_again(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """BMW's 404 leaves the picture unavailable, without asking again on reload."""
    await sim.fault("image", count=2, status=404, body={"exveErrorId": "CU-126"})
    caplog.set_level(logging.INFO, "custom_components.cardata")
    async with async_platforms_set_up(hass, sim, PLATFORMS) as entry:
        picture = entity_id(hass, "image", VIN_BEV, "image")
        assert hass.states.get(picture).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
        assert "BMW has no picture of vehicle …0001" in caplog.text
        assert await image_requests(sim) == 2

        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert await image_requests(sim) == 2
        assert hass.states.get(picture).state == STATE_UNAVAILABLE  # type: ignore[union-attr]

        # The user asks again, and now BMW has one.
        await press(hass, VIN_BEV)
        await hass.async_block_till_done()
        assert hass.states.get(picture).state != STATE_UNAVAILABLE  # type: ignore[union-attr]
        status, body, _ = await served_picture(hass, hass_client, VIN_BEV)
        assert (status, body) == (HTTPStatus.OK, vehicle_png(VIN_BEV))


async def test_failed_first_fetch_tells_the_user_and_is_not_repeated(
    hass: HomeAssistant, sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """A server error costs the request too: one warning, no automatic retry."""
    await sim.fault("image", count=2, status=500, body={"exveErrorId": "CU-500"})
    async with async_platforms_set_up(hass, sim, PLATFORMS) as entry:
        warnings = [
            record.getMessage()
            for record in caplog.records
            if record.levelno == logging.WARNING and "picture" in record.getMessage()
        ]
        assert len(warnings) == 2
        assert '"Refresh image"' in warnings[0]
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert await image_requests(sim) == 2


async def test_refused_first_fetch_is_tried_at_the_next_start(hass: HomeAssistant) -> None:
    """A request the budget refused was never sent, so it does not count as the one try."""
    keeper = VehicleImageKeeper(hass, VIN_BEV)
    await keeper.async_load()
    client = _Client(RequestRefusedError("spent", retry_at=None))

    await keeper.async_fetch_once(client)  # type: ignore[arg-type]
    assert keeper.needs_first_fetch

    client.answer = VehicleImage(b"picture", "image/jpeg")
    await keeper.async_fetch_once(client)  # type: ignore[arg-type]
    assert not keeper.needs_first_fetch
    assert keeper.image is not None
    assert (keeper.image.content, keeper.image.content_type) == (b"picture", "image/jpeg")

    # Stored: a new keeper (a restart) has it without asking.
    restarted = VehicleImageKeeper(hass, VIN_BEV)
    await restarted.async_load()
    await restarted.async_fetch_once(_Client(ServerError("image", 500)))  # type: ignore[arg-type]
    assert restarted.image == keeper.image


async def test_damaged_stored_picture_is_no_picture(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """Undecodable stored content shows no picture; the attempt still counts."""
    hass_storage[f"cardata.image.{VIN_BEV}"] = {
        "version": 1,
        "key": f"cardata.image.{VIN_BEV}",
        "data": {
            "attempted_at": "2026-01-01T00:00:00+00:00",
            "fetched_at": "2026-01-01T00:00:00+00:00",
            "content_type": "image/png",
            "content": "not base64!",
        },
    }
    keeper = VehicleImageKeeper(hass, VIN_BEV)
    await keeper.async_load()
    assert keeper.image is None
    assert not keeper.needs_first_fetch


class _Client:
    """Stands in for the REST client where the simulator cannot refuse from the budget."""

    def __init__(self, answer: VehicleImage | Exception) -> None:
        self.answer = answer

    async def get_image(self, vin: str) -> VehicleImage:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer
