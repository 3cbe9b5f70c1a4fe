"""BMW's GCDM: the OAuth 2.0 device authorization grant with PKCE, and the approval page.

Status codes follow BMW's swagger and what clients observed (cardata/spec.md §1), including
the non-RFC ones: 403 for authorization_pending/access_denied, 401 for expired_token (400 with
a switch), and the long invalid_request boilerplate where BMW sends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from html import escape
import json
import logging
import secrets
import string
from typing import TYPE_CHECKING, Any
import uuid

from aiohttp import web

from . import fleet
from .rest import fault_response
from .state import (
    ACCESS_TOKEN_LIFETIME,
    DEVICE_CODE_LIFETIME,
    POLL_INTERVAL,
    REFRESH_TOKEN_LIFETIME,
    DeviceGrant,
    SimState,
    TokenGrant,
)

if TYPE_CHECKING:
    from multidict import MultiDictProxy

_LOGGER = logging.getLogger(__name__)

STATE_KEY: web.AppKey[SimState] = web.AppKey("state", SimState)

DEVICE_CODE_PATH = "/gcdm/oauth/device/code"
TOKEN_PATH = "/gcdm/oauth/token"
VERIFICATION_PATH = "/oneid/link"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

# Issuers as seen in decoded production tokens.
_DEVICE_CODE_ISSUER = "https://forgerock-blue.prod-gcdm.eu-central-1.aws.cloud.bmw:443/am/oauth2"
_ID_TOKEN_ISSUER = "https://customer.bmwgroup.com/am/oauth2"
_ID_TOKEN_KID = "oAw7imP1VOJoyiG0HsrvHghrfCY="
# Signs device codes; they only need to look like BMW's HS256 JWTs and be tamper-evident here.
_DEVICE_CODE_KEY = secrets.token_bytes(32)

KNOWN_SCOPES = ("authenticate_user", "openid", fleet.SCOPE_API, fleet.SCOPE_STREAM)
# GCDM echoes granted scopes in its own order, not the request's (evcc#24163 trace).
_GRANTED_SCOPE_ORDER = (fleet.SCOPE_API, "openid", fleet.SCOPE_STREAM, "authenticate_user")
_SCOPE_SERVICE = {fleet.SCOPE_API: "api", fleet.SCOPE_STREAM: "stream"}

INVALID_REQUEST_BOILERPLATE = (
    "The request is missing a required parameter, includes an unsupported parameter value "
    "(other than grant type), repeats a parameter, includes multiple credentials, utilizes "
    "more than one mechanism for authenticating the client, or is otherwise malformed."
)
INVALID_CLIENT_DESCRIPTION = (
    "Client authentication failed (e.g., unknown client, no client authentication included, "
    "or unsupported authentication method)."
)
INVALID_GRANT_DESCRIPTION = "The provided access grant is invalid, expired, or revoked."


class _OAuthError(Exception):
    """An OAuth error answer: status, `error` and `error_description`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.error, "error_description": self.description}, status=self.status
        )


def _invalid_request() -> _OAuthError:
    return _OAuthError(400, "invalid_request", INVALID_REQUEST_BOILERPLATE)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _jwt_segment(claims: dict[str, Any]) -> str:
    return _b64url(json.dumps(claims, separators=(",", ":")).encode())


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge of a verifier (RFC 7636)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())


