"""GcdmAuth against the simulator's GCDM: device flow, its failure modes, refresh, rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import logging
import uuid

import aiohttp
import pytest

from custom_components.cardata.api.auth import GcdmAuth, decode_jwt_expiry, decode_jwt_lifetime
from custom_components.cardata.api.const import (
    BASE_SCOPES,
    DEFAULT_SCOPES,
    SCOPE_API,
    SCOPE_STREAMING,
)
from custom_components.cardata.api.errors import (
    CarDataConnectionError,
    ClientNotSubscribedError,
    DeviceFlowError,
    ReauthRequiredError,
)
from custom_components.cardata.api.models import (
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationPending,
    DeviceAuthorization,
    PollFailed,
    SlowDown,
    TokenGranted,
    TokenSet,
)
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

GATEWAY_FAULT = {
    "fault": {
        "faultstring": "Invalid Access Token",
        "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
    }
}
INVALID_GRANT = {
    "error_description": "The provided access grant is invalid, expired, or revoked.",
    "error": "invalid_grant",
}


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def auth(session: aiohttp.ClientSession, sim: SimulatorHandle) -> GcdmAuth:
    return GcdmAuth(session, sim.client_id, base_url=sim.gcdm_url, timeout=5)


# Port 1 (tcpmux) is privileged and unused on loopback: connecting is refused at once.
OFFLINE_URL = "http://127.0.0.1:1"


async def login(auth: GcdmAuth, sim: SimulatorHandle) -> TokenSet:
    """Run the device flow the way a user does: request, approve in the browser, poll."""
    device = await auth.request_device_code()
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    return outcome.tokens


def assert_close(actual: datetime, expected: datetime, seconds: float = 5) -> None:
    assert actual.tzinfo is not None
    assert abs((actual - expected).total_seconds()) < seconds, (actual, expected)


# --- the happy path -------------------------------------------------------------------


async def test_device_flow_from_code_to_tokens(auth: GcdmAuth, sim: SimulatorHandle) -> None:
    device = await auth.request_device_code()

    # The simulator leaves out verification_uri_complete, as BMW does nowadays.
    assert device.verification_uri == f"{sim.gcdm_url}/oneid/link"
    assert device.verification_uri_complete == (
        f"{sim.gcdm_url}/oneid/link?user_code={device.user_code}"
    )
    assert len(device.user_code) == 8
    assert device.interval == 5
    assert_close(device.expires_at, datetime.now(UTC) + timedelta(seconds=300))

    assert isinstance(await auth.poll_token(device), AuthorizationPending)
    await sim.advance(device.interval)
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)

    assert isinstance(outcome, TokenGranted)
    tokens = outcome.tokens
    assert tokens.gcid == fleet.GCID_MAIN
    assert set(tokens.scope) == set(DEFAULT_SCOPES)
    now = datetime.now(UTC)
    assert_close(tokens.access_token_expires_at, now + timedelta(seconds=3599))
    assert_close(tokens.refresh_token_expires_at, now + timedelta(days=14))
    # The simulator's clock runs 5 s ahead here: the hour BMW granted counts from now, not
    # from BMW's clock, so the stream's password is never renewed late.
    assert_close(tokens.id_token_expires_at, now + timedelta(hours=1))
    jwt_expiry = decode_jwt_expiry(tokens.id_token)
    assert jwt_expiry is not None
    assert tokens.id_token_expires_at <= jwt_expiry


async def test_id_token_expiry_survives_a_clock_behind_bmws(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    """Our clock 10 minutes behind BMW's: `exp` read as our time would be 10 minutes late."""
    await sim.advance(600)
    device = await auth.request_device_code()
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    tokens = outcome.tokens

    assert decode_jwt_lifetime(tokens.id_token) == timedelta(hours=1)
    jwt_expiry = decode_jwt_expiry(tokens.id_token)
    assert jwt_expiry is not None
    assert_close(jwt_expiry, datetime.now(UTC) + timedelta(minutes=70))
    assert_close(tokens.id_token_expires_at, datetime.now(UTC) + timedelta(hours=1))


