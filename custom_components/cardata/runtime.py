"""What a set-up BMW CarData entry holds while it runs: `entry.runtime_data`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .api.client import CarDataClient
    from .cache import AccountCache
    from .coordinator import CarDataCoordinator
    from .endpoints import Endpoints
    from .quota import Budget
    from .stream_manager import StreamManager
    from .tokens import TokenManager


@dataclass(slots=True)
class CarDataRuntimeData:
    """The live objects of one BMW account, built by `async_setup_entry`.

    `client` spends the automatic share of the daily budget (set-up, polling);
    `action_client` is for requests the user asked for (actions) and may use the rest.
    """

    endpoints: Endpoints
    tokens: TokenManager
    budget: Budget
    cache: AccountCache
    client: CarDataClient
    action_client: CarDataClient
    coordinator: CarDataCoordinator
    stream: StreamManager


type CarDataConfigEntry = ConfigEntry[CarDataRuntimeData]
