"""The account's REST budget: 50 requests in any 24 hours, an automatic share, persisted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.cardata.api.errors import RequestRefusedError
from custom_components.cardata.const import DAILY_BUDGET
from custom_components.cardata.quota import BUDGETS, Budget, async_get_budget

GCID = "5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _start_at_known_time(freezer: FrozenDateTimeFactory) -> None:
    freezer.move_to(START)


async def test_actions_may_spend_what_automatic_polling_leaves(hass: HomeAssistant) -> None:
    """Automatic requests stop at the option's cap; actions still get the rest of the 50."""
    budget = await async_get_budget(hass, GCID)
    budget.automatic_limit = 40
    for _ in range(40):
        budget.acquire("telematic_data", automatic=True)
    with pytest.raises(RequestRefusedError) as refused:
        budget.acquire("telematic_data", automatic=True)
    assert refused.value.retry_at == START + timedelta(hours=24)
    assert budget.remaining_automatic() == 0
    assert budget.remaining() == 10

    for _ in range(10):
        budget.acquire("basic_data", automatic=False)
    with pytest.raises(RequestRefusedError):
        budget.acquire("basic_data", automatic=False)
    assert budget.remaining() == 0


async def test_budget_frees_request_by_request_after_24_hours(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """The window rolls: each request frees its slot 24 hours after it was sent."""
    budget = await async_get_budget(hass, GCID)
    budget.automatic_limit = DAILY_BUDGET
    for minute in range(DAILY_BUDGET):
        freezer.move_to(START + timedelta(minutes=minute))
        budget.acquire("telematic_data", automatic=True)
    assert budget.next_request_at(automatic=False) == START + timedelta(hours=24)

    freezer.move_to(START + timedelta(hours=24, seconds=1))
    assert budget.remaining() == 1
    budget.acquire("telematic_data", automatic=False)
    with pytest.raises(RequestRefusedError):
        budget.acquire("telematic_data", automatic=False)


async def test_restart_remembers_what_was_spent(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A new Budget loaded from the Store sees the requests of the previous run."""
    budget = await async_get_budget(hass, GCID)
    for _ in range(7):
        budget.acquire("vehicle_mappings", automatic=True)
    freezer.tick(timedelta(seconds=2))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    hass.data.pop(BUDGETS)

    reloaded = await async_get_budget(hass, GCID)
    assert reloaded is not budget
    assert reloaded.remaining() == DAILY_BUDGET - 7
    assert reloaded.as_diagnostics()["by_endpoint"] == {"vehicle_mappings": 7}


async def test_bmw_rate_limit_blocks_until_midnight_utc(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """CU-429 overrides our own count (another client may share the account) until 00:00 UTC."""
    budget = await async_get_budget(hass, GCID)
    budget.acquire("telematic_data", automatic=True)
    budget.note_rate_limited()
    budget.note_rate_limited()

    midnight = datetime(2026, 11, 22, tzinfo=UTC)
    assert budget.blocked_until == midnight
    assert budget.remaining() == 0
    with pytest.raises(RequestRefusedError) as refused:
        budget.acquire("basic_data", automatic=False)
    assert refused.value.retry_at == midnight
    assert sum("budget as spent" in record.message for record in caplog.records) == 1

    freezer.move_to(midnight + timedelta(seconds=1))
    assert budget.blocked_until is None
    budget.acquire("basic_data", automatic=False)


async def test_hook_refuses_before_anything_is_sent(hass: HomeAssistant) -> None:
    """The client library's hook raises the library's own refusal, which callers handle."""
    budget = Budget(hass, GCID)
    budget.automatic_limit = 1
    hook = budget.request_hook(automatic=True)
    await hook("image")
    with pytest.raises(RequestRefusedError):
        await hook("image")


async def test_listeners_hear_every_change(hass: HomeAssistant) -> None:
    """Entities showing the calls left update when the budget changes, and can stop listening."""
    budget = Budget(hass, GCID)
    heard: list[int] = []
    remove = budget.async_add_listener(lambda: heard.append(budget.remaining()))
    budget.acquire("image", automatic=False)
    budget.note_rate_limited()
    remove()
    assert heard == [DAILY_BUDGET - 1, 0]
