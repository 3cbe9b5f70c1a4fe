"""BMW's CarData customer REST API (`/customers/...`), errors and daily budget included.

Every request passes the same gate first, in the order BMW's gateway appears to apply it:
bearer token (TP-403, CU-127 / CU-101/102), scope (CU-103), budget (CU-429), then the call is
booked, an injected fault may answer it, and `x-version` is checked (CU-400).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import functools
import json
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any
import uuid

from aiohttp import web

from . import fleet, images
from .clock import iso_millis
from .state import CONTAINER_LIMIT, Fault, PageCursor, SimState

if TYPE_CHECKING:
    from .points import TelematicPoint

_LOGGER = logging.getLogger(__name__)

STATE_KEY: web.AppKey[SimState] = web.AppKey("state", SimState)

PAGE_SIZE = 10
HISTORY_MAX_RANGE = timedelta(days=45)
# How long a pagination token stays usable (CU-125); BMW does not say, so an hour.
CURSOR_LIFETIME = 3600
# A hung request (timeout fault) answers after this long if the client never gives up.
HANG_LIMIT = 300

_VIN_PATTERN = re.compile(r"[A-Z0-9]{17}")

# exveErrorId -> (exveErrorMsg, exveNote), messages as in the Integration Guide §3.4.
ERRORS: dict[str, tuple[str, str]] = {
    "TP-403": ("Bad Request. Forbidden", "No access token was sent with the request."),
    "CU-100": ("No token sent", "No token was included in the request."),
    "CU-101": ("Authentication error", "The token could not be authenticated."),
    "CU-102": ("Token expired", "The token has expired."),
    "CU-103": ("Token-scope is not CarData", "The token is not authorized for CarData."),
    "CU-104": (
        "No permission for specified VIN",
        "The vehicle is not telematics-capable or the user is not mapped to it as primary user.",
    ),
    "CU-105": (
        "No permission for specified containerId",
        "The container is not allocated to the user or does not exist.",
    ),
    "CU-120": (
        "Format of parameter VIN is invalid",
        "The VIN must have exactly 17 characters in upper case.",
    ),
    "CU-121": (
        "Format of parameter containerId is invalid",
        "The containerId always has a length of 13 characters.",
    ),
    "CU-122": ("Container already set for deletion", "The container is already deleted."),
    "CU-124": ("Maximum number of containers reached", "A user can have at most 10 containers."),
    "CU-125": ("Pagination-Token expired", "Request the first page again."),
    "CU-126": ("No vehicle image found for given VIN", "There is no image for this vehicle."),
    "CU-127": ("No LBCS data found", "There are no location based charging settings."),
    "CU-400": ("Bad request", "The request is malformed or misses a required parameter."),
    "CU-401": ("Parameter Invalid", "At least one parameter is invalid."),
    "CU-402": (
        "Telematic key is invalid",
        "Error telematic key (resources) is not found or deprecated.",
    ),
    "CU-429": ("API rate limit reached", "The daily limit of API requests has been reached."),
    "CU-500": ("Internal server error", "An unexpected error occurred."),
    "CU-503": ("Service temporarily unavailable", "A partner system is out of order."),
}


def error_body(
    error_id: str, message: str | None = None, note: str | None = None
) -> dict[str, str]:
    """BMW's CustomerErrorResponse."""
    default_message, default_note = ERRORS.get(error_id, ("Error", ""))
    return {
        "exveErrorId": error_id,
        "exveErrorMsg": message or default_message,
        "exveErrorRef": str(uuid.uuid4()),
        "exveNote": note or default_note,
    }


class ApiError(Exception):
    """A BMW error answer."""

    def __init__(
        self, status: int, error_id: str, message: str | None = None, note: str | None = None
    ) -> None:
        super().__init__(error_id)
        self.status = status
        self.body = error_body(error_id, message, note)

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


async def fault_response(
    state: SimState, fault: Fault, default_body: Any = None
) -> web.StreamResponse:
    """Answer with an injected fault: a status with a JSON/HTML/text body, or no answer at all."""
    if fault.timeout:
        # Hang until the client gives up (aiohttp then cancels this handler), a reset
        # releases it, or the limit passes.
        release = state.release_hung
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), HANG_LIMIT)
        return web.Response(status=504, text="Gateway Timeout")
    body = fault.body if fault.body is not None else default_body
    if body is None:
        body = {"error": "server_error"}
    if isinstance(body, str):
        content_type = fault.content_type or (
            "text/html" if body.lstrip().startswith("<") else "text/plain"
        )
        return web.Response(status=fault.status, text=body, content_type=content_type)
    return web.Response(
        status=fault.status,
        text=json.dumps(body),
        content_type=fault.content_type or "application/json",
    )


