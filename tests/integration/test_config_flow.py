"""The config flow, end to end against the BMW simulator.

Every flow talks to the simulator's GCDM and REST API over loopback with the integration's
real client library; the person at BMW's login page is played by the simulator's control
API (approve, deny). The only thing replaced is the poll loop's sleep (see PollClock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import re
import socket
from typing import Any
from unittest.mock import AsyncMock, patch
import uuid

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata import config_flow
from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.models import (
    BasicData,
    DeviceAuthorization,
    TokenSet,
    VehicleMapping,
)
from custom_components.cardata.cache import AccountCache
from custom_components.cardata.const import (
    CONF_AUTOMATIC_BUDGET,
    CONF_CLIENT_ID,
    CONF_GCID,
    CONF_TOKENS,
    DEFAULT_AUTOMATIC_BUDGET,
    DOMAIN,
    SIMULATOR_ENV,
)
from custom_components.cardata.quota import async_get_budget
from custom_components.cardata.titles import vehicle_name
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import async_add_entry, async_wait_for

INTEGRATION = Path(__file__).parents[2] / "custom_components" / "cardata"
STRINGS = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
GERMAN = json.loads((INTEGRATION / "translations" / "de.json").read_text(encoding="utf-8"))
PLACEHOLDER = re.compile(r"{(\w+)}")

MAIN_TITLE = "BMW i4 eDrive40, BMW X5 xDrive50e"
GATEWAY_FAULT = {
    "fault": {
        "faultstring": "Invalid Access Token",
        "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
    }
}
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The provided access grant is invalid, expired, or revoked.",
}


# --- Fixtures and helpers ---------------------------------------------------------------


class PollClock:
    """Stands in for the poll loop's sleep, which the simulator cannot control.

    Home Assistant's clock is not the simulator's, so the flow's pauses between polls are
    mocked: each pause is recorded and moves the simulator's clock forward by the same
    amount instead of waiting. The loop starts held, so a test can act at BMW (approve,
    deny, arm faults) before the first poll; `run` lets it go.
    """

    def __init__(self, sim: SimulatorHandle) -> None:
        self.sim = sim
        self.requested: list[float] = []
        self._running = asyncio.Event()
        self._held = asyncio.Event()
        self._hold_at: int | None = None

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        if self._hold_at is not None and len(self.requested) >= self._hold_at:
            self._hold_at = None
            self._running.clear()
            self._held.set()
        await self._running.wait()
        await self.sim.advance(seconds)

    def run(self, *, hold_at_sleep: int | None = None) -> None:
        """Let the poll loop run; with `hold_at_sleep`, hold it again at that pause."""
        self._hold_at = hold_at_sleep
        self._held.clear()
        self._running.set()

    def hold(self) -> None:
        """Hold the poll loop at its next pause."""
        self._running.clear()

    async def held(self) -> None:
        """Wait until the loop reached the pause given to `run`."""
        await self._held.wait()


@pytest.fixture
async def clock(sim: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> PollClock:
    """Replace the poll loop's sleep with the simulator-driven clock.

    The simulator's clock stands still between the pauses: on a busy machine the seconds a
    test takes would otherwise count towards the code's 300 s, and it would expire early.
    """
    await sim.freeze_clock()
    poll_clock = PollClock(sim)
    monkeypatch.setattr(config_flow, "_sleep", poll_clock.sleep)
    return poll_clock


@pytest.fixture
def mock_setup_entry() -> Iterator[AsyncMock]:
    """Keep created or reloaded entries from connecting to BMW.

    These tests are about the flow; setting up the entry (tokens, coordinator, stream) is
    tested with __init__.py. Home Assistant core's config flow tests patch it the same way.
    """
    with patch("custom_components.cardata.async_setup_entry", return_value=True) as mock:
        yield mock


@pytest.fixture
def device_codes(monkeypatch: pytest.MonkeyPatch) -> list[DeviceAuthorization]:
    """Record every device authorization the flow receives (to look for leaked secrets)."""
    received: list[DeviceAuthorization] = []
    original = GcdmAuth.request_device_code

    async def recording(self: GcdmAuth, *args: Any, **kwargs: Any) -> DeviceAuthorization:
        device = await original(self, *args, **kwargs)
        received.append(device)
        return device

    monkeypatch.setattr(GcdmAuth, "request_device_code", recording)
    return received


def assert_translated(result: ConfigFlowResult, section: str = "config") -> None:
    """Assert the result's texts exist in English and German, with their placeholders."""
    placeholders = set((result.get("description_placeholders") or {}).keys())
    keys: list[tuple[str, ...]] = []
    kind = result["type"]
    if kind is FlowResultType.FORM:
        keys.append(("step", result["step_id"], "title"))
        keys += [("error", error) for error in (result.get("errors") or {}).values()]
    elif kind is FlowResultType.SHOW_PROGRESS:
        keys.append(("progress", result["progress_action"]))
    elif kind is FlowResultType.ABORT:
        keys.append(("abort", result["reason"]))
    for language in (STRINGS, GERMAN):
        for key in keys:
            text: Any = language[section]
            for part in key:
                text = text[part]
            assert isinstance(text, str)
            assert set(PLACEHOLDER.findall(text)) <= placeholders, (key, placeholders)


