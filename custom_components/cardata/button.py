"""The "Refresh image" button: fetch the vehicle's picture again, on the user's request.

A press spends one REST request of the user's share of BMW's daily budget (through the
entry's action client, like the actions); when none is left the press fails with a
translated message that says when the next request is possible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant

from .entity import CarDataEntity
from .image import async_get_image_keeper

# The actions' request path: budget, token renewal and translated errors in one place.
from .services import async_user_request

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .api.client import CarDataClient
    from .api.models import VehicleImage
    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry

# One press at a time: each costs a request of the daily budget.
PARALLEL_UPDATES = 1

REFRESH_IMAGE: Final = ButtonEntityDescription(
    key="refresh_image",
    translation_key="refresh_image",
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each vehicle's refresh button."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(RefreshImageButton(coordinator, vin, entry) for vin in coordinator.vehicles)


class RefreshImageButton(CarDataEntity, ButtonEntity):
    """Fetch the vehicle's picture from BMW again."""

    def __init__(
        self, coordinator: CarDataCoordinator, vin: str, entry: CarDataConfigEntry
    ) -> None:
        """Refresh the picture of vehicle `vin` of this entry."""
        super().__init__(coordinator, vin, REFRESH_IMAGE)
        self._entry = entry

    async def async_press(self) -> None:
        """Fetch the picture; raises a translated HomeAssistantError when BMW cannot."""
        keeper = await async_get_image_keeper(self.hass, self.vin)
        vin = self.vin

        async def fetch() -> VehicleImage:
            async def request(client: CarDataClient) -> VehicleImage:
                return await client.get_image(vin)

            return await async_user_request(self._entry, request, vin)

        await keeper.async_refresh(fetch)