def _default_fault_body(status: int) -> dict[str, str]:
    if status == 503:
        return error_body("CU-503")
    if status >= 500:
        return error_body("CU-500")
    return error_body("CU-400")


# --- the gate every endpoint passes --------------------------------------------------------

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def _authenticate(state: SimState, request: web.Request) -> str:
    """The caller's GCID, or an ApiError as BMW's gateway would answer."""
    header = request.headers.get("Authorization")
    if not header or not header.startswith("Bearer "):
        raise ApiError(403, "TP-403")
    grant = state.access_tokens.get(header.removeprefix("Bearer ").strip())
    documented = state.config.expired_token_mode == "documented"
    if grant is None or grant.revoked:
        if documented:
            raise ApiError(401, "CU-101")
        raise ApiError(403, "CU-127", "invalid_token", "The presented token is invalid or expired.")
    if state.token_expired(grant):
        if documented:
            raise ApiError(401, "CU-102")
        raise ApiError(403, "CU-127", "invalid_token", "The presented token is invalid or expired.")
    if fleet.SCOPE_API not in grant.scopes or not state.subscribed(grant.client_id, "api"):
        raise ApiError(403, "CU-103")
    return grant.gcid


def _admit(state: SimState, request: web.Request, name: str) -> str:
    """Authenticate and book the call against the budget; returns the caller's GCID."""
    gcid = _authenticate(state, request)
    if state.budget_exhausted(gcid):
        state.count_refused(gcid)
        raise ApiError(403, "CU-429")
    state.count_call(gcid, name)
    return gcid


def _check_version(request: web.Request) -> None:
    if request.headers.get("x-version") != "v1":
        raise ApiError(400, "CU-400", note="The header x-version: v1 is required.")


def endpoint(
    name: str, *, version_required: bool = True
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a handler in the token, scope, budget, fault and x-version checks."""

    def decorate(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE_KEY]
            try:
                gcid = _admit(state, request, name)
                if (fault := state.take_fault(name)) is not None:
                    return await fault_response(state, fault, _default_fault_body(fault.status))
                if version_required:
                    _check_version(request)
                return await handler(request, gcid)
            except ApiError as err:
                return err.response()

        return wrapper

    return decorate


def _vehicle(state: SimState, gcid: str, vin: str) -> fleet.Vehicle:
    """The vehicle the caller may read, or CU-120 / CU-104."""
    if not _VIN_PATTERN.fullmatch(vin):
        raise ApiError(400, "CU-120")
    vehicle = fleet.VEHICLES.get(vin)
    if vehicle is None or vehicle.gcid != gcid or not vehicle.is_primary:
        raise ApiError(403, "CU-104")
    return vehicle


# --- mappings and basic data -----------------------------------------------------------


@endpoint("vehicle_mappings")
async def vehicle_mappings(request: web.Request, gcid: str) -> web.StreamResponse:
    """The account's vehicles; an array although the swagger says object (observed)."""
    return web.json_response(
        [
            {
                "vin": vehicle.vin,
                "mappedSince": vehicle.mapped_since,
                "mappingType": vehicle.mapping_type,
            }
            for vehicle in fleet.VEHICLES.values()
            if vehicle.gcid == gcid
        ]
    )


@endpoint("basic_data")
async def basic_data(request: web.Request, gcid: str) -> web.StreamResponse:
    """Static vehicle data, in the observed (not the documented) shape."""
    state = request.app[STATE_KEY]
    vehicle = _vehicle(state, gcid, request.match_info["vin"])
    return web.json_response(dict(vehicle.basic_data))


# --- containers ------------------------------------------------------------------------


def _container_summary(container: Any) -> dict[str, Any]:
    return {
        "containerId": container.container_id,
        "name": container.name,
        "purpose": container.purpose,
        "state": container.state,
        "created": iso_millis(container.created),
    }


def _container_details(container: Any) -> dict[str, Any]:
    return {**_container_summary(container), "technicalDescriptors": list(container.descriptors)}


def _own_container(state: SimState, gcid: str, container_id: str) -> Any:
    """The caller's container, or CU-121 / CU-105."""
    if len(container_id) != 13:
        raise ApiError(400, "CU-121")
    state.purge_containers()
    container = state.containers.get(container_id)
    if container is None or container.gcid != gcid:
        raise ApiError(403, "CU-105")
    return container


@endpoint("containers")
async def list_containers(request: web.Request, gcid: str) -> web.StreamResponse:
    """The account's containers."""
    state = request.app[STATE_KEY]
    return web.json_response(
        {"containers": [_container_summary(item) for item in state.containers_of(gcid)]}
    )


@endpoint("container_create")
async def create_container(request: web.Request, gcid: str) -> web.StreamResponse:
    """Create a container: 201 with its details."""
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "CU-400") from None
    if not isinstance(body, dict):
        raise ApiError(400, "CU-400")
    name, purpose = body.get("name"), body.get("purpose")
    descriptors = body.get("technicalDescriptors")
    if (
        not isinstance(name, str)
        or not name
        or not isinstance(purpose, str)
        or not purpose
        or not isinstance(descriptors, list)
        or not descriptors
        or not all(isinstance(item, str) for item in descriptors)
    ):
        raise ApiError(400, "CU-400")
    known = fleet.catalogue()
    if any(item not in known for item in descriptors):
        raise ApiError(400, "CU-402")
    if state.active_container_count(gcid) >= CONTAINER_LIMIT:
        raise ApiError(403, "CU-124")
    container = state.add_container(gcid, name, purpose, descriptors)
    return web.json_response(_container_details(container), status=201)