async def start_user_flow(hass: HomeAssistant, client_id: str) -> ConfigFlowResult:
    """Open the flow and submit a client id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert_translated(result)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: client_id}
    )
    assert_translated(result)
    return result


async def continue_after_progress(
    hass: HomeAssistant, result: ConfigFlowResult, next_step: str
) -> ConfigFlowResult:
    """Wait for the poll loop to end, then continue as the frontend does by itself."""
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    # The flow moved on without any input: BMW's answer ended the progress step.
    progressed = hass.config_entries.flow.async_get(result["flow_id"])
    assert progressed["step_id"] == next_step
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert_translated(result)
    return result


async def approved_login(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, result: ConfigFlowResult
) -> ConfigFlowResult:
    """Approve the code the flow shows and let the flow continue."""
    await sim.approve(result["description_placeholders"]["user_code"])
    clock.run()
    return await continue_after_progress(hass, result, "finish")


def stored_tokens(gcid: str = fleet.GCID_MAIN) -> dict[str, Any]:
    """A token set as an entry stores it (expired long ago; BMW never saw it)."""
    past = datetime(2026, 1, 1, tzinfo=UTC)
    return TokenSet(
        access_token="stale-access",
        id_token="stale-id",
        refresh_token="stale-refresh",
        access_token_expires_at=past,
        id_token_expires_at=past,
        refresh_token_expires_at=past + timedelta(days=14),
        scope=("cardata:api:read",),
        gcid=gcid,
    ).as_dict()


def main_entry(client_id: str = fleet.CLIENT_FULL) -> MockConfigEntry:
    """The entry of account "main" as the flow would have created it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=MAIN_TITLE,
        unique_id=fleet.GCID_MAIN,
        data={CONF_CLIENT_ID: client_id, CONF_GCID: fleet.GCID_MAIN, CONF_TOKENS: stored_tokens()},
        options={CONF_AUTOMATIC_BUDGET: DEFAULT_AUTOMATIC_BUDGET},
    )


async def rest_calls(sim: SimulatorHandle, gcid: str = fleet.GCID_MAIN) -> dict[str, int]:
    """The REST calls BMW counted for an account, per endpoint."""
    by_endpoint: dict[str, int] = (await sim.calls())[gcid]["by_endpoint"]
    return by_endpoint


# --- Adding an account --------------------------------------------------------------------


