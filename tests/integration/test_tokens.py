"""Token upkeep against the simulator's GCDM: renewal, persistence, failures, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.errors import ReauthRequiredError
from custom_components.cardata.api.models import TokenSet
from custom_components.cardata.const import CONF_TOKENS
from custom_components.cardata.tokens import TokenManager, token_store_key
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_authorize, make_entry

# The proactive refresh is due ten minutes before the one-hour tokens expire.
BEFORE_REFRESH = timedelta(minutes=45)
PAST_REFRESH = timedelta(minutes=51)
# Two refresh-token lifetimes.
DAYS = 30


class SpyAuth(GcdmAuth):
    """GCDM auth that counts refreshes and can hold them at a gate."""

    def __init__(self, hass: HomeAssistant, sim: SimulatorHandle) -> None:
        super().__init__(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
        self.refreshes = 0
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()
        self.skew = timedelta(0)

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        self.refreshes += 1
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        refreshed = await super().refresh(tokens)
        if self.skew:
            refreshed = replace(
                refreshed, id_token_expires_at=refreshed.id_token_expires_at - self.skew
            )
        return refreshed


type ManagerFactory = Callable[[TokenSet], Awaitable[tuple[MockConfigEntry, TokenManager, SpyAuth]]]


@pytest.fixture
async def make_manager(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[ManagerFactory]:
    """Build loaded TokenManagers for entries that are added but not set up."""
    managers: list[TokenManager] = []

    async def factory(tokens: TokenSet) -> tuple[MockConfigEntry, TokenManager, SpyAuth]:
        entry = make_entry(tokens, client_id=sim.client_id)
        entry.add_to_hass(hass)
        auth = SpyAuth(hass, sim)
        manager = TokenManager(hass, entry, auth)
        await manager.async_load()
        managers.append(manager)
        return entry, manager, auth

    yield factory
    for manager in managers:
        await manager.async_shutdown()


def stored_tokens(hass_storage: dict[str, Any], entry: MockConfigEntry) -> dict[str, Any]:
    """Return the token set in the entry's private token store."""
    stored: dict[str, Any] = hass_storage[token_store_key(entry.entry_id)]["data"]
    return stored


async def assert_refused_by_bmw(
    hass: HomeAssistant, sim: SimulatorHandle, tokens: TokenSet
) -> None:
    """The refresh token of `tokens` was superseded: GCDM refuses it."""
    auth = GcdmAuth(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
    with pytest.raises(ReauthRequiredError):
        await auth.refresh(tokens)


def integration_log(caplog: pytest.LogCaptureFixture) -> str:
    """Return what the integration logged (the test harness logs stored data itself)."""
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("custom_components.cardata")
    )


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    """Return the reauthentication flows in progress for the entry."""
    return list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))


async def test_tokens_are_renewed_before_the_hour_and_persisted_before_use(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
    make_manager: ManagerFactory,
) -> None:
    """Ten minutes before expiry the tokens rotate; both copies hold them before anyone uses them."""
    original = await async_authorize(hass, sim)
    entry, manager, auth = await make_manager(original)
    seen_at_notification: list[tuple[TokenSet, dict[str, Any], dict[str, Any]]] = []
    manager.async_add_listener(
        lambda tokens: seen_at_notification.append(
            (tokens, dict(entry.data[CONF_TOKENS]), stored_tokens(hass_storage, entry))
        )
    )
    manager.async_start()
    travel = TimeTravel(hass, sim, freezer)

    await travel.async_advance(BEFORE_REFRESH)
    assert auth.refreshes == 0
    assert await manager.async_get_access_token() == original.access_token

    await travel.async_advance(PAST_REFRESH - BEFORE_REFRESH)
    assert auth.refreshes == 1
    renewed = manager.tokens
    assert renewed.refresh_token != original.refresh_token
    assert renewed.access_token_expires_at > dt_util.utcnow() + timedelta(minutes=55)
    # Listeners (the stream) hear of the new tokens only once both copies hold them.
    assert seen_at_notification == [(renewed, renewed.as_dict(), renewed.as_dict())]
    assert await manager.async_get_id_token() == renewed.id_token
    await assert_refused_by_bmw(hass, sim, original)

    # The next renewal follows an hour later, with the rotated refresh token.
    await travel.async_advance(timedelta(minutes=60))
    assert auth.refreshes == 2
    assert manager.tokens.refresh_token not in (original.refresh_token, renewed.refresh_token)
    assert entry.data[CONF_TOKENS] == manager.tokens.as_dict()


