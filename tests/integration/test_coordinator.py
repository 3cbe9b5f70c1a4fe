"""The coordinator: vehicles, merged state, listeners and budgeted polling, against the simulator.

Most tests build the coordinator as `async_setup_entry` does, minus the stream, so the
stream's state is whatever the test says it is (`set_stream_status`); restarts are a new
coordinator, cache and client over the same Home Assistant storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from itertools import pairwise
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.client import CarDataClient
from custom_components.cardata.api.errors import ReauthRequiredError
from custom_components.cardata.api.models import (
    StreamMessage,
    TokenSet,
    parse_telematic_values,
)
from custom_components.cardata.api.stream import StreamState, StreamStatus
from custom_components.cardata.cache import AccountCache
from custom_components.cardata.const import DOMAIN
from custom_components.cardata.coordinator import CarDataCoordinator
from custom_components.cardata.quota import Budget, async_get_budget
from custom_components.cardata.stream_watch import STREAM_DOWN_GRACE
from custom_components.cardata.vehicle import VehicleChange
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_authorize, make_entry

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
SOC = "vehicle.drivetrain.batteryManagement.header"
LEVEL = "vehicle.drivetrain.electricEngine.charging.level"
POWER = "vehicle.powertrain.electric.battery.charging.power"
LATITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
ODOMETER = "vehicle.vehicle.travelledDistance"


class SimTokens:
    """Tokens from a real device flow at the simulator, refreshed when near expiry.

    Stands in for the integration's TokenManager where a test builds the coordinator
    itself; counts the forced refreshes the coordinator asks for.
    """

    def __init__(self, hass: HomeAssistant, sim: SimulatorHandle, tokens: TokenSet) -> None:
        self._auth = GcdmAuth(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
        self.tokens = tokens
        self.forced_refreshes = 0

    async def async_get_access_token(self) -> str:
        if self.tokens.needs_refresh(dt_util.utcnow(), timedelta(minutes=5)):
            await self._async_refresh()
        return self.tokens.access_token

    async def async_refresh(self, *, force: bool = True) -> TokenSet:
        self.forced_refreshes += 1
        await self._async_refresh()
        return self.tokens

    async def _async_refresh(self) -> None:
        try:
            self.tokens = await self._auth.refresh(self.tokens)
        except ReauthRequiredError as err:
            # As the TokenManager does: the refresh token is dead, the user must log in.
            raise ConfigEntryAuthFailed(str(err)) from err


class Account:
    """One BMW account wired as `async_setup_entry` wires it, without the stream."""

    def __init__(
        self,
        hass: HomeAssistant,
        sim: SimulatorHandle,
        entry: MockConfigEntry,
        tokens: SimTokens,
        budget: Budget,
    ) -> None:
        self.hass = hass
        self.sim = sim
        self.entry = entry
        self.tokens = tokens
        self.budget = budget
        self.gcid: str = entry.data["gcid"]
        self.cache = AccountCache(hass, self.gcid)
        self.client = self._client(automatic=True)
        # What a user's action would use: outside the automatic share.
        self.action_client = self._client(automatic=False)
        self._coordinator: CarDataCoordinator | None = None

    def _client(self, *, automatic: bool) -> CarDataClient:
        return CarDataClient(
            async_get_clientsession(self.hass),
            self.tokens.async_get_access_token,
            base_url=self.sim.api_url,
            before_request=self.budget.request_hook(automatic=automatic),
        )

    @property
    def coordinator(self) -> CarDataCoordinator:
        assert self._coordinator is not None
        return self._coordinator

    async def async_start(self, *, stream: StreamState | None = None) -> CarDataCoordinator:
        """Set up as Home Assistant does at start: cache, coordinator, first refresh."""
        self.cache = AccountCache(self.hass, self.gcid)
        await self.cache.async_load()
        self.client = self._client(automatic=True)
        coordinator = CarDataCoordinator(
            self.hass,
            self.entry,
            client=self.client,
            cache=self.cache,
            budget=self.budget,
            tokens=self.tokens,
        )
        self._coordinator = coordinator
        if stream is not None:
            coordinator.set_stream_status(stream_status(stream))
        self.entry.mock_state(self.hass, ConfigEntryState.SETUP_IN_PROGRESS)
        await coordinator.async_prepare()
        await coordinator.async_config_entry_first_refresh()
        self.entry.mock_state(self.hass, ConfigEntryState.LOADED)
        return coordinator

    async def async_stop(self) -> None:
        """Stop as Home Assistant does at shutdown (timers off, state written)."""
        if self._coordinator is not None:
            await self._coordinator.async_shutdown()
        self.entry.mock_state(self.hass, ConfigEntryState.NOT_LOADED)

    async def async_restart(self, *, stream: StreamState | None = None) -> CarDataCoordinator:
        await self.async_stop()
        return await self.async_start(stream=stream)


async def async_new_account(
    hass: HomeAssistant, sim: SimulatorHandle, *, automatic_limit: int = 40
) -> Account:
    """A logged-in account (real device flow) with its config entry and budget.

    BMW's call counter then covers the last 24 hours, so counts compared across time
    travel do not depend on when the test crosses midnight.
    """
    await sim.set_config(budget_reset="rolling")
    tokens = await async_authorize(hass, sim)
    entry = make_entry(tokens, client_id=sim.client_id)
    entry.add_to_hass(hass)
    budget = await async_get_budget(hass, tokens.gcid)
    budget.automatic_limit = automatic_limit
    return Account(hass, sim, entry, SimTokens(hass, sim, tokens), budget)


@pytest.fixture
async def account(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[Account]:
    """An account whose coordinator is stopped when the test ends."""
    new = await async_new_account(hass, sim)
    yield new
    await new.async_stop()


@pytest.fixture
def travel(hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory) -> TimeTravel:
    """Moves Home Assistant's and the simulator's clocks together."""
    return TimeTravel(hass, sim, freezer)


async def async_rest_calls(sim: SimulatorHandle) -> dict[str, int]:
    """REST calls the simulator counted for account "main", by endpoint."""
    by_endpoint: dict[str, int] = (await sim.calls())[fleet.GCID_MAIN]["by_endpoint"]
    return by_endpoint


async def async_step(hass: HomeAssistant, travel: TimeTravel, delta: timedelta) -> None:
    """Travel and wait for the poll ticks that fell due."""
    await travel.async_advance(delta)
    await hass.async_block_till_done()


def stream_status(state: StreamState) -> StreamStatus:
    return StreamStatus(state=state, reason=None, since=dt_util.utcnow())


def stream_message(vin: str, data: Mapping[str, Any]) -> StreamMessage:
    """A stream message parsed from the JSON BMW sends."""
    return StreamMessage.from_json(
        {
            "vin": vin,
            "entityId": fleet.GCID_MAIN,
            "topic": vin,
            "timestamp": dt_util.utcnow().isoformat(),
            "data": data,
        }
    )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- vehicles and devices ------------------------------------------------------------------


async def test_primary_vehicles_get_devices_secondary_ones_one_log_line(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    account: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each PRIMARY vehicle becomes a device named after its model; SECONDARY ones are skipped."""
    caplog.set_level(logging.INFO, logger="custom_components.cardata")
    coordinator = await account.async_start()

    assert set(coordinator.vehicles) == {VIN_BEV, VIN_PHEV}
    registry = dr.async_get(hass)
    devices = dr.async_entries_for_config_entry(registry, account.entry.entry_id)
    assert {(device.manufacturer, device.model, device.name) for device in devices} == {
        ("BMW", "i4 eDrive40", "BMW i4 eDrive40"),
        ("BMW", "X5 xDrive50e", "BMW X5 xDrive50e"),
    }
    assert {identifier for device in devices for identifier in device.identifiers} == {
        (DOMAIN, VIN_BEV),
        (DOMAIN, VIN_PHEV),
    }
    # No telematics of the secondary vehicle are requested either.
    assert coordinator.state(fleet.VIN_SECONDARY) == {}

    # The integration's lines only: asyncio's slow-task warning on a loaded machine names
    # this test, whose name says "secondary" too.
    secondary_lines = [
        record
        for record in caplog.records
        if record.name.startswith("custom_components.cardata")
        and "secondary" in record.getMessage()
    ]
    assert len(secondary_lines) == 1
    assert "…0003" in secondary_lines[0].getMessage()
    assert all(fleet.VIN_SECONDARY not in record.getMessage() for record in caplog.records)
    assert (await async_rest_calls(sim))["basic_data"] == 2


