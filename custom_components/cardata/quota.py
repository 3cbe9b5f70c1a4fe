"""BMW's budget of 50 REST requests per account and day, shared by every caller.

Every REST request of the integration (set-up, polling, actions, the config flow) passes
through the account's one `Budget` before it is sent. The budget counts requests in a
rolling 24-hour window, which is never more generous than BMW's reset at 00:00 UTC, and it
is stored so a restart of Home Assistant remembers what was spent. Automatic requests are
capped by the user's option; a single request the user asks for may use whatever the window
has left. Requests that multiply on their own (every page of an action's `all_pages`) are
"spare only": they never touch what automatic requests may still spend, so one action cannot
stop automatic polling for a day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .api.errors import RequestRefusedError
from .const import BUDGET_WINDOW, DAILY_BUDGET, DEFAULT_AUTOMATIC_BUDGET, DOMAIN, LOGGER
from .listeners import Listeners

STORAGE_VERSION = 1
# Written on the next loop turn, not after HA's usual quiet period: the Store's delay restarts
# with every change, and a count lost in a crash lets a restart overspend BMW's budget. At
# most 50 writes a day cost nothing.
SAVE_DELAY = 0
BUDGETS: HassKey[dict[str, Budget]] = HassKey(f"{DOMAIN}_budgets")
_LOAD_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_budgets_lock")


@dataclass(frozen=True, slots=True)
class SpentRequest:
    """One request sent to BMW's REST API."""

    at: datetime
    endpoint: str
    automatic: bool


