"""Housekeeping of an account: what rarely changes, refreshed one poll tick at a time.

The vehicle list (mappings) is refreshed weekly, each car's basic data monthly, and a car's
charging history after a finished charging session and weekly; each is one request of the
automatic share, sent by the poller (polling.py) when no telematics poll is more urgent.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from .api.errors import NotFoundError
from .api.models import BasicData
from .const import LOGGER

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

    from .api.client import CarDataClient
    from .cache import AccountCache
    from .charging_history import ChargingHistoryImporter
    from .coordinator import CarDataCoordinator

MAPPINGS_MAX_AGE: Final = timedelta(days=7)
BASIC_DATA_MAX_AGE: Final = timedelta(days=30)


class Housekeeping:
    """Which refresh of rarely changing data is due, and doing it."""

    def __init__(
        self,
        coordinator: CarDataCoordinator,
        entry: ConfigEntry,
        *,
        client: CarDataClient,
        cache: AccountCache,
        history: ChargingHistoryImporter,
    ) -> None:
        """Keep house for the coordinator's vehicles."""
        self._coordinator = coordinator
        self._entry = entry
        self._client = client
        self._cache = cache
        self._history = history

    def due_at(self, now: datetime) -> datetime | None:
        """Return when the mappings, basic data or a charging history are next due."""
        moments = [
            (fetched_at or now) + BASIC_DATA_MAX_AGE
            for fetched_at in map(
                self._cache.basic_data_fetched_at, self._coordinator.readable_vins()
            )
        ]
        moments.extend(self._history.due_at(vin, now) for vin in self._history_vins())
        mappings_at = self._cache.mappings_fetched_at
        moments.append((mappings_at or now) + MAPPINGS_MAX_AGE)
        return min(moments)

    def urgent_at(self, now: datetime) -> datetime | None:
        """Return when a charging history that follows a finished session is due."""
        return self._history.after_session_due_at(self._history_vins())

    def work(self, now: datetime) -> Awaitable[None] | None:
        """Return the most urgent housekeeping request that is due, if any."""
        mappings_at = self._cache.mappings_fetched_at
        if mappings_at is None or now >= mappings_at + MAPPINGS_MAX_AGE:
            return self._async_refresh_mappings()
        if (vin := self._stale_basic_data(now)) is not None:
            return self._async_refresh_basic_data(vin)
        if (vin := self._history.due_vehicle(self._history_vins(), now)) is not None:
            return self._history.async_import(self._coordinator.vehicles[vin])
        return None

    def _history_vins(self) -> list[str]:
        """Return the cars whose charging history is imported (electrified, readable)."""
        coordinator = self._coordinator
        return [vin for vin in coordinator.readable_vins() if coordinator.is_electrified(vin)]

    def _stale_basic_data(self, now: datetime) -> str | None:
        """Return a vehicle whose basic data is due for a refresh, if any."""
        for vin in self._coordinator.readable_vins():
            fetched_at = self._cache.basic_data_fetched_at(vin)
            if fetched_at is None or now >= fetched_at + BASIC_DATA_MAX_AGE:
                return vin
        return None

    async def _async_refresh_mappings(self) -> None:
        """Refresh the stored mappings; reload the entry when the vehicles changed."""
        coordinator = self._coordinator
        mappings = await self._client.get_vehicle_mappings()
        self._cache.set_mappings(mappings)
        await self._cache.async_save()
        primary = {mapping.vin for mapping in mappings if mapping.is_primary}
        if primary != coordinator.known_vins():
            LOGGER.info("The vehicles mapped to %s changed; reloading", self._entry.title)
            coordinator.hass.config_entries.async_schedule_reload(self._entry.entry_id)

    async def _async_refresh_basic_data(self, vin: str) -> None:
        """Refresh a vehicle's stored basic data and its device."""
        vehicle = self._coordinator.vehicles[vin]
        try:
            basic_data = await self._client.get_basic_data(vin)
        except NotFoundError:
            # Keep what is known (possibly nothing) and look again after the usual age.
            basic_data = vehicle.basic_data or BasicData.from_json({}, vin=vin)
        self._cache.set_basic_data(vin, basic_data)
        await self._cache.async_save()
        vehicle.basic_data = basic_data
        self._coordinator.register_devices()
