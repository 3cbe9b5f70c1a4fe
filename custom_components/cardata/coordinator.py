"""Set-up and housekeeping of one BMW account's vehicles, and the hub the rest hangs on.

The coordinator loads the vehicles (mappings and basic data from the account cache, else
REST), registers their devices, keeps the stored state, and refreshes what rarely changes.
Two collaborators do the rest: `VehicleStates` (vehicle_states.py) holds the descriptor
states and tells the listeners; `RestPoller` (polling.py) spends the automatic budget.

What rarely changes (mappings, basic data, the container id) comes from the account cache,
and the descriptor states with the time of each vehicle's last poll are stored, so a restart
of Home Assistant costs at most one request per vehicle, and none when the stored state is
recent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .api.client import CarDataClient
from .api.errors import (
    NotFoundError,
    PermissionDeniedError,
)
from .api.models import BasicData, StreamMessage, TelematicValue, VehicleMapping
from .api.stream import StreamStatus
from .cache import AccountCache
from .charging import IS_PLUGGED, SOC_DISPLAYED, SOC_HEADER, ChargingTracker
from .charging_history import ChargingHistoryImporter
from .const import CONF_GCID, DOMAIN, LOGGER
from .containers import ContainerKeeper
from .housekeeping import Housekeeping
from .polling import (
    FAILURES_BEFORE_UNAVAILABLE,
    PollingPlan,
    RestPoller,
    TokenRefresher,
    polling_plan,
)
from .quota import Budget
from .setup_requests import SetupBackoff, async_setup_request
from .stream_watch import StreamWatch
from .vehicle import DescriptorState, Source, Vehicle, VehicleState, redact_vin
from .vehicle_events import EventDetector
from .vehicle_states import DescriptorListener, VehicleListener, VehicleStates

__all__ = ["CarDataCoordinator", "PollingPlan", "polling_plan"]

STORAGE_VERSION: Final = 1
# Stream messages arrive by the thousand a day; their state is written in batches.
STATE_SAVE_DELAY: Final = 30


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
        self._setup_backoff = SetupBackoff.for_account(hass, str(gcid))
        self.vehicles: dict[str, Vehicle] = {}
        self.states = VehicleStates(self.schedule_save)
        self.charging = ChargingTracker(hass, str(gcid), self.states)
        self.history = ChargingHistoryImporter(hass, str(gcid), client)
        self._housekeeping = Housekeeping(
            self, entry, client=client, cache=cache, history=self.history
        )
        self.events = EventDetector(self.states, self.charging, self)
        self.data = self.states.by_vin
        self.poller = RestPoller(
            hass,
            entry,
            self,
            client=client,
            budget=budget,
            containers=self._containers,
            states=self.states,
            tokens=tokens,
        )
        self._stream = StreamWatch(hass, self._handle_stream_delivery)
        self.last_stream_message_at: datetime | None = None
        self._unsub_budget: CALLBACK_TYPE | None = None
        self._automatic_limit = budget.automatic_limit
        self._unreadable: set[str] = set()
        self._prepared = False
        self._save_pending = False

    # --- Reading state ----------------------------------------------------------------

    def state(self, vin: str) -> Mapping[str, DescriptorState]:
        """Return the current descriptor states of a vehicle (read-only, live view)."""
        return self.states.descriptors(vin)

    @property
    def stream_status(self) -> StreamStatus | None:
        """Return what the stream last reported about itself (None before it did)."""
        return self._stream.status

    @property
    def stream_delivers(self) -> bool:
        """Return True while the stream delivers; a planned reconnect does not interrupt it."""
        return self._stream.delivers

    @property
    def polling(self) -> PollingPlan | None:
        """Return the polling plan in force (None when no vehicle can be polled)."""
        return self.poller.plan

    @property
    def next_poll_at(self) -> datetime | None:
        """Return when the next poll tick is planned (None when none is)."""
        return self.poller.next_poll_at

    def last_rest_fetch(self, vin: str) -> datetime | None:
        """Return when REST telematics of a vehicle were last received."""
        vehicle_state = self.states.by_vin.get(vin)
        return vehicle_state.last_rest_fetch if vehicle_state else None

    def is_electrified(self, vin: str) -> bool:
        """Return True for a car with a traction battery (electric or plug-in hybrid)."""
        known = self.states.descriptors(vin)
        if any(
            (state := known.get(descriptor)) is not None and not state.is_placeholder
            for descriptor in (SOC_HEADER, SOC_DISPLAYED, IS_PLUGGED)
        ):
            return True
        basic_data = self.vehicles[vin].basic_data
        drive_train = (basic_data.drive_train or "") if basic_data else ""
        return any(kind in drive_train.upper() for kind in ("BEV", "PHEV", "ELECTRIC"))

    def readable_vins(self) -> list[str]:
        """Return the vehicles whose telematics BMW serves to this account."""
        return [vin for vin in self.vehicles if vin not in self._unreadable]

    # --- Listeners --------------------------------------------------------------------

    @callback
    def async_add_descriptor_listener(
        self, vin: str, descriptors: Iterable[str], listener: DescriptorListener
    ) -> CALLBACK_TYPE:
        """Call `listener()` whenever one of `descriptors` of vehicle `vin` changes.

        See `VehicleStates.async_add_descriptor_listener`; entities typically pass their
        `async_write_ha_state`. Returns the function that removes the listener.
        """
        return self.states.async_add_descriptor_listener(vin, descriptors, listener)

    @callback
    def async_add_vehicle_listener(self, vin: str, listener: VehicleListener) -> CALLBACK_TYPE:
        """Call `listener(change)` after every update that changed vehicle `vin`."""
        return self.states.async_add_vehicle_listener(vin, listener)

    # --- Feeding state ----------------------------------------------------------------

    @callback
    def apply_stream_message(self, message: StreamMessage) -> None:
        """Merge a stream message; messages for vehicles not read here are ignored."""
        received_at = dt_util.utcnow()
        self.last_stream_message_at = received_at
        if message.vin not in self.vehicles:
            return
        self._apply(message.vin, message.updates, "stream", received_at)
        self.update_health()

    @callback
    def apply_rest_values(self, vin: str, values: Mapping[str, TelematicValue]) -> None:
        """Merge REST telematics of a vehicle (a poll, or an action's result)."""
        if vin not in self.vehicles:
            return
        received_at = dt_util.utcnow()
        self.states.vehicle(vin).last_rest_fetch = received_at
        self._apply(vin, values, "rest", received_at)

    @callback
    def _apply(
        self,
        vin: str,
        updates: Mapping[str, TelematicValue],
        source: Source,
        received_at: datetime,
    ) -> None:
        self.states.merge(vin, updates, source, received_at)

    @callback
    def request_event_poll(self, vin: str, reason: str) -> bool:
        """Poll a vehicle soon because of an event (see `RestPoller.request_event_poll`)."""
        return self.poller.request_event_poll(vin, reason)

    @callback
    def set_stream_status(self, status: StreamStatus) -> None:
        """Take note of the stream's state; polling speeds up once it is really down."""
        self._stream.update(status)

    @callback
    def _handle_stream_delivery(self, delivers: bool) -> None:
        LOGGER.debug(
            "Stream %s; REST polling adapts",
            "connected" if delivers else f"not connected ({self._stream.status})",
        )
        self.update_health()
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
        self.poller.last_poll_at = _moment(stored.get("last_poll_at"))
        self.states.restore(self.vehicles, stored.get("vehicles"))
        self._register_devices()
        await self.charging.async_start(self.vehicles)
        await self.history.async_load()
        self.events.async_start(self.vehicles)
        self.charging.async_add_finished_listener(
            lambda vin, session: self.note_charging_session_ended(vin, session.ended_at)
        )
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
        """Run a set-up request with the token retry, error mapping and backoff of set-up."""
        return await async_setup_request(
            call,
            tokens=self._tokens,
            budget=self._budget,
            backoff=self._setup_backoff,
            account=self._entry.title,
        )

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
                # The car's device belongs to this account alone (a car has one primary
                # user); detaching it from the entry is deprecated from 2026.10 on.
                registry.async_remove_device(device.id)

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
        if plan is not None and not self.poller.stopped:
            now = dt_util.utcnow()
            for vin in self.poller.due_vehicles(plan, now):
                if not await self.poller.async_poll_vehicle(vin, raise_auth_failed=True):
                    break
        self.async_reschedule()
        return self.states.by_vin

    @callback
    def async_reschedule(self) -> None:
        """Plan the next poll tick (after the stream status or the budget option changed)."""
        if self._prepared:
            self.poller.async_reschedule()

    @callback
    def mark_unreadable(self, vin: str) -> None:
        """Stop polling a vehicle BMW refuses to serve."""
        self._unreadable.add(vin)

    @callback
    def polling_stopped_for_reauth(self, err: ConfigEntryAuthFailed) -> None:
        """Wait for the reauthentication, which reloads the entry; until then nothing polls."""
        self.last_exception = err
        self._set_health(False)
        self._entry.async_start_reauth(self.hass)

    # --- Housekeeping (housekeeping.py) -----------------------------------------------

    def housekeeping_due_at(self, now: datetime) -> datetime | None:
        """Return when the mappings, basic data or a charging history are next due."""
        return self._housekeeping.due_at(now)

    def housekeeping_work(self, now: datetime) -> Awaitable[None] | None:
        """Return the most urgent housekeeping request that is due, if any."""
        return self._housekeeping.work(now)

    def urgent_housekeeping_at(self, now: datetime) -> datetime | None:
        """Return when a charging history that follows a finished session is due."""
        return self._housekeeping.urgent_at(now)

    @callback
    def note_charging_session_ended(self, vin: str, ended_at: datetime) -> None:
        """Fetch the car's charging history soon: BMW files the session that just ended."""
        self.history.note_session_ended(vin, ended_at)
        self.async_reschedule()

    def register_devices(self) -> None:
        """Give each readable vehicle a device; drop devices of vehicles no longer here."""
        self._register_devices()

    def known_vins(self) -> set[str]:
        """Return the primary vehicles set up here, readable or not."""
        return self.vehicles.keys() | self._unreadable

    # --- Health -------------------------------------------------------------------------

    @callback
    def update_health(self) -> None:
        """Publish whether anything updates the values."""
        if self.poller.last_error is not None:
            self.last_exception = self.poller.last_error
        self._set_health(self.stream_delivers or self.poller.failures < FAILURES_BEFORE_UNAVAILABLE)

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
    def schedule_save(self) -> None:
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
        last_poll_at = self.poller.last_poll_at
        return {
            "last_poll_at": last_poll_at.isoformat() if last_poll_at else None,
            "vehicles": self.states.as_dict(self.vehicles),
        }

    async def async_shutdown(self) -> None:
        """Stop polling and write the state (the entry unloads or Home Assistant stops)."""
        self.poller.stopped = True
        self.poller.async_cancel()
        self._stream.stop()
        if self._unsub_budget is not None:
            self._unsub_budget()
            self._unsub_budget = None
        await super().async_shutdown()
        self.events.async_stop()
        if self._prepared:
            await self.charging.async_stop()
            await self._store.async_save(self._data_to_save())
