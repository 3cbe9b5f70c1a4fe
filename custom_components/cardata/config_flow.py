"""Config flow for BMW CarData: client id, BMW's device code login, then the account's entry.

The user pastes the client id of a CarData client from BMW's customer portal. The flow
starts BMW's OAuth device authorization, shows the user code and the link, and polls
GCDM in a progress task; when the user approves, the flow continues by itself. One REST
request (vehicle mappings) proves that the API service works, and basic data of the
PRIMARY vehicles names them in the entry's title. Reauth and reconfigure run the same
login and must end in the same BMW account.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
import re
import sys
from typing import TYPE_CHECKING, Any, Final

# Home Assistant 2026 validates flow schemas with probatio and aliases it as voluptuous at
# run time; only the type checker has to be told which library the running HA expects.
if TYPE_CHECKING:
    if sys.version_info >= (3, 14):
        import probatio as vol
    else:
        import voluptuous as vol
else:
    import voluptuous as vol

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
)
from homeassistant.util import dt as dt_util

from .api.auth import GcdmAuth
from .api.client import CarDataClient
from .api.const import SCOPE_API, SCOPE_STREAMING
from .api.errors import (
    ApiError,
    CarDataConnectionError,
    CarDataError,
    ClientNotSubscribedError,
    DeviceFlowError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
)
from .api.models import (
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationPending,
    BasicData,
    DeviceAuthorization,
    PollFailed,
    SlowDown,
    TokenGranted,
    TokenSet,
)
from .cache import AccountCache
from .const import (
    CONF_AUTOMATIC_BUDGET,
    CONF_CLIENT_ID,
    CONF_GCID,
    CONF_TOKENS,
    DAILY_BUDGET,
    DEFAULT_AUTOMATIC_BUDGET,
    DOMAIN,
    LOGGER,
    MIN_AUTOMATIC_BUDGET,
    SIMULATOR_ENV,
)
from .endpoints import Endpoints, SimulatorSwitchError, async_resolve_endpoints
from .quota import async_get_budget
from .runtime import async_apply_options
from .titles import entry_title, vehicle_name
from .vehicle import redact_vin

# BMW issues client ids as UUIDs and accepts them only in lower case.
_CLIENT_ID_PATTERN: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
_CLIENT_ID_SCHEMA: Final = vol.Schema({vol.Required(CONF_CLIENT_ID): TextSelector()})

# How a login ends: what the poll loop hands back to the flow.
type LoginDecision = TokenGranted | AuthorizationExpired | AuthorizationDenied | PollFailed

# The one awaitable pause of the poll loop; tests replace it to move the simulator's
# clock instead of waiting BMW's real polling interval.
_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def normalize_client_id(raw: str) -> str | None:
    """Return the client id in BMW's lower-case UUID form, or None when it is no UUID."""
    client_id = raw.strip().lower()
    return client_id if _CLIENT_ID_PATTERN.fullmatch(client_id) else None


def _subscription_error(missing: frozenset[str]) -> str:
    """Return the form error naming the CarData service(s) the client id lacks."""
    if SCOPE_API in missing and SCOPE_STREAMING in missing:
        return "not_subscribed"
    return "api_not_subscribed" if SCOPE_API in missing else "stream_not_subscribed"


def _budget_exhausted(retry_at: datetime | None) -> AbortFlow:
    """Abort: the daily budget is spent; say when requests are possible again."""
    moment = dt_util.as_local(retry_at or dt_util.utcnow()).strftime("%Y-%m-%d %H:%M")
    return AbortFlow("budget_exhausted", {"retry_at": moment})


async def _async_endpoints(hass: HomeAssistant) -> Endpoints:
    """Return where BMW is; abort the flow when the simulator switch must be refused."""
    try:
        return await async_resolve_endpoints(hass)
    except SimulatorSwitchError as err:
        raise AbortFlow(err.reason, {"variable": SIMULATOR_ENV}) from err


class CarDataConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a BMW account, or sign it in again."""

    VERSION = 1
    MINOR_VERSION = 1

    # Set by the steps before the steps that read them.
    _client_id: str
    _auth: GcdmAuth
    _device: DeviceAuthorization
    _failure: PollFailed
    _tokens: TokenSet

    def __init__(self) -> None:
        """Start without a login in progress."""
        self._poll_task: asyncio.Task[LoginDecision] | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> CarDataOptionsFlow:
        """Return the options flow (the automatic share of the daily budget)."""
        return CarDataOptionsFlow()

    # --- Entry points -------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the client id and start BMW's login."""
        return await self._async_client_id_step("user", user_input, suggested=None)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Sign the account in again after BMW refused its refresh token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm the client id (a new client may replace a deleted one) and sign in."""
        suggested = self._get_reauth_entry().data.get(CONF_CLIENT_ID)
        return await self._async_client_id_step("reauth_confirm", user_input, suggested)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the client id; the login must end in the same BMW account."""
        suggested = self._get_reconfigure_entry().data.get(CONF_CLIENT_ID)
        return await self._async_client_id_step("reconfigure", user_input, suggested)

    async def _async_client_id_step(
        self, step_id: str, user_input: dict[str, Any] | None, suggested: str | None
    ) -> ConfigFlowResult:
        """Show the client id form; on a valid client id request a device code."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            client_id = normalize_client_id(user_input[CONF_CLIENT_ID])
            if client_id is None:
                errors[CONF_CLIENT_ID] = "invalid_client_id"
            else:
                if self.source == SOURCE_USER:
                    # A client id belongs to one account: known here, refused before the
                    # BMW login. Another client id of the same account is found after it.
                    self._async_abort_entries_match({CONF_CLIENT_ID: client_id})
                self._client_id = client_id
                error = await self._async_request_device_code(placeholders)
                if error is None:
                    return await self.async_step_authorize()
                errors["base"] = error
            suggested = user_input[CONF_CLIENT_ID]
        schema = _CLIENT_ID_SCHEMA
        if suggested:
            schema = self.add_suggested_values_to_schema(schema, {CONF_CLIENT_ID: suggested})
        return self.async_show_form(
            step_id=step_id,
            data_schema=schema,
            errors=errors,
            description_placeholders=placeholders,
        )

    # --- The device code login ------------------------------------------------------------

    async def _async_request_device_code(self, placeholders: dict[str, str]) -> str | None:
        """Ask GCDM for a fresh device code; return a form error key on failure."""
        endpoints = await _async_endpoints(self.hass)
        self._auth = GcdmAuth(
            async_get_clientsession(self.hass), self._client_id, base_url=endpoints.gcdm_url
        )
        try:
            self._device = await self._auth.request_device_code()
        except ClientNotSubscribedError as err:
            LOGGER.info("BMW refused the login: %s", err)
            return _subscription_error(err.missing)
        except DeviceFlowError as err:
            LOGGER.info("BMW refused the login: %s", err)
            if err.error == "invalid_client":
                return "unknown_client"
            placeholders["error"] = err.error
            return "authorization_refused"
        except CarDataConnectionError as err:
            LOGGER.info("BMW's login service cannot be reached: %s", err)
            return "cannot_connect"
        return None

    async def async_step_authorize(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the code and link while waiting for the user to approve at BMW."""
        device = self._device
        if self._poll_task is None:
            self._poll_task = self.hass.async_create_task(
                self._async_wait_for_approval(self._auth, device),
                f"{DOMAIN} wait for approval",
            )
        if not self._poll_task.done():
            minutes = (device.expires_at - dt_util.utcnow()).total_seconds() / 60
            return self.async_show_progress(
                step_id="authorize",
                progress_action="wait_for_approval",
                description_placeholders={
                    "url": device.verification_uri_complete,
                    "verification_uri": device.verification_uri,
                    "user_code": device.user_code,
                    "minutes": str(max(round(minutes), 1)),
                },
                progress_task=self._poll_task,
            )
        task, self._poll_task = self._poll_task, None
        if (crash := task.exception()) is not None:
            LOGGER.error("Waiting for the BMW login failed unexpectedly", exc_info=crash)
            self._failure = PollFailed("internal_error", type(crash).__name__)
            return self.async_show_progress_done(next_step_id="failed")
        outcome = task.result()
        if isinstance(outcome, TokenGranted):
            self._tokens = outcome.tokens
            return self.async_show_progress_done(next_step_id="finish")
        if isinstance(outcome, AuthorizationExpired):
            return self.async_show_progress_done(next_step_id="expired")
        if isinstance(outcome, AuthorizationDenied):
            return self.async_show_progress_done(next_step_id="denied")
        self._failure = outcome
        return self.async_show_progress_done(next_step_id="failed")

    async def _async_wait_for_approval(
        self, auth: GcdmAuth, device: DeviceAuthorization
    ) -> LoginDecision:
        """Poll GCDM at its interval until the user decides or the code expires.

        Returns TokenGranted, AuthorizationExpired, AuthorizationDenied or a PollFailed
        that polling again cannot fix. GCDM often fails for a moment right after the
        approval; those failures are retried while the code lives.
        """
        lifetime = (device.expires_at - dt_util.utcnow()).total_seconds()
        waited = 0.0
        while True:
            interval = device.interval
            await _sleep(interval)
            # The time slept is a lower bound of the time passed, so it never ends early.
            waited += interval
            outcome = await auth.poll_token(device)
            if isinstance(outcome, PollFailed) and outcome.retryable:
                LOGGER.debug("BMW's login answered %s; polling again", outcome.error)
            elif isinstance(outcome, SlowDown):
                LOGGER.debug("BMW asked to poll more slowly: every %s s", outcome.interval)
            elif not isinstance(outcome, AuthorizationPending):
                return outcome
            if waited >= lifetime or dt_util.utcnow() >= device.expires_at:
                return AuthorizationExpired()

    async def async_step_expired(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer a fresh code after the last one expired unapproved."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            error = await self._async_request_device_code(placeholders)
            if error is None:
                return await self.async_step_authorize()
            errors["base"] = error
        return self.async_show_form(
            step_id="expired",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_denied(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """End the flow: BMW answered access_denied."""
        return self.async_abort(reason="access_denied")

    async def async_step_failed(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """End the flow: BMW failed the login in a way polling again cannot fix."""
        return self.async_abort(
            reason="authorization_failed", description_placeholders={"error": self._failure.error}
        )

    # --- After the login ------------------------------------------------------------------

    async def async_step_finish(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Check the account the tokens belong to, then create or update the entry."""
        tokens = self._tokens
        if not tokens.gcid:
            return self.async_abort(reason="invalid_token_response")
        data = {
            CONF_CLIENT_ID: self._client_id,
            CONF_GCID: tokens.gcid,
            CONF_TOKENS: tokens.as_dict(),
        }
        if self.source in (SOURCE_REAUTH, SOURCE_RECONFIGURE):
            await self.async_set_unique_id(tokens.gcid, raise_on_progress=False)
            self._abort_if_unique_id_mismatch(reason="wrong_account")
            entry = (
                self._get_reauth_entry()
                if self.source == SOURCE_REAUTH
                else self._get_reconfigure_entry()
            )
            return self.async_update_reload_and_abort(entry, data_updates=data)

        await self.async_set_unique_id(tokens.gcid)
        self._abort_if_unique_id_configured()
        try:
            names = await self._async_read_vehicles(tokens)
        except (CarDataConnectionError, ApiError) as err:
            LOGGER.warning("Reading the vehicles of the BMW account failed: %s", err)
            # The tokens stay valid for an hour: let the user retry without a new login.
            return self.async_show_form(
                step_id="finish", data_schema=vol.Schema({}), errors={"base": "cannot_connect"}
            )
        return self.async_create_entry(
            title=entry_title(names),
            data=data,
            options={CONF_AUTOMATIC_BUDGET: DEFAULT_AUTOMATIC_BUDGET},
        )

    async def _async_read_vehicles(self, tokens: TokenSet) -> list[str]:
        """Read mappings and basic data within the account's budget, cache them, name them.

        Raises AbortFlow for what ends the flow, CarDataConnectionError or ApiError for
        what a retry may fix.
        """
        endpoints = await _async_endpoints(self.hass)
        budget = await async_get_budget(self.hass, tokens.gcid)

        async def access_token() -> str:
            return tokens.access_token

        client = CarDataClient(
            async_get_clientsession(self.hass),
            access_token,
            base_url=endpoints.api_url,
            before_request=budget.request_hook(automatic=True),
        )
        try:
            mappings = await client.get_vehicle_mappings()
        except ScopeError as err:
            LOGGER.info("BMW refused the API request: %s", err)
            raise AbortFlow("api_not_subscribed") from err
        except RateLimitError as err:
            budget.note_rate_limited()
            raise _budget_exhausted(budget.blocked_until) from err
        except RequestRefusedError as err:
            raise _budget_exhausted(err.retry_at) from err
        primary = [mapping for mapping in mappings if mapping.is_primary]
        if not primary:
            raise AbortFlow("no_primary_vehicles")

        cache = AccountCache(self.hass, tokens.gcid)
        await cache.async_load()
        cache.set_mappings(mappings)
        names = []
        for mapping in primary:
            basic_data: BasicData | None = None
            try:
                basic_data = await client.get_basic_data(mapping.vin)
            except CarDataError as err:
                # The name is a courtesy: the entry's set-up fetches basic data again.
                LOGGER.info(
                    "No basic data for %s, naming it by VIN: %s", redact_vin(mapping.vin), err
                )
                if isinstance(err, RateLimitError):
                    budget.note_rate_limited()
            else:
                cache.set_basic_data(mapping.vin, basic_data)
            names.append(vehicle_name(mapping, basic_data))
        await cache.async_save()
        return names


class CarDataOptionsFlow(OptionsFlow):
    """How much of BMW's daily budget the integration may spend by itself.

    A new value applies to the running account at once; no reload, so the stream stays
    connected (and Home Assistant needs no update listener for it).
    """

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the automatic share of the 50 daily requests, a whole number."""
        errors: dict[str, str] = {}
        current: float = self.config_entry.options.get(
            CONF_AUTOMATIC_BUDGET, DEFAULT_AUTOMATIC_BUDGET
        )
        if user_input is not None:
            current = user_input[CONF_AUTOMATIC_BUDGET]
            # is_integer() is also False for inf and nan, which int() cannot take.
            if not float(current).is_integer() or not (
                MIN_AUTOMATIC_BUDGET <= current <= DAILY_BUDGET
            ):
                errors[CONF_AUTOMATIC_BUDGET] = "automatic_budget_out_of_range"
            else:
                options = {CONF_AUTOMATIC_BUDGET: int(current)}
                async_apply_options(self.config_entry, options)
                return self.async_create_entry(data=options)
        schema = vol.Schema(
            {
                # The range is checked above, not by the selector, so a value outside it
                # gets a translated message instead of the selector's "Value 55.0 is too
                # large"; the field's description states the range.
                vol.Required(CONF_AUTOMATIC_BUDGET, default=current): NumberSelector(
                    NumberSelectorConfig(step=1, mode=NumberSelectorMode.BOX)
                )
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=schema,
            errors=errors,
            description_placeholders={
                "minimum": str(MIN_AUTOMATIC_BUDGET),
                "maximum": str(DAILY_BUDGET),
            },
        )
