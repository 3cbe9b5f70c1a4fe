"""What a set-up BMW CarData entry holds while it runs: `entry.runtime_data`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import callback

from .const import CONF_AUTOMATIC_BUDGET, DEFAULT_AUTOMATIC_BUDGET

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


def automatic_limit(options: Mapping[str, Any]) -> int:
    """Return how many of the daily requests the integration may spend by itself."""
    return int(options.get(CONF_AUTOMATIC_BUDGET, DEFAULT_AUTOMATIC_BUDGET))


@callback
def async_apply_options(entry: CarDataConfigEntry, options: Mapping[str, Any]) -> None:
    """Give a running account its new options at once, without a reload.

    A reload would reconnect the stream and re-read the account for a number that only
    changes the polling plan. An entry that is not running reads its options at set-up.
    """
    if entry.state is not ConfigEntryState.LOADED:
        return
    runtime = entry.runtime_data
    limit = automatic_limit(options)
    if runtime.budget.automatic_limit != limit:
        runtime.budget.automatic_limit = limit
        runtime.coordinator.async_reschedule()
