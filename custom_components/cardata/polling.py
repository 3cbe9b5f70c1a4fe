"""When the integration spends REST requests on its own, and what it does with the answers.

REST costs one request of BMW's 50 per day for each vehicle snapshot; the stream is free. So
while the stream delivers, each vehicle is polled rarely (for what the stream does not carry,
such as the predicted charging level and hvStatus), and as often as the automatic budget
allows while it does not. Polls are spread evenly, one request per tick; after a pause
nothing is caught up.

On top of that floor, an event (a charging session or trip ended, the car plugged in or
unplugged) is when a REST-only value is worth a request: `request_event_poll` polls that
vehicle once, soon after, with a cooldown, and only while the automatic budget keeps room for
the even plan.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
import math
from typing import TYPE_CHECKING, Final, Protocol

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .api.errors import (
    ApiError,
    CarDataConnectionError,
    CarDataError,
    PermissionDeniedError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
    TokenInvalidError,
)
from .const import BUDGET_WINDOW, DOMAIN, LOGGER
from .vehicle import redact_vin

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

    from .api.client import CarDataClient
    from .api.models import TelematicValue
    from .containers import ContainerKeeper
    from .quota import Budget
    from .vehicle_states import VehicleStates

# While the stream delivers, REST only fills in what the stream lacks; events (a trip or a
# charging session ended, the cable plugged) poll at the moments that matter on top.
STREAM_UP_VEHICLE_INTERVAL: Final = timedelta(hours=6)
# Automatic requests polling leaves for set-up and container work each day.
SETUP_RESERVE: Final = 4
# REST failures in a row (without the stream) before the data counts as not updating.
FAILURES_BEFORE_UNAVAILABLE: Final = 2
# How long to leave REST alone after BMW said the token lacks the CarData API scope.
SCOPE_ERROR_PAUSE: Final = timedelta(hours=6)
# BMW's REST view of a car lags its stream by about a minute; an event poll waits that long.
EVENT_POLL_DELAY: Final = timedelta(seconds=75)
# One event poll per vehicle per this long: plugging in and starting to charge, or a trip's
# end and plugging in, come minutes apart and are worth one request together.
EVENT_POLL_COOLDOWN: Final = timedelta(minutes=45)


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
    day; with the stream each vehicle is polled every six hours, if the budget allows.
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


class PollOwner(Protocol):
    """What the poller needs from the coordinator that owns it."""

    @property
    def stream_delivers(self) -> bool:
        """Return True while the stream is (as good as) connected."""

    def readable_vins(self) -> list[str]:
        """Return the vehicles whose telematics BMW serves to this account."""

    def mark_unreadable(self, vin: str) -> None:
        """Stop polling a vehicle BMW refuses to serve."""

    def housekeeping_due_at(self, now: datetime) -> datetime | None:
        """Return when the mappings or some basic data are next due for a refresh."""

    def housekeeping_work(self, now: datetime) -> Awaitable[None] | None:
        """Return the most urgent housekeeping request that is due, if any."""

    def urgent_housekeeping_at(self, now: datetime) -> datetime | None:
        """Return when housekeeping that follows an event is due (not held to the tick)."""

    def apply_rest_values(self, vin: str, values: dict[str, TelematicValue]) -> None:
        """Merge REST telematics of a vehicle."""

    def update_health(self) -> None:
        """Publish whether anything updates the values."""

    def schedule_save(self) -> None:
        """Write the state soon."""

    def polling_stopped_for_reauth(self, err: ConfigEntryAuthFailed) -> None:
        """Stop for good until the account is re-authenticated."""


class TokenRefresher(Protocol):
    """The part of the token manager the poller needs."""

    async def async_refresh(self, *, force: bool) -> object:
        """Refresh the tokens; raises ConfigEntryAuthFailed when a reauth is needed."""


class RestPoller:
    """The budgeted REST polling of one account: its plan, its timer and its error handling."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        owner: PollOwner,
        *,
        client: CarDataClient,
        budget: Budget,
        containers: ContainerKeeper,
        states: VehicleStates,
        tokens: TokenRefresher,
    ) -> None:
        """Create the poller; nothing is scheduled before `async_reschedule`."""
        self._hass = hass
        self._entry = entry
        self._owner = owner
        self._client = client
        self._budget = budget
        self._containers = containers
        self._states = states
        self._tokens = tokens
        self.last_poll_at: datetime | None = None
        self.next_poll_at: datetime | None = None
        self.failures = 0
        self.last_error: CarDataError | None = None
        self._failure_logged = False
        self._not_before: datetime | None = None
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._scope_warned = False
        self.stopped = False
        # Event polls asked for: VIN -> when the poll is due; and when each VIN last had one.
        self._event_polls: dict[str, datetime] = {}
        self._last_event_poll: dict[str, datetime] = {}

    @property
    def plan(self) -> PollingPlan | None:
        """Return the polling plan in force (None when no vehicle can be polled)."""
        return polling_plan(
            len(self._owner.readable_vins()),
            self._budget.automatic_limit,
            self._owner.stream_delivers,
        )

    # --- Event polls ----------------------------------------------------------------------

    @callback
    def request_event_poll(self, vin: str, reason: str) -> bool:
        """Poll `vin` once soon because something happened; return False when declined.

        Declined within the cooldown of the vehicle's last event poll, and when the automatic
        budget could not also pay for the rest of the evenly spread plan.
        """
        now = dt_util.utcnow()
        plan = self.plan
        if plan is None or self.stopped or vin not in self._owner.readable_vins():
            return False
        last = self._last_event_poll.get(vin)
        if vin in self._event_polls or (last is not None and now < last + EVENT_POLL_COOLDOWN):
            LOGGER.debug(
                "Event %s of %s: a poll is already planned or recent", reason, redact_vin(vin)
            )
            return False
        # One round of the even plan stays affordable after the event poll.
        if self._budget.remaining_automatic(now) <= plan.reserve + len(self._owner.readable_vins()):
            LOGGER.debug(
                "Event %s of %s: the budget keeps its room for the plan", reason, redact_vin(vin)
            )
            return False
        LOGGER.debug("Event %s of %s: polling it soon", reason, redact_vin(vin))
        self._event_polls[vin] = now + EVENT_POLL_DELAY
        self._last_event_poll[vin] = now
        self.async_reschedule()
        return True

    # --- Which vehicle is due -------------------------------------------------------------

    def due_vehicles(self, plan: PollingPlan, now: datetime) -> list[str]:
        """Return the vehicles polled at least `plan.per_vehicle` ago, longest ago first."""
        due = [vin for vin in self._owner.readable_vins() if self._due_at(vin, plan, now) <= now]
        return sorted(due, key=lambda vin: self._due_at(vin, plan, now))

    def _due_at(self, vin: str, plan: PollingPlan, now: datetime) -> datetime:
        attempt = self._states.vehicle(vin).last_poll_attempt
        return attempt + plan.per_vehicle if attempt is not None else now - plan.per_vehicle

    # --- Timer ----------------------------------------------------------------------------

    @callback
    def async_reschedule(self) -> None:
        """Plan the next poll tick (after the stream status or the budget option changed).

        The tick comes when the next piece of work is due (container, mappings, basic
        data, an event poll, a vehicle's telematics), never sooner than one tick after the
        previous request (event polls excepted), nor while the budget holds requests back.
        """
        self.async_cancel()
        plan = self.plan
        if plan is None or self.stopped:
            return
        now = dt_util.utcnow()
        due = [self._owner.housekeeping_due_at(now)]
        if self._containers.container_id is not None:
            due.extend(self._due_at(vin, plan, now) for vin in self._owner.readable_vins())
        elif self._containers.needs_work(now):
            due.append(now)
        elif (retry_at := self._containers.retry_at) is not None:
            due.append(retry_at)
        moments = [now, min(moment for moment in due if moment is not None)]
        if self.last_poll_at is not None:
            moments.append(self.last_poll_at + plan.tick)
        next_at = max(moments)
        if self._event_polls and self._containers.container_id is not None:
            next_at = min(next_at, max(now, min(self._event_polls.values())))
        if (urgent := self._owner.urgent_housekeeping_at(now)) is not None:
            next_at = min(next_at, max(now, urgent))
        if self._not_before is not None:
            next_at = max(next_at, self._not_before)
        self.next_poll_at = next_at
        self._unsub_timer = async_track_point_in_utc_time(
            self._hass, self._handle_tick_time, next_at
        )

    @callback
    def async_cancel(self) -> None:
        """Cancel the planned tick."""
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None
        self.next_poll_at = None

    @callback
    def _handle_tick_time(self, _now: datetime) -> None:
        self._unsub_timer = None
        # A tracked task: unloading waits for a poll in flight instead of cutting it off.
        self._entry.async_create_task(self._hass, self._async_tick(), name=f"{DOMAIN} poll tick")

    async def _async_tick(self) -> None:
        """One poll tick: one request's worth of work, the most urgent first."""
        plan = self.plan
        if plan is None or self.stopped:
            return
        try:
            await self._async_tick_work(plan)
        except ConfigEntryAuthFailed as err:
            # The token manager gave up on the refresh token: polling waits for the
            # reauthentication, which reloads the entry.
            LOGGER.debug("Polling stops until the account is re-authenticated: %s", err)
            self.stopped = True
            self._owner.polling_stopped_for_reauth(err)
        finally:
            self.async_reschedule()

    async def _async_tick_work(self, plan: PollingPlan) -> None:
        now = dt_util.utcnow()
        if self._not_before is not None and now < self._not_before:
            return
        self._not_before = None
        event_vin = self._due_event_poll(now)
        if self._budget.remaining_automatic(now) <= plan.reserve:
            LOGGER.debug("Automatic request budget nearly spent; poll skipped")
            self._event_polls.clear()
            self._not_before = max(
                self._budget.next_request_at(automatic=True, now=now), now + plan.tick
            )
        elif self._containers.needs_work(now):
            self._note_request(now)
            await self.async_guarded(self._containers.async_ensure())
        elif event_vin is not None:
            del self._event_polls[event_vin]
            await self.async_poll_vehicle(event_vin, raise_auth_failed=False)
        elif (work := self._owner.housekeeping_work(now)) is not None:
            self._note_request(now)
            await self.async_guarded(work)
        elif due := self.due_vehicles(plan, now):
            await self.async_poll_vehicle(due[0], raise_auth_failed=False)

    def _due_event_poll(self, now: datetime) -> str | None:
        due = [vin for vin, at in self._event_polls.items() if at <= now]
        return min(due, key=self._event_polls.__getitem__) if due else None

    def _note_request(self, now: datetime) -> None:
        self.last_poll_at = now
        self._owner.schedule_save()

    # --- Requests -------------------------------------------------------------------------

    async def async_guarded(self, work: Awaitable[object]) -> None:
        """Run housekeeping requests of a tick; their failures are handled like a poll's."""
        try:
            await work
        except CarDataError as err:
            await self._async_handle_error(err, raise_auth_failed=False)

    async def async_poll_vehicle(self, vin: str, *, raise_auth_failed: bool) -> bool:
        """Poll one vehicle's telematics; return False when polling should stop for now."""
        container_id = self._containers.container_id
        if container_id is None:
            return False
        now = dt_util.utcnow()
        try:
            data = await self._client.get_telematic_data(vin, container_id)
        except RequestRefusedError as err:
            # Nothing was sent; the budget decides when to try again.
            await self._async_handle_error(err, raise_auth_failed=raise_auth_failed)
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
                self._owner.mark_unreadable(vin)
            return False
        except CarDataError as err:
            self._note_attempt(vin, now)
            await self._async_handle_error(err, raise_auth_failed=raise_auth_failed)
            return False
        self._note_attempt(vin, now)
        if self.failures:
            LOGGER.info("REST polling works again")
        self.failures = 0
        self._failure_logged = False
        self._owner.apply_rest_values(vin, data.values)
        self._owner.update_health()
        return True

    def _note_attempt(self, vin: str, moment: datetime) -> None:
        """Remember a sent poll: it spaces the next ones, across restarts too."""
        self._states.vehicle(vin).last_poll_attempt = moment
        self._note_request(moment)

    async def _async_handle_error(self, err: CarDataError, *, raise_auth_failed: bool) -> None:
        """React to a failed automatic request; the last values stay."""
        now = dt_util.utcnow()
        if isinstance(err, RequestRefusedError):
            LOGGER.debug("Poll skipped: %s", err)
            plan = self.plan
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
            self.failures += 1
            self.last_error = err
            if not self._failure_logged:
                LOGGER.warning("BMW CarData REST request failed, values kept: %s", err)
                self._failure_logged = True
            else:
                LOGGER.debug("BMW CarData REST request failed again: %s", err)
            self._owner.update_health()
        else:
            LOGGER.debug("REST request not possible: %s", err)

    async def _async_force_token_refresh(self, *, raise_auth_failed: bool) -> None:
        """Refresh the token after BMW refused it; the next tick retries the request."""
        try:
            await self._tokens.async_refresh(force=True)
        except ConfigEntryAuthFailed as err:
            if raise_auth_failed:
                raise
            self.stopped = True
            self._owner.polling_stopped_for_reauth(err)
        except CarDataError as err:
            LOGGER.debug("Token refresh failed, retried later: %s", err)