async def test_verification_uri_complete_is_used_when_sent(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    await sim.set_config(omit_verification_uri_complete=False)
    device = await auth.request_device_code()
    assert device.verification_uri_complete.endswith(f"?user_code={device.user_code}")
    assert device.verification_uri_complete.startswith(device.verification_uri)


async def test_client_id_is_sent_in_lower_case(
    session: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    auth = GcdmAuth(session, f"  {sim.client_id.upper()} ", base_url=sim.gcdm_url)
    assert auth.client_id == sim.client_id
    tokens = await login(auth, sim)
    assert tokens.gcid == fleet.GCID_MAIN


async def test_api_only_client_with_api_scopes_logs_in(
    session: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    auth = GcdmAuth(session, sim.clients["api_only"], base_url=sim.gcdm_url)
    device = await auth.request_device_code((*BASE_SCOPES, SCOPE_API))
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    assert SCOPE_STREAMING not in outcome.tokens.scope


# --- polling outcomes -----------------------------------------------------------------


async def test_slow_down_grows_the_interval_for_good(auth: GcdmAuth, sim: SimulatorHandle) -> None:
    device = await auth.request_device_code()
    assert isinstance(await auth.poll_token(device), AuthorizationPending)

    first = await auth.poll_token(device)
    assert first == SlowDown(10)
    assert device.interval == 10
    assert await auth.poll_token(device) == SlowDown(15)

    await sim.advance(device.interval)
    assert isinstance(await auth.poll_token(device), AuthorizationPending)
    assert device.interval == 15


@pytest.mark.parametrize("status", [400, 401])
async def test_expired_code(auth: GcdmAuth, sim: SimulatorHandle, status: int) -> None:
    await sim.set_config(expired_token_status=status)
    device = await auth.request_device_code()
    await sim.advance(301)
    assert isinstance(await auth.poll_token(device), AuthorizationExpired)


async def test_denied_authorization(auth: GcdmAuth, sim: SimulatorHandle) -> None:
    device = await auth.request_device_code()
    await sim.deny(device.user_code)
    assert isinstance(await auth.poll_token(device), AuthorizationDenied)


async def test_transient_failures_after_approval_are_retryable(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    device = await auth.request_device_code()
    await sim.approve(device.user_code)

    await sim.fault("token", status=400, body=INVALID_GRANT)
    assert await auth.poll_token(device) == PollFailed(
        "invalid_grant", INVALID_GRANT["error_description"], retryable=True
    )
    await sim.fault("token", status=500, body=GATEWAY_FAULT)
    failed = await auth.poll_token(device)
    assert isinstance(failed, PollFailed)
    assert failed.retryable

    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)


async def test_403_without_error_code_means_pending(auth: GcdmAuth, sim: SimulatorHandle) -> None:
    device = await auth.request_device_code()
    await sim.fault("token", status=403, body={})
    assert isinstance(await auth.poll_token(device), AuthorizationPending)


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (502, "<html><body>Bad Gateway</body></html>", "http_502", True),
        (400, {"error": "invalid_request", "error_description": "bad"}, "invalid_request", False),
        (401, {"error": "invalid_client"}, "invalid_client", False),
        (200, {"token_type": "Bearer"}, "invalid_response", True),
        (418, "teapot", "http_418", False),
    ],
)
async def test_unexpected_poll_answers_become_poll_failed(
    auth: GcdmAuth,
    sim: SimulatorHandle,
    status: int,
    body: object,
    error: str,
    retryable: bool,
) -> None:
    device = await auth.request_device_code()
    await sim.fault("token", status=status, body=body)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, PollFailed)
    assert (outcome.error, outcome.retryable) == (error, retryable)


@pytest.mark.parametrize(
    ("body", "scope"),
    [
        ({"access_token": "a", "refresh_token": "r"}, ()),
        (
            {"access_token": "a", "refresh_token": "r", "expires_in": 0, "scope": ["openid", 5]},
            ("openid",),
        ),
    ],
)
async def test_sparse_grant_gets_safe_defaults(
    auth: GcdmAuth, sim: SimulatorHandle, body: dict[str, object], scope: tuple[str, ...]
) -> None:
    device = await auth.request_device_code()
    await sim.fault("token", status=200, body=body)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    tokens = outcome.tokens
    assert_close(tokens.access_token_expires_at, datetime.now(UTC) + timedelta(hours=1))
    # No id token without openid: empty, and it "expires" with the access token.
    assert tokens.id_token == ""
    assert tokens.id_token_expires_at == tokens.access_token_expires_at
    assert (tokens.scope, tokens.gcid) == (scope, "")


async def test_grant_without_refresh_token_is_a_failed_poll(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    device = await auth.request_device_code()
    await sim.fault("token", status=200, body={"access_token": "a"})
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, PollFailed)
    assert outcome.error == "invalid_response"