async def test_user_flow_creates_entry(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    clock: PollClock,
    mock_setup_entry: AsyncMock,
    device_codes: list[DeviceAuthorization],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Client id, code shown, approval at BMW, entry named after the PRIMARY vehicles."""
    caplog.set_level("DEBUG")
    # Pasted with stray blanks and in upper case; BMW only knows the lower-case id.
    result = await start_user_flow(hass, f"  {fleet.CLIENT_FULL.upper()} ")

    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "authorize"
    shown = result["description_placeholders"]
    user_code = shown["user_code"]
    assert re.fullmatch(r"[A-Za-z0-9]{8}", user_code)
    assert shown["url"] == f"{sim.gcdm_url}/oneid/link?user_code={user_code}"
    assert shown["verification_uri"] == f"{sim.gcdm_url}/oneid/link"
    assert shown["minutes"] == "5"
    # The long link is the target of one link, never also printed as its text.
    for language in (STRINGS, GERMAN):
        text = language["config"]["progress"]["wait_for_approval"].format(**shown)
        assert text.count(shown["url"]) == 1
        assert f"[{shown['url']}]" not in text

    progress = result
    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == MAIN_TITLE
    assert result["result"].unique_id == fleet.GCID_MAIN
    assert result["data"][CONF_CLIENT_ID] == fleet.CLIENT_FULL
    assert result["data"][CONF_GCID] == fleet.GCID_MAIN
    tokens = TokenSet.from_dict(result["data"][CONF_TOKENS])
    assert tokens.gcid == fleet.GCID_MAIN
    assert tokens.access_token
    assert tokens.refresh_token
    assert result["options"] == {CONF_AUTOMATIC_BUDGET: DEFAULT_AUTOMATIC_BUDGET}
    assert clock.requested == [5]
    mock_setup_entry.assert_awaited_once()

    # One call proves the API works, one per PRIMARY vehicle names it; nothing else.
    assert await rest_calls(sim) == {"vehicle_mappings": 1, "basic_data": 2}
    budget = await async_get_budget(hass, fleet.GCID_MAIN)
    assert len(budget.spent()) == 3
    assert all(request.automatic for request in budget.spent())

    # The entry's set-up finds mappings and basic data without asking BMW again.
    cache = AccountCache(hass, fleet.GCID_MAIN)
    await cache.async_load()
    assert cache.mappings is not None
    assert {mapping.vin for mapping in cache.mappings} == {
        fleet.VIN_BEV,
        fleet.VIN_PHEV,
        fleet.VIN_SECONDARY,
    }
    bev = cache.basic_data(fleet.VIN_BEV)
    assert bev is not None
    assert bev.model_name == "i4 eDrive40"
    assert cache.basic_data(fleet.VIN_PHEV) is not None
    assert cache.basic_data(fleet.VIN_SECONDARY) is None

    # No secret reaches a log line or what the frontend is shown.
    (device,) = device_codes
    shown_to_user = repr([progress, {k: v for k, v in result.items() if k != "data"}])
    for secret in (
        device.device_code,
        device.code_verifier,
        tokens.access_token,
        tokens.refresh_token,
        tokens.id_token,
    ):
        assert secret not in caplog.text
        assert secret not in shown_to_user


async def test_client_id_already_configured_is_refused_before_the_login(
    hass: HomeAssistant, sim: SimulatorHandle, device_codes: list[DeviceAuthorization]
) -> None:
    """A client id that is already set up ends the flow at once: no BMW login to do."""
    main_entry().add_to_hass(hass)

    # Pasted in upper case: the same client id as the entry's.
    result = await start_user_flow(hass, fleet.CLIENT_FULL.upper())

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert device_codes == []
    assert await rest_calls(sim) == {}
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_account_already_configured_with_another_client(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """Another client id of an account already set up: refused after the login names it."""
    main_entry(client_id=fleet.CLIENT_API_ONLY).add_to_hass(hass)

    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert await rest_calls(sim) == {}
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


def test_help_texts_show_no_real_client_id() -> None:
    """The example client id in the texts is an obvious placeholder, no client of anyone's."""
    real = {fleet.CLIENT_FULL, fleet.CLIENT_API_ONLY, fleet.CLIENT_STREAM_ONLY}
    real |= {fleet.CLIENT_NONE, fleet.CLIENT_OTHER}
    for language in (STRINGS, GERMAN):
        texts = json.dumps(language["config"])
        assert "01234567-89ab-cdef-0123-456789abcdef" in texts
        assert not any(client_id in texts for client_id in real)


@pytest.mark.parametrize(
    "client_id",
    [
        "my client",
        "",
        "0c7e2f5a3b1d4e8f9a6c1d2e3f4a5b6c",
        "{0c7e2f5a-3b1d-4e8f-9a6c-1d2e3f4a5b6c}",
        "0c7e2f5a-3b1d-4e8f-9a6c-1d2e3f4a5b6",
    ],
)
async def test_client_id_must_be_a_uuid(
    hass: HomeAssistant, sim: SimulatorHandle, client_id: str
) -> None:
    """Anything but a UUID is refused on the form, before BMW is asked."""
    result = await start_user_flow(hass, client_id)

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_CLIENT_ID: "invalid_client_id"}