@endpoint("container")
async def get_container(request: web.Request, gcid: str) -> web.StreamResponse:
    """One container with its descriptors."""
    state = request.app[STATE_KEY]
    container = _own_container(state, gcid, request.match_info["container_id"])
    return web.json_response(_container_details(container))


# The 2025 swagger has no x-version on DELETE: accept both.
@endpoint("container_delete", version_required=False)
async def delete_container(request: web.Request, gcid: str) -> web.StreamResponse:
    """Delete a container: 204, and 208 + CU-122 when it is already deleted."""
    state = request.app[STATE_KEY]
    container = _own_container(state, gcid, request.match_info["container_id"])
    if container.state != "ACTIVE":
        raise ApiError(208, "CU-122")
    container.state = "DELETED"
    container.deleted_at = state.clock.timestamp()
    return web.Response(status=204)


# --- telematics ------------------------------------------------------------------------


def rest_value(value: Any) -> str | None:
    """REST sends every value as a string (numbers quoted, booleans as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _telematic_entry(point: TelematicPoint | None, catalogue_unit: str | None) -> dict[str, Any]:
    if point is None or point.value is None:
        # No data: BMW still fills the unit (spec §2.2).
        unit = point.unit if point is not None and point.unit is not None else catalogue_unit
        return {"timestamp": None, "unit": unit, "value": None}
    return {
        "timestamp": iso_millis(point.timestamp) if point.timestamp else None,
        "unit": point.unit,
        "value": rest_value(point.value),
    }


@endpoint("telematic_data")
async def telematic_data(request: web.Request, gcid: str) -> web.StreamResponse:
    """Every key of the container (except dedicated-endpoint keys), values as strings."""
    state = request.app[STATE_KEY]
    vehicle = _vehicle(state, gcid, request.match_info["vin"])
    container_id = request.query.get("containerId")
    if not container_id:
        raise ApiError(400, "CU-400", note="The parameter containerId is required.")
    container = _own_container(state, gcid, container_id)
    if container.state != "ACTIVE":
        raise ApiError(403, "CU-105")
    stored = state.telematics.get(vehicle.vin, {})
    units = fleet.catalogue()
    data = {
        descriptor: _telematic_entry(stored.get(descriptor), units.get(descriptor))
        for descriptor in container.descriptors
        if descriptor not in fleet.DEDICATED_ENDPOINT_KEYS
    }
    return web.json_response({"telematicData": data})


# --- paged endpoints -------------------------------------------------------------------


def _parse_instant(raw: str | None) -> datetime:
    """An ISO 8601 date-time; epoch seconds and anything unparsable are CU-401."""
    if raw is None:
        raise ApiError(400, "CU-400", note="The parameters from and to are required.")
    if "T" not in raw:
        raise ApiError(400, "CU-401", note="from and to must be ISO 8601 date-times.")
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise ApiError(400, "CU-401", note="from and to must be ISO 8601 date-times.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cursor(
    state: SimState, request: web.Request, gcid: str, vin: str, name: str
) -> PageCursor | None:
    """The pagination cursor named by `nextToken` (or `next_token`), if any."""
    token = request.query.get("nextToken") or request.query.get("next_token")
    if not token:
        return None
    cursor = state.cursors.get(token)
    if cursor is None or cursor.gcid != gcid or cursor.vin != vin or cursor.endpoint != name:
        raise ApiError(400, "CU-401", note="The pagination token is invalid.")
    if state.clock.timestamp() - cursor.created > CURSOR_LIFETIME:
        raise ApiError(400, "CU-125")
    return cursor


def _page(
    state: SimState, items: list[dict[str, Any]], offset: int, cursor_template: PageCursor
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `items` and the token of the next one (None on the last page)."""
    page = items[offset : offset + PAGE_SIZE]
    if offset + PAGE_SIZE >= len(items):
        return page, None
    token = secrets.token_urlsafe(24)
    cursor_template.offset = offset + PAGE_SIZE
    cursor_template.created = state.clock.timestamp()
    state.cursors[token] = cursor_template
    return page, token