async def test_concurrent_callers_share_one_refresh(
    hass: HomeAssistant, sim: SimulatorHandle, make_manager: ManagerFactory
) -> None:
    """Five callers needing a refresh at once cause one refresh; a later caller none."""
    granted = await async_authorize(hass, sim)
    expiring = replace(granted, access_token_expires_at=dt_util.utcnow() + timedelta(minutes=5))
    _, manager, auth = await make_manager(expiring)

    tokens = await asyncio.gather(
        *(manager.async_get_access_token() for _ in range(4)), manager.async_get_id_token()
    )

    assert auth.refreshes == 1
    renewed = manager.tokens
    assert tokens == [renewed.access_token] * 4 + [renewed.id_token]
    assert await manager.async_get_access_token() == renewed.access_token
    assert auth.refreshes == 1


async def test_a_clock_ahead_of_bmw_causes_no_refresh_storm(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    make_manager: ManagerFactory,
) -> None:
    """An id token that looks nearly expired right after renewal is renewed after 5 minutes."""
    granted = await async_authorize(hass, sim)
    expiring = replace(granted, access_token_expires_at=dt_util.utcnow() + timedelta(minutes=5))
    _, manager, auth = await make_manager(expiring)
    auth.skew = timedelta(minutes=59)  # the id token's `exp` read by a clock 59 min ahead
    travel = TimeTravel(hass, sim, freezer)

    for _ in range(3):
        await manager.async_get_id_token()
    assert auth.refreshes == 1
    manager.async_start()
    await travel.async_advance(timedelta(minutes=4))
    assert auth.refreshes == 1
    await travel.async_advance(timedelta(minutes=1))
    assert auth.refreshes == 2


