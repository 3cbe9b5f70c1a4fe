"""Vehicle state of one BMW account, fed by the stream and by budgeted REST polling.

The stream pushes descriptor updates for free; REST costs one request of BMW's 50 per
day for each vehicle snapshot. So the coordinator polls REST rarely while the stream
delivers (for what the stream does not carry, such as the predicted charging level and
hvStatus) and as fast as the automatic budget allows while it does not. Polls are spread
evenly, one vehicle per tick in turn; after a pause nothing is caught up.

What rarely changes (mappings, basic data, the container id) comes from the account
cache, and the descriptor states with the time of each vehicle's last poll are stored,
so a restart of Home Assistant costs at most one request per vehicle, and none when the
stored state is recent.

Entities listen per descriptor (`async_add_descriptor_listener`): a stream message with
one descriptor wakes only the entities that read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
import math
from types import MappingProxyType
from typing import Any, Final, Protocol

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .api.client import CarDataClient
from .api.errors import (
    ApiError,
    CarDataConnectionError,
    CarDataError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
    TokenInvalidError,
)
from .api.models import BasicData, StreamMessage, TelematicValue, VehicleMapping
from .api.stream import StreamState, StreamStatus
from .cache import AccountCache
from .const import BUDGET_WINDOW, CONF_GCID, DOMAIN, LOGGER
from .containers import ContainerKeeper
from .quota import Budget
from .vehicle import (
    DescriptorState,
    Source,
    Vehicle,
    VehicleChange,
    VehicleState,
    redact_vin,
)

STORAGE_VERSION: Final = 1
# Stream messages arrive by the thousand a day; their state is written in batches.
STATE_SAVE_DELAY: Final = 30
MAPPINGS_MAX_AGE: Final = timedelta(days=7)
BASIC_DATA_MAX_AGE: Final = timedelta(days=30)
# While the stream delivers, REST only fills in what the stream lacks.
STREAM_UP_VEHICLE_INTERVAL: Final = timedelta(hours=4)
# Automatic requests polling leaves for set-up and container work each day.
SETUP_RESERVE: Final = 4
# REST failures in a row (without the stream) before the data counts as not updating.
FAILURES_BEFORE_UNAVAILABLE: Final = 2
# How long to leave REST alone after BMW said the token lacks the CarData API scope.
SCOPE_ERROR_PAUSE: Final = timedelta(hours=6)

type DescriptorListener = Callable[[], None]
type VehicleListener = Callable[[VehicleChange], None]


class TokenRefresher(Protocol):
    """The part of the token manager the coordinator needs."""

    async def async_refresh(self, *, force: bool) -> object:
        """Refresh the tokens; raises ConfigEntryAuthFailed when a reauth is needed."""


@dataclass(frozen=True, slots=True)
class PollingPlan:
    """How often REST telematics are polled.

    `tick` is the least time between two polls of the account, `per_vehicle` between two
    polls of one vehicle; `reserve` automatic requests are left for set-up and container
    work.
    """

    tick: timedelta
    per_vehicle: timedelta
    reserve: int


def polling_plan(vehicle_count: int, automatic_limit: int, stream_up: bool) -> PollingPlan | None:
    """Return the polling plan for the account, or None when there is nothing to poll.

    Without the stream the automatic budget, less the reserve, is spread evenly over the
    day; with the stream each vehicle is polled every four hours, if the budget allows.
    """
    if vehicle_count <= 0:
        return None
    reserve = min(SETUP_RESERVE, automatic_limit // 4)
    polls_per_day = max(1, automatic_limit - reserve)
    tick = _whole_seconds(BUDGET_WINDOW / polls_per_day)
    if stream_up:
        tick = max(tick, _whole_seconds(STREAM_UP_VEHICLE_INTERVAL / vehicle_count))
    return PollingPlan(tick=tick, per_vehicle=tick * vehicle_count, reserve=reserve)


def _whole_seconds(interval: timedelta) -> timedelta:
    """Round up to whole seconds: a tick a microsecond short fits one poll too many in a day."""
    return timedelta(seconds=math.ceil(interval.total_seconds()))


class _Listener:
    """One registered descriptor listener (an object, so one callback can hold many keys)."""

    __slots__ = ("callback",)

    def __init__(self, listener: DescriptorListener) -> None:
        self.callback = listener


def _moment(raw: Any) -> datetime | None:
    return dt_util.parse_datetime(raw) if isinstance(raw, str) else None


class CarDataCoordinator(DataUpdateCoordinator[dict[str, VehicleState]]):
    """Vehicles and descriptor states of one BMW account, with budgeted REST polling.

    Set-up: `await async_prepare()` (vehicles and the container), then
    `await async_config_entry_first_refresh()` (polls the vehicles whose stored state
    is not recent). The stream manager feeds `apply_stream_message` and
    `set_stream_status`; REST results of actions may be fed to `apply_rest_values`.

    `last_update_success` is False only while nothing updates the values: the stream is
    not connected and REST polls failed repeatedly. A poll refused by the budget is not a
    failure; the last values stay.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        *,
        client: CarDataClient,
        cache: AccountCache,
        budget: Budget,
        tokens: TokenRefresher,
    ) -> None:
        """Create the coordinator of one config entry (one BMW account)."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            always_update=False,
        )
        self._entry = entry
        self._client = client
        self._cache = cache
        self._budget = budget
        self._tokens = tokens
        self._containers = ContainerKeeper(hass, entry, client, cache)
        gcid = entry.data.get(CONF_GCID) or entry.unique_id or entry.entry_id
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.state.{gcid}")
        self.vehicles: dict[str, Vehicle] = {}
        self._states: dict[str, VehicleState] = {}
        self.data = self._states
        self._descriptor_listeners: dict[tuple[str, str], list[_Listener]] = {}
        self._vehicle_listeners: dict[str, list[VehicleListener]] = {}
        self._stream_status: StreamStatus | None = None
        self.last_stream_message_at: datetime | None = None
        self._last_poll_at: datetime | None = None
        self._not_before: datetime | None = None
        self.next_poll_at: datetime | None = None
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_budget: CALLBACK_TYPE | None = None
        self._automatic_limit = budget.automatic_limit
        self._failures = 0
        self._failure_logged = False
        self._unreadable: set[str] = set()
        self._prepared = False
        self._stopped = False
        self._auth_failed = False
        self._scope_warned = False
        self._save_pending = False

    # --- Reading state ----------------------------------------------------------------

    def state(self, vin: str) -> Mapping[str, DescriptorState]:
        """Return the current descriptor states of a vehicle (read-only, live view)."""
        vehicle_state = self._states.get(vin)
        return MappingProxyType(vehicle_state.descriptors if vehicle_state else {})

    @property
    def stream_status(self) -> StreamStatus | None:
        """Return what the stream last reported about itself (None before it did)."""
        return self._stream_status

    @property
    def stream_delivers(self) -> bool:
        """Return True while the stream is connected."""
        return (
            self._stream_status is not None and self._stream_status.state is StreamState.CONNECTED
        )

    @property
    def polling(self) -> PollingPlan | None:
        """Return the polling plan in force (None when no vehicle can be polled)."""
        readable = sum(1 for vin in self.vehicles if vin not in self._unreadable)
        return polling_plan(readable, self._budget.automatic_limit, self.stream_delivers)

    def last_rest_fetch(self, vin: str) -> datetime | None:
        """Return when REST telematics of a vehicle were last received."""
        vehicle_state = self._states.get(vin)
        return vehicle_state.last_rest_fetch if vehicle_state else None

    # --- Listeners --------------------------------------------------------------------

    @callback
    def async_add_descriptor_listener(
        self, vin: str, descriptors: Iterable[str], listener: DescriptorListener
    ) -> CALLBACK_TYPE:
        """Call `listener()` whenever one of `descriptors` of vehicle `vin` changes.

        A change is a new value or unit, or a newer measurement of the same value;
        duplicates and older measurements call nobody. When one update changes several
        of the descriptors the listener is called once. Entities typically pass their
        `async_write_ha_state`. Returns the function that removes the listener.
        """
        registration = _Listener(listener)
        keys = [(vin, descriptor) for descriptor in dict.fromkeys(descriptors)]
        for key in keys:
            self._descriptor_listeners.setdefault(key, []).append(registration)

        @callback
        def remove() -> None:
            for key in keys:
                registered = self._descriptor_listeners.get(key)
                if registered and registration in registered:
                    registered.remove(registration)
                    if not registered:
                        del self._descriptor_listeners[key]

        return remove

    @callback
    def async_add_vehicle_listener(self, vin: str, listener: VehicleListener) -> CALLBACK_TYPE:
        """Call `listener(change)` after every update that changed vehicle `vin`.

        `change.changed` names the changed descriptors, `change.added` those seen for the
        first time (for creating entities of descriptors that appear later). Returns the
        function that removes the listener.
        """
        listeners = self._vehicle_listeners.setdefault(vin, [])
        listeners.append(listener)

        @callback
        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    @callback
    def _notify(self, vin: str, changed: frozenset[str], added: frozenset[str]) -> None:
        """Call the listeners of what changed, each once."""
        if not changed:
            return
        due: dict[int, _Listener] = {}
        for descriptor in changed:
            for registration in self._descriptor_listeners.get((vin, descriptor), ()):
                due[id(registration)] = registration
        for registration in list(due.values()):
            registration.callback()
        change = VehicleChange(vin, changed, added)
        for listener in list(self._vehicle_listeners.get(vin, ())):
            listener(change)

    # --- Feeding state ----------------------------------------------------------------

    @callback
    def apply_stream_message(self, message: StreamMessage) -> None:
        """Merge a stream message; messages for vehicles not read here are ignored."""
        received_at = dt_util.utcnow()
        self.last_stream_message_at = received_at
        if message.vin not in self.vehicles:
            return
        self._apply(message.vin, message.updates, "stream", received_at)
        self._update_health()

    @callback
    def apply_rest_values(self, vin: str, values: Mapping[str, TelematicValue]) -> None:
        """Merge REST telematics of a vehicle (a poll, or an action's result)."""
        if vin not in self.vehicles:
            return
        received_at = dt_util.utcnow()
        self._states.setdefault(vin, VehicleState()).last_rest_fetch = received_at
        self._apply(vin, values, "rest", received_at)

    @callback
    def _apply(
        self,
        vin: str,
        updates: Mapping[str, TelematicValue],
        source: Source,
        received_at: datetime,
    ) -> None:
        vehicle_state = self._states.setdefault(vin, VehicleState())
        changed, added = vehicle_state.merge(updates, source, received_at)
        if changed:
            self._schedule_save()
            self._notify(vin, changed, added)

    @callback
    def set_stream_status(self, status: StreamStatus) -> None:
        """Take note of the stream's state; polling speeds up while it is down."""
        was_delivering = self.stream_delivers
        self._stream_status = status
        if self.stream_delivers != was_delivering:
            LOGGER.debug(
                "Stream %s; REST polling adapts",
                "connected" if self.stream_delivers else f"not connected ({status.state})",
            )
            self._update_health()
            self.async_reschedule()

    # --- Set-up -----------------------------------------------------------------------

    async def async_prepare(self) -> None:
        """Load the vehicles (from the cache or REST) and find or create the container.

        Cached mappings and basic data are used whatever their age, so a restart costs
        no request here; old ones are refreshed later, one poll tick each. Raises
        ConfigEntryNotReady when BMW cannot be reached or refuses for now, and
        ConfigEntryAuthFailed when the token stays invalid after a forced refresh.
        """
        stored = await self._store.async_load() or {}
        mappings = self._cache.mappings
        if mappings is None:
            mappings = await self._async_setup_call(self._client.get_vehicle_mappings)
            self._cache.set_mappings(mappings)
            await self._cache.async_save()
        secondary = [mapping.vin for mapping in mappings if not mapping.is_primary]
        if secondary:
            LOGGER.info(
                "BMW CarData serves a vehicle's data only to its primary user; skipping "
                "the vehicles this account uses as secondary user: %s",
                ", ".join(redact_vin(vin) for vin in secondary),
            )
        for mapping in mappings:
            if mapping.is_primary and (vehicle := await self._async_load_vehicle(mapping)):
                self.vehicles[mapping.vin] = vehicle
        self._restore(stored)
        self._register_devices()
        await self._async_prepare_container()
        self._prepared = True
        self._unsub_budget = self._budget.async_add_listener(self._handle_budget_change)

    async def _async_load_vehicle(self, mapping: VehicleMapping) -> Vehicle | None:
        """Return a PRIMARY vehicle with its basic data (cached, else fetched)."""
        basic_data = self._cache.basic_data(mapping.vin)
        if basic_data is None:
            try:
                basic_data = await self._async_setup_call(
                    lambda: self._client.get_basic_data(mapping.vin)
                )
            except NotFoundError:
                basic_data = BasicData.from_json({}, vin=mapping.vin)
            except PermissionDeniedError:
                LOGGER.warning(
                    "BMW refuses the data of vehicle %s (not telematics capable, or not "
                    "mapped as primary user); it is skipped",
                    redact_vin(mapping.vin),
                )
                return None
            self._cache.set_basic_data(mapping.vin, basic_data)
            await self._cache.async_save()
        return Vehicle(mapping.vin, mapping, basic_data)

    async def _async_prepare_container(self) -> None:
        """Find or create the container; only an invalid token stops the set-up here."""
        if not self._containers.needs_work():
            return
        try:
            await self._async_setup_call(self._containers.async_ensure)
        except ConfigEntryNotReady as err:
            # The stream works without it; a poll tick tries again.
            LOGGER.debug("Telematics container not ready yet: %s", err)

    async def _async_setup_call[T](self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a set-up request: refresh the token once if BMW calls it invalid.

        Raises ConfigEntryAuthFailed when the token stays invalid (or lacks the CarData
        API scope) and ConfigEntryNotReady for failures that may pass; other API errors
        (not found, permission denied) propagate.
        """
        try:
            try:
                return await call()
            except TokenInvalidError:
                await self._tokens.async_refresh(force=True)
                return await call()
        except TokenInvalidError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="setup_token_refused",
                translation_placeholders={"account": self._entry.title},
            ) from err
        except ScopeError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="setup_api_not_subscribed",
                translation_placeholders={"account": self._entry.title},
            ) from err
        except RateLimitError as err:
            self._budget.note_rate_limited()
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="setup_rate_limited",
                translation_placeholders={"account": self._entry.title},
            ) from err
        except RequestRefusedError as err:
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="setup_budget_spent",
                translation_placeholders={"account": self._entry.title},
            ) from err
        except (NotFoundError, PermissionDeniedError):
            raise
        except CarDataError as err:
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="setup_unavailable",
                translation_placeholders={"account": self._entry.title, "error": str(err)},
            ) from err

    @callback
    def _register_devices(self) -> None:
        """Give each readable vehicle a device; drop devices of vehicles no longer here."""
        registry = dr.async_get(self.hass)
        for vehicle in self.vehicles.values():
            registry.async_get_or_create(
                config_entry_id=self._entry.entry_id, **vehicle.device_info
            )
        for device in dr.async_entries_for_config_entry(registry, self._entry.entry_id):
            vins = {ident for domain, ident in device.identifiers if domain == DOMAIN}
            if vins and not vins & self.vehicles.keys():
                registry.async_update_device(device.id, remove_config_entry_id=self._entry.entry_id)

    # --- Polling ----------------------------------------------------------------------

    async def _async_update_data(self) -> dict[str, VehicleState]:
        """Poll every vehicle whose REST values are not recent (first and manual refresh).

        A restart therefore costs one request per vehicle at most, and none when the
        stored state is recent. Failures to reach BMW are logged, never raised: the
        stored values and the stream carry on, and a failed set-up would retry (and
        spend the budget) every few seconds.
        """
        if not self._prepared:
            await self.async_prepare()
        plan = self.polling
        if plan is not None and not self._stopped:
            now = dt_util.utcnow()
            for vin in self._due_vehicles(plan, now):
                if not await self._async_poll_vehicle(vin, raise_auth_failed=True):
                    break
        self.async_reschedule()
        return self._states

    def _due_vehicles(self, plan: PollingPlan, now: datetime) -> list[str]:
        """Return the vehicles polled at least `plan.per_vehicle` ago, longest ago first."""
        due = [vin for vin in self._readable() if self._vehicle_due_at(vin, plan, now) <= now]
        return sorted(due, key=lambda vin: self._vehicle_due_at(vin, plan, now))

    def _readable(self) -> list[str]:
        return [vin for vin in self.vehicles if vin not in self._unreadable]

    def _vehicle_due_at(self, vin: str, plan: PollingPlan, now: datetime) -> datetime:
        attempt = self._states[vin].last_poll_attempt
        return attempt + plan.per_vehicle if attempt is not None else now - plan.per_vehicle

    def _stale_basic_data(self, now: datetime) -> str | None:
        """Return a vehicle whose basic data is due for a refresh, if any."""
        for vin in self._readable():
            fetched_at = self._cache.basic_data_fetched_at(vin)
            if fetched_at is None or now >= fetched_at + BASIC_DATA_MAX_AGE:
                return vin
        return None

    def _housekeeping_due_at(self, now: datetime) -> datetime | None:
        """Return when the mappings or some basic data are next due for a refresh."""
        moments = [
            (fetched_at or now) + BASIC_DATA_MAX_AGE
            for fetched_at in map(self._cache.basic_data_fetched_at, self._readable())
        ]
        mappings_at = self._cache.mappings_fetched_at
        moments.append((mappings_at or now) + MAPPINGS_MAX_AGE)
        return min(moments)

    @callback
    def async_reschedule(self) -> None:
        """Plan the next poll tick (after the stream status or the budget option changed).

        The tick comes when the next piece of work is due (container, mappings, basic
        data, a vehicle's telematics), never sooner than one tick after the previous
        request, nor while the budget holds requests back.
        """
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None
        self.next_poll_at = None
        plan = self.polling
        if plan is None or self._stopped or self._auth_failed or not self._prepared:
            return
        now = dt_util.utcnow()
        due = [self._housekeeping_due_at(now)]
        if self._containers.container_id is not None:
            due.extend(self._vehicle_due_at(vin, plan, now) for vin in self._readable())
        elif self._containers.needs_work(now):
            due.append(now)
        elif (retry_at := self._containers.retry_at) is not None:
            due.append(retry_at)
        moments = [now, min(moment for moment in due if moment is not None)]
        if self._last_poll_at is not None:
            moments.append(self._last_poll_at + plan.tick)
        if self._not_before is not None:
            moments.append(self._not_before)
        self.next_poll_at = max(moments)
        self._unsub_timer = async_track_point_in_utc_time(
            self.hass, self._handle_tick_time, self.next_poll_at
        )

    @callback
    def _handle_tick_time(self, _now: datetime) -> None:
        self._unsub_timer = None
        # A tracked task: unloading waits for a poll in flight instead of cutting it off.
        self._entry.async_create_task(self.hass, self._async_tick(), name=f"{DOMAIN} poll tick")

    async def _async_tick(self) -> None:
        """One poll tick: one request's worth of work, the most urgent first."""
        plan = self.polling
        if plan is None or self._stopped:
            return
        try:
            await self._async_tick_work(plan)
        except ConfigEntryAuthFailed as err:
            # The token manager gave up on the refresh token: polling waits for the
            # reauthentication, which reloads the entry.
            LOGGER.debug("Polling stops until the account is re-authenticated: %s", err)
            self.last_exception = err
            self._auth_failed = True
            self._set_health(False)
            self._entry.async_start_reauth(self.hass)
        finally:
            self.async_reschedule()

    async def _async_tick_work(self, plan: PollingPlan) -> None:
        now = dt_util.utcnow()
        if self._not_before is not None and now < self._not_before:
            return
        self._not_before = None
        if self._budget.remaining_automatic(now) <= plan.reserve:
            LOGGER.debug("Automatic request budget nearly spent; poll skipped")
            self._not_before = max(
                self._budget.next_request_at(automatic=True, now=now), now + plan.tick
            )
        elif self._containers.needs_work(now):
            self._last_poll_at = now
            self._schedule_save()
            await self._async_guarded(self._containers.async_ensure())
        elif (mappings_at := self._cache.mappings_fetched_at) is None or (
            now >= mappings_at + MAPPINGS_MAX_AGE
        ):
            self._last_poll_at = now
            self._schedule_save()
            await self._async_guarded(self._async_refresh_mappings())
        elif (vin := self._stale_basic_data(now)) is not None:
            self._last_poll_at = now
            self._schedule_save()
            await self._async_guarded(self._async_refresh_basic_data(vin))
        elif due := self._due_vehicles(plan, now):
            await self._async_poll_vehicle(due[0], raise_auth_failed=False)

    async def _async_guarded(self, work: Awaitable[object]) -> None:
        """Run housekeeping requests of a tick; their failures are handled like a poll's."""
        try:
            await work
        except CarDataError as err:
            await self._async_handle_rest_error(err, raise_auth_failed=False)

    async def _async_refresh_mappings(self) -> None:
        """Refresh the stored mappings; reload the entry when the vehicles changed."""
        mappings = await self._client.get_vehicle_mappings()
        self._cache.set_mappings(mappings)
        await self._cache.async_save()
        primary = {mapping.vin for mapping in mappings if mapping.is_primary}
        if primary != self.vehicles.keys() | self._unreadable:
            LOGGER.info("The vehicles mapped to %s changed; reloading", self._entry.title)
            self.hass.config_entries.async_schedule_reload(self._entry.entry_id)

    async def _async_refresh_basic_data(self, vin: str) -> None:
        """Refresh a vehicle's stored basic data and its device."""
        try:
            basic_data = await self._client.get_basic_data(vin)
        except NotFoundError:
            # Keep what is known (possibly nothing) and look again after the usual age.
            basic_data = self.vehicles[vin].basic_data or BasicData.from_json({}, vin=vin)
        self._cache.set_basic_data(vin, basic_data)
        await self._cache.async_save()
        self.vehicles[vin].basic_data = basic_data
        self._register_devices()

    async def _async_poll_vehicle(self, vin: str, *, raise_auth_failed: bool) -> bool:
        """Poll one vehicle's telematics; return False when polling should stop for now."""
        container_id = self._containers.container_id
        if container_id is None:
            return False
        now = dt_util.utcnow()
        try:
            data = await self._client.get_telematic_data(vin, container_id)
        except RequestRefusedError as err:
            # Nothing was sent; the budget decides when to try again.
            await self._async_handle_rest_error(err, raise_auth_failed=raise_auth_failed)
            return False
        except PermissionDeniedError as err:
            self._note_attempt(vin, now)
            if err.container:
                LOGGER.info("BMW no longer knows the telematics container; it is looked up again")
                await self._containers.async_forget()
            else:
                LOGGER.warning(
                    "BMW refuses the telematics of vehicle %s (%s); it is no longer polled",
                    redact_vin(vin),
                    err.error_id,
                )
                self._unreadable.add(vin)
            return False
        except CarDataError as err:
            self._note_attempt(vin, now)
            await self._async_handle_rest_error(err, raise_auth_failed=raise_auth_failed)
            return False
        self._note_attempt(vin, now)
        if self._failures:
            LOGGER.info("REST polling works again")
        self._failures = 0
        self._failure_logged = False
        self.apply_rest_values(vin, data.values)
        self._update_health()
        return True

    def _note_attempt(self, vin: str, moment: datetime) -> None:
        """Remember a sent poll: it spaces the next ones, across restarts too."""
        self._states[vin].last_poll_attempt = moment
        self._last_poll_at = moment
        self._schedule_save()

    async def _async_handle_rest_error(self, err: CarDataError, *, raise_auth_failed: bool) -> None:
        """React to a failed automatic request; the last values stay."""
        now = dt_util.utcnow()
        if isinstance(err, RequestRefusedError):
            LOGGER.debug("Poll skipped: %s", err)
            plan = self.polling
            fallback = now + (plan.tick if plan else BUDGET_WINDOW)
            self._not_before = err.retry_at or fallback
        elif isinstance(err, RateLimitError):
            # Not an authentication problem: BMW's daily budget is spent (maybe by another
            # client of the account).
            self._budget.note_rate_limited()
            self._not_before = self._budget.blocked_until
        elif isinstance(err, TokenInvalidError):
            LOGGER.debug("BMW refused the access token; refreshing it")
            await self._async_force_token_refresh(raise_auth_failed=raise_auth_failed)
        elif isinstance(err, ScopeError):
            if not self._scope_warned:
                LOGGER.warning(
                    "BMW refuses REST requests: the token does not allow the CarData API. "
                    "Subscribe the client to CarData API in BMW's portal and re-authenticate"
                )
                self._scope_warned = True
            self._not_before = now + SCOPE_ERROR_PAUSE
        elif isinstance(err, ApiError | CarDataConnectionError):
            self._failures += 1
            self.last_exception = err
            if not self._failure_logged:
                LOGGER.warning("BMW CarData REST request failed, values kept: %s", err)
                self._failure_logged = True
            else:
                LOGGER.debug("BMW CarData REST request failed again: %s", err)
            self._update_health()
        else:
            LOGGER.debug("REST request not possible: %s", err)

    async def _async_force_token_refresh(self, *, raise_auth_failed: bool) -> None:
        """Refresh the token after BMW refused it; the next tick retries the request."""
        try:
            await self._tokens.async_refresh(force=True)
        except ConfigEntryAuthFailed as err:
            self.last_exception = err
            self._set_health(False)
            if raise_auth_failed:
                raise
            self._entry.async_start_reauth(self.hass)
        except CarDataError as err:
            LOGGER.debug("Token refresh failed, retried later: %s", err)

    # --- Health -------------------------------------------------------------------------

    @callback
    def _update_health(self) -> None:
        self._set_health(self.stream_delivers or self._failures < FAILURES_BEFORE_UNAVAILABLE)

    @callback
    def _set_health(self, healthy: bool) -> None:
        """Publish whether anything updates the values; listeners hear of changes only."""
        if healthy == self.last_update_success:
            return
        self.last_update_success = healthy
        self.async_update_listeners()

    # --- Budget option ------------------------------------------------------------------

    @callback
    def _handle_budget_change(self) -> None:
        """Replan when the automatic budget option changed (every spent request lands here)."""
        if self._budget.automatic_limit != self._automatic_limit:
            self._automatic_limit = self._budget.automatic_limit
            self.async_reschedule()

    # --- Persistence --------------------------------------------------------------------

    @callback
    def _schedule_save(self) -> None:
        """Write the state soon; at most STATE_SAVE_DELAY after the first unsaved change.

        The Store restarts its delay on every call, and the stream may never pause that
        long; so a save already planned is left alone.
        """
        if self._save_pending:
            return
        self._save_pending = True
        self._store.async_delay_save(self._data_to_save, STATE_SAVE_DELAY)

    def _data_to_save(self) -> dict[str, Any]:
        self._save_pending = False
        return {
            "last_poll_at": self._last_poll_at.isoformat() if self._last_poll_at else None,
            "vehicles": {vin: self._states[vin].as_dict() for vin in self.vehicles},
        }

    def _restore(self, stored: Mapping[str, Any]) -> None:
        """Take over the state stored before the restart, for the vehicles still here."""
        self._last_poll_at = _moment(stored.get("last_poll_at"))
        saved = stored.get("vehicles")
        for vin in self.vehicles:
            vehicle_state = saved.get(vin) if isinstance(saved, Mapping) else None
            self._states[vin] = (
                VehicleState.from_dict(vehicle_state)
                if isinstance(vehicle_state, Mapping)
                else VehicleState()
            )

    async def async_shutdown(self) -> None:
        """Stop polling and write the state (the entry unloads or Home Assistant stops)."""
        self._stopped = True
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None
        if self._unsub_budget is not None:
            self._unsub_budget()
            self._unsub_budget = None
        await super().async_shutdown()
        if self._prepared:
            await self._store.async_save(self._data_to_save())
