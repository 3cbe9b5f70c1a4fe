"""The budget holds, whatever happens: polls, actions, restarts, BMW's CU-429.

The property-based tests drive the real `Budget` (and the real polling plan) with a frozen
clock; Home Assistant's Store is replaced by an in-memory one that behaves as the real one
does for the budget: saves are delayed, a clean stop writes what is pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.cardata.api.const import MAX_PAGES
from custom_components.cardata.api.errors import RequestRefusedError
from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import (
    BUDGET_WINDOW,
    DAILY_BUDGET,
    DOMAIN,
    MIN_AUTOMATIC_BUDGET,
)
from custom_components.cardata.coordinator import polling_plan
from custom_components.cardata.quota import Budget
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry
from .test_coordinator import Account, async_new_account, async_rest_calls, async_step

START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


# --- an in-memory Store with the real one's timing --------------------------------------


@dataclass
class Disk:
    """What survives a restart, and the clock the budget reads."""

    now: datetime = START
    files: dict[str, Any] = field(default_factory=dict)
    stores: list[MemoryStore] = field(default_factory=list)


class MemoryStore:
    """`Store` as the budget uses it: each save waits `delay` seconds after the last change."""

    disk: Disk

    def __init__(self, _hass: Any, _version: int, key: str) -> None:
        self.key = key
        self._pending: Callable[[], Any] | None = None
        self._due: datetime | None = None
        self.disk.stores.append(self)

    async def async_load(self) -> Any:
        return copy.deepcopy(self.disk.files.get(self.key))

    def async_delay_save(self, data_func: Callable[[], Any], delay: float = 0) -> None:
        self._pending = data_func
        self._due = self.disk.now + timedelta(seconds=delay)

    def write_if_due(self) -> None:
        """The delayed write's timer fires once its time has come."""
        if self._pending is not None and self._due is not None and self.disk.now >= self._due:
            self.final_write()

    def final_write(self) -> None:
        """Home Assistant writes pending data when it stops."""
        if self._pending is not None:
            self.disk.files[self.key] = copy.deepcopy(self._pending())
            self._pending = None


@pytest.fixture
def disk() -> Iterator[Disk]:
    """A fresh disk and clock for the budget, patched into quota.py."""
    state = Disk()
    MemoryStore.disk = state
    with (
        patch("custom_components.cardata.quota.Store", MemoryStore),
        patch("homeassistant.util.dt.utcnow", lambda: state.now),
    ):
        yield state


def _load_budget(automatic_limit: int) -> Budget:
    budget = Budget(None, "5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70")  # type: ignore[arg-type]
    budget.automatic_limit = automatic_limit
    asyncio.run(budget.async_load())
    return budget


def _try_acquire(
    budget: Budget, *, automatic: bool, spare_only: bool = False
) -> tuple[bool, datetime | None]:
    """Ask for one request: whether it may be sent, and if not, when to ask again."""
    try:
        budget.acquire("telematic_data", automatic=automatic, spare_only=spare_only)
    except RequestRefusedError as err:
        return False, err.retry_at
    return True, None


# --- any schedule stays within the budget -----------------------------------------------

_STEP = st.one_of(
    st.tuples(st.just("poll"), st.integers(1, 25)),
    st.tuples(st.just("action"), st.integers(1, 25)),
    # The further pages of an `all_pages` action.
    st.tuples(st.just("pages"), st.integers(1, 25)),
    # From a burst seconds apart to quiet hours.
    st.tuples(st.just("wait"), st.integers(0, 120) | st.integers(0, 12 * 3600)),
    st.tuples(st.just("restart"), st.just(0)),
    st.tuples(st.just("rate_limited"), st.just(0)),
)


