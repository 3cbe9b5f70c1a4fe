"""The simulator's GCDM: device flow with PKCE, the approval page, token refresh and rotation."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
import hashlib
import json
import re
import secrets
from typing import Any

import aiohttp
import pytest

from tests.simulator import fleet
from tests.simulator.handle import FULL_SCOPE, SimulatorHandle

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BOILERPLATE_START = "The request is missing a required parameter"


def jwt_part(token: str, index: int) -> dict[str, Any]:
    """Decode one base64url JSON segment of a JWT."""
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


class Gcdm:
    """Plain form-encoded calls, as BMW's guide shows them with curl."""

    def __init__(self, session: aiohttp.ClientSession, sim: SimulatorHandle) -> None:
        self.session = session
        self.sim = sim
        self.verifier, self.challenge = pkce_pair()

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            self.sim.gcdm_url + path, data=form, headers={"Accept": "application/json"}
        ) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def device_code(
        self, client_id: str | None = None, scope: str | None = FULL_SCOPE
    ) -> tuple[int, dict[str, Any]]:
        form = {
            "client_id": client_id or self.sim.client_id,
            "response_type": "device_code",
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        if scope is not None:
            form["scope"] = scope
        return await self.post("/gcdm/oauth/device/code", form)

    async def start(self, client_id: str | None = None, scope: str = FULL_SCOPE) -> dict[str, Any]:
        status, body = await self.device_code(client_id, scope)
        assert status == 200, body
        return body

    async def poll(
        self, device: dict[str, Any], *, verifier: str | None = None, client_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        return await self.post(
            "/gcdm/oauth/token",
            {
                "client_id": client_id or self.sim.client_id,
                "device_code": device["device_code"],
                "grant_type": DEVICE_GRANT,
                "code_verifier": verifier or self.verifier,
            },
        )

    async def refresh(
        self, refresh_token: str, client_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        return await self.post(
            "/gcdm/oauth/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client_id or self.sim.client_id,
            },
        )


@pytest.fixture
async def gcdm(sim: SimulatorHandle) -> AsyncIterator[Gcdm]:
    async with aiohttp.ClientSession() as session:
        yield Gcdm(session, sim)


async def test_device_code_answer_has_bmws_shape(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    device = await gcdm.start()

    assert re.fullmatch(r"[A-Za-z0-9]{8}", device["user_code"])
    assert device["interval"] == 5
    assert device["expires_in"] == 300
    assert device["verification_uri"] == sim.gcdm_url + "/oneid/link"
    # 2026 clients observe no verification_uri_complete: that is the default.
    assert "verification_uri_complete" not in device
    assert jwt_part(device["device_code"], 0) == {"typ": "JWT", "alg": "HS256"}
    payload = jwt_part(device["device_code"], 1)
    assert set(payload) == {"aud", "nbf", "user_code", "iss", "exp", "iat", "jti"}
    assert payload["user_code"] == device["user_code"]
    assert payload["exp"] - payload["iat"] == 300


async def test_verification_uri_complete_can_be_switched_on(
    gcdm: Gcdm, sim: SimulatorHandle
) -> None:
    await sim.set_config(omit_verification_uri_complete=False)

    device = await gcdm.start()

    assert device["verification_uri_complete"] == (
        f"{sim.gcdm_url}/oneid/link?user_code={device['user_code']}"
    )


async def test_device_flow_approved_through_control_api(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    device = await gcdm.start()
    assert await gcdm.poll(device) == (
        403,
        {
            "error": "authorization_pending",
            "error_description": "The user has not yet completed authorization",
        },
    )

    approval = await sim.approve(device["user_code"])
    await sim.advance(5)
    status, tokens = await gcdm.poll(device)

    assert approval["gcid"] == fleet.GCID_MAIN
    assert status == 200
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3599
    assert tokens["gcid"] == fleet.GCID_MAIN
    assert 48 <= len(tokens["access_token"]) <= 56
    assert tokens["refresh_token"]
    granted = tokens["scope"].split()
    assert sorted(granted) == sorted(FULL_SCOPE.split())
    assert granted != FULL_SCOPE.split()  # GCDM reorders, as observed
    header = jwt_part(tokens["id_token"], 0)
    claims = jwt_part(tokens["id_token"], 1)
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert claims["sub"] == fleet.GCID_MAIN
    assert claims["aud"] == sim.client_id
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["realm"] == "/customer"
    assert claims["tokenName"] == "id_token"
    assert claims["dynamic_scopes"] == [f"read:streaming/*/{fleet.GCID_MAIN}.*"]
    # A device code is good for one set of tokens only.
    status, again = await gcdm.poll(device)
    assert (status, again["error"]) == (400, "invalid_grant")


async def test_device_flow_approved_through_the_verification_page(
    gcdm: Gcdm, sim: SimulatorHandle
) -> None:
    device = await gcdm.start()

    async with gcdm.session.get(
        sim.gcdm_url + "/oneid/link", params={"user_code": device["user_code"]}
    ) as page:
        html = await page.text()
    async with gcdm.session.post(
        sim.gcdm_url + "/oneid/link", data={"user_code": device["user_code"], "action": "approve"}
    ) as result:
        result_html = await result.text()
    status, tokens = await gcdm.poll(device)

    assert page.content_type == "text/html"
    assert f'id="user_code" name="user_code" value="{device["user_code"]}"' in html
    assert 'id="approve"' in html
    assert 'id="deny"' in html
    assert result.status == 200
    assert "Success! Your device is now connected." in result_html
    assert status == 200
    assert tokens["gcid"] == fleet.GCID_MAIN


async def test_verification_page_refuses_an_unknown_code(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    async with gcdm.session.post(
        sim.gcdm_url + "/oneid/link", data={"user_code": "NoSuchCo", "action": "approve"}
    ) as result:
        html = await result.text()

    assert result.status == 400
    assert "invalid or has expired" in html


@pytest.mark.parametrize("through", ["page", "control"])
async def test_denied_authorization(gcdm: Gcdm, sim: SimulatorHandle, through: str) -> None:
    device = await gcdm.start()

    if through == "page":
        async with gcdm.session.post(
            sim.gcdm_url + "/oneid/link", data={"user_code": device["user_code"], "action": "deny"}
        ) as result:
            assert result.status == 200
    else:
        await sim.deny(device["user_code"])
    status, body = await gcdm.poll(device)

    assert (status, body["error"]) == (403, "access_denied")


async def test_device_code_expires_after_five_minutes(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    device = await gcdm.start()
    await sim.advance(301)

    status, body = await gcdm.poll(device)
    await sim.set_config(expired_token_status=400)
    status_switched, _ = await gcdm.poll(device)

    assert (status, body) == (
        401,
        {"error": "expired_token", "error_description": "The code is expired"},
    )
    assert status_switched == 400


async def test_polling_faster_than_the_interval_gets_slow_down(
    gcdm: Gcdm, sim: SimulatorHandle
) -> None:
    device = await gcdm.start()
    first, _ = await gcdm.poll(device)

    second, body = await gcdm.poll(device)
    await sim.advance(5)
    third, _ = await gcdm.poll(device)

    assert first == 403
    assert (second, body["error"]) == (400, "slow_down")
    assert third == 403


async def test_pkce_verifier_must_match_the_challenge(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    device = await gcdm.start()
    await sim.approve(device["user_code"])

    status, body = await gcdm.poll(device, verifier=pkce_pair()[0])

    assert (status, body["error"]) == (400, "invalid_grant")


async def test_unknown_client_id_is_refused(gcdm: Gcdm) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    status, body = await gcdm.device_code(unknown)
    # Users report success only with the client id in lower case.
    upper_status, _ = await gcdm.device_code(fleet.CLIENT_FULL.upper())

    assert (status, body["error"]) == (401, "invalid_client")
    assert upper_status == 401


async def test_unknown_client_id_is_refused_when_polling(gcdm: Gcdm) -> None:
    device = await gcdm.start()

    status, body = await gcdm.poll(device, client_id=fleet.CLIENT_OTHER)
    unknown_status, unknown = await gcdm.poll(
        device, client_id="00000000-0000-4000-8000-000000000000"
    )

    assert (status, body["error"]) == (400, "invalid_grant")
    assert (unknown_status, unknown["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("client_id", "scope"),
    [
        (fleet.CLIENT_API_ONLY, FULL_SCOPE),
        (fleet.CLIENT_STREAM_ONLY, "authenticate_user openid cardata:api:read"),
        (fleet.CLIENT_NONE, "authenticate_user openid cardata:streaming:read"),
    ],
)
async def test_scope_of_an_unsubscribed_service_gets_the_boilerplate(
    gcdm: Gcdm, client_id: str, scope: str
) -> None:
    status, body = await gcdm.device_code(client_id, scope)

    assert status == 400
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith(BOILERPLATE_START)


async def test_subscribed_scopes_of_a_partly_subscribed_client_work(
    gcdm: Gcdm, sim: SimulatorHandle
) -> None:
    scope = "authenticate_user openid cardata:api:read"
    device = await gcdm.start(fleet.CLIENT_API_ONLY, scope)
    await sim.approve(device["user_code"])

    status, tokens = await gcdm.poll(device, client_id=fleet.CLIENT_API_ONLY)

    assert status == 200
    assert "cardata:streaming:read" not in tokens["scope"].split()
    assert "dynamic_scopes" not in jwt_part(tokens["id_token"], 1)


async def test_malformed_requests_are_invalid_request(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    no_challenge = await gcdm.post(
        "/gcdm/oauth/device/code",
        {"client_id": sim.client_id, "response_type": "device_code", "scope": FULL_SCOPE},
    )
    async with gcdm.session.post(
        sim.gcdm_url + "/gcdm/oauth/device/code",
        json={
            "client_id": sim.client_id,
            "code_challenge": gcdm.challenge,
            "code_challenge_method": "S256",
        },
    ) as response:
        json_body = (response.status, await response.json())
    no_grant_type = await gcdm.post("/gcdm/oauth/token", {"client_id": sim.client_id})
    no_verifier = await gcdm.post(
        "/gcdm/oauth/token",
        {"client_id": sim.client_id, "grant_type": DEVICE_GRANT, "device_code": "x"},
    )

    for status, body in (no_challenge, json_body, no_grant_type, no_verifier):
        assert status == 400
        assert body["error"] == "invalid_request"


async def test_device_code_without_response_type_is_accepted(
    gcdm: Gcdm, sim: SimulatorHandle
) -> None:
    # evcc sends no response_type and works in production.
    status, _ = await gcdm.post(
        "/gcdm/oauth/device/code",
        {
            "client_id": sim.client_id,
            "scope": FULL_SCOPE,
            "code_challenge": gcdm.challenge,
            "code_challenge_method": "S256",
        },
    )

    assert status == 200


async def test_approval_by_another_account(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    device = await gcdm.start()
    await sim.approve(gcid=fleet.GCID_OTHER)

    _, tokens = await gcdm.poll(device)

    assert tokens["gcid"] == fleet.GCID_OTHER


async def test_auto_approve_grants_on_the_first_poll(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    await sim.set_config(auto_approve=True)
    device = await gcdm.start()

    status, tokens = await gcdm.poll(device)

    assert status == 200
    assert tokens["access_token"]


async def test_refresh_rotates_every_token(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    first = await sim.issue_tokens()

    status, second = await gcdm.refresh(first["refresh_token"])
    stale_status, stale = await gcdm.refresh(first["refresh_token"])
    third_status, _ = await gcdm.refresh(second["refresh_token"])

    assert status == 200
    assert second["gcid"] == fleet.GCID_MAIN
    for key in ("access_token", "refresh_token", "id_token"):
        assert second[key] != first[key]
    assert stale_status == 400
    assert stale["error"] == "invalid_request"
    assert stale["error_description"].startswith(BOILERPLATE_START)
    assert third_status == 200


async def test_refresh_switches(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    await sim.set_config(stale_refresh_error="invalid_grant", omit_gcid_on_refresh=True)
    first = await sim.issue_tokens()

    _, second = await gcdm.refresh(first["refresh_token"])
    status, stale = await gcdm.refresh(first["refresh_token"])

    assert "gcid" not in second
    assert (status, stale["error"]) == (400, "invalid_grant")


async def test_refresh_token_lives_fourteen_days(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    first = await sim.issue_tokens()
    await sim.advance(13 * 86400)
    status, second = await gcdm.refresh(first["refresh_token"])
    assert status == 200

    await sim.advance(15 * 86400)
    expired_status, body = await gcdm.refresh(second["refresh_token"])

    assert (expired_status, body["error"]) == (400, "invalid_request")


async def test_unsubscribing_a_service_revokes_refresh_tokens(
    gcdm: Gcdm, sim: SimulatorHandle
) -> None:
    tokens = await sim.issue_tokens()
    await sim.set_subscriptions(sim.client_id, stream=False)

    status, body = await gcdm.refresh(tokens["refresh_token"])

    assert (status, body["error"]) == (400, "invalid_request")


async def test_refresh_by_another_client_is_refused(gcdm: Gcdm, sim: SimulatorHandle) -> None:
    tokens = await sim.issue_tokens()

    status, _ = await gcdm.refresh(tokens["refresh_token"], client_id=fleet.CLIENT_API_ONLY)

    assert status == 400


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            {
                "status": 400,
                "body": {
                    "error_description": "The provided access grant is invalid, expired, or revoked.",
                    "error": "invalid_grant",
                },
            },
            (400, "invalid_grant"),
        ),
        (
            {
                "status": 500,
                "body": {
                    "fault": {
                        "faultstring": "Invalid Access Token",
                        "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
                    }
                },
            },
            (500, None),
        ),
    ],
)
async def test_injected_faults_after_approval(
    gcdm: Gcdm, sim: SimulatorHandle, fault: dict[str, Any], expected: tuple[int, str | None]
) -> None:
    device = await gcdm.start()
    await sim.approve(device["user_code"])
    await sim.fault("token", **fault)

    status, body = await gcdm.poll(device)
    await sim.advance(5)
    recovered_status, _ = await gcdm.poll(device)

    assert (status, body.get("error")) == expected
    assert body == fault["body"]
    assert recovered_status == 200