async def test_unknown_client_id(hass: HomeAssistant, sim: SimulatorHandle) -> None:
    """A well-formed id that BMW does not know is reported on the form."""
    result = await start_user_flow(hass, str(uuid.uuid4()))

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown_client"}


@pytest.mark.parametrize(
    ("client_id", "error"),
    [
        (fleet.CLIENT_API_ONLY, "stream_not_subscribed"),
        (fleet.CLIENT_STREAM_ONLY, "api_not_subscribed"),
        (fleet.CLIENT_NONE, "not_subscribed"),
    ],
)
async def test_client_without_subscription(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, client_id: str, error: str
) -> None:
    """The form names the missing service; once subscribed, the same form goes on."""
    result = await start_user_flow(hass, client_id)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}

    await sim.set_subscriptions(client_id, api=True, stream=True)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: client_id}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_device_code_refused_for_another_reason(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """Other refusals show BMW's error code with the usual causes."""
    await sim.fault(
        "device_code",
        status=400,
        body={"error": "unauthorized_client", "error_description": "not allowed"},
    )

    result = await start_user_flow(hass, fleet.CLIENT_FULL)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "authorization_refused"}
    assert result["description_placeholders"] == {"error": "unauthorized_client"}


async def test_cannot_connect_closed_port(
    hass: HomeAssistant, sim: SimulatorHandle, point_integration_at_simulator: Path
) -> None:
    """Nobody listening at BMW's login service: the form says BMW cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    ready = json.loads(point_integration_at_simulator.read_text())
    ready["gcdm_url"] = f"http://127.0.0.1:{closed_port}"
    point_integration_at_simulator.write_text(json.dumps(ready))

    result = await start_user_flow(hass, fleet.CLIENT_FULL)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_cannot_connect_gateway_error_then_retry(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """BMW's gateway fails once; submitting the form again starts the login."""
    await sim.fault("device_code", status=503, body="<html>Service Unavailable</html>")

    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_FULL}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    hass.config_entries.flow.async_abort(result["flow_id"])


# --- Waiting for the approval ------------------------------------------------------------