# The package's autouse fixtures (Home Assistant, the simulator) are not used here.
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    automatic_limit=st.integers(5, DAILY_BUDGET),
    schedule=st.lists(_STEP, min_size=1, max_size=60),
)
def test_no_schedule_of_polls_actions_and_restarts_exceeds_the_budget(
    automatic_limit: int, schedule: list[tuple[str, int]]
) -> None:
    """At most 50 requests pass in any 24 hours, at most the automatic limit automatically."""
    state = Disk()
    MemoryStore.disk = state
    with (
        patch("custom_components.cardata.quota.Store", MemoryStore),
        patch("homeassistant.util.dt.utcnow", lambda: state.now),
    ):
        budget = _load_budget(automatic_limit)
        # The truth, kept outside the budget: every request that was let through.
        sent: list[tuple[datetime, bool]] = []
        for kind, amount in schedule:
            if kind == "wait":
                state.now += timedelta(seconds=amount)
                for store in state.stores:
                    store.write_if_due()
            elif kind == "restart":
                for store in state.stores:
                    store.final_write()
                budget = _load_budget(automatic_limit)
            elif kind == "rate_limited":
                budget.note_rate_limited()
            else:
                automatic = kind == "poll"
                spare_only = kind == "pages"
                for _ in range(amount):
                    automatic_left = budget.remaining_automatic()
                    allowed, retry_at = _try_acquire(
                        budget, automatic=automatic, spare_only=spare_only
                    )
                    if spare_only:
                        # Pages never take what automatic polling may still spend.
                        assert budget.remaining_automatic() == automatic_left
                    if not allowed:
                        assert retry_at is not None
                        assert retry_at > state.now
                        continue
                    sent.append((state.now, automatic))
                    window = [item for item in sent if item[0] > state.now - BUDGET_WINDOW]
                    assert len(window) <= DAILY_BUDGET
                    assert sum(1 for _, auto in window if auto) <= automatic_limit


def test_budget_refused_until_the_moment_it_names(disk: Disk) -> None:
    """A refused request names when one fits; then it does, and not a moment before."""
    budget = _load_budget(40)
    for _ in range(40):
        budget.acquire("telematic_data", automatic=True)
        disk.now += timedelta(minutes=30)
    with pytest.raises(RequestRefusedError) as refused:
        budget.acquire("telematic_data", automatic=True)
    retry_at = refused.value.retry_at
    assert retry_at is not None
    disk.now = retry_at - timedelta(seconds=1)
    with pytest.raises(RequestRefusedError):
        budget.acquire("telematic_data", automatic=True)
    disk.now = retry_at
    budget.acquire("telematic_data", automatic=True)


# --- the polling plan never plans more than the share -----------------------------------


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    vehicles=st.integers(1, 12),
    automatic_limit=st.integers(5, DAILY_BUDGET),
    stream_up=st.booleans(),
)
def test_polling_plan_fits_the_automatic_share(
    vehicles: int, automatic_limit: int, stream_up: bool
) -> None:
    """Polls a day fit the automatic limit less a set-up reserve; the stream slows them down."""
    plan = polling_plan(vehicles, automatic_limit, stream_up)
    assert plan is not None
    polls_per_day = BUDGET_WINDOW / plan.tick
    assert polls_per_day <= automatic_limit - plan.reserve
    assert plan.reserve >= 1
    assert plan.per_vehicle == plan.tick * vehicles
    slower = polling_plan(vehicles, automatic_limit, stream_up=True)
    assert slower is not None
    assert slower.tick >= plan.tick
    assert slower.per_vehicle >= timedelta(hours=4) or slower.tick == plan.tick
    assert polling_plan(0, automatic_limit, stream_up) is None


# --- BMW's CU-429 ------------------------------------------------------------------------


