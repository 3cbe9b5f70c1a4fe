"""Helpers for tests that run the integration against the simulator.

- `async_authorize`: a real BMW login (device flow through the client library, approved at
  the simulator) that returns the granted tokens.
- `async_add_entry`: a config entry holding such tokens, set up and awaited.
- `TimeTravel`: moves Home Assistant's clock and the simulator's clock together, so token
  lifetimes, BMW's budget window and Home Assistant's timers agree.
- `async_wait_for`: waits in real time for something that happens over sockets (a stream
  login, a message) while Home Assistant's clock may be frozen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta
import inspect
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.const import DEFAULT_SCOPES
from custom_components.cardata.api.models import TokenGranted, TokenSet
from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import (
    CONF_AUTOMATIC_BUDGET,
    CONF_CLIENT_ID,
    CONF_GCID,
    CONF_TOKENS,
    DEFAULT_AUTOMATIC_BUDGET,
    DOMAIN,
)
from tests.simulator.handle import SimulatorHandle

ENTRY_TITLE = "BMW iX xDrive50, BMW X5 xDrive50e"
# Real seconds `async_wait_for` waits before it gives up.
WAIT_TIMEOUT = 10.0
_WAIT_STEP = 0.005


async def async_authorize(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    client_id: str | None = None,
    *,
    scopes: Collection[str] = DEFAULT_SCOPES,
) -> TokenSet:
    """Log in at the simulator as the user would: device code, approval, token."""
    auth = GcdmAuth(
        async_get_clientsession(hass), client_id or sim.client_id, base_url=sim.gcdm_url
    )
    device = await auth.request_device_code(scopes)
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted), outcome
    return outcome.tokens


def make_entry(
    tokens: TokenSet,
    *,
    client_id: str,
    options: Mapping[str, Any] | None = None,
) -> MockConfigEntry:
    """Return a config entry shaped like the config flow's, not yet added to hass."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=ENTRY_TITLE,
        unique_id=tokens.gcid,
        data={
            CONF_CLIENT_ID: client_id,
            CONF_GCID: tokens.gcid,
            CONF_TOKENS: tokens.as_dict(),
        },
        options=dict(options)
        if options is not None
        else {CONF_AUTOMATIC_BUDGET: DEFAULT_AUTOMATIC_BUDGET},
    )


async def async_add_entry(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    *,
    options: Mapping[str, Any] | None = None,
    tokens: TokenSet | None = None,
    client_id: str | None = None,
) -> MockConfigEntry:
    """Add an entry with real tokens (a fresh login unless given), set it up and wait.

    The entry's state is left for the test to check: set-up may fail on purpose.
    """
    client_id = client_id or sim.client_id
    if tokens is None:
        tokens = await async_authorize(hass, sim, client_id)
    entry = make_entry(tokens, client_id=client_id, options=options)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


class TimeTravel:
    """Moves Home Assistant's (frozen) clock and the simulator's clock in step.

    Home Assistant's timers that fall due fire at once; the simulator's clock jump
    lets tokens expire and closes stream connections whose id token ran out.

    A jump must not hit a request in flight: its client-side timeout would fire as if
    BMW had not answered for hours, although BMW may have answered (and rotated the
    refresh token). So each jump first waits until Home Assistant is idle and, when
    given, until `settled()` holds (for example: the stream is connected again).

    The same holds for the stream of every loaded entry: a jump waits while it is
    connecting (a reconnect with new credentials takes real time, not clock time) and
    while its keepalive ping is unanswered. Otherwise the next jump's keepalive check
    would find the broker's answer still unread and drop a healthy connection. A stream
    waiting out its reconnect back-off is not waited for: that timer needs clock time,
    which only the next jump brings.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        sim: SimulatorHandle,
        freezer: FrozenDateTimeFactory,
        settled: Callable[[], bool] | None = None,
        *,
        readings_after_their_time: bool = False,
    ) -> None:
        """Travel with this Home Assistant, simulator and frozen clock.

        With `readings_after_their_time`, Home Assistant's clock moves before the
        simulator's (its timers still fire after both moved): the readings a jump makes
        the car stream then reach Home Assistant at or after the moment they carry, as a
        real car's do, never ahead of Home Assistant's clock. Benches that measure what
        readings mean over time need that; a reading from the future counts as "now".
        """
        self._hass = hass
        self._sim = sim
        self._freezer = freezer
        self._settled = settled
        self._clock_first = readings_after_their_time

    async def async_advance(
        self, delta: timedelta, *, simulator_effect: Callable[[], bool] | None = None
    ) -> None:
        """Jump forward by `delta` and let every timer that fell due run.

        `simulator_effect`, when given, is what the simulator's jump must visibly cause
        in Home Assistant (such as a closed stream connection) before Home Assistant's
        clock moves, so the two do not race.
        """
        await self._hass.async_block_till_done()
        await async_wait_for(self._hass, self._streams_settled, "the stream to settle")
        if self._settled is not None:
            await async_wait_for(self._hass, self._settled, "things to settle before a jump")
        if self._clock_first:
            self._freezer.tick(delta)
        # The simulator before Home Assistant's timers: what they then do (renew tokens,
        # reconnect) must happen on the simulator's new time.
        await self._sim.advance(delta.total_seconds())
        if simulator_effect is not None:
            await async_wait_for(self._hass, simulator_effect, "the simulator's jump to show")
        if not self._clock_first:
            self._freezer.tick(delta)
        async_fire_time_changed(self._hass)
        await self._hass.async_block_till_done()

    def _streams_settled(self) -> bool:
        """No loaded entry's stream is connecting or waiting for its ping's answer."""
        for entry in self._hass.config_entries.async_loaded_entries(DOMAIN):
            # Tests that wire parts of an entry by hand may have no stream (or no runtime data).
            manager = getattr(getattr(entry, "runtime_data", None), "stream", None)
            if manager is None:
                continue
            if manager.status.state is StreamState.CONNECTING:
                return False
            # The manager does not expose its client's keepalive; the test reaches in.
            stream = manager._stream
            if stream is not None and stream.awaiting_ping_response:
                return False
        return True

    async def async_advance_in_steps(self, total: timedelta, step: timedelta) -> None:
        """Jump forward by `total` in jumps of at most `step`."""
        remaining = total
        while remaining > timedelta(0):
            jump = min(step, remaining)
            await self.async_advance(jump)
            remaining -= jump


async def async_wait_for(
    hass: HomeAssistant,
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    limit: float = WAIT_TIMEOUT,
) -> None:
    """Wait until `condition()` holds, in real time even when the loop's clock is frozen.

    Sleeping happens in the executor (real time), so the event loop keeps serving the
    sockets meanwhile; asyncio's own timers would never fire under a frozen clock.
    """
    waited = 0.0
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if waited >= limit:
            raise AssertionError(f"gave up after {limit:.0f} s waiting for {what}")
        await hass.async_add_executor_job(time.sleep, _WAIT_STEP)
        waited += _WAIT_STEP
