"""OAuth 2.0 device authorization grant with PKCE against BMW's GCDM, and token refresh.

GCDM deviates from RFC 8628: it answers `authorization_pending` with HTTP 403, uses
400/401 for other errors inconsistently, fails transiently right after approval and
answers the boilerplate `invalid_request` when a client id lacks a CarData service.
Poll outcomes are therefore decided by the `error` string, not the HTTP status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import hashlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .const import (
    BASE_SCOPES,
    DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SCOPES,
    DEFAULT_TIMEOUT,
    DEVICE_CODE_GRANT_TYPE,
    DEVICE_CODE_PATH,
    ENDPOINT_DEVICE_CODE,
    ENDPOINT_TOKEN,
    GCDM_BASE_URL,
    REFRESH_TOKEN_GRANT_TYPE,
    REFRESH_TOKEN_LIFETIME,
    SERVICE_SCOPES,
    SLOW_DOWN_INCREMENT,
    TOKEN_PATH,
)
from .errors import (
    CarDataConnectionError,
    ClientNotSubscribedError,
    DeviceFlowError,
    ReauthRequiredError,
)
from .models import (
    AuthorizationDenied,
    AuthorizationExpired,
    AuthorizationPending,
    DeviceAuthorization,
    PollFailed,
    PollOutcome,
    SlowDown,
    TokenGranted,
    TokenSet,
)
from .values import as_int, as_str

_LOGGER = logging.getLogger(__name__)

# 64 random bytes give an 86 character verifier, inside RFC 7636's 43-128.
_VERIFIER_BYTES = 64
# GCDM's answers to a refresh token it will not honour again.
_REFRESH_REFUSALS = frozenset(
    {"invalid_grant", "invalid_request", "invalid_client", "invalid_token", "unauthorized_client"}
)
# GCDM's answers when a requested scope is not available to the client id.
_SCOPE_REFUSALS = frozenset({"invalid_request", "invalid_scope"})
# BMW's API gateway fault while it settles an approval; polling again succeeds.
_TRANSIENT_FAULT = "keymanagement.service.invalid_access_token"


def generate_pkce() -> tuple[str, str]:
    """Return a fresh PKCE pair: (code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(_VERIFIER_BYTES)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def _jwt_claims(token: str) -> dict[str, Any]:
    """Return a JWT's payload claims without checking the signature; empty if undecodable."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) < 2:
        return {}
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _epoch_claim(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def decode_jwt_expiry(token: str) -> datetime | None:
    """Return the `exp` claim of a JWT as an aware UTC datetime, None if undecodable.

    The signature is not checked: the value only schedules reconnects and refreshes.
    """
    return _epoch_claim(_jwt_claims(token), "exp")


def decode_jwt_lifetime(token: str) -> timedelta | None:
    """Return how long a JWT was issued for (`exp` - `iat`), None if it does not say."""
    claims = _jwt_claims(token)
    issued, expires = _epoch_claim(claims, "iat"), _epoch_claim(claims, "exp")
    if issued is None or expires is None or expires <= issued:
        return None
    return expires - issued


@dataclass(frozen=True, slots=True)
class _GcdmResponse:
    """Status and decoded JSON object (empty when the body was not one) of a GCDM answer."""

    status: int
    body: Mapping[str, Any]

    @property
    def error(self) -> str | None:
        """Return the OAuth `error` code, if any."""
        return as_str(self.body.get("error"))

    @property
    def description(self) -> str | None:
        """Return the OAuth `error_description`, if any."""
        return as_str(self.body.get("error_description"))

    @property
    def fault_code(self) -> str | None:
        """Return the API gateway's fault code (`{"fault": {"detail": {"errorcode"}}}`)."""
        fault = self.body.get("fault")
        detail = fault.get("detail") if isinstance(fault, Mapping) else None
        return as_str(detail.get("errorcode")) if isinstance(detail, Mapping) else None


class GcdmAuth:
    """Device authorization flow and token refresh for one CarData client id."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        *,
        base_url: str = GCDM_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Use `session` for every request; the client id is sent in lower case.

        GCDM only accepts client ids in lower case (reported by several users).
        """
        self._session = session
        self.client_id = client_id.strip().lower()
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def request_device_code(
        self, scopes: Collection[str] = DEFAULT_SCOPES
    ) -> DeviceAuthorization:
        """Start a device authorization; the user then approves at the verification URI.

        Raises ClientNotSubscribedError when the client id lacks a requested CarData
        service, DeviceFlowError for other refusals (`error == "invalid_client"`: unknown
        client id) and CarDataConnectionError when GCDM cannot be reached or fails.
        """
        verifier, challenge = generate_pkce()
        response = await self._request_device_code(scopes, challenge)
        if response.status == 200:
            return self._device_authorization(response.body, verifier)
        if response.status >= 500 or response.status == 429:
            raise CarDataConnectionError(f"device code request failed: HTTP {response.status}")
        error = response.error or f"http_{response.status}"
        if error in _SCOPE_REFUSALS:
            requested = [scope for scope in SERVICE_SCOPES if scope in scopes]
            try:
                missing = await self._missing_services(requested)
            except CarDataConnectionError:
                # The diagnosis is a courtesy; the original refusal is the answer.
                missing = frozenset()
            if missing:
                raise ClientNotSubscribedError(missing, error, response.description)
        raise DeviceFlowError(error, response.description)

    async def diagnose_subscriptions(self) -> frozenset[str]:
        """Return the CarData service scopes the client id is not subscribed to.

        Requests a device code per service scope (GCDM answers `invalid_request` for
        scopes the client id lacks). Returns an empty set when every service works or
        when GCDM refuses even the basic scopes, i.e. the problem is not a subscription.
        """
        return await self._missing_services(SERVICE_SCOPES)

    async def _missing_services(self, service_scopes: Collection[str]) -> frozenset[str]:
        """Probe each service scope on its own; see diagnose_subscriptions."""
        _, challenge = generate_pkce()
        missing = set()
        for scope in service_scopes:
            probe = await self._request_device_code((*BASE_SCOPES, scope), challenge)
            if probe.status != 200 and probe.error in _SCOPE_REFUSALS:
                missing.add(scope)
        if missing and len(missing) == len(service_scopes):
            # Every service refused: only a subscription problem if the basics work.
            probe = await self._request_device_code(BASE_SCOPES, challenge)
            if probe.status != 200:
                return frozenset()
        _LOGGER.debug("Client id lacks CarData services: %s", sorted(missing))
        return frozenset(missing)

    async def _request_device_code(self, scopes: Collection[str], challenge: str) -> _GcdmResponse:
        """POST one device code request."""
        return await self._post(
            ENDPOINT_DEVICE_CODE,
            DEVICE_CODE_PATH,
            {
                "client_id": self.client_id,
                "response_type": "device_code",
                "scope": " ".join(scopes),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )

    @staticmethod
    def _device_authorization(body: Mapping[str, Any], verifier: str) -> DeviceAuthorization:
        """Build the DeviceAuthorization from GCDM's device code response."""
        device_code = as_str(body.get("device_code"))
        user_code = as_str(body.get("user_code"))
        verification_uri = as_str(body.get("verification_uri"))
        if device_code is None or user_code is None or verification_uri is None:
            raise DeviceFlowError("invalid_response", "device code response is incomplete")
        complete = as_str(body.get("verification_uri_complete"))
        if complete is None:
            # GCDM stopped sending the RFC 8628 convenience URI; build the same link.
            separator = "&" if "?" in verification_uri else "?"
            complete = f"{verification_uri}{separator}{urlencode({'user_code': user_code})}"
        interval = as_int(body.get("interval"))
        expires_in = as_int(body.get("expires_in"))
        return DeviceAuthorization(
            device_code=device_code,
            user_code=user_code,
            verification_uri=verification_uri,
            verification_uri_complete=complete,
            interval=interval if interval and interval > 0 else DEFAULT_POLL_INTERVAL,
            expires_at=datetime.now(UTC) + timedelta(seconds=max(expires_in or 300, 0)),
            code_verifier=verifier,
        )

    async def poll_token(self, device: DeviceAuthorization) -> PollOutcome:
        """Ask GCDM once whether the user approved `device`.

        On `slow_down` the interval of `device` grows by five seconds in place (and the
        returned SlowDown carries it). Never raises for GCDM's answers or network
        failures: those become PollFailed (retryable unless the request itself is wrong).
        The caller stops polling at `device.expires_at`.
        """
        try:
            response = await self._post(
                ENDPOINT_TOKEN,
                TOKEN_PATH,
                {
                    "client_id": self.client_id,
                    "device_code": device.device_code,
                    "grant_type": DEVICE_CODE_GRANT_TYPE,
                    "code_verifier": device.code_verifier,
                },
            )
        except CarDataConnectionError as err:
            return PollFailed("connection_error", str(err), retryable=True)
        return self._poll_outcome(response, device)

    def _poll_outcome(self, response: _GcdmResponse, device: DeviceAuthorization) -> PollOutcome:
        """Map a token endpoint answer during device polling to an outcome."""
        error = response.error
        if response.status == 200 and error is None:
            try:
                return TokenGranted(_token_set(response.body, previous=None))
            except ValueError as err:
                return PollFailed("invalid_response", str(err), retryable=True)
        if error == "authorization_pending" or (response.status == 403 and error is None):
            return AuthorizationPending()
        if error == "slow_down":
            device.interval += SLOW_DOWN_INCREMENT
            return SlowDown(device.interval)
        if error == "expired_token":
            return AuthorizationExpired()
        if error == "access_denied":
            return AuthorizationDenied()
        if error == "invalid_grant" or response.fault_code == _TRANSIENT_FAULT:
            # GCDM sometimes fails right after approval; the next poll usually succeeds.
            return PollFailed(error or "gateway_fault", response.description, retryable=True)
        if error is None:
            return PollFailed(
                f"http_{response.status}",
                "unexpected answer from the token endpoint",
                retryable=response.status >= 500 or response.status == 429,
            )
        return PollFailed(error, response.description, retryable=response.status >= 500)

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        """Exchange the refresh token for a new token set (GCDM rotates the refresh token).

        Raises ReauthRequiredError when GCDM refuses the refresh token and
        CarDataConnectionError for network failures and server errors (retry later).
        """
        response = await self._post(
            ENDPOINT_TOKEN,
            TOKEN_PATH,
            {
                "grant_type": REFRESH_TOKEN_GRANT_TYPE,
                "refresh_token": tokens.refresh_token,
                "client_id": self.client_id,
            },
        )
        error = response.error
        if response.status == 200 and error is None:
            try:
                return _token_set(response.body, previous=tokens)
            except ValueError as err:
                raise CarDataConnectionError(f"token refresh failed: {err}") from None
        if error in _REFRESH_REFUSALS:
            raise ReauthRequiredError(error, response.description)
        raise CarDataConnectionError(
            f"token refresh failed: HTTP {response.status}" + (f" {error}" if error else "")
        )

    async def _post(self, endpoint: str, path: str, form: dict[str, str]) -> _GcdmResponse:
        """POST a form to GCDM and decode the JSON answer (empty object if not JSON)."""
        try:
            async with self._session.post(
                f"{self._base_url}{path}",
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                text = await resp.text(errors="replace")
        except TimeoutError:
            raise CarDataConnectionError(f"{endpoint}: GCDM did not answer in time") from None
        except aiohttp.ClientError as err:
            raise CarDataConnectionError(f"{endpoint}: {type(err).__name__}: {err}") from None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {}
        _LOGGER.debug("GCDM %s answered HTTP %s", endpoint, status)
        return _GcdmResponse(status, body if isinstance(body, Mapping) else {})


def _token_set(body: Mapping[str, Any], previous: TokenSet | None) -> TokenSet:
    """Build a TokenSet from a token response; raises ValueError without access token.

    On refresh (`previous` given) a missing refresh token, id token or gcid keeps the
    previous one.
    """
    now = datetime.now(UTC)
    access_token = as_str(body.get("access_token"))
    if access_token is None:
        raise ValueError("token response has no access token")
    expires_in = as_int(body.get("expires_in"))
    if expires_in is None or expires_in <= 0:
        expires_in = DEFAULT_ACCESS_TOKEN_LIFETIME
    access_expires_at = now + timedelta(seconds=expires_in)

    refresh_token = as_str(body.get("refresh_token"))
    if refresh_token is not None:
        refresh_expires_at = now + REFRESH_TOKEN_LIFETIME
    elif previous is not None:
        refresh_token, refresh_expires_at = (
            previous.refresh_token,
            previous.refresh_token_expires_at,
        )
    else:
        raise ValueError("token response has no refresh token")

    id_token = as_str(body.get("id_token"))
    if id_token is not None:
        # `exp` is BMW's clock; read as ours it is late when our clock runs behind BMW's.
        # The lifetime BMW granted, counted from now, is right whatever the skew; the
        # earlier of the two never renews the stream's password too late.
        candidates = []
        if (expiry := decode_jwt_expiry(id_token)) is not None:
            candidates.append(expiry)
        if (lifetime := decode_jwt_lifetime(id_token)) is not None:
            candidates.append(now + lifetime)
        id_expires_at = min(candidates) if candidates else access_expires_at
    elif previous is not None and previous.id_token:
        id_token, id_expires_at = previous.id_token, previous.id_token_expires_at
    else:
        id_token, id_expires_at = "", access_expires_at

    scope = body.get("scope")
    if isinstance(scope, str):
        scopes = tuple(scope.split())
    elif isinstance(scope, list):
        scopes = tuple(item for item in scope if isinstance(item, str))
    else:
        scopes = previous.scope if previous is not None else ()

    gcid = as_str(body.get("gcid")) or (previous.gcid if previous is not None else "")
    return TokenSet(
        access_token=access_token,
        id_token=id_token,
        refresh_token=refresh_token,
        access_token_expires_at=access_expires_at,
        id_token_expires_at=id_expires_at,
        refresh_token_expires_at=refresh_expires_at,
        scope=scopes,
        gcid=gcid,
    )