async def test_set_up_reads_every_primary_vehicle_once(
    sim: SimulatorHandle, account: Account
) -> None:
    """First set-up: mappings, basic data, one snapshot per vehicle, and the container."""
    coordinator = await account.async_start()

    assert await async_rest_calls(sim) == {
        "vehicle_mappings": 1,
        "basic_data": 2,
        "containers": 1,
        "container_create": 1,
        "telematic_data": 2,
    }
    soc = coordinator.state(VIN_BEV)[SOC]
    assert soc.value == 78
    assert soc.unit == "percent"
    assert soc.source == "rest"
    # The REST-only predicted charging level of the charging PHEV is there too.
    assert coordinator.state(VIN_PHEV)[LEVEL].value == 45


# --- restarts --------------------------------------------------------------------------------


async def test_restart_with_recent_state_costs_no_request(
    sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """A restart shortly after the last poll sends nothing and still knows every value."""
    first = await account.async_start()
    before = await async_rest_calls(sim)
    measured = first.state(VIN_BEV)[SOC].timestamp

    await account.async_stop()
    await travel.async_advance(timedelta(minutes=20))
    second = await account.async_start()

    assert await async_rest_calls(sim) == before
    restored = second.state(VIN_BEV)[SOC]
    assert (restored.value, restored.timestamp, restored.source) == (78, measured, "rest")
    assert second.state(VIN_PHEV)[LEVEL].value == 45


async def test_restart_with_old_state_costs_one_request_per_vehicle(
    sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """After a long stop each vehicle is read once; everything else comes from the cache."""
    await account.async_start()
    before = await async_rest_calls(sim)

    await account.async_stop()
    # Longer than every cache lifetime: even then a restart reads only the vehicles.
    await travel.async_advance(timedelta(days=40))
    # The refresh token (two weeks) ran out meanwhile: the user logged in again.
    account.tokens.tokens = await async_authorize(account.hass, sim)
    await account.async_start()

    after = await async_rest_calls(sim)
    # BMW's counter covers the last 24 hours: only what the restart sent.
    assert after == {"telematic_data": 2}
    assert before["telematic_data"] == 2


async def test_restart_of_the_whole_integration_costs_nothing_when_recent(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """Reloading the real entry (stream included) sends no REST request."""
    from .common import async_add_entry

    entry = await async_add_entry(hass, sim)
    assert entry.state is ConfigEntryState.LOADED
    before = await async_rest_calls(sim)

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert await async_rest_calls(sim) == before
    assert entry.runtime_data.coordinator.state(VIN_BEV)[SOC].value == 78
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- merging stream and REST --------------------------------------------------------------


async def test_newer_measurement_wins_whatever_the_source(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """A REST snapshot older than the stream's value does not turn it back, and vice versa."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    rest_measured = coordinator.state(VIN_BEV)[SOC].timestamp
    now = dt_util.utcnow()

    # The stream reports a newer SoC: it wins over the REST value.
    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {SOC: {"timestamp": iso(now), "value": 80.0, "unit": "percent"}})
    )
    assert coordinator.state(VIN_BEV)[SOC].value == 80
    assert coordinator.state(VIN_BEV)[SOC].source == "stream"

    # A late stream message measured before the REST snapshot changes nothing.
    coordinator.apply_stream_message(
        stream_message(
            VIN_BEV,
            {LEVEL: {"timestamp": iso(rest_measured - timedelta(hours=1)), "value": 10}},
        )
    )
    assert coordinator.state(VIN_BEV)[LEVEL].value == 78

    # BMW's REST snapshot: SoC measured before the stream's value, charging level after.
    await sim.set_telematics(
        VIN_BEV,
        {
            SOC: {"value": 79.0, "unit": "percent", "timestamp": iso(now - timedelta(minutes=5))},
            LEVEL: {"value": 79.0, "unit": "%", "timestamp": iso(now - timedelta(minutes=5))},
        },
    )
    calls = (await async_rest_calls(sim))["telematic_data"]
    await async_step(hass, travel, coordinator.polling.per_vehicle)  # type: ignore[union-attr]
    assert (await async_rest_calls(sim))["telematic_data"] == calls + 1

    soc = coordinator.state(VIN_BEV)[SOC]
    assert (soc.value, soc.source) == (80, "stream")
    level = coordinator.state(VIN_BEV)[LEVEL]
    assert (level.value, level.source) == (79, "rest")
    assert level.timestamp > rest_measured


async def test_value_without_measurement_time_takes_the_receive_time(
    account: Account, travel: TimeTravel
) -> None:
    """BMW sometimes leaves the timestamp out; the moment of arrival stands in."""
    coordinator = await account.async_start()
    coordinator.apply_stream_message(stream_message(VIN_BEV, {POWER: {"value": 7400, "unit": "W"}}))

    power = coordinator.state(VIN_BEV)[POWER]
    assert power.value == 7400
    assert power.timestamp == power.received_at == dt_util.utcnow()
    assert not power.measured


async def test_rest_placeholder_does_not_erase_a_value(account: Account) -> None:
    """REST's "no data" entries (null value, null time) keep what the stream said."""
    coordinator = await account.async_start()
    twelve_volt = "vehicle.electricalSystem.battery.stateOfCharge"
    # The simulator's cars have no 12 V state of charge: REST sent a placeholder.
    assert coordinator.state(VIN_BEV)[twelve_volt].value is None
    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {twelve_volt: {"timestamp": iso(dt_util.utcnow()), "value": 88}})
    )
    coordinator.apply_rest_values(
        VIN_BEV,
        parse_telematic_values({twelve_volt: {"value": None, "unit": "%", "timestamp": None}}),
    )
    assert coordinator.state(VIN_BEV)[twelve_volt].value == 88


# --- listeners -----------------------------------------------------------------------------


async def test_descriptor_listeners_hear_only_their_descriptors(account: Account) -> None:
    """One stream message with one descriptor wakes only the listeners reading it, once each."""
    coordinator = await account.async_start()
    heard: dict[str, int] = {"soc": 0, "odometer": 0, "position": 0, "other_car": 0}

    def count(name: str) -> Any:
        def listener() -> None:
            heard[name] += 1

        return listener

    coordinator.async_add_descriptor_listener(VIN_BEV, [SOC], count("soc"))
    coordinator.async_add_descriptor_listener(VIN_BEV, [ODOMETER], count("odometer"))
    remove_position = coordinator.async_add_descriptor_listener(
        VIN_BEV, [LATITUDE, LONGITUDE], count("position")
    )
    coordinator.async_add_descriptor_listener(VIN_PHEV, [SOC], count("other_car"))
    changes: list[VehicleChange] = []
    coordinator.async_add_vehicle_listener(VIN_BEV, changes.append)
    now = iso(dt_util.utcnow())

    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {SOC: {"timestamp": now, "value": 81}})
    )
    assert heard == {"soc": 1, "odometer": 0, "position": 0, "other_car": 0}
    assert changes == [VehicleChange(VIN_BEV, frozenset({SOC}), frozenset())]

    # Latitude and longitude in one message: the tracker hears it once.
    coordinator.apply_stream_message(
        stream_message(
            VIN_BEV,
            {
                LATITUDE: {"timestamp": now, "value": 48.1, "unit": "degrees"},
                LONGITUDE: {"timestamp": now, "value": 11.5, "unit": "degrees"},
            },
        )
    )
    assert heard["position"] == 1

    # BMW's duplicates call nobody.
    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {SOC: {"timestamp": now, "value": 81}})
    )
    assert heard["soc"] == 1
    assert len(changes) == 2

    # A descriptor seen for the first time reaches the vehicle listener as added.
    new_key = "vehicle.cabin.hvac.preconditioning.status.progress"
    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {new_key: {"timestamp": now, "value": 40}})
    )
    assert changes[-1] == VehicleChange(VIN_BEV, frozenset({new_key}), frozenset({new_key}))

    remove_position()
    coordinator.apply_stream_message(
        stream_message(
            VIN_BEV,
            {LATITUDE: {"timestamp": iso(dt_util.utcnow() + timedelta(seconds=1)), "value": 48.2}},
        )
    )
    assert heard == {"soc": 1, "odometer": 0, "position": 1, "other_car": 0}