@endpoint("charging_history")
async def charging_history(request: web.Request, gcid: str) -> web.StreamResponse:
    """Charging sessions in [from, to], newest first, ten per page (`next_token`)."""
    state = request.app[STATE_KEY]
    vehicle = _vehicle(state, gcid, request.match_info["vin"])
    cursor = _cursor(state, request, gcid, vehicle.vin, "charging_history")
    if cursor is not None and "from" not in request.query and "to" not in request.query:
        assert cursor.start is not None
        assert cursor.end is not None
        start, end = cursor.start, cursor.end
    else:
        start = _parse_instant(request.query.get("from"))
        end = _parse_instant(request.query.get("to"))
    if end < start or end - start > HISTORY_MAX_RANGE:
        raise ApiError(400, "CU-401", note="The time range must not exceed 45 days.")
    first, last = start.timestamp(), end.timestamp()
    sessions = [item for item in state.history[vehicle.vin] if first <= item["startTime"] <= last]
    offset = cursor.offset if cursor is not None else 0
    template = PageCursor(gcid, vehicle.vin, "charging_history", 0, 0.0, start, end)
    page, next_token = _page(state, sessions, offset, template)
    return web.json_response({"data": page, "next_token": next_token})


@endpoint("location_based_charging_settings")
async def charging_settings(request: web.Request, gcid: str) -> web.StreamResponse:
    """Location-based charging settings, ten per page (`nextToken`), CU-127 when none."""
    state = request.app[STATE_KEY]
    vehicle = _vehicle(state, gcid, request.match_info["vin"])
    entries = state.charging_settings[vehicle.vin]
    if not entries:
        raise ApiError(404, "CU-127")
    cursor = _cursor(state, request, gcid, vehicle.vin, "location_based_charging_settings")
    offset = cursor.offset if cursor is not None else 0
    template = PageCursor(gcid, vehicle.vin, "location_based_charging_settings", 0, 0.0)
    page, next_token = _page(state, entries, offset, template)
    return web.json_response({"nextToken": next_token, "data": page})


# --- tyres and image -------------------------------------------------------------------


@endpoint("tyre_diagnosis")
async def tyre_diagnosis(request: web.Request, gcid: str) -> web.StreamResponse:
    """Smart maintenance tyre diagnosis."""
    state = request.app[STATE_KEY]
    vehicle = _vehicle(state, gcid, request.match_info["vin"])
    return web.json_response(fleet.tyre_diagnosis(vehicle.vin))


@endpoint("image")
async def image(request: web.Request, gcid: str) -> web.StreamResponse:
    """The vehicle's picture as PNG, or 404 CU-126."""
    state = request.app[STATE_KEY]
    vehicle = _vehicle(state, gcid, request.match_info["vin"])
    if not vehicle.has_image:
        raise ApiError(404, "CU-126")
    # Drawing takes a few hundred milliseconds the first time: keep the loop (and the
    # broker's keep-alives) responsive.
    content = await asyncio.get_running_loop().run_in_executor(
        None, images.vehicle_png, vehicle.vin
    )
    return web.Response(body=content, content_type="image/png")


def create_app(state: SimState) -> web.Application:
    """The REST application (served on api_url)."""
    app = web.Application()
    app[STATE_KEY] = state
    routes = app.router
    routes.add_get("/customers/vehicles/mappings", vehicle_mappings)
    routes.add_get("/customers/containers", list_containers)
    routes.add_post("/customers/containers", create_container)
    routes.add_get("/customers/containers/{container_id}", get_container)
    routes.add_delete("/customers/containers/{container_id}", delete_container)
    routes.add_get("/customers/vehicles/{vin}/basicData", basic_data)
    routes.add_get("/customers/vehicles/{vin}/telematicData", telematic_data)
    routes.add_get("/customers/vehicles/{vin}/chargingHistory", charging_history)
    routes.add_get("/customers/vehicles/{vin}/smartMaintenanceTyreDiagnosis", tyre_diagnosis)
    routes.add_get("/customers/vehicles/{vin}/image", image)
    routes.add_get("/customers/vehicles/{vin}/locationBasedChargingSettings", charging_settings)
    return app