async def _read_form(request: web.Request) -> MultiDictProxy[str | bytes | Any]:
    """The form body; anything but form encoding, or a repeated field, is invalid_request."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise _invalid_request()
    form = await request.post()
    if any(len(form.getall(key)) > 1 for key in set(form.keys())):
        raise _invalid_request()
    return form


def _field(form: MultiDictProxy[str | bytes | Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


def _require(form: MultiDictProxy[str | bytes | Any], name: str) -> str:
    value = _field(form, name)
    if value is None:
        raise _invalid_request()
    return value


def _client(state: SimState, client_id: str) -> fleet.ClientSpec:
    client = state.find_client(client_id)
    if client is None:
        raise _OAuthError(401, "invalid_client", INVALID_CLIENT_DESCRIPTION)
    return client


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


# --- POST /gcdm/oauth/device/code --------------------------------------------------------


def _requested_scopes(
    state: SimState, client: fleet.ClientSpec, raw: str | None
) -> tuple[str, ...]:
    """Validate the requested scopes against what the client id is subscribed to."""
    if raw is None:
        # Observed (TA2k 95e9204): without `scope` the token lacks cardata:api:read.
        return ("authenticate_user", "openid")
    scopes = tuple(dict.fromkeys(raw.split()))
    if not scopes or any(scope not in KNOWN_SCOPES for scope in scopes):
        raise _OAuthError(
            400, "invalid_scope", "The requested scope is invalid, unknown, or malformed."
        )
    for scope in scopes:
        service = _SCOPE_SERVICE.get(scope)
        if service is not None and not state.subscribed(client.client_id, service):
            # Observed (JjyKsi#144): an unsubscribed cardata scope gets the generic boilerplate.
            raise _invalid_request()
    return scopes


def _device_code(state: SimState, user_code: str) -> str:
    """An HS256 JWT shaped like GCDM's device codes (aud/nbf/user_code/iss/exp/iat/jti)."""
    now = int(state.clock.timestamp())
    header = _jwt_segment({"typ": "JWT", "alg": "HS256"})
    payload = _jwt_segment(
        {
            "aud": _DEVICE_CODE_ISSUER,
            "nbf": now,
            "user_code": user_code,
            "iss": _DEVICE_CODE_ISSUER,
            "exp": now + DEVICE_CODE_LIFETIME,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
    )
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(_DEVICE_CODE_KEY, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


async def device_code(request: web.Request) -> web.StreamResponse:
    """Start a device authorization."""
    state = request.app[STATE_KEY]
    if (fault := state.take_fault("device_code")) is not None:
        return await fault_response(state, fault)
    try:
        form = await _read_form(request)
        client = _client(state, _require(form, "client_id"))
        response_type = _field(form, "response_type")
        # evcc omits response_type and works, so only a wrong value is refused.
        if response_type not in (None, "device_code"):
            raise _invalid_request()
        challenge = _require(form, "code_challenge")
        if _require(form, "code_challenge_method") != "S256":
            raise _invalid_request()
        scopes = _requested_scopes(state, client, _field(form, "scope"))
    except _OAuthError as err:
        return err.response()

    user_code = state.new_user_code()
    now = state.clock.timestamp()
    grant = DeviceGrant(
        device_code=_device_code(state, user_code),
        user_code=user_code,
        client_id=client.client_id,
        gcid=client.gcid,
        scopes=scopes,
        code_challenge=challenge,
        issued_at=now,
        expires_at=now + DEVICE_CODE_LIFETIME,
    )
    state.device_grants[grant.device_code] = grant
    _LOGGER.info("device authorization started for client %s", client.name)
    verification_uri = _origin(request) + VERIFICATION_PATH
    body: dict[str, Any] = {
        "user_code": user_code,
        "device_code": grant.device_code,
        "interval": POLL_INTERVAL,
        "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_LIFETIME,
    }
    if not state.config.omit_verification_uri_complete:
        body["verification_uri_complete"] = f"{verification_uri}?user_code={user_code}"
    return web.json_response(body)


# --- POST /gcdm/oauth/token ----------------------------------------------------------------


def _opaque_token(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _id_token(
    state: SimState, client_id: str, gcid: str, scopes: tuple[str, ...]
) -> tuple[str, int]:
    """An RS256-shaped JWT like GCDM's id tokens; returns it with its `exp`."""
    now = int(state.clock.timestamp())
    expires = now + ACCESS_TOKEN_LIFETIME
    claims: dict[str, Any] = {
        "at_hash": _b64url(secrets.token_bytes(16)),
        "sub": gcid,
        "auditTrackingId": f"{uuid.uuid4()}-{secrets.randbelow(10**8)}",
        "subname": gcid,
        "iss": _ID_TOKEN_ISSUER,
        "tokenName": "id_token",
        "aud": client_id,
        "c_hash": _b64url(secrets.token_bytes(16)),
        "acr": "0",
        "org.forgerock.openidconnect.ops": _b64url(secrets.token_bytes(20)),
        "s_hash": _b64url(secrets.token_bytes(16)),
        "azp": client_id,
        "auth_time": now,
        "realm": "/customer",
        "exp": expires,
        "tokenType": "JWTToken",
        "iat": now,
    }
    if fleet.SCOPE_STREAM in scopes:
        # The broker's ACL, as peterkoczan decoded it from production tokens.
        claims["dynamic_scopes"] = [f"read:streaming/*/{gcid}.*"]
    header = _jwt_segment({"typ": "JWT", "kid": _ID_TOKEN_KID, "alg": "RS256"})
    # A 2048-bit RSA signature is 256 bytes; nobody verifies it, so random bytes of that size.
    token = f"{header}.{_jwt_segment(claims)}.{_b64url(secrets.token_bytes(256))}"
    return token, expires


def _issue_tokens(
    state: SimState, client_id: str, gcid: str, scopes: tuple[str, ...], *, with_gcid: bool
) -> dict[str, Any]:
    """Mint access, id and refresh tokens and remember what they stand for."""
    now = state.clock.timestamp()
    access_token = _opaque_token(53)
    refresh_token = _opaque_token(32) + "-" + _opaque_token(13)
    state.access_tokens[access_token] = TokenGrant(
        client_id, gcid, scopes, now + ACCESS_TOKEN_LIFETIME
    )
    state.refresh_tokens[refresh_token] = TokenGrant(
        client_id, gcid, scopes, now + REFRESH_TOKEN_LIFETIME
    )
    granted = [scope for scope in _GRANTED_SCOPE_ORDER if scope in scopes]
    body: dict[str, Any] = {}
    if with_gcid:
        body["gcid"] = gcid
    body |= {
        "token_type": "Bearer",
        "access_token": access_token,
        "refresh_token": refresh_token,
        "scope": " ".join(granted),
        "expires_in": ACCESS_TOKEN_LIFETIME - 1,
    }
    if "openid" in scopes:
        id_token, expires = _id_token(state, client_id, gcid, scopes)
        state.id_tokens[id_token] = TokenGrant(client_id, gcid, scopes, float(expires))
        body["id_token"] = id_token
    return body


def _poll_device_grant(
    state: SimState, client: fleet.ClientSpec, form: MultiDictProxy[str | bytes | Any]
) -> dict[str, Any]:
    """Answer one poll of the device_code grant."""
    device_code_value = _require(form, "device_code")
    verifier = _require(form, "code_verifier")
    state.verifiers.append(verifier)
    grant = state.device_grants.get(device_code_value)
    if grant is None or grant.client_id != client.client_id:
        raise _OAuthError(400, "invalid_grant", INVALID_GRANT_DESCRIPTION)
    now = state.clock.timestamp()
    if now >= grant.expires_at and grant.status != "consumed":
        raise _OAuthError(state.config.expired_token_status, "expired_token", "The code is expired")
    if grant.status == "denied":
        raise _OAuthError(403, "access_denied", "The user has declined authorization")
    if grant.status == "consumed":
        raise _OAuthError(400, "invalid_grant", INVALID_GRANT_DESCRIPTION)
    previous_poll, grant.last_poll = grant.last_poll, now
    # A little slack: a client that waits exactly `interval` must never be told to slow down.
    if previous_poll is not None and now - previous_poll < POLL_INTERVAL - 1:
        raise _OAuthError(
            400, "slow_down", "The polling interval has not elapsed since the last request"
        )
    if grant.status == "pending" and state.config.auto_approve:
        grant.status = "approved"
    if grant.status == "pending":
        raise _OAuthError(
            403, "authorization_pending", "The user has not yet completed authorization"
        )
    if not hmac.compare_digest(pkce_challenge(verifier), grant.code_challenge):
        raise _OAuthError(400, "invalid_grant", INVALID_GRANT_DESCRIPTION)
    grant.status = "consumed"
    _LOGGER.info("device authorization completed for client %s", client.name)
    return _issue_tokens(state, grant.client_id, grant.gcid, grant.scopes, with_gcid=True)


def _refresh(
    state: SimState, client: fleet.ClientSpec, form: MultiDictProxy[str | bytes | Any]
) -> dict[str, Any]:
    """Answer a refresh_token grant: rotate every token."""
    refresh_token = _require(form, "refresh_token")
    grant = state.refresh_tokens.get(refresh_token)
    if (
        grant is None
        or grant.revoked
        or grant.client_id != client.client_id
        or state.token_expired(grant)
    ):
        if state.config.stale_refresh_error == "invalid_grant":
            raise _OAuthError(400, "invalid_grant", INVALID_GRANT_DESCRIPTION)
        # Observed (kvanbiesen#381): a superseded refresh token gets the boilerplate.
        raise _invalid_request()
    grant.revoked = True
    return _issue_tokens(
        state,
        grant.client_id,
        grant.gcid,
        grant.scopes,
        with_gcid=not state.config.omit_gcid_on_refresh,
    )


async def token(request: web.Request) -> web.StreamResponse:
    """Exchange a device code or a refresh token for tokens."""
    state = request.app[STATE_KEY]
    if (fault := state.take_fault("token")) is not None:
        return await fault_response(state, fault)
    try:
        form = await _read_form(request)
        grant_type = _require(form, "grant_type")
        client = _client(state, _require(form, "client_id"))
        if grant_type == DEVICE_GRANT_TYPE:
            body = _poll_device_grant(state, client, form)
        elif grant_type == "refresh_token":
            body = _refresh(state, client, form)
        else:
            return _OAuthError(
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            ).response()
    except _OAuthError as err:
        return err.response()
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# --- the verification page ---------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>BMW ID - Connect a device (simulator)</title>
<style>
body {{ font-family: sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #262626; }}
h1 {{ font-size: 1.4rem; }}
input {{ font-size: 1.3rem; letter-spacing: .15em; padding: .4rem; width: 12rem; }}
button {{ font-size: 1rem; padding: .5rem 1.2rem; margin: 1rem .5rem 0 0; }}
#approve {{ background: #1c69d4; color: #fff; border: 0; }}
.note {{ color: #666; font-size: .9rem; }}
.error {{ color: #b00020; }}
.success {{ color: #1b7f3b; }}
</style>
</head>
<body>
<h1>Connect a device to your BMW ID</h1>
{content}
<p class="note">BMW CarData simulator - no real account is involved.</p>
</body>
</html>
"""

_FORM = """{message}
<form method="post" action="{action}">
<label for="user_code">Code shown on your device</label><br>
<input id="user_code" name="user_code" value="{user_code}" autocomplete="off" required>
<br>
<button id="approve" name="action" value="approve" type="submit">Approve</button>
<button id="deny" name="action" value="deny" type="submit">Deny</button>
</form>
"""


def _page(content: str, status: int = 200) -> web.Response:
    return web.Response(text=_PAGE.format(content=content), status=status, content_type="text/html")


def _form(user_code: str = "", message: str = "") -> str:
    return _FORM.format(message=message, action=VERIFICATION_PATH, user_code=escape(user_code))


async def verification_page(request: web.Request) -> web.Response:
    """Where the person enters (or sees) the user code."""
    return _page(_form(request.query.get("user_code", "")))


async def verification_submit(request: web.Request) -> web.Response:
    """The Approve / Deny buttons."""
    state = request.app[STATE_KEY]
    form = await request.post()
    user_code = form.get("user_code")
    action = form.get("action")
    if not isinstance(user_code, str) or action not in ("approve", "deny"):
        return _page(
            _form(message='<p id="result" class="error">Enter the code and choose.</p>'), 400
        )
    grant = state.find_device_grant(user_code)
    if grant is None:
        message = '<p id="result" class="error">This code is invalid or has expired.</p>'
        return _page(_form(user_code, message), 400)
    if action == "deny":
        grant.status = "denied"
        return _page(
            '<p id="result" class="error">Access denied. The device was not connected.</p>'
        )
    grant.status = "approved"
    client = fleet.CLIENTS[grant.client_id]
    return _page(
        '<p id="result" class="success">Success! Your device is now connected.</p>'
        f"<p>Client <code>{escape(client.client_id)}</code> may access your BMW CarData. "
        "You can close this window.</p>"
    )


def create_app(state: SimState) -> web.Application:
    """The GCDM application (served on gcdm_url)."""
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_post(DEVICE_CODE_PATH, device_code)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_get(VERIFICATION_PATH, verification_page)
    app.router.add_post(VERIFICATION_PATH, verification_submit)
    return app