async def test_poll_timeout_is_retryable(
    session: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    auth = GcdmAuth(session, sim.client_id, base_url=sim.gcdm_url, timeout=0.3)
    device = await auth.request_device_code()
    await sim.fault("token", timeout=True)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, PollFailed)
    assert outcome.retryable
    assert outcome.error == "connection_error"


async def test_poll_network_error_is_retryable(session: aiohttp.ClientSession) -> None:
    auth = GcdmAuth(session, "c", base_url=OFFLINE_URL)
    device = DeviceAuthorization(
        device_code="d",
        user_code="u",
        verification_uri="v",
        verification_uri_complete="v",
        interval=5,
        expires_at=datetime.now(UTC),
        code_verifier="x",
    )
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, PollFailed)
    assert outcome.retryable


# --- device code refusals -------------------------------------------------------------


async def test_unknown_client_id(session: aiohttp.ClientSession, sim: SimulatorHandle) -> None:
    auth = GcdmAuth(session, str(uuid.uuid4()), base_url=sim.gcdm_url)
    with pytest.raises(DeviceFlowError) as raised:
        await auth.request_device_code()
    assert raised.value.error == "invalid_client"
    assert not isinstance(raised.value, ClientNotSubscribedError)


@pytest.mark.parametrize(
    ("client", "missing"),
    [
        ("api_only", {SCOPE_STREAMING}),
        ("stream_only", {SCOPE_API}),
        ("none", {SCOPE_API, SCOPE_STREAMING}),
    ],
)
async def test_unsubscribed_client_says_which_service_is_missing(
    session: aiohttp.ClientSession, sim: SimulatorHandle, client: str, missing: set[str]
) -> None:
    auth = GcdmAuth(session, sim.clients[client], base_url=sim.gcdm_url)
    with pytest.raises(ClientNotSubscribedError) as raised:
        await auth.request_device_code()
    assert raised.value.missing == missing
    assert raised.value.error == "invalid_request"
    assert await auth.diagnose_subscriptions() == missing


async def test_subscription_removed_in_portal(auth: GcdmAuth, sim: SimulatorHandle) -> None:
    assert await auth.diagnose_subscriptions() == frozenset()
    await sim.set_subscriptions(sim.client_id, stream=False)
    with pytest.raises(ClientNotSubscribedError) as raised:
        await auth.request_device_code()
    assert raised.value.missing == {SCOPE_STREAMING}