async def test_slow_down_grows_the_interval_for_good(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """After slow_down the loop polls five seconds less often, for the rest of the login."""
    await sim.fault(
        "token",
        status=400,
        body={
            "error": "slow_down",
            "error_description": "The polling interval has not elapsed since the last request",
        },
    )
    result = await start_user_flow(hass, fleet.CLIENT_FULL)

    clock.run(hold_at_sleep=4)
    await clock.held()
    assert clock.requested == [5, 10, 10, 10]

    result = await approved_login(hass, sim, clock, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert clock.requested == [5, 10, 10, 10]


async def test_expired_code_then_fresh_code(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """Nobody approves in five minutes: the flow offers a fresh code, which then works."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    first_code = result["description_placeholders"]["user_code"]

    clock.run()
    result = await continue_after_progress(hass, result, "expired")

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "expired"
    # BMW's code lives 300 s and is polled every 5 s.
    assert sum(clock.requested) == 300

    clock.hold()
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["description_placeholders"]["user_code"] != first_code

    result = await approved_login(hass, sim, clock, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == MAIN_TITLE


async def test_fresh_code_refused(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """A failure while requesting the fresh code is shown on the expired form."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    clock.run()
    result = await continue_after_progress(hass, result, "expired")

    await sim.set_subscriptions(fleet.CLIENT_FULL, stream=False)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "expired"
    assert result["errors"] == {"base": "stream_not_subscribed"}


async def test_denied(hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock) -> None:
    """Declined at BMW: the flow ends with the usual causes."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.deny(result["description_placeholders"]["user_code"])
    clock.run()

    result = await continue_after_progress(hass, result, "denied")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "access_denied"
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.parametrize(
    ("status", "body"), [(400, INVALID_GRANT), (500, GATEWAY_FAULT)], ids=["grant", "gateway"]
)
async def test_transient_failure_after_approval(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    clock: PollClock,
    mock_setup_entry: AsyncMock,
    status: int,
    body: dict[str, Any],
) -> None:
    """BMW stumbles right after the approval; polling on gets the tokens."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault("token", count=2, status=status, body=body)

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert clock.requested == [5, 5, 5]


async def test_transient_failures_until_the_code_expires(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """When BMW keeps failing, the flow stops when the code's lifetime is over."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault("token", count=1000, status=500, body=GATEWAY_FAULT)
    await sim.approve(result["description_placeholders"]["user_code"])
    clock.run()

    result = await continue_after_progress(hass, result, "expired")

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "expired"
    assert sum(clock.requested) == 300


async def test_login_fails_for_good(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """An answer that polling again cannot fix ends the flow with BMW's error code."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault(
        "token", status=401, body={"error": "invalid_client", "error_description": "gone"}
    )
    clock.run()

    result = await continue_after_progress(hass, result, "failed")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "authorization_failed"
    assert result["description_placeholders"] == {"error": "invalid_client"}


async def test_login_poll_crashes(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the poll loop ends the flow with a message instead of a stuck dialog.

    The simulator cannot make the client library itself fail, so this one is a mock.
    """
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    with patch.object(GcdmAuth, "poll_token", side_effect=RuntimeError("bug")):
        clock.run()
        result = await continue_after_progress(hass, result, "failed")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "authorization_failed"
    assert result["description_placeholders"] == {"error": "internal_error"}
    assert "Waiting for the BMW login failed unexpectedly" in caplog.text


async def test_closing_the_dialog_stops_polling(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """A flow closed while waiting polls no more."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    hass.config_entries.flow.async_abort(result["flow_id"])
    clock.run()
    await hass.async_block_till_done()

    assert clock.requested == [5]
    await sim.approve(result["description_placeholders"]["user_code"])
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_token_answer_without_account(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """Tokens that name no GCID cannot become an entry."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault(
        "token",
        status=200,
        body={
            "access_token": "a" * 53,
            "refresh_token": "r" * 46,
            "token_type": "Bearer",
            "expires_in": 3599,
            "scope": "cardata:api:read openid cardata:streaming:read authenticate_user",
        },
    )
    clock.run()

    result = await continue_after_progress(hass, result, "finish")

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_token_response"


# --- Reading the vehicles after the login --------------------------------------------------


async def test_api_scope_refused(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """CU-103 on the first REST call: the client must be subscribed to CarData API."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault(
        "vehicle_mappings",
        status=403,
        body={"exveErrorId": "CU-103", "exveErrorMsg": "Token-scope is not CarData"},
    )

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "api_not_subscribed"
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_no_primary_vehicle(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """A SECONDARY user cannot read data: no entry, and no basic data spent."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault(
        "vehicle_mappings",
        status=200,
        body=[
            {
                "vin": fleet.VIN_SECONDARY,
                "mappedSince": "2024-03-11T09:15:00Z",
                "mappingType": "SECONDARY",
            }
        ],
    )

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_primary_vehicles"
    assert await rest_calls(sim) == {"vehicle_mappings": 1}


async def test_budget_spent_at_bmw(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """BMW says CU-429 (another app spent it): abort, and the budget pauses REST."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault(
        "vehicle_mappings",
        status=403,
        body={"exveErrorId": "CU-429", "exveErrorMsg": "API rate limit reached"},
    )

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "budget_exhausted"
    budget = await async_get_budget(hass, fleet.GCID_MAIN)
    assert budget.blocked_until is not None
    assert budget.remaining() == 0
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d", result["description_placeholders"]["retry_at"]
    )


async def test_budget_spent_here(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """The integration's own share is spent: no request is sent at all."""
    budget = await async_get_budget(hass, fleet.GCID_MAIN)
    for _ in range(DEFAULT_AUTOMATIC_BUDGET):
        budget.acquire("telematic_data", automatic=True)
    result = await start_user_flow(hass, fleet.CLIENT_FULL)

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "budget_exhausted"
    assert await rest_calls(sim) == {}


async def test_vehicles_unreadable_then_retry(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """BMW fails reading the mappings once; retrying needs no second login."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault("vehicle_mappings", status=500)

    result = await approved_login(hass, sim, clock, result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "finish"
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == MAIN_TITLE
    assert clock.requested == [5]


async def test_basic_data_failure_names_vehicle_by_vin(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    clock: PollClock,
    mock_setup_entry: AsyncMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without basic data a vehicle is named by the end of its VIN and not cached.

    The full VIN identifies the owner's car: it is in neither the title nor the log.
    """
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault("basic_data", status=500)

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"VIN …{fleet.VIN_BEV[-4:]}, BMW X5 xDrive50e"
    # The harness's mock storage logs what is stored (the mappings); that is no log of ours.
    ours = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith("pytest_homeassistant_custom_component")
    )
    assert fleet.VIN_BEV not in ours
    assert f"No basic data for …{fleet.VIN_BEV[-4:]}" in ours
    cache = AccountCache(hass, fleet.GCID_MAIN)
    await cache.async_load()
    assert cache.basic_data(fleet.VIN_BEV) is None
    assert cache.basic_data(fleet.VIN_PHEV) is not None


async def test_basic_data_rate_limited(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """CU-429 while naming the vehicles still creates the entry, and pauses REST."""
    result = await start_user_flow(hass, fleet.CLIENT_FULL)
    await sim.fault(
        "basic_data",
        status=403,
        body={"exveErrorId": "CU-429", "exveErrorMsg": "API rate limit reached"},
    )

    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"VIN …{fleet.VIN_BEV[-4:]}, VIN …{fleet.VIN_PHEV[-4:]}"
    budget = await async_get_budget(hass, fleet.GCID_MAIN)
    assert budget.blocked_until is not None
    # The budget refused the second vehicle's request before it was sent.
    assert await rest_calls(sim) == {"vehicle_mappings": 1, "basic_data": 1}


@pytest.mark.parametrize(
    ("basic_data", "name"),
    [
        ({"brand": "BMW", "modelName": "i4 eDrive40"}, "BMW i4 eDrive40"),
        ({"brand": "MINI", "modelName": "MINI Cooper SE"}, "MINI Cooper SE"),
        ({"modelName": "X1 sDrive18i"}, "X1 sDrive18i"),
        ({"brand": "BMW"}, f"VIN …{fleet.VIN_BEV[-4:]}"),
        (None, f"VIN …{fleet.VIN_BEV[-4:]}"),
    ],
)
def test_vehicle_name(basic_data: dict[str, Any] | None, name: str) -> None:
    """Brand and model when BMW says them, the end of the VIN otherwise."""
    mapping = VehicleMapping.from_json({"vin": fleet.VIN_BEV, "mappingType": "PRIMARY"})
    assert mapping is not None
    parsed = None if basic_data is None else BasicData.from_json(basic_data, vin=fleet.VIN_BEV)
    assert vehicle_name(mapping, parsed) == name


# --- Reauth and reconfigure ----------------------------------------------------------------


async def test_reauth(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """Signing in again stores fresh tokens and reloads the entry, spending no request."""
    entry = main_entry()
    entry.add_to_hass(hass)

    result = await entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert_translated(result)
    schema_keys = {str(key): key for key in result["data_schema"].schema}
    assert schema_keys[CONF_CLIENT_ID].description == {"suggested_value": fleet.CLIENT_FULL}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_FULL}
    )
    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    tokens = TokenSet.from_dict(entry.data[CONF_TOKENS])
    assert tokens.access_token != "stale-access"
    assert tokens.gcid == fleet.GCID_MAIN
    assert entry.data[CONF_CLIENT_ID] == fleet.CLIENT_FULL
    await hass.async_block_till_done()
    mock_setup_entry.assert_awaited_once()
    assert await rest_calls(sim) == {}


async def test_reauth_restarts_the_stream_with_the_new_login(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """After signing in again the running account reconnects with the new login.

    The flow reloads the entry itself (no update listener), the way Home Assistant
    2026.12 requires; the suite-wide deprecation guard fails this test on any report.
    """
    entry = await async_add_entry(hass, sim)
    assert entry.state is ConfigEntryState.LOADED
    before = entry.runtime_data
    await async_wait_for(hass, lambda: before.stream.connected, "the stream to connect")
    (old_session,) = await sim.stream_sessions()
    old_tokens = TokenSet.from_dict(entry.data[CONF_TOKENS])

    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_FULL}
    )
    result = await approved_login(hass, sim, clock, result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    after = entry.runtime_data
    assert after is not before
    assert not before.stream.connected
    new_tokens = TokenSet.from_dict(entry.data[CONF_TOKENS])
    assert new_tokens.refresh_token != old_tokens.refresh_token
    await async_wait_for(hass, lambda: after.stream.connected, "the stream to reconnect")

    async def one_new_session() -> bool:
        sessions = await sim.stream_sessions()
        return (
            len(sessions) == 1
            and sessions[0]["connected_since"] != (old_session["connected_since"])
        )

    await async_wait_for(hass, one_new_session, "BMW to see the new stream session")


async def test_simulator_switch_to_another_machine_ends_the_flow(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    point_integration_at_simulator: Path,
    device_codes: list[DeviceAuthorization],
) -> None:
    """A simulator switch that is not loopback is refused before anything is sent."""
    ready = json.loads(point_integration_at_simulator.read_text())
    ready["gcdm_url"] = "http://192.0.2.10:8080"
    point_integration_at_simulator.write_text(json.dumps(ready))

    result = await start_user_flow(hass, fleet.CLIENT_FULL)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "simulator_not_loopback"
    assert result["description_placeholders"] == {"variable": SIMULATOR_ENV}
    assert device_codes == []


async def test_reauth_with_another_account(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """Somebody else's BMW ID cannot take over the entry."""
    entry = main_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_OTHER}
    )
    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data[CONF_TOKENS] == stored_tokens()
    assert entry.data[CONF_CLIENT_ID] == fleet.CLIENT_FULL
    mock_setup_entry.assert_not_awaited()


async def test_reauth_form_errors(hass: HomeAssistant, sim: SimulatorHandle) -> None:
    """The reauth form checks the client id like the first one."""
    entry = main_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_NONE}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["errors"] == {"base": "not_subscribed"}
    assert_translated(result)


async def test_reconfigure_to_new_client(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """A new client id of the same account replaces the old one, with its own tokens."""
    entry = main_entry(client_id=fleet.CLIENT_NONE)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert_translated(result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_FULL.upper()}
    )
    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_CLIENT_ID] == fleet.CLIENT_FULL
    assert TokenSet.from_dict(entry.data[CONF_TOKENS]).access_token != "stale-access"
    assert entry.title == MAIN_TITLE
    await hass.async_block_till_done()
    mock_setup_entry.assert_awaited_once()


async def test_reconfigure_of_a_running_account_reloads_it(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock
) -> None:
    """Reconfigure on a running account reloads it by itself, with no deprecation report."""
    entry = await async_add_entry(hass, sim)
    before = entry.runtime_data

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_FULL}
    )
    result = await approved_login(hass, sim, clock, result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    after = entry.runtime_data
    assert after is not before
    await async_wait_for(hass, lambda: after.stream.connected, "the stream to reconnect")


async def test_reconfigure_to_another_account(
    hass: HomeAssistant, sim: SimulatorHandle, clock: PollClock, mock_setup_entry: AsyncMock
) -> None:
    """A client id of another account is refused; the entry stays as it was."""
    entry = main_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_ID: fleet.CLIENT_OTHER}
    )
    result = await approved_login(hass, sim, clock, result)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data[CONF_CLIENT_ID] == fleet.CLIENT_FULL
    mock_setup_entry.assert_not_awaited()


