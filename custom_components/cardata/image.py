"""The vehicle's picture from BMW's image endpoint, fetched once and kept.

Each request costs one of the account's 50 daily REST requests, so the picture is fetched
automatically only once per vehicle and install, then kept in Home Assistant's storage:
a restart costs nothing. The "Refresh image" button (button.py) fetches it again on the
user's request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .api.errors import CarDataError, NotFoundError, RequestRefusedError
from .const import DOMAIN, LOGGER
from .entity import CarDataEntity
from .listeners import Listeners
from .vehicle import redact_vin

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .api.client import CarDataClient
    from .api.models import VehicleImage
    from .coordinator import CarDataCoordinator
    from .runtime import CarDataConfigEntry

# The picture is served from storage; nothing here waits for BMW.
PARALLEL_UPDATES = 0

STORAGE_VERSION: Final = 1
IMAGE_KEEPERS: HassKey[dict[str, VehicleImageKeeper]] = HassKey(f"{DOMAIN}_images")

VEHICLE_IMAGE: Final = ImageEntityDescription(key="image", translation_key="image")


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A picture as BMW sent it and when it was fetched."""

    content: bytes
    content_type: str
    fetched_at: datetime


class VehicleImageKeeper:
    """One vehicle's picture: in storage once fetched, so BMW is asked once per install."""

    def __init__(self, hass: HomeAssistant, vin: str) -> None:
        """Prepare; `async_load` reads what is stored."""
        self.vin = vin
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.image.{vin}")
        self.image: StoredImage | None = None
        # When BMW was last asked automatically, whatever it answered.
        self.attempted_at: datetime | None = None
        self._loaded = False
        self._lock = asyncio.Lock()
        self._listeners: Listeners[()] = Listeners()

    async def async_load(self) -> None:
        """Read the stored picture (once)."""
        async with self._lock:
            if self._loaded:
                return
            self._loaded = True
            stored = await self._store.async_load() or {}
            self.attempted_at = _moment(stored.get("attempted_at"))
            fetched_at = _moment(stored.get("fetched_at"))
            content_type = stored.get("content_type")
            try:
                content = base64.b64decode(stored.get("content") or "", validate=True)
            except binascii.Error:
                content = b""
            if content and fetched_at is not None and isinstance(content_type, str):
                self.image = StoredImage(content, content_type, fetched_at)

    @property
    def needs_first_fetch(self) -> bool:
        """Return True while BMW was never asked for this vehicle's picture."""
        return self.attempted_at is None and self.image is None

    async def async_fetch_once(self, client: CarDataClient) -> None:
        """Ask BMW for the picture unless it was asked before (an automatic request).

        Whatever BMW answers, it is not asked again automatically: a failed request is
        paid for too. A request the budget refused was not sent and is tried at the next
        start.
        """
        async with self._lock:
            if not self.needs_first_fetch:
                return
            try:
                image = await client.get_image(self.vin)
            except RequestRefusedError as err:
                LOGGER.debug("Picture of %s not fetched yet: %s", redact_vin(self.vin), err)
                return
            except NotFoundError:
                LOGGER.info("BMW has no picture of vehicle %s", redact_vin(self.vin))
                await self._async_save(None)
                return
            except CarDataError as err:
                LOGGER.warning(
                    "The picture of vehicle %s could not be fetched (%s); press its "
                    '"Refresh image" button to try again',
                    redact_vin(self.vin),
                    err,
                )
                await self._async_save(None)
                return
            await self._async_save(image)

    async def async_refresh(self, fetch: Callable[[], Awaitable[VehicleImage]]) -> None:
        """Fetch the picture again on the user's request; `fetch`'s errors propagate."""
        async with self._lock:
            await self._async_save(await fetch())

    async def _async_save(self, image: VehicleImage | None) -> None:
        """Keep a new picture (or note an attempt without one) and tell the listeners."""
        now = dt_util.utcnow()
        self.attempted_at = now
        if image is not None:
            self.image = StoredImage(image.content, image.content_type, now)
        stored = self.image
        await self._store.async_save(
            {
                "attempted_at": now.isoformat(),
                "fetched_at": stored.fetched_at.isoformat() if stored else None,
                "content_type": stored.content_type if stored else None,
                "content": base64.b64encode(stored.content).decode() if stored else None,
            }
        )
        self._listeners.notify()

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener()` after each fetch; returns the remover."""
        return self._listeners.add(listener)


def _moment(raw: Any) -> datetime | None:
    return dt_util.parse_datetime(raw) if isinstance(raw, str) else None


async def async_remove_stored_image(hass: HomeAssistant, vin: str) -> None:
    """Delete a vehicle's stored picture (its account was removed)."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, f"{DOMAIN}.image.{vin}").async_remove()


async def async_get_image_keeper(hass: HomeAssistant, vin: str) -> VehicleImageKeeper:
    """Return the vehicle's one picture keeper, with its stored picture loaded."""
    keepers = hass.data.setdefault(IMAGE_KEEPERS, {})
    if (keeper := keepers.get(vin)) is None:
        keeper = keepers[vin] = VehicleImageKeeper(hass, vin)
    await keeper.async_load()
    return keeper


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarDataConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each vehicle's picture; fetch the pictures never fetched before."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    entities: list[CarDataImage] = []
    for vin in coordinator.vehicles:
        keeper = await async_get_image_keeper(hass, vin)
        entities.append(CarDataImage(coordinator, vin, keeper))
        if keeper.needs_first_fetch:
            # Tracked, so unloading waits for a request in flight instead of cutting it off.
            entry.async_create_task(
                hass, keeper.async_fetch_once(runtime.client), f"{DOMAIN} vehicle picture"
            )
    async_add_entities(entities)

    @callback
    def forget_keepers() -> None:
        keepers = hass.data.get(IMAGE_KEEPERS, {})
        for vin in coordinator.vehicles:
            keepers.pop(vin, None)

    entry.async_on_unload(forget_keepers)


class CarDataImage(CarDataEntity, ImageEntity):
    """The vehicle's picture; unavailable until one was fetched."""

    def __init__(
        self, coordinator: CarDataCoordinator, vin: str, keeper: VehicleImageKeeper
    ) -> None:
        """Show the keeper's picture."""
        super().__init__(coordinator, vin, VEHICLE_IMAGE)
        ImageEntity.__init__(self, coordinator.hass)
        self._keeper = keeper
        self._show(keeper.image)

    async def async_added_to_hass(self) -> None:
        """Follow new pictures."""
        await super().async_added_to_hass()
        self.async_on_remove(self._keeper.async_add_listener(self._handle_new_image))

    @callback
    def _show(self, image: StoredImage | None) -> None:
        self._attr_available = image is not None
        if image is not None:
            self._attr_content_type = image.content_type
            self._attr_image_last_updated = image.fetched_at

    @callback
    def _handle_new_image(self) -> None:
        image = self._keeper.image
        if image is None or image.fetched_at == self._attr_image_last_updated:
            return
        self._show(image)
        self.async_write_ha_state()

    async def async_image(self) -> bytes | None:
        """Return the stored picture."""
        image = self._keeper.image
        return image.content if image else None