async def test_a_failing_listener_does_not_stop_the_others(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """One entity that cannot render a value: logged; the others and entity creation go on."""
    coordinator = await account.async_start()
    heard: list[str] = []

    def broken() -> None:
        raise ValueError("cannot render this value")

    coordinator.async_add_descriptor_listener(VIN_BEV, [SOC], broken)
    coordinator.async_add_descriptor_listener(VIN_BEV, [SOC], lambda: heard.append("sensor"))
    coordinator.async_add_vehicle_listener(VIN_BEV, lambda change: heard.append("creator"))
    now = iso(dt_util.utcnow())

    coordinator.apply_stream_message(
        stream_message(VIN_BEV, {SOC: {"timestamp": now, "value": 82}})
    )

    assert heard == ["sensor", "creator"]
    assert coordinator.state(VIN_BEV)[SOC].value == 82
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "…0001" in errors[0].getMessage()
    assert VIN_BEV not in errors[0].getMessage()


async def test_poll_without_news_wakes_nobody(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """A REST snapshot that repeats what is known calls no listener."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    heard: list[VehicleChange] = []
    for vin in (VIN_BEV, VIN_PHEV):
        coordinator.async_add_vehicle_listener(vin, heard.append)
    calls = (await async_rest_calls(sim))["telematic_data"]

    await async_step(hass, travel, coordinator.polling.per_vehicle)  # type: ignore[union-attr]

    assert (await async_rest_calls(sim))["telematic_data"] == calls + 1
    assert heard == []


# --- polling schedule ----------------------------------------------------------------------


async def test_polling_interval_follows_stream_and_option(
    hass: HomeAssistant, account: Account, travel: TimeTravel
) -> None:
    """Stream down: the automatic share spread over the day; stream up: every 6 h per vehicle."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    polled_at = dt_util.utcnow()

    plan = coordinator.polling
    assert plan is not None
    # 40 automatic requests, 4 kept for set-up: 36 polls a day, one every 40 minutes,
    # each of the two vehicles every 80 minutes.
    assert (plan.tick, plan.per_vehicle) == (timedelta(minutes=40), timedelta(minutes=80))
    assert coordinator.next_poll_at == polled_at + timedelta(minutes=80)

    coordinator.set_stream_status(stream_status(StreamState.CONNECTED))
    plan = coordinator.polling
    assert plan is not None
    assert (plan.tick, plan.per_vehicle) == (timedelta(hours=3), timedelta(hours=6))
    assert coordinator.next_poll_at == polled_at + timedelta(hours=6)

    coordinator.set_stream_status(stream_status(StreamState.DISCONNECTED))
    # A lost connection counts as an outage only after the grace (planned reconnects).
    assert coordinator.polling == plan
    await travel.async_advance(STREAM_DOWN_GRACE + timedelta(seconds=1))
    account.budget.automatic_limit = 20
    coordinator.async_reschedule()
    plan = coordinator.polling
    assert plan is not None
    assert (plan.tick, plan.per_vehicle) == (timedelta(minutes=90), timedelta(minutes=180))
    assert coordinator.next_poll_at == polled_at + timedelta(minutes=180)


async def test_planned_stream_reconnect_costs_no_request(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """The id-token renewal reconnects the stream: no REST poll, as a real outage would."""
    coordinator = await account.async_start(stream=StreamState.CONNECTED)
    # Longer than the no-stream plan waits between two polls of a vehicle (80 minutes).
    await async_step(hass, travel, timedelta(minutes=100))
    before = await async_rest_calls(sim)

    coordinator.set_stream_status(stream_status(StreamState.CONNECTING))
    await async_step(hass, travel, timedelta(seconds=5))
    coordinator.set_stream_status(stream_status(StreamState.CONNECTED))
    await async_step(hass, travel, timedelta(seconds=5))

    assert await async_rest_calls(sim) == before
    # A connection that stays lost past the grace is an outage: polling speeds up.
    coordinator.set_stream_status(stream_status(StreamState.DISCONNECTED))
    await async_step(hass, travel, STREAM_DOWN_GRACE + timedelta(seconds=1))
    await async_step(hass, travel, timedelta(seconds=1))
    after = await async_rest_calls(sim)
    assert after.get("telematic_data", 0) > before.get("telematic_data", 0)


async def _async_live(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    account: Account,
    travel: TimeTravel,
    *,
    days: int,
    step: timedelta,
) -> list[datetime]:
    """Live `days` days after set-up; return when each telematics poll of the last day was sent.

    At every step, what was sent in the last 24 hours stays within the budget.
    """
    elapsed = timedelta()
    while elapsed < timedelta(days=days):
        await async_step(hass, travel, step)
        elapsed += step
        spent = account.budget.spent()
        assert sum(1 for request in spent if request.automatic) <= 40
        assert len(spent) <= 50
    day_start = dt_util.utcnow() - timedelta(days=1)
    return [
        request.at
        for request in account.budget.spent()
        if request.endpoint == "telematic_data" and request.at > day_start
    ]


async def test_days_without_stream_poll_evenly_within_the_automatic_share(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """36 polls a day, one every 40 minutes, the vehicles in turn; never a burst."""
    await account.async_start(stream=StreamState.DISCONNECTED)

    polls = await _async_live(hass, sim, account, travel, days=2, step=timedelta(minutes=20))

    # The second day: BMW counted exactly the automatic share less the set-up reserve. The
    # PHEV's charging session ended on the way: its charging history took one tick.
    calls = await async_rest_calls(sim)
    assert sum(calls.values()) == 36
    assert calls.keys() <= {"telematic_data", "charging_history"}
    assert calls.get("charging_history", 0) <= 1
    assert len(polls) == calls["telematic_data"]
    gaps = {later - earlier for earlier, later in pairwise(polls)}
    assert gaps <= {timedelta(minutes=40), timedelta(minutes=80)}


async def test_a_day_with_stream_polls_each_vehicle_every_six_hours(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """While the stream delivers, REST only fills in: each vehicle every 6 hours."""
    coordinator = await account.async_start(stream=StreamState.CONNECTED)

    polls = await _async_live(hass, sim, account, travel, days=1, step=timedelta(minutes=20))

    # Set-up read both vehicles; from 6 hours on one vehicle every 3 hours.
    assert len(polls) == 7
    calls = await async_rest_calls(sim)
    assert calls["telematic_data"] == 7
    gaps = {later - earlier for earlier, later in pairwise(polls)}
    assert gaps == {timedelta(hours=3)}
    assert coordinator.last_rest_fetch(VIN_BEV) is not None


# --- failures ------------------------------------------------------------------------------


async def test_server_errors_keep_values_and_report_honestly(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    account: Account,
    travel: TimeTravel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One failed poll changes nothing visible; repeated failures without stream say so."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    updates: list[bool] = []
    remove = coordinator.async_add_listener(lambda: updates.append(coordinator.last_update_success))
    await sim.fault("telematic_data", count=2, status=500)

    await async_step(hass, travel, timedelta(minutes=80))
    assert coordinator.last_update_success
    assert coordinator.state(VIN_BEV)[SOC].value == 78

    await async_step(hass, travel, timedelta(minutes=40))
    assert not coordinator.last_update_success
    assert updates == [False]
    assert coordinator.state(VIN_PHEV)[LEVEL].value == 45
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "REST" in r.message]
    assert len(warnings) == 1

    # The stream coming back means values update again, REST or not.
    coordinator.set_stream_status(stream_status(StreamState.CONNECTED))
    assert coordinator.last_update_success
    assert updates == [False, True]
    remove()


async def test_a_rest_outage_is_logged_once_and_its_end_once(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    account: Account,
    travel: TimeTravel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the stream, failing polls warn once; the first poll that works says so once."""
    caplog.set_level(logging.INFO, logger="custom_components.cardata")
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    await sim.fault("telematic_data", count=3, status=500)

    for _ in range(3):
        await async_step(hass, travel, timedelta(minutes=40))
    assert not coordinator.last_update_success

    await async_step(hass, travel, timedelta(minutes=40))
    await async_step(hass, travel, timedelta(minutes=40))
    assert coordinator.last_update_success
    messages = [record.getMessage() for record in caplog.records]
    assert sum("REST request failed, values kept" in message for message in messages) == 1
    assert sum(message == "REST polling works again" for message in messages) == 1


async def test_invalid_token_is_refreshed_and_polling_goes_on(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """BMW's CU-127 invalid_token: a forced refresh, no reauthentication, next tick works."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    await sim.fault(
        "telematic_data",
        status=403,
        body={"exveErrorId": "CU-127", "exveErrorMsg": "invalid_token"},
    )

    await async_step(hass, travel, timedelta(minutes=80))
    assert account.tokens.forced_refreshes == 1
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    calls = (await async_rest_calls(sim))["telematic_data"]
    await async_step(hass, travel, timedelta(minutes=40))
    assert (await async_rest_calls(sim))["telematic_data"] == calls + 1
    assert coordinator.last_update_success


async def test_a_car_bmw_stops_serving_is_no_longer_polled(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    account: Account,
    travel: TimeTravel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """BMW refusing a car's telematics (CU-104): one warning, and its requests stop."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    await sim.fault("telematic_data", status=403, body={"exveErrorId": "CU-104"})

    # Both cars were read at set-up; the next is due after one round of the plan.
    await async_step(hass, travel, timedelta(minutes=80))

    assert len(coordinator.readable_vins()) == 1
    (refused,) = {VIN_BEV, VIN_PHEV} - set(coordinator.readable_vins())
    warnings = [r.getMessage() for r in caplog.records if "no longer polled" in r.getMessage()]
    assert len(warnings) == 1
    assert f"…{refused[-4:]}" in warnings[0]
    assert refused not in warnings[0]
    fetched = coordinator.last_rest_fetch(refused)

    # Four hours of polls go to the other car alone.
    calls = (await async_rest_calls(sim))["telematic_data"]
    for _ in range(6):
        await async_step(hass, travel, timedelta(minutes=40))
    assert coordinator.last_rest_fetch(refused) == fetched
    assert (await async_rest_calls(sim))["telematic_data"] > calls


async def test_a_token_without_the_api_scope_pauses_rest_with_one_warning(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    account: Account,
    travel: TimeTravel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """BMW saying the login lacks the CarData API (CU-103): one warning, six hours of rest."""
    await account.async_start(stream=StreamState.DISCONNECTED)
    await sim.fault("telematic_data", count=5, status=403, body={"exveErrorId": "CU-103"})

    await async_step(hass, travel, timedelta(minutes=80))
    calls = (await async_rest_calls(sim))["telematic_data"]
    for _ in range(8):
        await async_step(hass, travel, timedelta(minutes=40))

    # Nothing was sent in the five hours after BMW's answer, and it was said once.
    assert (await async_rest_calls(sim))["telematic_data"] == calls
    warnings = [r for r in caplog.records if "does not allow the CarData API" in r.getMessage()]
    assert len(warnings) == 1


async def test_a_refused_token_whose_refresh_is_refused_asks_for_login(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """A poll's token refused, then its forced refresh refused: polling stops for reauth."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    await async_step(hass, travel, timedelta(minutes=40))
    # A fresh login: the access token outlives the next poll, so the poll itself is what
    # BMW refuses, and the refresh that follows is forced.
    account.tokens.tokens = await async_authorize(hass, sim)
    await sim.fault("telematic_data", status=401, body={"exveErrorId": "CU-102"})
    await sim.fault("token", count=5, status=400, body={"error": "invalid_grant"})

    await async_step(hass, travel, timedelta(minutes=40))

    assert account.tokens.forced_refreshes == 1
    assert [flow["context"]["source"] for flow in hass.config_entries.flow.async_progress()] == [
        "reauth"
    ]
    assert not coordinator.last_update_success
    assert coordinator.next_poll_at is None


async def test_events_close_together_cost_one_request_and_the_plan_keeps_its_room(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """A second event within the cooldown adds no request; neither does one the budget lacks."""
    coordinator = await account.async_start(stream=StreamState.CONNECTED)
    calls = (await async_rest_calls(sim))["telematic_data"]

    # A car this account does not read (secondary user) is never polled for an event.
    assert not coordinator.request_event_poll(fleet.VIN_SECONDARY, "plugged in")
    assert coordinator.request_event_poll(VIN_BEV, "plugged in")
    assert not coordinator.request_event_poll(VIN_BEV, "charging started")
    await async_step(hass, travel, timedelta(minutes=2))
    assert (await async_rest_calls(sim))["telematic_data"] == calls + 1
    # Still within the cooldown after the poll.
    assert not coordinator.request_event_poll(VIN_BEV, "charging ended")

    # With the automatic share cut to what one round of the plan needs, events wait.
    account.budget.automatic_limit -= account.budget.remaining_automatic() - 2
    assert not coordinator.request_event_poll(VIN_PHEV, "trip ended")
    await async_step(hass, travel, timedelta(minutes=2))
    assert (await async_rest_calls(sim))["telematic_data"] == calls + 1


async def test_a_refused_token_with_gcdm_down_is_renewed_at_a_later_poll(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """A poll's token refused while GCDM is unreachable: no reauthentication, polling goes on."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    await async_step(hass, travel, timedelta(minutes=40))
    account.tokens.tokens = await async_authorize(hass, sim)
    await sim.fault("telematic_data", status=401, body={"exveErrorId": "CU-102"})
    await sim.fault("token", count=1, status=503)

    await async_step(hass, travel, timedelta(minutes=40))
    assert account.tokens.forced_refreshes == 1
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    calls = (await async_rest_calls(sim))["telematic_data"]
    await async_step(hass, travel, timedelta(minutes=40))
    assert (await async_rest_calls(sim))["telematic_data"] == calls + 1
    assert coordinator.last_update_success


async def test_refused_refresh_token_stops_polling_and_asks_for_login(
    hass: HomeAssistant, sim: SimulatorHandle, account: Account, travel: TimeTravel
) -> None:
    """When GCDM refuses the refresh token, polling stops and a reauthentication starts."""
    coordinator = await account.async_start(stream=StreamState.DISCONNECTED)
    await sim.fault("token", count=5, status=400, body={"error": "invalid_grant"})
    calls = await async_rest_calls(sim)

    # The access token has expired by the next tick: its refresh is refused.
    await async_step(hass, travel, timedelta(minutes=80))

    assert [flow["context"]["source"] for flow in hass.config_entries.flow.async_progress()] == [
        "reauth"
    ]
    assert not coordinator.last_update_success
    assert coordinator.next_poll_at is None
    assert await async_rest_calls(sim) == calls
