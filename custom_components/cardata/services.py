"""Actions that ask BMW's CarData REST API on the user's request and return BMW's answer.

Each action sends one request per page through the account's `action_client`, so it spends
the user's share of BMW's 50 daily requests and is refused, before anything is sent, when
that share is spent. The JSON BMW answered is logged at info level, redacted as the
diagnostics are, and returned whole as the action's response. Home Assistant responses
must be objects, so a list answer is wrapped: the vehicle mappings come back as
`{"mappings": [...]}`.

The user picks the car as a device and the account follows from it; scripts may name the
car by `vin` instead, and `config_entry_id` is needed only when several accounts are loaded
and the car does not decide (action_target.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timedelta
import json
import sys
from typing import TYPE_CHECKING, Any, Final, cast

# Home Assistant 2026 validates with probatio and aliases it as voluptuous at run time;
# only the type checker has to be told which library the running version expects.
if TYPE_CHECKING:
    if sys.version_info >= (3, 14):
        import probatio as vol
    else:
        import voluptuous as vol
else:
    import voluptuous as vol

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util

from .action_target import ATTR_CONFIG_ENTRY_ID, ATTR_VIN, account_of_call, vehicle_of_call
from .api.client import CarDataClient
from .api.const import CHARGING_HISTORY_MAX_RANGE
from .api.errors import (
    ApiError,
    BadRequestError,
    CarDataConnectionError,
    CarDataError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
    ServerError,
    TokenInvalidError,
)
from .const import DOMAIN, LOGGER
from .diagnostics import redact_personal_data
from .runtime import CarDataConfigEntry
from .vehicle import redact_vin

SERVICE_FETCH_VEHICLE_MAPPINGS: Final = "fetch_vehicle_mappings"
SERVICE_FETCH_BASIC_DATA: Final = "fetch_basic_data"
SERVICE_FETCH_TELEMATIC_DATA: Final = "fetch_telematic_data"
SERVICE_FETCH_CHARGING_HISTORY: Final = "fetch_charging_history"
SERVICE_FETCH_TYRE_DIAGNOSIS: Final = "fetch_tyre_diagnosis"
SERVICE_FETCH_CHARGING_SETTINGS: Final = "fetch_location_based_charging_settings"

ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_ALL_PAGES: Final = "all_pages"
ATTR_NEXT_TOKEN: Final = "next_token"

# The charging history window when the caller names no start.
DEFAULT_HISTORY_RANGE: Final = timedelta(days=30)

_ENTRY_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
    }
)
_VEHICLE_SCHEMA = _ENTRY_SCHEMA.extend(
    {vol.Optional(ATTR_VIN): vol.All(cv.string, lambda vin: vin.strip().upper())}
)
_PAGED_SCHEMA = _VEHICLE_SCHEMA.extend(
    {
        vol.Optional(ATTR_ALL_PAGES, default=False): cv.boolean,
        vol.Optional(ATTR_NEXT_TOKEN): cv.string,
    }
)
_HISTORY_SCHEMA = _PAGED_SCHEMA.extend(
    {vol.Optional(ATTR_START): cv.datetime, vol.Optional(ATTR_END): cv.datetime}
)

type _Request[T] = Callable[[CarDataClient], Awaitable[T]]


# --- Resolving what the call names ---------------------------------------------------


def _history_range(call: ServiceCall) -> tuple[datetime, datetime]:
    """Return the charging history window: aware, start before end, at most 45 days.

    Times without a zone are local time, as the datetime selector sends them.
    """
    end = dt_util.as_utc(call.data.get(ATTR_END) or dt_util.utcnow())
    start_given: datetime | None = call.data.get(ATTR_START)
    start = dt_util.as_utc(start_given) if start_given else end - DEFAULT_HISTORY_RANGE
    placeholders = {"start": _local(start), "end": _local(end)}
    if start >= end:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="action_invalid_range",
            translation_placeholders=placeholders,
        )
    if end - start > CHARGING_HISTORY_MAX_RANGE:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="action_range_too_long",
            translation_placeholders={
                **placeholders,
                "days": str(CHARGING_HISTORY_MAX_RANGE.days),
            },
        )
    return start, end


def _local(moment: datetime) -> str:
    """Format a moment in Home Assistant's time zone, to the minute."""
    return dt_util.as_local(moment).strftime("%Y-%m-%d %H:%M")