# --- Options ---------------------------------------------------------------------------------


async def test_options_automatic_budget(hass: HomeAssistant, sim: SimulatorHandle) -> None:
    """The automatic share is a whole number in a stated range; the rest stays for actions."""
    entry = main_entry()
    entry.add_to_hass(hass)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert_translated(result, "options")
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {CONF_AUTOMATIC_BUDGET: DEFAULT_AUTOMATIC_BUDGET}
    # The field says the range in the user's language.
    placeholders = result["description_placeholders"]
    assert placeholders == {"minimum": "5", "maximum": "50"}
    for language in (STRINGS, GERMAN):
        helper = language["options"]["step"]["init"]["data_description"]["automatic_budget"]
        assert "5 " in helper.format(**placeholders)
        assert " 50" in helper.format(**placeholders)

    # Out of range or not whole: a translated message on the field, not "Value 55.0 is too
    # large" from the selector.
    for wrong in (55, 51, 4, 12.5):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_AUTOMATIC_BUDGET: wrong}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_AUTOMATIC_BUDGET: "automatic_budget_out_of_range"}
        assert_translated(result, "options")
    assert entry.options == {CONF_AUTOMATIC_BUDGET: DEFAULT_AUTOMATIC_BUDGET}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_AUTOMATIC_BUDGET: 25.0}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_AUTOMATIC_BUDGET: 25}
    assert isinstance(entry.options[CONF_AUTOMATIC_BUDGET], int)
