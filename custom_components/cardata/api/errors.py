"""One exception hierarchy for everything that can go wrong talking to BMW CarData.

Messages carry status codes, BMW's error ids and BMW's own error texts, never a token,
refresh token, code verifier or device code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime


class CarDataError(Exception):
    """Base class of every error raised by the CarData client library."""


class CarDataConnectionError(CarDataError):
    """BMW could not be reached or answered with a transient failure; retrying may help."""


class RequestRefusedError(CarDataError):
    """The caller's request hook refused to send a request (typically: daily budget spent).

    `retry_at` says when the hook expects to allow requests again, if it knows.
    """

    def __init__(self, message: str = "request refused", *, retry_at: datetime | None = None):
        """Store when a request may be allowed again."""
        super().__init__(message)
        self.retry_at = retry_at


class DeviceFlowError(CarDataError):
    """GCDM refused to start the device authorization flow.

    `error` is GCDM's OAuth error code (`invalid_client` means the client id is unknown),
    `description` its human readable text.
    """

    def __init__(self, error: str, description: str | None = None) -> None:
        """Keep GCDM's error code and description."""
        message = f"device authorization refused: {error}"
        if description:
            message = f"{message} ({description})"
        super().__init__(message)
        self.error = error
        self.description = description


class ClientNotSubscribedError(DeviceFlowError):
    """The client id is not subscribed to a CarData service in BMW's portal.

    `missing` holds the scopes of the services that are missing, e.g.
    `frozenset({"cardata:streaming:read"})`.
    """

    def __init__(
        self,
        missing: frozenset[str],
        error: str = "invalid_request",
        description: str | None = None,
    ) -> None:
        """Keep which service scopes the client id lacks."""
        super().__init__(error, description)
        self.missing = missing
        self.args = (f"client id is not subscribed to: {', '.join(sorted(missing))}",)


class ReauthRequiredError(CarDataError):
    """GCDM refused the refresh token; the user has to run the device flow again."""

    def __init__(self, error: str, description: str | None = None) -> None:
        """Keep GCDM's error code and description."""
        message = f"token refresh refused: {error}"
        if description:
            message = f"{message} ({description})"
        super().__init__(message)
        self.error = error
        self.description = description


class ApiError(CarDataError):
    """The REST API answered with an error.

    `status` is the HTTP status, `error_id` BMW's `exveErrorId` (e.g. `CU-429`) and
    `error_message` BMW's `exveErrorMsg` when the body carried them; `endpoint` is the
    endpoint name (see const.REST_ENDPOINTS).
    """

    def __init__(
        self,
        endpoint: str,
        status: int,
        error_id: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Keep what BMW said about the failure."""
        details = " ".join(part for part in (error_id, error_message) if part)
        message = f"{endpoint}: HTTP {status}"
        if details:
            message = f"{message} {details}"
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.error_id = error_id
        self.error_message = error_message


class RateLimitError(ApiError):
    """The account's daily request budget at BMW is spent (CU-429, usually HTTP 403)."""


class TokenInvalidError(ApiError):
    """The access token was missing, invalid or expired; refresh it and try again."""


class ScopeError(ApiError):
    """The token lacks the `cardata:api:read` scope (CU-103)."""


class PermissionDeniedError(ApiError):
    """No permission for the VIN (CU-104) or for the container (CU-105).

    `container` is True when the container, not the vehicle, was refused.
    """

    def __init__(
        self,
        endpoint: str,
        status: int,
        error_id: str | None = None,
        error_message: str | None = None,
        *,
        container: bool = False,
    ) -> None:
        """Record whether a container or a vehicle was refused."""
        super().__init__(endpoint, status, error_id, error_message)
        self.container = container


class ContainerLimitError(ApiError):
    """The account already has the maximum number of containers (CU-124)."""


class NotFoundError(ApiError):
    """The requested data does not exist (no image, no LBCS data, HTTP 404)."""


class BadRequestError(ApiError):
    """BMW rejected the request's parameters (CU-120/121/400/401/402, other 4xx)."""


class ServerError(ApiError):
    """BMW had an internal failure (CU-500/503, 5xx); retrying later may help."""


class UnexpectedResponseError(ApiError):
    """BMW answered with a body the library does not understand (HTML, empty, bad JSON).

    `excerpt` is a short, cleaned beginning of the body for diagnostics.
    """

    def __init__(self, endpoint: str, status: int, excerpt: str = "") -> None:
        """Keep a short excerpt of the body."""
        super().__init__(endpoint, status, None, "unexpected response")
        self.excerpt = excerpt
        if excerpt:
            self.args = (f"{self.args[0]}: {excerpt!r}",)
