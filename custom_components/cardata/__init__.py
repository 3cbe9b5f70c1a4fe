"""BMW CarData: your BMW's telematics in Home Assistant, through BMW's official CarData service.

Setting up an entry wires one BMW account together: tokens -> REST clients (through the
account's daily budget) -> coordinator -> stream. Unloading takes it apart again, leaving
no connection, timer or task behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.typing import ConfigType

from . import issues
from .api.auth import GcdmAuth
from .api.client import CarDataClient
from .api.errors import CarDataConnectionError
from .cache import AccountCache
from .const import CONF_CLIENT_ID, CONF_GCID, DOMAIN, LOGGER, SIMULATOR_ENV
from .coordinator import STORAGE_VERSION as STATE_STORAGE_VERSION, CarDataCoordinator
from .endpoints import SimulatorSwitchError, async_resolve_endpoints
from .image import async_remove_stored_image
from .quota import Budget, async_get_budget
from .runtime import CarDataConfigEntry, CarDataRuntimeData, automatic_limit
from .services import async_setup_services
from .stream_manager import StreamManager
from .titles import redact_title
from .tokens import TokenManager, async_remove_token_store

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.DEVICE_TRACKER,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.SENSOR,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions; accounts are added through config entries."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: CarDataConfigEntry) -> bool:
    """Connect one BMW account: tokens, budget, clients, coordinator, then the stream."""
    _async_redact_title(hass, entry)
    try:
        endpoints = await async_resolve_endpoints(hass)
    except SimulatorSwitchError as err:
        # Only a restart without (or with a loopback) switch can change this: no retry.
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key=err.reason,
            translation_placeholders={"variable": SIMULATOR_ENV},
        ) from err
    session = async_get_clientsession(hass)
    gcid: str = entry.data[CONF_GCID]

    auth = GcdmAuth(session, entry.data[CONF_CLIENT_ID], base_url=endpoints.gcdm_url)
    tokens = TokenManager(hass, entry, auth)
    await tokens.async_load()
    entry.async_on_unload(tokens.async_shutdown)
    try:
        # Raises ConfigEntryAuthFailed itself when BMW refuses the refresh token.
        await tokens.async_ensure_valid()
    except CarDataConnectionError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="token_refresh_unavailable",
            translation_placeholders={"account": entry.title, "error": str(err)},
        ) from err
    tokens.async_start()

    budget = await async_get_budget(hass, gcid)
    budget.automatic_limit = automatic_limit(entry.options)
    entry.async_on_unload(_async_watch_budget(hass, entry, budget))

    cache = AccountCache(hass, gcid)
    await cache.async_load()

    client = CarDataClient(
        session,
        tokens.async_get_access_token,
        base_url=endpoints.api_url,
        before_request=budget.request_hook(automatic=True),
    )
    action_client = CarDataClient(
        session,
        tokens.async_get_access_token,
        base_url=endpoints.api_url,
        before_request=budget.request_hook(automatic=False),
    )

    coordinator = CarDataCoordinator(
        hass, entry, client=client, cache=cache, budget=budget, tokens=tokens
    )
    entry.async_on_unload(coordinator.async_shutdown)
    await coordinator.async_prepare()
    await coordinator.async_config_entry_first_refresh()

    stream = StreamManager(hass, entry, endpoints, tokens, coordinator)
    entry.async_on_unload(stream.async_stop)
    entry.async_on_unload(_async_stop_with_home_assistant(hass, stream, coordinator, tokens))

    entry.runtime_data = CarDataRuntimeData(
        endpoints=endpoints,
        tokens=tokens,
        budget=budget,
        cache=cache,
        client=client,
        action_client=action_client,
        coordinator=coordinator,
        stream=stream,
    )
    # No update listener: the options flow applies a new budget to the running account
    # itself, and reauth and reconfigure reload the entry from the flow, as Home Assistant
    # expects from 2026.12 on (an update listener there would block that reload).

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # Entities exist now: let the stream feed them.
    await stream.async_start()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: CarDataConfigEntry) -> bool:
    """Unload the platforms; the stream, coordinator and token timers stop on unload."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: CarDataConfigEntry) -> None:
    """Forget the account: tokens, cache, vehicle state and pictures; keep its budget.

    The budget is BMW's, per account: it must survive removing and re-adding the account.
    """
    gcid = entry.data[CONF_GCID]
    await async_remove_token_store(hass, entry.entry_id)
    cache = AccountCache(hass, gcid)
    await cache.async_load()
    for mapping in cache.mappings or []:
        await async_remove_stored_image(hass, mapping.vin)
    await cache.async_remove()
    # The coordinator's store of the last vehicle states (positions included).
    await Store[dict[str, Any]](
        hass, STATE_STORAGE_VERSION, f"{DOMAIN}.state.{gcid}"
    ).async_remove()
    issues.async_clear_all(hass, entry)


@callback
def _async_redact_title(hass: HomeAssistant, entry: CarDataConfigEntry) -> None:
    """Shorten full VINs in the title: older versions named a car without basic data so.

    The title reaches log lines and repair issues, which end up in bug reports.
    """
    title = redact_title(entry.title)
    if title != entry.title:
        hass.config_entries.async_update_entry(entry, title=title)


@callback
def _async_stop_with_home_assistant(
    hass: HomeAssistant,
    stream: StreamManager,
    coordinator: CarDataCoordinator,
    tokens: TokenManager,
) -> CALLBACK_TYPE:
    """Say goodbye to BMW's broker, stop polling and renewing when Home Assistant stops.

    Entries are not unloaded at shutdown; without this the stream would be cut off
    without an MQTT goodbye. A renewal in flight still finishes and is stored.
    """
    stopped = False

    async def stop(_event: Event) -> None:
        nonlocal stopped
        stopped = True
        await stream.async_stop()
        await coordinator.async_shutdown()
        await tokens.async_shutdown()

    unsub = hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, stop)

    @callback
    def remove() -> None:
        # A once-listener that has run is gone; removing it again would log an error.
        if not stopped:
            unsub()

    return remove


@callback
def _async_watch_budget(
    hass: HomeAssistant, entry: CarDataConfigEntry, budget: Budget
) -> CALLBACK_TYPE:
    """Keep the `budget_exhausted` repair issue in step with BMW's CU-429 block.

    The issue is raised while the budget is blocked and cleared when the block ends;
    a timer checks again at that moment, since nothing else happens then.
    """
    unsub_timer: CALLBACK_TYPE | None = None
    raised_until: datetime | None = None

    @callback
    def check(_now: datetime | None = None) -> None:
        nonlocal unsub_timer, raised_until
        until = budget.blocked_until
        if until == raised_until:
            return
        if unsub_timer is not None:
            unsub_timer()
            unsub_timer = None
        raised_until = until
        if until is None:
            LOGGER.info("REST requests of %s are possible again", entry.title)
            issues.async_clear(hass, entry, issues.BUDGET_EXHAUSTED)
            return
        issues.async_raise_budget_exhausted(hass, entry, until)
        unsub_timer = async_track_point_in_utc_time(hass, check, until)

    unsub_budget = budget.async_add_listener(check)
    if budget.blocked_until is None:
        # A block that ended while Home Assistant was stopped leaves no issue behind.
        issues.async_clear(hass, entry, issues.BUDGET_EXHAUSTED)
    check()

    @callback
    def stop() -> None:
        unsub_budget()
        if unsub_timer is not None:
            unsub_timer()

    return stop