class Budget:
    """The request budget of one BMW account (GCID)."""

    def __init__(self, hass: HomeAssistant, gcid: str) -> None:
        """Create an empty budget; call `async_load` before use."""
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.budget.{gcid}")
        self._spent: list[SpentRequest] = []
        self._blocked_until: datetime | None = None
        self._listeners: Listeners[()] = Listeners()
        self.automatic_limit = DEFAULT_AUTOMATIC_BUDGET

    async def async_load(self) -> None:
        """Read what was spent before the last restart."""
        stored = await self._store.async_load() or {}
        self._spent = [
            SpentRequest(datetime.fromtimestamp(at, UTC), endpoint, automatic)
            for at, endpoint, automatic in stored.get("spent", [])
        ]
        blocked = stored.get("blocked_until")
        self._blocked_until = datetime.fromtimestamp(blocked, UTC) if blocked else None
        self._prune(dt_util.utcnow())

    # --- What is left ---------------------------------------------------------------

    def _prune(self, now: datetime) -> None:
        horizon = now - BUDGET_WINDOW
        self._spent = [request for request in self._spent if request.at > horizon]
        if self._blocked_until is not None and now >= self._blocked_until:
            self._blocked_until = None

    def spent(self, now: datetime | None = None) -> list[SpentRequest]:
        """Return the requests sent in the last 24 hours, oldest first."""
        self._prune(now or dt_util.utcnow())
        return list(self._spent)

    def remaining(self, now: datetime | None = None) -> int:
        """Return how many requests any caller may still send in the current window."""
        now = now or dt_util.utcnow()
        self._prune(now)
        if self._blocked_until is not None:
            return 0
        return max(0, DAILY_BUDGET - len(self._spent))

    def remaining_automatic(self, now: datetime | None = None) -> int:
        """Return how many requests the integration may still send by itself."""
        now = now or dt_util.utcnow()
        automatic = sum(1 for request in self.spent(now) if request.automatic)
        return max(0, min(self.remaining(now), self.automatic_limit - automatic))

    def remaining_spare(self, now: datetime | None = None) -> int:
        """Return how many requests fit without taking any the automatic share may still spend.

        With the automatic share not yet spent this is the user's own share (50 less the
        automatic limit) less what actions sent; beyond it, whatever the window has left.
        """
        now = now or dt_util.utcnow()
        automatic = sum(1 for request in self.spent(now) if request.automatic)
        kept_for_automatic = max(0, self.automatic_limit - automatic)
        return max(0, self.remaining(now) - kept_for_automatic)

    @property
    def blocked_until(self) -> datetime | None:
        """When BMW said the budget was spent: the moment REST is tried again."""
        self._prune(dt_util.utcnow())
        return self._blocked_until

    def next_request_at(
        self, *, automatic: bool, spare_only: bool = False, now: datetime | None = None
    ) -> datetime:
        """Return the earliest moment a request of this kind fits (now if it fits now).

        For a spare-only request this is the moment the user's share frees a request while
        the automatic share is not spent; automatic requests leaving the window may delay it.
        """
        now = now or dt_util.utcnow()
        self._prune(now)
        if self._blocked_until is not None:
            return self._blocked_until
        automatic_spent = sum(1 for request in self._spent if request.automatic)
        if spare_only and automatic_spent < self.automatic_limit:
            by_user = [request for request in self._spent if not request.automatic]
            excess = len(by_user) - (DAILY_BUDGET - self.automatic_limit)
            if excess < 0:
                return now
            if excess < len(by_user):
                return by_user[excess].at + BUDGET_WINDOW
            # The automatic share is the whole budget: no request of the user's frees one.
            return now + BUDGET_WINDOW
        candidates = self._spent
        limit = DAILY_BUDGET
        if automatic and self.remaining(now) > 0:
            candidates = [request for request in self._spent if request.automatic]
            limit = self.automatic_limit
        excess = len(candidates) - limit
        if excess < 0:
            return now
        return candidates[excess].at + BUDGET_WINDOW

    # --- Spending -------------------------------------------------------------------

    def acquire(self, endpoint: str, *, automatic: bool, spare_only: bool = False) -> None:
        """Count one request about to be sent, or refuse it with RequestRefusedError.

        `spare_only` requests (not automatic) are refused where they would take a request
        the automatic share may still spend. Synchronous on purpose: checking and counting
        cannot interleave with another caller on the event loop, so concurrent callers never
        overspend.
        """
        now = dt_util.utcnow()
        if automatic:
            allowed = self.remaining_automatic(now)
        elif spare_only:
            allowed = self.remaining_spare(now)
        else:
            allowed = self.remaining(now)
        if allowed <= 0:
            retry_at = self.next_request_at(automatic=automatic, spare_only=spare_only, now=now)
            kind = "automatic " if automatic else "spare " if spare_only else ""
            raise RequestRefusedError(
                f"{kind}request budget for {endpoint} spent until {retry_at.isoformat(timespec='minutes')}",
                retry_at=retry_at,
            )
        self._spent.append(SpentRequest(now, endpoint, automatic))
        self._changed()

    def request_hook(
        self, *, automatic: bool, spare_only: bool = False
    ) -> Callable[[str], Awaitable[None]]:
        """Return the client library's `before_request` hook for one kind of caller."""

        async def before_request(endpoint: str) -> None:
            self.acquire(endpoint, automatic=automatic, spare_only=spare_only)

        return before_request

    def note_rate_limited(self) -> None:
        """BMW answered CU-429: stop REST until BMW's daily reset at 00:00 UTC.

        Another client on the same account may have spent the budget, so BMW's word
        overrides our own count.
        """
        now = dt_util.utcnow()
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        if self._blocked_until is None:
            LOGGER.warning(
                "BMW reports the daily CarData request budget as spent (%s requests counted here); "
                "REST requests pause until %s",
                len(self.spent(now)),
                midnight.isoformat(timespec="minutes"),
            )
        self._blocked_until = midnight
        self._changed()

    # --- Persistence and listeners ----------------------------------------------------

    def _changed(self) -> None:
        self._store.async_delay_save(self._data_to_save, SAVE_DELAY)
        self._listeners.notify()

    def _data_to_save(self) -> dict[str, Any]:
        return {
            "spent": [
                [request.at.timestamp(), request.endpoint, request.automatic]
                for request in self._spent
            ],
            "blocked_until": self._blocked_until.timestamp() if self._blocked_until else None,
        }

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever the budget changes; returns the remover."""
        return self._listeners.add(listener)

    def as_diagnostics(self) -> dict[str, Any]:
        """Return the budget's state for the diagnostics download."""
        now = dt_util.utcnow()
        spent = self.spent(now)
        by_endpoint: dict[str, int] = {}
        for request in spent:
            by_endpoint[request.endpoint] = by_endpoint.get(request.endpoint, 0) + 1
        return {
            "daily_limit": DAILY_BUDGET,
            "automatic_limit": self.automatic_limit,
            "spent_last_24h": len(spent),
            "spent_automatic_last_24h": sum(1 for request in spent if request.automatic),
            "remaining": self.remaining(now),
            "remaining_automatic": self.remaining_automatic(now),
            "blocked_until": self._blocked_until.isoformat() if self._blocked_until else None,
            "by_endpoint": by_endpoint,
        }


async def async_get_budget(hass: HomeAssistant, gcid: str) -> Budget:
    """Return the account's one budget, loaded on first use and shared by every caller."""
    budgets = hass.data.setdefault(BUDGETS, {})
    lock = hass.data.setdefault(_LOAD_LOCK, asyncio.Lock())
    async with lock:
        if gcid not in budgets:
            budget = Budget(hass, gcid)
            await budget.async_load()
            budgets[gcid] = budget
    return budgets[gcid]
