"""The entry's stream: connected after set-up, fed with fresh id tokens, trouble reported."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata import stream_manager
from custom_components.cardata.api.auth import decode_jwt_expiry
from custom_components.cardata.api.const import BASE_SCOPES, SCOPE_API, SCOPE_STREAMING
from custom_components.cardata.api.stream import (
    CarDataStream,
    ReconnectPolicy,
    StreamState,
)
from custom_components.cardata.const import CONF_TOKENS, DOMAIN
from custom_components.cardata.endpoints import async_resolve_endpoints, async_stream_ssl_context
from custom_components.cardata.issues import STREAM_NOT_SUBSCRIBED, STREAM_TAKEN_OVER, issue_id
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_authorize, async_wait_for

SOC = "vehicle.drivetrain.batteryManagement.header"

# Production-shaped reconnect rules, only faster, so a take-over shows within a second.
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, short_session=2.0, takeover_sessions=3)


def stream_state(entry: MockConfigEntry) -> StreamState:
    """Return the state of the entry's stream."""
    state: StreamState = entry.runtime_data.stream.status.state
    return state


def has_issue(hass: HomeAssistant, kind: str, entry: MockConfigEntry) -> bool:
    """Return True when the entry's repair issue of this kind is raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id(kind, entry)) is not None


async def test_stream_connects_after_set_up_and_feeds_the_coordinator(
    hass: HomeAssistant, sim: SimulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session per account; car values reach the coordinator; listeners hear of drops."""
    monkeypatch.setattr(stream_manager, "RECONNECT_POLICY", FAST)
    entry = await async_add_entry(hass, sim)
    stream = entry.runtime_data.stream
    await async_wait_for(hass, lambda: stream.connected, "the stream to connect")

    sessions = await sim.stream_sessions()
    assert [session["gcid"] for session in sessions] == [fleet.GCID_MAIN]
    coordinator = entry.runtime_data.coordinator
    assert coordinator.stream_status is stream.status

    await sim.set_telematics(fleet.VIN_BEV, {SOC: {"value": 57.0, "unit": "percent"}})
    await async_wait_for(
        hass,
        lambda: (state := coordinator.state(fleet.VIN_BEV).get(SOC)) is not None
        and state.value == 57.0
        and state.source == "stream",
        "the stream message in the coordinator",
    )
    assert stream.as_diagnostics()["messages_received"] >= 1

    heard: list[StreamState] = []
    stream.async_add_listener(lambda: heard.append(stream.status.state))
    await sim.drop_stream()  # BMW restarts its broker
    await async_wait_for(
        hass, lambda: heard[-1:] == [StreamState.CONNECTED], "the stream to come back"
    )
    assert heard[0] is StreamState.DISCONNECTED
    assert coordinator.stream_status is stream.status
    assert not has_issue(hass, STREAM_TAKEN_OVER, entry)


