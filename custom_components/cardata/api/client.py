"""REST client for BMW's CarData customer API.

Every request is announced to the caller's `before_request` hook first (the daily budget
of 50 requests lives there), carries `x-version: v1` and a bearer token, and has a
timeout. BMW's error bodies are mapped onto the exception hierarchy in errors.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
import logging
import re
from typing import Any

import aiohttp

from .const import (
    API_BASE_URL,
    API_VERSION,
    API_VERSION_HEADER,
    CHARGING_HISTORY_MAX_RANGE,
    DEFAULT_TIMEOUT,
    ENDPOINT_BASIC_DATA,
    ENDPOINT_CHARGING_HISTORY,
    ENDPOINT_CHARGING_SETTINGS,
    ENDPOINT_CONTAINER,
    ENDPOINT_CONTAINER_CREATE,
    ENDPOINT_CONTAINER_DELETE,
    ENDPOINT_CONTAINERS,
    ENDPOINT_IMAGE,
    ENDPOINT_TELEMATIC_DATA,
    ENDPOINT_TYRE_DIAGNOSIS,
    ENDPOINT_VEHICLE_MAPPINGS,
    MAX_PAGES,
    PATH_BASIC_DATA,
    PATH_CHARGING_HISTORY,
    PATH_CHARGING_SETTINGS,
    PATH_CONTAINER,
    PATH_CONTAINERS,
    PATH_IMAGE,
    PATH_TELEMATIC_DATA,
    PATH_TYRE_DIAGNOSIS,
    PATH_VEHICLE_MAPPINGS,
)
from .errors import (
    ApiError,
    BadRequestError,
    CarDataConnectionError,
    CarDataError,
    ContainerLimitError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
    ServerError,
    TokenInvalidError,
    UnexpectedResponseError,
)
from .models import (
    BasicData,
    ChargingHistory,
    ChargingSettings,
    Container,
    TelematicData,
    TyreDiagnosis,
    VehicleImage,
    VehicleMapping,
)
from .values import as_str, decode_json

_LOGGER = logging.getLogger(__name__)

type AccessTokenProvider = Callable[[], Awaitable[str]]
type RequestHook = Callable[[str], Awaitable[None]]

_JSON = "application/json"
_EXCERPT_LENGTH = 120
# Long runs of token alphabet characters are scrubbed from excerpts, in case a gateway
# echoes a credential back in its error page.
_SECRET_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{24,}")

# Errors after which the pages already fetched are still worth returning: refusals of the
# budget (ours or BMW's) and failures that a later call with the paging token may overcome.
_PAGING_STOPS = (RequestRefusedError, RateLimitError, ServerError, CarDataConnectionError)

_ERROR_CLASSES: dict[str, type[ApiError]] = {
    "CU-429": RateLimitError,
    "CU-100": TokenInvalidError,
    "CU-101": TokenInvalidError,
    "CU-102": TokenInvalidError,
    "TP-403": TokenInvalidError,
    "CU-103": ScopeError,
    "CU-104": PermissionDeniedError,
    "CU-105": PermissionDeniedError,
    "CU-124": ContainerLimitError,
    "CU-126": NotFoundError,
    "CU-127": NotFoundError,
    "CU-120": BadRequestError,
    "CU-121": BadRequestError,
    "CU-125": BadRequestError,
    "CU-400": BadRequestError,
    "CU-401": BadRequestError,
    "CU-402": BadRequestError,
    "CU-500": ServerError,
    "CU-503": ServerError,
}


@dataclass(frozen=True, slots=True)
class _Response:
    """What came back from one HTTP exchange."""

    status: int
    content_type: str
    body: bytes


def _excerpt(body: bytes) -> str:
    """Return a short, single-line, secret-scrubbed beginning of a body."""
    text = body[: _EXCERPT_LENGTH * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return _SECRET_LIKE.sub("[…]", text)[:_EXCERPT_LENGTH]


def _decode_json(body: bytes, endpoint: str = "an answer") -> Any:
    """Decode a JSON body into values JSON can store again (see values.decode_json).

    Raises ValueError when it is not JSON.
    """
    if not body.strip():
        raise ValueError("empty body")
    return decode_json(body, context=endpoint)


def error_from_response(endpoint: str, status: int, body: bytes) -> ApiError:
    """Map an unsuccessful answer to the matching ApiError subclass.

    BMW's `exveErrorId` decides whatever the status (BMW answers the rate limit with
    403); without one the status decides. An unknown body with a status that says
    nothing specific gives UnexpectedResponseError.
    """
    try:
        data = _decode_json(body)
    except ValueError:
        data = None
    details = data if isinstance(data, Mapping) else {}
    error_id = as_str(details.get("exveErrorId"))
    error_message = as_str(details.get("exveErrorMsg"))
    if error_id is not None:
        error_id = error_id.strip().upper()
    error_class = _ERROR_CLASSES.get(error_id or "")
    if error_id == "CU-127" and (error_message or "").strip().lower() == "invalid_token":
        # BMW reuses CU-127 ("No LBCS data found") for an expired token.
        error_class = TokenInvalidError
    if error_class is None:
        if status == 429:
            error_class = RateLimitError
        elif status == 404:
            error_class = NotFoundError
        elif status >= 500:
            error_class = ServerError
        elif 400 <= status < 500 and details:
            error_class = BadRequestError
        else:
            return UnexpectedResponseError(endpoint, status, _excerpt(body))
    if error_class is PermissionDeniedError:
        return PermissionDeniedError(
            endpoint, status, error_id, error_message, container=error_id == "CU-105"
        )
    return error_class(endpoint, status, error_id, error_message)


def _iso_millis(moment: datetime) -> str:
    """Format a time as BMW expects it: UTC, millisecond precision, `Z` suffix."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class CarDataClient:
    """Async client for the CarData REST API of one account."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        access_token: AccessTokenProvider,
        *,
        base_url: str = API_BASE_URL,
        before_request: RequestHook | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Create the client.

        `access_token` is awaited before every request and returns a valid access token.
        `before_request(endpoint_name)` is awaited before every HTTP request (each page
        of a paged endpoint too); it may raise RequestRefusedError to stop the request.
        """
        self._session = session
        self._access_token = access_token
        self._base_url = base_url.rstrip("/")
        self._before_request = before_request
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def with_request_hook(self, before_request: RequestHook) -> CarDataClient:
        """Return a client of the same account whose requests announce to `before_request`."""
        sibling = CarDataClient(
            self._session,
            self._access_token,
            base_url=self._base_url,
            before_request=before_request,
        )
        sibling._timeout = self._timeout
        return sibling

    # --- endpoints ------------------------------------------------------------------

    async def get_vehicle_mappings(self) -> list[VehicleMapping]:
        """Return the vehicles mapped to the account (PRIMARY and SECONDARY)."""
        raw = await self._get_json(ENDPOINT_VEHICLE_MAPPINGS, PATH_VEHICLE_MAPPINGS)
        return VehicleMapping.list_from_json(raw)

    async def get_basic_data(self, vin: str) -> BasicData:
        """Return a vehicle's static description."""
        raw = await self._get_json(ENDPOINT_BASIC_DATA, PATH_BASIC_DATA.format(vin=vin))
        return BasicData.from_json(raw, vin=vin)

    async def list_containers(self) -> list[Container]:
        """Return the account's containers (active and deleted)."""
        raw = await self._get_json(ENDPOINT_CONTAINERS, PATH_CONTAINERS)
        return Container.list_from_json(raw)

    async def create_container(
        self, name: str, purpose: str, descriptors: Sequence[str]
    ) -> Container:
        """Create a container for `descriptors` and return it (BMW allows ten per account)."""
        body = {"name": name, "purpose": purpose, "technicalDescriptors": list(descriptors)}
        response = await self._request(
            ENDPOINT_CONTAINER_CREATE, "POST", PATH_CONTAINERS, json_body=body
        )
        raw = self._json_result(ENDPOINT_CONTAINER_CREATE, response, (200, 201))
        container = Container.from_json(raw)
        if container is None:
            raise UnexpectedResponseError(
                ENDPOINT_CONTAINER_CREATE, response.status, _excerpt(response.body)
            )
        return container

    async def get_container(self, container_id: str) -> Container:
        """Return one container with its descriptors."""
        path = PATH_CONTAINER.format(container_id=container_id)
        response = await self._request(ENDPOINT_CONTAINER, "GET", path)
        container = Container.from_json(self._json_result(ENDPOINT_CONTAINER, response, (200,)))
        if container is None:
            raise UnexpectedResponseError(
                ENDPOINT_CONTAINER, response.status, _excerpt(response.body)
            )
        return container

    async def delete_container(self, container_id: str) -> None:
        """Delete a container.

        A container BMW already set for deletion (208 CU-122) counts as deleted.
        """
        path = PATH_CONTAINER.format(container_id=container_id)
        response = await self._request(ENDPOINT_CONTAINER_DELETE, "DELETE", path)
        if response.status not in (200, 204, 208):
            raise error_from_response(ENDPOINT_CONTAINER_DELETE, response.status, response.body)

    async def get_telematic_data(self, vin: str, container_id: str) -> TelematicData:
        """Return the current value of every descriptor of the container for `vin`."""
        raw = await self._get_json(
            ENDPOINT_TELEMATIC_DATA,
            PATH_TELEMATIC_DATA.format(vin=vin),
            params={"containerId": container_id},
        )
        return TelematicData.from_json(raw, vin=vin, container_id=container_id)

    async def get_charging_history(
        self,
        vin: str,
        start: datetime,
        end: datetime,
        *,
        all_pages: bool = False,
        next_token: str | None = None,
    ) -> ChargingHistory:
        """Return the charging sessions between `start` and `end` (aware datetimes).

        BMW serves ten sessions per page; each page is one request of the daily budget.
        Only the first page (or the page `next_token` points at) is fetched unless
        `all_pages` is set; paging that is refused or fails after the first page returns
        the pages fetched, with `stopped_by` and the `next_token` to continue. Raises
        ValueError, without any request, when a time is naive, `start` is after `end` or
        the range exceeds 45 days.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if start > end:
            raise ValueError("start must not be after end")
        if end - start > CHARGING_HISTORY_MAX_RANGE:
            raise ValueError(
                f"BMW serves at most {CHARGING_HISTORY_MAX_RANGE.days} days of charging history"
            )
        params = {"from": _iso_millis(start), "to": _iso_millis(end)}
        pages, stopped_by = await self._get_pages(
            ENDPOINT_CHARGING_HISTORY,
            PATH_CHARGING_HISTORY.format(vin=vin),
            params,
            all_pages=all_pages,
            next_token=next_token,
        )
        parsed = [ChargingHistory.from_json(page) for page in pages]
        if len(parsed) == 1:
            return replace(parsed[0], stopped_by=stopped_by)
        return ChargingHistory(
            sessions=tuple(session for page in parsed for session in page.sessions),
            next_token=parsed[-1].next_token,
            raw=_merge_pages(pages, parsed[-1].next_token, token_key="next_token"),
            stopped_by=stopped_by,
        )

    async def get_tyre_diagnosis(self, vin: str) -> TyreDiagnosis:
        """Return the smart maintenance tyre diagnosis."""
        raw = await self._get_json(ENDPOINT_TYRE_DIAGNOSIS, PATH_TYRE_DIAGNOSIS.format(vin=vin))
        return TyreDiagnosis.from_json(raw)

    async def get_image(self, vin: str) -> VehicleImage:
        """Return the vehicle picture (bytes and content type); NotFoundError if none."""
        response = await self._request(
            ENDPOINT_IMAGE, "GET", PATH_IMAGE.format(vin=vin), accept="*/*"
        )
        if response.status != 200:
            raise error_from_response(ENDPOINT_IMAGE, response.status, response.body)
        if response.content_type == _JSON or not response.body:
            # JSON (or nothing) where a picture belongs is an error body or garbage.
            raise error_from_response(ENDPOINT_IMAGE, response.status, response.body)
        return VehicleImage(response.body, response.content_type or "application/octet-stream")

    async def get_location_based_charging_settings(
        self, vin: str, *, all_pages: bool = False, next_token: str | None = None
    ) -> ChargingSettings:
        """Return the charging settings BMW learned per location; NotFoundError if none.

        Paged as `get_charging_history` is.
        """
        pages, stopped_by = await self._get_pages(
            ENDPOINT_CHARGING_SETTINGS,
            PATH_CHARGING_SETTINGS.format(vin=vin),
            {},
            all_pages=all_pages,
            next_token=next_token,
        )
        parsed = [ChargingSettings.from_json(page) for page in pages]
        if len(parsed) == 1:
            return replace(parsed[0], stopped_by=stopped_by)
        return ChargingSettings(
            entries=tuple(entry for page in parsed for entry in page.entries),
            next_token=parsed[-1].next_token,
            raw=_merge_pages(pages, parsed[-1].next_token, token_key="nextToken"),
            stopped_by=stopped_by,
        )

    # --- plumbing -------------------------------------------------------------------

    async def _get_pages(
        self,
        endpoint: str,
        path: str,
        params: dict[str, str],
        *,
        all_pages: bool,
        next_token: str | None,
    ) -> tuple[list[Any], CarDataError | None]:
        """Fetch one page, or every page when `all_pages`, following the paging token.

        Returns the pages and, when a later page was refused (the request hook's budget,
        BMW's CU-429) or failed on the way, that error: the pages before it are paid for
        and the last one's token continues. The first page's errors propagate.
        """
        pages: list[Any] = []
        seen_tokens: set[str] = set()
        token = next_token
        while True:
            page_params = dict(params)
            if token:
                page_params["nextToken"] = token
                seen_tokens.add(token)
            try:
                page = await self._get_json(endpoint, path, params=page_params)
            except _PAGING_STOPS as err:
                if not pages:
                    raise
                _LOGGER.debug("CarData %s paging stopped after %s pages", endpoint, len(pages))
                return pages, err
            pages.append(page)
            token = (
                as_str(page.get("next_token") or page.get("nextToken"))
                if isinstance(page, Mapping)
                else None
            )
            # A repeated token would loop forever; MAX_PAGES is a second safety net.
            if not all_pages or not token or token in seen_tokens or len(pages) >= MAX_PAGES:
                return pages, None

    async def _get_json(
        self, endpoint: str, path: str, *, params: Mapping[str, str] | None = None
    ) -> Any:
        """GET a JSON resource."""
        response = await self._request(endpoint, "GET", path, params=params)
        return self._json_result(endpoint, response, (200,))

    @staticmethod
    def _json_result(endpoint: str, response: _Response, success: tuple[int, ...]) -> Any:
        """Decode a successful JSON answer or raise the matching error."""
        if response.status not in success:
            raise error_from_response(endpoint, response.status, response.body)
        try:
            return _decode_json(response.body, endpoint)
        except ValueError:
            raise UnexpectedResponseError(
                endpoint, response.status, _excerpt(response.body)
            ) from None

    async def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        accept: str = _JSON,
    ) -> _Response:
        """Run the request hook, then send one request and read the whole answer.

        The token comes first: when it cannot be had (GCDM unreachable), no budget is spent.
        """
        token = await self._access_token()
        if self._before_request is not None:
            await self._before_request(endpoint)
        headers = {
            "Authorization": f"Bearer {token}",
            API_VERSION_HEADER: API_VERSION,
            "Accept": accept,
        }
        try:
            async with self._session.request(
                method,
                f"{self._base_url}{path}",
                params=params,
                json=json_body,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                body = await resp.read()
                response = _Response(resp.status, resp.content_type, body)
        except TimeoutError:
            raise CarDataConnectionError(f"{endpoint}: BMW did not answer in time") from None
        except aiohttp.ClientError as err:
            raise CarDataConnectionError(f"{endpoint}: {type(err).__name__}: {err}") from None
        _LOGGER.debug("CarData %s answered HTTP %s", endpoint, response.status)
        return response


def _merge_pages(pages: list[Any], next_token: str | None, *, token_key: str) -> dict[str, Any]:
    """Combine several pages into one body of BMW's page shape."""
    data = [
        item
        for page in pages
        if isinstance(page, Mapping) and isinstance(page.get("data"), list)
        for item in page["data"]
    ]
    return {"data": data, token_key: next_token}