async def test_invalid_request_that_is_not_a_subscription_problem(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    # One refusal, then the probes all pass: nothing to blame on subscriptions.
    await sim.fault("device_code", status=400, body={"error": "invalid_request"})
    with pytest.raises(DeviceFlowError) as raised:
        await auth.request_device_code()
    assert not isinstance(raised.value, ClientNotSubscribedError)

    # Even the basic scopes are refused: not a subscription problem either.
    await sim.fault("device_code", count=4, status=400, body={"error": "invalid_request"})
    with pytest.raises(DeviceFlowError) as raised:
        await auth.request_device_code()
    assert not isinstance(raised.value, ClientNotSubscribedError)


async def test_failed_diagnosis_falls_back_to_the_original_refusal(
    session: aiohttp.ClientSession, sim: SimulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = GcdmAuth(session, sim.clients["api_only"], base_url=sim.gcdm_url)

    async def unreachable(scopes: object) -> frozenset[str]:
        raise CarDataConnectionError("probe failed")

    # The simulator cannot fail only the probes after a first answer; a stub can.
    monkeypatch.setattr(auth, "_missing_services", unreachable)
    with pytest.raises(DeviceFlowError) as raised:
        await auth.request_device_code()
    assert not isinstance(raised.value, ClientNotSubscribedError)
    assert raised.value.error == "invalid_request"


async def test_device_code_request_failures(
    session: aiohttp.ClientSession, auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    await sim.fault("device_code", status=500)
    with pytest.raises(CarDataConnectionError):
        await auth.request_device_code()

    await sim.fault("device_code", status=200, body={"user_code": "abc"})
    with pytest.raises(DeviceFlowError) as raised:
        await auth.request_device_code()
    assert raised.value.error == "invalid_response"

    await sim.fault("device_code", status=403, body="<html>denied</html>")
    with pytest.raises(DeviceFlowError) as raised:
        await auth.request_device_code()
    assert raised.value.error == "http_403"

    offline = GcdmAuth(session, "c", base_url=OFFLINE_URL)
    with pytest.raises(CarDataConnectionError):
        await offline.request_device_code()


# --- refresh --------------------------------------------------------------------------


async def test_refresh_rotates_and_old_refresh_token_is_refused(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    first = await login(auth, sim)
    await sim.advance(3000)
    second = await auth.refresh(first)

    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert second.id_token != first.id_token
    assert second.gcid == first.gcid
    assert second.access_token_expires_at >= first.access_token_expires_at
    assert second.id_token_expires_at > first.id_token_expires_at

    with pytest.raises(ReauthRequiredError) as raised:
        await auth.refresh(first)
    assert raised.value.error == "invalid_request"
    assert first.refresh_token not in str(raised.value)

    third = await auth.refresh(second)
    assert third.refresh_token not in {first.refresh_token, second.refresh_token}


async def test_refresh_refused_with_invalid_grant(auth: GcdmAuth, sim: SimulatorHandle) -> None:
    await sim.set_config(stale_refresh_error="invalid_grant")
    tokens = await login(auth, sim)
    await sim.advance(14 * 24 * 3600 + 1)
    with pytest.raises(ReauthRequiredError) as raised:
        await auth.refresh(tokens)
    assert raised.value.error == "invalid_grant"


async def test_unsubscribing_revokes_the_refresh_token(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    tokens = await login(auth, sim)
    await sim.set_subscriptions(sim.client_id, api=False)
    with pytest.raises(ReauthRequiredError):
        await auth.refresh(tokens)


async def test_refresh_keeps_gcid_when_gcdm_leaves_it_out(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    await sim.set_config(omit_gcid_on_refresh=True)
    tokens = await auth.refresh(await login(auth, sim))
    assert tokens.gcid == fleet.GCID_MAIN


async def test_refresh_keeps_what_a_sparse_answer_leaves_out(
    auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    first = await login(auth, sim)
    await sim.fault("token", status=200, body={"access_token": "new-access", "expires_in": "600"})
    second = await auth.refresh(first)
    assert second.access_token == "new-access"
    assert_close(second.access_token_expires_at, datetime.now(UTC) + timedelta(seconds=600))
    assert second.refresh_token == first.refresh_token
    assert second.refresh_token_expires_at == first.refresh_token_expires_at
    assert second.id_token == first.id_token
    assert second.scope == first.scope
    assert second.gcid == first.gcid


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, GATEWAY_FAULT),
        (503, "<html>Service Unavailable</html>"),
        (429, {"error": "too_many_requests"}),
        (200, {"token_type": "Bearer"}),
    ],
)
async def test_refresh_failures_that_are_worth_retrying(
    auth: GcdmAuth, sim: SimulatorHandle, status: int, body: object
) -> None:
    tokens = await login(auth, sim)
    await sim.fault("token", status=status, body=body)
    with pytest.raises(CarDataConnectionError) as raised:
        await auth.refresh(tokens)
    assert tokens.refresh_token not in str(raised.value)
    # The refresh token was not used up: the next attempt works.
    assert (await auth.refresh(tokens)).gcid == fleet.GCID_MAIN


async def test_refresh_network_failures(
    session: aiohttp.ClientSession, auth: GcdmAuth, sim: SimulatorHandle
) -> None:
    tokens = await login(auth, sim)
    offline = GcdmAuth(session, sim.client_id, base_url=OFFLINE_URL)
    with pytest.raises(CarDataConnectionError):
        await offline.refresh(tokens)

    impatient = GcdmAuth(session, sim.client_id, base_url=sim.gcdm_url, timeout=0.3)
    await sim.fault("token", timeout=True)
    with pytest.raises(CarDataConnectionError):
        await impatient.refresh(tokens)


# --- secrets --------------------------------------------------------------------------


async def test_no_secret_reaches_a_log_line(
    auth: GcdmAuth, sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = await auth.request_device_code()
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    refreshed = await auth.refresh(outcome.tokens)
    with pytest.raises(ReauthRequiredError) as raised:
        await auth.refresh(outcome.tokens)

    secrets = [
        device.device_code,
        device.code_verifier,
        outcome.tokens.access_token,
        outcome.tokens.id_token,
        outcome.tokens.refresh_token,
        refreshed.access_token,
        refreshed.refresh_token,
    ]
    texts = [caplog.text, repr(device), repr(outcome), repr(refreshed), str(raised.value)]
    assert caplog.records  # the flow did log
    for secret in secrets:
        for text in texts:
            assert secret not in text