async def test_stream_reconnects_with_each_new_id_token(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """Each renewal hands the new id token over; the stream outlives the old token's hour."""
    entry = await async_add_entry(hass, sim)
    stream = entry.runtime_data.stream
    tokens = entry.runtime_data.tokens
    travel = TimeTravel(hass, sim, freezer, settled=lambda: stream.connected)
    await async_wait_for(hass, lambda: stream.connected, "the stream to connect")
    first_id_token = tokens.tokens.id_token
    first_expiry = decode_jwt_expiry(first_id_token)
    assert first_expiry is not None

    for hour in range(1, 4):
        # Each jump passes a renewal (due 50 minutes after the last one), never an expiry.
        await travel.async_advance(timedelta(minutes=51 if hour == 1 else 55))
        await async_wait_for(hass, lambda: stream.connected, f"the stream in hour {hour}")
    # Long past the first id token's expiry, which would have closed the connection.
    assert (await sim.now()) > first_expiry + timedelta(minutes=90)
    assert tokens.tokens.id_token != first_id_token

    diagnostics = stream.as_diagnostics()
    assert diagnostics["connection_attempts"] == 4
    assert [disconnect["reason"] for disconnect in diagnostics["recent_disconnects"]] == [
        "reconnecting with new credentials"
    ] * 3
    assert StreamState.REFUSED not in [status.state for status in stream.recent_statuses]
    assert len(await sim.stream_sessions()) == 1


async def test_an_id_token_refused_after_an_outage_is_renewed_at_once(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """GCDM down at renewal time: when the broker refuses the expired token, renew and go on."""
    entry = await async_add_entry(hass, sim)
    stream = entry.runtime_data.stream
    tokens = entry.runtime_data.tokens
    travel = TimeTravel(hass, sim, freezer, settled=lambda: stream.connected)
    await async_wait_for(hass, lambda: stream.connected, "the stream to connect")
    # The renewal at 50 minutes and its retries after 30 s, 1, 2 and 4 minutes fail;
    # the next retry would come at 65.5 minutes.
    await sim.fault("token", count=5, status=503)
    await travel.async_advance_in_steps(timedelta(minutes=59), timedelta(minutes=1))
    assert tokens.as_diagnostics()["failed_refreshes_in_a_row"] == 5

    # The id token expires at 60 minutes and the broker closes the session; the stream
    # tries again with the expired token after its back-off, which the broker refuses.
    await travel.async_advance(
        timedelta(seconds=90),
        simulator_effect=lambda: stream.status.state is StreamState.DISCONNECTED,
    )
    await async_wait_for(hass, lambda: stream.connected, "the stream to reconnect")

    assert StreamState.REFUSED in [status.state for status in stream.recent_statuses]
    assert tokens.as_diagnostics()["failed_refreshes_in_a_row"] == 0
    assert tokens.tokens.id_token_expires_at > dt_util.utcnow() + timedelta(minutes=50)
    assert not has_issue(hass, STREAM_NOT_SUBSCRIBED, entry)


async def test_a_refused_id_token_that_cannot_be_renewed_waits_for_gcdm(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """GCDM still down when the broker refuses the expired token: the stream reconnects once
    the token manager's next retry gets through, and no repair issue is raised."""
    entry = await async_add_entry(hass, sim)
    stream = entry.runtime_data.stream
    tokens = entry.runtime_data.tokens
    travel = TimeTravel(hass, sim, freezer)
    await async_wait_for(hass, lambda: stream.connected, "the stream to connect")
    # The five scheduled renewals fail (as above), and so does the one the refusal asks for.
    await sim.fault("token", count=6, status=503)
    await travel.async_advance_in_steps(timedelta(minutes=59), timedelta(minutes=1))
    await travel.async_advance(
        timedelta(seconds=90),
        simulator_effect=lambda: stream.status.state is StreamState.DISCONNECTED,
    )

    for _ in range(30):
        if stream.connected:
            break
        await travel.async_advance(timedelta(seconds=30))
    await async_wait_for(hass, lambda: stream.connected, "the stream to reconnect")

    assert StreamState.REFUSED in [status.state for status in stream.recent_statuses]
    assert tokens.tokens.id_token_expires_at > dt_util.utcnow() + timedelta(minutes=40)
    assert not has_issue(hass, STREAM_NOT_SUBSCRIBED, entry)


@pytest.fixture
async def rival(
    hass: HomeAssistant, sim: SimulatorHandle
) -> AsyncIterator[Callable[[], Awaitable[CarDataStream]]]:
    """Another app logged in to the same BMW account, holding its stream connection."""
    streams: list[CarDataStream] = []

    async def start() -> CarDataStream:
        granted = await sim.issue_tokens(
            fleet.CLIENT_STREAM_ONLY, scope=" ".join((*BASE_SCOPES, SCOPE_STREAMING))
        )
        endpoints = await async_resolve_endpoints(hass)
        stream = CarDataStream(
            host=endpoints.mqtt_host,
            port=endpoints.mqtt_port,
            gcid=fleet.GCID_MAIN,
            id_token=granted["id_token"],
            ssl_context=await async_stream_ssl_context(hass, endpoints),
            on_message=lambda message: None,
            on_status=lambda status: None,
            client_id="another-bmw-tool",
            # It insists on its connection, as the apps in BMW owners' reports do.
            reconnect_policy=ReconnectPolicy(
                initial_delay=0.01, max_delay=0.01, takeover_sessions=99
            ),
        )
        await stream.start()
        streams.append(stream)
        return stream

    yield start
    for stream in streams:
        await stream.stop()


async def test_another_client_taking_the_stream_raises_a_repair_issue(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    rival: Callable[[], Awaitable[CarDataStream]],
) -> None:
    """Evicted again and again: stop fighting, tell the user; a reload later clears it."""
    monkeypatch.setattr(stream_manager, "RECONNECT_POLICY", FAST)
    entry = await async_add_entry(hass, sim)
    stream = entry.runtime_data.stream
    await async_wait_for(hass, lambda: stream.connected, "the stream to connect")

    other = await rival()
    await async_wait_for(
        hass, lambda: stream.status.state is StreamState.TAKEN_OVER, "the take-over"
    )
    assert has_issue(hass, STREAM_TAKEN_OVER, entry)
    assert entry.state is ConfigEntryState.LOADED
    # A renewed token does not start the tug of war again.
    await entry.runtime_data.tokens.async_refresh()
    await hass.async_block_till_done()
    await async_wait_for(
        hass,
        lambda: other.status.state is StreamState.CONNECTED,
        "the other client to hold the connection",
    )
    assert stream.status.state is StreamState.TAKEN_OVER
    assert [session["client_id"] for session in await sim.stream_sessions()] == ["another-bmw-tool"]

    await other.stop()
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await async_wait_for(
        hass, lambda: entry.runtime_data.stream.connected, "the stream after the reload"
    )
    assert not has_issue(hass, STREAM_TAKEN_OVER, entry)


async def test_client_without_stream_subscription_raises_a_repair_issue(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """BMW lets the login through but refuses the stream: repair issue, REST goes on."""
    granted = await async_authorize(
        hass, sim, fleet.CLIENT_API_ONLY, scopes=(*BASE_SCOPES, SCOPE_API)
    )
    entry = await async_add_entry(hass, sim, tokens=granted, client_id=fleet.CLIENT_API_ONLY)
    assert entry.state is ConfigEntryState.LOADED
    await async_wait_for(
        hass, lambda: stream_state(entry) is StreamState.REFUSED, "the refused stream login"
    )
    assert has_issue(hass, STREAM_NOT_SUBSCRIBED, entry)
    assert entry.runtime_data.coordinator.vehicles

    # The user subscribes the client to CarData Stream and signs in again.
    await sim.set_subscriptions(fleet.CLIENT_API_ONLY, stream=True)
    renewed = await async_authorize(hass, sim, fleet.CLIENT_API_ONLY)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_TOKENS: renewed.as_dict()}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await async_wait_for(
        hass, lambda: entry.runtime_data.stream.connected, "the stream after signing in again"
    )
    assert not has_issue(hass, STREAM_NOT_SUBSCRIBED, entry)