# --- Sending and answering -------------------------------------------------------------


def _error(key: str, **placeholders: str) -> HomeAssistantError:
    """Return the translated error `key` of this integration."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


async def async_user_request[T](
    entry: CarDataConfigEntry,
    request: _Request[T],
    vin: str | None = None,
    *,
    not_found: str = "action_not_found",
    paging: bool = False,
) -> T:
    """Send a request the user asked for (an action, a button); translate every failure.

    `not_found` names the message for BMW's "no such data". An access token BMW refuses
    is renewed and the request sent once more (one more request of the budget); BMW
    usually refuses a token only after revoking it. `paging` requests (`all_pages`) are
    sent from the user's share only: however many pages there are, they never take a
    request that automatic polling may still spend.
    """
    runtime = entry.runtime_data
    client = runtime.action_client
    if paging:
        client = client.with_request_hook(
            runtime.budget.request_hook(automatic=False, spare_only=True)
        )
    try:
        try:
            return await request(client)
        except TokenInvalidError:
            await runtime.tokens.async_refresh(force=True)
            return await request(client)
    except RequestRefusedError as err:
        if paging and runtime.budget.remaining() > 0:
            # Requests are left, but they are the automatic share's.
            retry_at = err.retry_at or runtime.budget.next_request_at(
                automatic=False, spare_only=True
            )
            raise _error("action_paging_share_spent", time=_local(retry_at)) from err
        retry_at = err.retry_at or runtime.budget.next_request_at(automatic=False)
        raise _error("action_budget_spent", time=_local(retry_at)) from err
    except RateLimitError as err:
        # BMW's count wins over ours: another client of the account may have spent it.
        runtime.budget.note_rate_limited()
        retry_at = runtime.budget.blocked_until or runtime.budget.next_request_at(automatic=False)
        raise _error("action_rate_limited", time=_local(retry_at)) from err
    except TokenInvalidError as err:
        raise _error("action_token_invalid", account=entry.title) from err
    except ScopeError as err:
        raise _error("action_api_not_subscribed", account=entry.title) from err
    except PermissionDeniedError as err:
        if err.container:
            raise _error("action_container_refused") from err
        raise _error("action_vehicle_refused", vin=redact_vin(vin or "")) from err
    except NotFoundError as err:
        raise _error(not_found, vin=redact_vin(vin or ""), error=str(err)) from err
    except BadRequestError as err:
        raise _error("action_bad_request", error=str(err)) from err
    except ServerError as err:
        raise _error("action_server_error", error=str(err)) from err
    except ApiError as err:
        raise _error("action_unexpected_response", error=str(err)) from err
    except CarDataConnectionError as err:
        raise _error("action_cannot_connect", error=str(err)) from err


def _respond(
    entry: CarDataConfigEntry, action: str, target: str, raw: Any, *, list_key: str = "data"
) -> ServiceResponse:
    """Log BMW's answer and return it whole as the response (a list wrapped under `list_key`).

    The log line is redacted as the diagnostics are: logs end up in public bug reports,
    and BMW's answers carry VINs, the GCID, street addresses and coordinates.
    """
    LOGGER.info(
        "%s for %s: %s",
        action,
        target,
        json.dumps(redact_personal_data(entry, raw), ensure_ascii=False),
    )
    response = dict(raw) if isinstance(raw, Mapping) else {list_key: raw}
    return cast(ServiceResponse, response)


def _note_paging_stop(
    entry: CarDataConfigEntry, action: str, vin: str, stopped_by: CarDataError | None
) -> None:
    """Say why `all_pages` returned before the last page; BMW's CU-429 blocks the budget."""
    if stopped_by is None:
        return
    if isinstance(stopped_by, RateLimitError):
        entry.runtime_data.budget.note_rate_limited()
    LOGGER.info(
        "%s for %s returns the pages fetched before this stopped it: %s. "
        "The response's paging token continues where it stopped",
        action,
        redact_vin(vin),
        stopped_by,
    )


# --- The actions -------------------------------------------------------------------------


async def _async_fetch_vehicle_mappings(call: ServiceCall) -> ServiceResponse:
    """Return the account's vehicle mappings (BMW's list, under `mappings`)."""
    entry = account_of_call(call)
    mappings = await async_user_request(entry, lambda client: client.get_vehicle_mappings())
    raw = [mapping.raw for mapping in mappings]
    return _respond(entry, call.service, entry.title, raw, list_key="mappings")


