"""What rarely changes, kept across restarts: vehicle mappings, basic data, the container.

Each of these costs a REST request from BMW's daily budget of 50, so they are fetched once,
stored with the moment they were fetched, and refreshed only when old. The config flow
fills the cache with what it fetched, so the first set-up does not fetch it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .api.models import BasicData, VehicleMapping
from .const import DOMAIN

STORAGE_VERSION = 1


def _moment(raw: Any) -> datetime | None:
    return dt_util.parse_datetime(raw) if isinstance(raw, str) else None


class AccountCache:
    """The stored, rarely changing facts about one BMW account (GCID)."""

    def __init__(self, hass: HomeAssistant, gcid: str) -> None:
        """Create an empty cache; call `async_load` to read what was stored."""
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.account.{gcid}"
        )
        self._data: dict[str, Any] = {}

    async def async_load(self) -> None:
        """Read the stored state (empty on the first start)."""
        self._data = await self._store.async_load() or {}

    async def async_save(self) -> None:
        """Write the state now; what is cached saved budget and must survive a crash."""
        await self._store.async_save(self._data)

    async def async_remove(self) -> None:
        """Forget the account (the config entry was removed)."""
        self._data = {}
        await self._store.async_remove()

    # --- Vehicle mappings -----------------------------------------------------------

    @property
    def mappings(self) -> list[VehicleMapping] | None:
        """Return the stored vehicle mappings, or None when never fetched."""
        stored = self._data.get("mappings")
        if stored is None:
            return None
        return VehicleMapping.list_from_json(stored["raw"])

    @property
    def mappings_fetched_at(self) -> datetime | None:
        """Return when the mappings were fetched."""
        stored = self._data.get("mappings")
        return _moment(stored.get("fetched_at")) if stored else None

    def set_mappings(
        self, mappings: list[VehicleMapping], fetched_at: datetime | None = None
    ) -> None:
        """Remember the mappings as BMW sent them."""
        self._data["mappings"] = {
            "raw": [mapping.raw for mapping in mappings],
            "fetched_at": (fetched_at or dt_util.utcnow()).isoformat(),
        }

    # --- Basic data -------------------------------------------------------------------

    def basic_data(self, vin: str) -> BasicData | None:
        """Return the stored basic data of a vehicle, or None when never fetched."""
        stored = self._data.get("basic_data", {}).get(vin)
        return BasicData.from_json(stored["raw"], vin=vin) if stored else None

    def basic_data_fetched_at(self, vin: str) -> datetime | None:
        """Return when the vehicle's basic data was fetched."""
        stored = self._data.get("basic_data", {}).get(vin)
        return _moment(stored.get("fetched_at")) if stored else None

    def set_basic_data(self, vin: str, data: BasicData, fetched_at: datetime | None = None) -> None:
        """Remember a vehicle's basic data as BMW sent it."""
        self._data.setdefault("basic_data", {})[vin] = {
            "raw": data.raw,
            "fetched_at": (fetched_at or dt_util.utcnow()).isoformat(),
        }

    # --- The integration's container ---------------------------------------------------

    @property
    def container_id(self) -> str | None:
        """Return the id of the integration's telematics container, if known."""
        stored = self._data.get("container")
        return stored.get("id") if stored else None

    @property
    def container_signature(self) -> str | None:
        """Return the descriptor-set signature the container was created with."""
        stored = self._data.get("container")
        return stored.get("signature") if stored else None

    def set_container(self, container_id: str, signature: str) -> None:
        """Remember the integration's container."""
        self._data["container"] = {"id": container_id, "signature": signature}

    def clear_container(self) -> None:
        """Forget the container (BMW no longer knows it)."""
        self._data.pop("container", None)


def is_fresh(fetched_at: datetime | None, max_age: timedelta) -> bool:
    """Return True when something fetched at `fetched_at` is younger than `max_age`."""
    return fetched_at is not None and dt_util.utcnow() - fetched_at < max_age