@pytest.fixture
async def account(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[Account]:
    """An account whose coordinator is stopped when the test ends."""
    new = await async_new_account(hass, sim)
    yield new
    await new.async_stop()


async def test_bmw_rate_limit_pauses_rest_without_reauthentication(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, freezer: FrozenDateTimeFactory
) -> None:
    """CU-429 (another client spent the budget): REST pauses until BMW's reset; no reauth."""
    # Both clocks to the next 09:00 UTC, far from BMW's reset at midnight.
    sim_now = await sim.now()
    morning = max(sim_now, dt_util.utcnow()).replace(hour=9, minute=0, second=0, microsecond=0)
    if morning <= max(sim_now, dt_util.utcnow()):
        morning += timedelta(days=1)
    await sim.advance((morning - sim_now).total_seconds())
    freezer.move_to(morning)
    travel = TimeTravel(hass, sim, freezer)
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    # BMW's count is higher than ours: another app of the account spent the rest.
    await sim.set_config(budget_limit=7, budget_reset="utc_midnight")

    await async_step(hass, travel, timedelta(minutes=80))

    midnight = (dt_util.utcnow() + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert account.budget.blocked_until == midnight
    assert coordinator.next_poll_at == midnight
    assert account.tokens.forced_refreshes == 0
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert coordinator.last_update_success
    refused = (await sim.calls())["5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70"]["refused"]
    assert refused == 1

    # Nothing is tried while BMW's budget is spent.
    await async_step(hass, travel, midnight - dt_util.utcnow() - timedelta(minutes=1))
    assert (await sim.calls())["5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70"]["refused"] == 1

    # After BMW's reset the vehicles are polled again.
    await async_step(hass, travel, timedelta(minutes=2))
    assert account.budget.blocked_until is None
    assert (await async_rest_calls(sim)) == {"telematic_data": 1}


# --- an action's `all_pages` never spends the automatic share -----------------------------


def test_paging_safety_net_fits_the_users_largest_share() -> None:
    """Even the safety net of paging stays within what the options leave to actions."""
    assert MAX_PAGES <= DAILY_BUDGET - MIN_AUTOMATIC_BUDGET


async def _fetch_all_history(hass: HomeAssistant, **data: Any) -> dict[str, Any]:
    end = dt_util.utcnow().replace(microsecond=0)
    response = await hass.services.async_call(
        DOMAIN,
        "fetch_charging_history",
        {"vin": fleet.VIN_BEV, "start": end - timedelta(days=45), "end": end, **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


async def test_all_pages_near_the_budget_end_keeps_the_automatic_share(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """One page of the user's share left: it is paid and returned, with the token to go on.

    The automatic share stays whole, so polling goes on; a single page, as without
    `all_pages`, may still be fetched to continue.
    """
    entry = await async_add_entry(hass, sim)
    budget: Budget = entry.runtime_data.budget
    while budget.remaining_spare() > 1:
        budget.acquire("elsewhere", automatic=False)
    automatic_left = budget.remaining_automatic()
    used = (await sim.calls())[sim.gcid]["used"]

    paid = await _fetch_all_history(hass, all_pages=True)

    assert len(paid["data"]) == 10
    assert paid["next_token"] is not None
    assert (await sim.calls())[sim.gcid]["used"] == used + 1
    assert budget.remaining_spare() == 0
    assert budget.remaining_automatic() == automatic_left

    # All pages again: nothing of the user's share is left, and the answer says so.
    with pytest.raises(HomeAssistantError) as caught:
        await _fetch_all_history(hass, all_pages=True, next_token=paid["next_token"])
    assert caught.value.translation_key == "action_paging_share_spent"
    assert "kept for automatic updates" in str(caught.value)
    assert budget.remaining_automatic() == automatic_left

    rest = await _fetch_all_history(hass, next_token=paid["next_token"])
    assert rest["next_token"] is None
    starts = [session["startTime"] for session in paid["data"] + rest["data"]]
    assert len(set(starts)) == len(starts) > 10


async def test_all_pages_refused_by_bmw_returns_the_paid_pages(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """BMW's CU-429 on the second page: the first comes back, and REST pauses until reset."""
    entry = await async_add_entry(hass, sim)
    budget: Budget = entry.runtime_data.budget
    used = (await sim.calls())[sim.gcid]["used"]
    await sim.set_config(budget_limit=used + 1)

    paid = await _fetch_all_history(hass, all_pages=True)

    assert len(paid["data"]) == 10
    assert paid["next_token"] is not None
    assert budget.blocked_until is not None
    assert (await sim.calls())[sim.gcid]["refused"] == 1