async def _async_fetch_basic_data(call: ServiceCall) -> ServiceResponse:
    """Return a vehicle's basic data."""
    entry, vin = vehicle_of_call(call)
    result = await async_user_request(entry, lambda client: client.get_basic_data(vin), vin)
    return _respond(entry, call.service, redact_vin(vin), result.raw)


async def _async_fetch_telematic_data(call: ServiceCall) -> ServiceResponse:
    """Return the container's current values for a vehicle and merge them into its state."""
    entry, vin = vehicle_of_call(call)
    runtime = entry.runtime_data
    container_id = runtime.cache.container_id
    if container_id is None:
        raise _error("action_no_container", account=entry.title)
    result = await async_user_request(
        entry, lambda client: client.get_telematic_data(vin, container_id), vin
    )
    # The request is paid for: let the entities show what it brought.
    runtime.coordinator.apply_rest_values(vin, result.values)
    return _respond(entry, call.service, redact_vin(vin), result.raw)


async def _async_fetch_charging_history(call: ServiceCall) -> ServiceResponse:
    """Return a vehicle's charging sessions of a range (first page, or all)."""
    entry, vin = vehicle_of_call(call)
    start, end = _history_range(call)
    all_pages: bool = call.data[ATTR_ALL_PAGES]
    next_token: str | None = call.data.get(ATTR_NEXT_TOKEN)
    result = await async_user_request(
        entry,
        lambda client: client.get_charging_history(
            vin, start, end, all_pages=all_pages, next_token=next_token
        ),
        vin,
        paging=all_pages,
    )
    _note_paging_stop(entry, call.service, vin, result.stopped_by)
    return _respond(entry, call.service, redact_vin(vin), result.raw)


async def _async_fetch_tyre_diagnosis(call: ServiceCall) -> ServiceResponse:
    """Return a vehicle's smart maintenance tyre diagnosis."""
    entry, vin = vehicle_of_call(call)
    result = await async_user_request(entry, lambda client: client.get_tyre_diagnosis(vin), vin)
    return _respond(entry, call.service, redact_vin(vin), result.raw)


async def _async_fetch_charging_settings(call: ServiceCall) -> ServiceResponse:
    """Return a vehicle's location-based charging settings (first page, or all)."""
    entry, vin = vehicle_of_call(call)
    all_pages: bool = call.data[ATTR_ALL_PAGES]
    next_token: str | None = call.data.get(ATTR_NEXT_TOKEN)
    result = await async_user_request(
        entry,
        lambda client: client.get_location_based_charging_settings(
            vin, all_pages=all_pages, next_token=next_token
        ),
        vin,
        # BMW's CU-127: the car has not learned charging settings for any location.
        not_found="action_no_charging_settings",
        paging=all_pages,
    )
    _note_paging_stop(entry, call.service, vin, result.stopped_by)
    return _respond(entry, call.service, redact_vin(vin), result.raw)


type _Handler = Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]

_ACTIONS: Final[tuple[tuple[str, _Handler, vol.Schema], ...]] = (
    (SERVICE_FETCH_VEHICLE_MAPPINGS, _async_fetch_vehicle_mappings, _ENTRY_SCHEMA),
    (SERVICE_FETCH_BASIC_DATA, _async_fetch_basic_data, _VEHICLE_SCHEMA),
    (SERVICE_FETCH_TELEMATIC_DATA, _async_fetch_telematic_data, _VEHICLE_SCHEMA),
    (SERVICE_FETCH_CHARGING_HISTORY, _async_fetch_charging_history, _HISTORY_SCHEMA),
    (SERVICE_FETCH_TYRE_DIAGNOSIS, _async_fetch_tyre_diagnosis, _VEHICLE_SCHEMA),
    (SERVICE_FETCH_CHARGING_SETTINGS, _async_fetch_charging_settings, _PAGED_SCHEMA),
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, for every account: the call names its entry)."""
    for name, handler, schema in _ACTIONS:
        hass.services.async_register(
            DOMAIN,
            name,
            handler,
            schema=schema,
            supports_response=SupportsResponse.OPTIONAL,
        )