async def test_a_cancelled_caller_or_an_unload_cannot_lose_a_rotation(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    hass_storage: dict[str, Any],
    make_manager: ManagerFactory,
) -> None:
    """The refresh outlives its cancelled caller, and shutdown waits until it is stored."""
    granted = await async_authorize(hass, sim)
    expiring = replace(granted, access_token_expires_at=dt_util.utcnow() + timedelta(minutes=5))
    entry, manager, auth = await make_manager(expiring)
    auth.gate = asyncio.Event()

    caller = asyncio.create_task(manager.async_get_access_token())
    await auth.waiting.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    shutdown = asyncio.create_task(manager.async_shutdown())
    await asyncio.sleep(0)
    assert not shutdown.done()  # waits for the refresh in flight

    auth.gate.set()
    await shutdown

    assert stored_tokens(hass_storage, entry) == entry.data[CONF_TOKENS]
    rotated = TokenSet.from_dict(entry.data[CONF_TOKENS])
    assert rotated.refresh_token != granted.refresh_token
    await assert_refused_by_bmw(hass, sim, granted)
    # The stored refresh token is the one BMW honours now.
    plain = GcdmAuth(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
    assert (await plain.refresh(rotated)).gcid == granted.gcid


async def test_network_failures_are_retried_with_backoff_and_lose_nothing(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    make_manager: ManagerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GCDM failing twice: retries after 30 s and 60 s; the old tokens serve meanwhile."""
    original = await async_authorize(hass, sim)
    entry, manager, auth = await make_manager(original)
    manager.async_start()
    travel = TimeTravel(hass, sim, freezer)
    await sim.fault("token", count=2, status=503)

    await travel.async_advance(PAST_REFRESH)
    assert auth.refreshes == 1
    assert manager.tokens == original
    assert entry.data[CONF_TOKENS] == original.as_dict()
    # Still valid for nine minutes: callers get it without asking GCDM again.
    assert await manager.async_get_access_token() == original.access_token
    assert auth.refreshes == 1

    await travel.async_advance(timedelta(seconds=29))
    assert auth.refreshes == 1
    await travel.async_advance(timedelta(seconds=1))
    assert auth.refreshes == 2
    assert manager.tokens == original

    await travel.async_advance(timedelta(seconds=59))
    assert auth.refreshes == 2
    await travel.async_advance(timedelta(seconds=1))
    assert auth.refreshes == 3
    assert manager.tokens.refresh_token != original.refresh_token
    assert entry.data[CONF_TOKENS] == manager.tokens.as_dict()
    assert manager.as_diagnostics()["failed_refreshes_in_a_row"] == 0
    assert not reauth_flows(hass, entry)
    # Nothing was impaired, so nothing worth a warning.
    assert not [
        record
        for record in caplog.records
        if record.name.startswith("custom_components.cardata") and record.levelno >= logging.WARNING
    ]


async def test_tokens_expiring_during_an_outage_warn_once_and_their_renewal_says_so(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    make_manager: ManagerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GCDM unreachable past the tokens' expiry: one warning, one line when renewed again."""
    caplog.set_level(logging.INFO, logger="custom_components.cardata")
    original = await async_authorize(hass, sim)
    entry, manager, _ = await make_manager(original)
    manager.async_start()
    travel = TimeTravel(hass, sim, freezer)
    await sim.fault("token", count=6, status=503)

    await travel.async_advance(PAST_REFRESH)
    for _ in range(45):
        await travel.async_advance(timedelta(minutes=1))

    messages = [record.getMessage() for record in caplog.records]
    assert sum("Cannot renew the expired BMW CarData tokens" in m for m in messages) == 1
    assert sum("Renewed the BMW CarData tokens of" in m and "again" in m for m in messages) == 1
    assert manager.tokens.refresh_token != original.refresh_token
    assert entry.data[CONF_TOKENS] == manager.tokens.as_dict()
    assert not reauth_flows(hass, entry)


async def test_unreachable_gcdm_with_expired_tokens_retries_the_set_up(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """Expired tokens and GCDM down at start-up: set-up is retried, no reauthentication."""
    granted = await async_authorize(hass, sim)
    expired = replace(granted, access_token_expires_at=dt_util.utcnow() - timedelta(minutes=1))
    await sim.fault("token", count=1, status=502)

    entry = await async_add_entry(hass, sim, tokens=expired)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert not reauth_flows(hass, entry)
    assert entry.data[CONF_TOKENS] == expired.as_dict()

    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await assert_refused_by_bmw(hass, sim, granted)


async def test_refused_refresh_at_set_up_asks_for_reauthentication(
    hass: HomeAssistant, sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """A refresh token BMW no longer honours: reauth flow, entry kept with its data."""
    granted = await async_authorize(hass, sim)
    plain = GcdmAuth(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
    await plain.refresh(granted)  # someone else used the refresh token
    expired = replace(granted, access_token_expires_at=dt_util.utcnow() - timedelta(minutes=1))

    entry = await async_add_entry(hass, sim, tokens=expired)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None
    assert "refused to renew the login" in entry.reason
    assert len(reauth_flows(hass, entry)) == 1
    assert entry.data[CONF_TOKENS] == expired.as_dict()
    logged = integration_log(caplog)
    assert "please re-authenticate" in logged
    assert granted.refresh_token not in logged


async def test_refused_refresh_while_running_asks_for_reauthentication(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """The scheduled refresh refused: one reauth flow, no more attempts, nothing deleted."""
    granted = await async_authorize(hass, sim)
    entry = await async_add_entry(hass, sim, tokens=granted)
    assert entry.state is ConfigEntryState.LOADED
    plain = GcdmAuth(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
    await plain.refresh(granted)  # e.g. an old backup of Home Assistant runs somewhere
    travel = TimeTravel(hass, sim, freezer)

    await travel.async_advance(PAST_REFRESH)

    manager = entry.runtime_data.tokens
    assert manager.reauth_required
    assert len(reauth_flows(hass, entry)) == 1
    assert entry.data[CONF_TOKENS] == granted.as_dict()
    refreshed_at = manager.as_diagnostics()["refreshes_since_start"]
    await travel.async_advance(timedelta(hours=2))
    assert manager.as_diagnostics()["refreshes_since_start"] == refreshed_at
    assert len(reauth_flows(hass, entry)) == 1


async def test_restart_between_refresh_and_entry_write_keeps_the_login(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """The entry's delayed write lost: the immediately written store still has the rotation."""
    entry = await async_add_entry(hass, sim)
    before = dict(entry.data)
    travel = TimeTravel(hass, sim, freezer)
    await travel.async_advance(PAST_REFRESH)
    rotated = entry.data[CONF_TOKENS]
    assert rotated != before[CONF_TOKENS]
    store_copy = dict(hass_storage[token_store_key(entry.entry_id)])

    # Home Assistant dies before it writes the config entry: it comes back with the old
    # data, whose refresh token BMW no longer honours.
    assert await hass.config_entries.async_unload(entry.entry_id)
    hass.config_entries.async_update_entry(entry, data=before)
    await travel.async_advance(timedelta(minutes=30))
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert not reauth_flows(hass, entry)
    current = entry.runtime_data.tokens.tokens
    assert current.access_token_expires_at > dt_util.utcnow()
    assert entry.data[CONF_TOKENS] == current.as_dict()

    # Without the store the same restart would have locked the user out.
    assert await hass.config_entries.async_unload(entry.entry_id)
    hass.config_entries.async_update_entry(entry, data=before)
    hass_storage[token_store_key(entry.entry_id)] = store_copy | {"data": {}}
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass, entry)) == 1


async def test_thirty_days_of_token_life_across_restarts(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """Thirty days (two refresh-token lifetimes) with restarts: never a reauthentication.

    Each simulated day has two renewals on time (50-minute steps) and one long gap,
    as when the host sleeps, after which the overdue renewal runs late.
    """
    entry = await async_add_entry(hass, sim)
    first = TokenSet.from_dict(entry.data[CONF_TOKENS])
    # Jumps wait for the stream to be back: a jump during a reconnect would also jump
    # over the answer to the token refresh it may cause.
    travel = TimeTravel(
        hass,
        sim,
        freezer,
        settled=lambda: (
            entry.state is not ConfigEntryState.LOADED or entry.runtime_data.stream.connected
        ),
    )
    on_time = timedelta(minutes=50)
    restarts = 0

    for day in range(1, DAYS + 1):
        renewals = entry.runtime_data.tokens.as_diagnostics()["refreshes_since_start"]
        await travel.async_advance(on_time)
        await travel.async_advance(on_time)
        assert entry.runtime_data.tokens.as_diagnostics()["refreshes_since_start"] == renewals + 2
        await travel.async_advance(timedelta(days=1) - 2 * on_time)
        assert entry.state is ConfigEntryState.LOADED, f"day {day}"
        if day % 6 == 0:
            # Every sixth day Home Assistant restarts; every other time it dies before
            # its delayed write of the config entry.
            stale = dict(entry.data)
            await travel.async_advance(timedelta(minutes=55))
            assert entry.data != stale  # a rotation happened since
            assert await hass.config_entries.async_unload(entry.entry_id)
            if restarts % 2:
                hass.config_entries.async_update_entry(entry, data=stale)
            await travel.async_advance(timedelta(minutes=30))
            await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
            restarts += 1

    assert restarts == DAYS // 6
    assert entry.state is ConfigEntryState.LOADED
    assert not reauth_flows(hass, entry)
    current = entry.runtime_data.tokens.tokens
    assert current.access_token_expires_at > dt_util.utcnow()
    assert current.refresh_token_expires_at > first.refresh_token_expires_at + timedelta(days=29)
    assert stored_tokens(hass_storage, entry) == current.as_dict()
    await assert_refused_by_bmw(hass, sim, first)
