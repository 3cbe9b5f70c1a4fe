"""The control API: how tests steer the simulator (docs/contracts.md, "Control API").

JSON in, JSON out. Bad input is answered with 400 `{"error": ...}`, unknown things with 404,
so a mistake in a test shows up as a clear HTTP error rather than a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
import inspect
import json
import logging
from typing import Any, Protocol

from aiohttp import web

from . import fleet
from .clock import iso_millis
from .points import TelematicPoint
from .state import CONTAINER_LIMIT, Fault, SimState

_LOGGER = logging.getLogger(__name__)

ENDPOINT_NAMES = (
    "device_code",
    "token",
    "vehicle_mappings",
    "basic_data",
    "containers",
    "container_create",
    "container",
    "container_delete",
    "telematic_data",
    "charging_history",
    "tyre_diagnosis",
    "image",
    "location_based_charging_settings",
)

_FOREIGN_CONTAINER_DESCRIPTORS = [
    "vehicle.drivetrain.batteryManagement.header",
    "vehicle.drivetrain.electricEngine.charging.status",
    "vehicle.vehicle.travelledDistance",
]


class BrokerControls(Protocol):
    """What the control API needs from the stream broker."""

    async def drop_all(self) -> None: ...

    def sessions(self) -> list[dict[str, Any]]: ...


class QuirkSwitches(Protocol):
    """What the control API needs from the stream quirks."""

    def update(self, mapping: Mapping[str, object]) -> None: ...

    def reset(self) -> None: ...


class ScenarioControls(Protocol):
    """What the control API needs from the scenario runner."""

    def start(self, vin: str, name: str, step_seconds: float = ...) -> Any: ...

    def stop(self, vin: str) -> Any: ...

    def stop_all(self) -> Any: ...


class ChargingControls(Protocol):
    """What the control API needs from the charging sessions (charging_desk.py)."""

    def start(self, vin: str, request: Any) -> dict[str, Any]: ...

    def stop(self, vin: str, *, unplug: bool) -> dict[str, Any]: ...

    def truth(self, vin: str) -> dict[str, Any]: ...

    def reset(self) -> None: ...


@dataclass
class Simulator:
    """The parts the control API steers."""

    state: SimState
    broker: BrokerControls
    quirks: QuirkSwitches
    scenarios: ScenarioControls
    apply: Callable[[str, dict[str, TelematicPoint]], None]
    startup_quirks: dict[str, object] = field(default_factory=dict)
    ready_info: dict[str, Any] = field(default_factory=dict)
    charging: ChargingControls | None = None

    async def reset(self) -> None:
        """Back to the start state; see `POST /reset`."""
        await _maybe_await(self.scenarios.stop_all())
        if self.charging is not None:
            self.charging.reset()
        await self.broker.drop_all()
        self.quirks.reset()
        if self.startup_quirks:
            self.quirks.update(self.startup_quirks)
        # The clock first: the state's start data is anchored at the clock's present.
        self.state.clock.reset()
        self.state.reset()
        _LOGGER.info("simulator reset")


SIMULATOR_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)


class ControlRequestError(Exception):
    """The control request cannot be carried out (answered 400, or `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def _maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body counts as `{}`."""
    if not request.can_read_body:
        return {}
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as err:
        raise ControlRequestError(f"body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise ControlRequestError("body must be a JSON object")
    return body


def handler(
    function: Callable[[Simulator, web.Request], Any],
) -> Callable[[web.Request], Any]:
    """Run `function(simulator, request)` and turn its result or ControlRequestError into JSON."""

    async def wrapper(request: web.Request) -> web.Response:
        try:
            result = await function(request.app[SIMULATOR_KEY], request)
        except ControlRequestError as err:
            return web.json_response({"error": str(err)}, status=err.status)
        return web.json_response(result)

    return wrapper


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ControlRequestError(f"{key} must be a string")
    return value


# --- handlers ----------------------------------------------------------------------------


async def _reset(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    await simulator.reset()
    return {"ok": True, "now": iso_millis(simulator.state.clock.now())}


async def _decide(simulator: Simulator, request: web.Request, *, approve: bool) -> dict[str, Any]:
    body = await json_object(request)
    state = simulator.state
    grant = state.find_device_grant(_optional_str(body, "user_code"))
    if grant is None:
        raise ControlRequestError("no pending device authorization with that user code", 404)
    if approve:
        gcid = _optional_str(body, "gcid")
        if gcid is not None:
            if gcid not in state.gcids():
                raise ControlRequestError(f"unknown gcid {gcid}", 404)
            grant.gcid = gcid
        grant.status = "approved"
    else:
        grant.status = "denied"
    return {
        "user_code": grant.user_code,
        "client_id": grant.client_id,
        "gcid": grant.gcid,
        "status": grant.status,
    }


async def _approve(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return await _decide(simulator, request, approve=True)


async def _deny(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return await _decide(simulator, request, approve=False)


async def _get_clock(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    clock = simulator.state.clock
    return {"now": iso_millis(clock.now()), "timestamp": clock.timestamp(), "frozen": clock.frozen}


async def _advance_clock(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    body = await json_object(request)
    seconds = body.get("advance_seconds")
    freeze = body.get("freeze")
    if seconds is None and freeze is None:
        raise ControlRequestError("give advance_seconds, freeze, or both")
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
    ):
        raise ControlRequestError("advance_seconds must be a number >= 0")
    if freeze is not None and not isinstance(freeze, bool):
        raise ControlRequestError("freeze must be true or false")
    if freeze is not None:
        simulator.state.clock.freeze(freeze)
    if seconds is not None:
        simulator.state.clock.advance(float(seconds))
    return await _get_clock(simulator, request)


def _parse_point(
    state: SimState, vin: str, descriptor: str, raw: Any, now: datetime
) -> TelematicPoint:
    """A control-API value (bare, or {"value", "unit"?, "timestamp"?}) as a TelematicPoint."""
    previous = state.telematics.get(vin, {}).get(descriptor)
    default_unit = previous.unit if previous is not None else fleet.catalogue().get(descriptor)
    if not isinstance(raw, dict):
        return TelematicPoint(raw, default_unit, now)
    if "value" not in raw:
        raise ControlRequestError(f"{descriptor}: an object needs a 'value'")
    unit = raw.get("unit", default_unit)
    stamp = raw.get("timestamp")
    moment = now
    if stamp is not None:
        if not isinstance(stamp, str):
            raise ControlRequestError(f"{descriptor}: timestamp must be an ISO 8601 string")
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            raise ControlRequestError(
                f"{descriptor}: timestamp {stamp!r} is not ISO 8601"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return TelematicPoint(raw["value"], unit, moment)


async def _set_telematics(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    vin = request.match_info["vin"]
    if vin not in fleet.VEHICLES:
        raise ControlRequestError(f"unknown VIN {vin}", 404)
    body = await json_object(request)
    now = simulator.state.clock.now()
    points = {
        descriptor: _parse_point(simulator.state, vin, descriptor, raw, now)
        for descriptor, raw in body.items()
    }
    simulator.apply(vin, points)
    return {"vin": vin, "updated": sorted(points)}


async def _start_scenario(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    body = await json_object(request)
    vin, name = body.get("vin"), body.get("name")
    if vin not in fleet.VEHICLES:
        raise ControlRequestError(f"unknown VIN {vin!r}", 404)
    if not isinstance(name, str):
        raise ControlRequestError("name must be a string")
    known = getattr(simulator.scenarios, "names", None)
    if known is not None and name not in known:
        raise ControlRequestError(f"unknown scenario {name!r}; known: {sorted(known)}")
    step = body.get("step_seconds")
    try:
        if step is None:
            await _maybe_await(simulator.scenarios.start(vin, name))
        else:
            if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
                raise ControlRequestError("step_seconds must be a positive number")
            await _maybe_await(simulator.scenarios.start(vin, name, step_seconds=float(step)))
    except (KeyError, ValueError) as err:
        raise ControlRequestError(str(err)) from None
    return {"vin": vin, "name": name, "started": True}


async def _calls(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return {"accounts": simulator.state.budget_report()}


async def _fault(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    body = await json_object(request)
    name = body.get("endpoint")
    if name not in ENDPOINT_NAMES:
        raise ControlRequestError(f"endpoint must be one of {list(ENDPOINT_NAMES)}")
    count = body.get("count", 1)
    status = body.get("status", 500)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ControlRequestError("count must be an integer >= 1")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ControlRequestError("status must be an HTTP status code")
    content_type = _optional_str(body, "content_type")
    timeout = body.get("timeout", False)
    if not isinstance(timeout, bool):
        raise ControlRequestError("timeout must be true or false")
    simulator.state.faults[name] = Fault(
        count=count,
        status=status,
        body=body.get("body"),
        content_type=content_type,
        timeout=timeout,
    )
    return {"endpoint": name, "count": count}


async def _drop_stream(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    await simulator.broker.drop_all()
    return {"ok": True}


async def _quirks(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    body = await json_object(request)
    try:
        simulator.quirks.update(body)
    except (ValueError, TypeError, KeyError) as err:
        raise ControlRequestError(str(err)) from None
    as_dict = getattr(simulator.quirks, "as_dict", None)
    return {"quirks": as_dict() if as_dict else body}


async def _get_config(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return {"config": simulator.state.config.as_dict()}


async def _set_config(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    body = await json_object(request)
    try:
        simulator.state.config.update(body)
    except ValueError as err:
        raise ControlRequestError(str(err)) from None
    return await _get_config(simulator, request)


async def _subscriptions(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    client_id = request.match_info["client_id"]
    state = simulator.state
    if client_id not in state.subscriptions:
        raise ControlRequestError(f"unknown client id {client_id}", 404)
    body = await json_object(request)
    changes: dict[str, bool | None] = {}
    for service in ("api", "stream"):
        value = body.get(service)
        if value is not None and not isinstance(value, bool):
            raise ControlRequestError(f"{service} must be true or false")
        changes[service] = value
    state.set_subscriptions(client_id, api=changes["api"], stream=changes["stream"])
    return {"client_id": client_id, **state.subscriptions[client_id]}


async def _foreign_containers(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    gcid = request.match_info["gcid"]
    state = simulator.state
    if gcid not in state.gcids():
        raise ControlRequestError(f"unknown gcid {gcid}", 404)
    body = await json_object(request)
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ControlRequestError("count must be an integer >= 1")
    if state.active_container_count(gcid) + count > CONTAINER_LIMIT:
        raise ControlRequestError(f"an account holds at most {CONTAINER_LIMIT} active containers")
    created = [
        state.add_container(
            gcid, f"evcc.io {index + 1}", "Another app's container", _FOREIGN_CONTAINER_DESCRIPTORS
        ).container_id
        for index in range(count)
    ]
    return {"containers": created}


async def _sessions(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return {"sessions": simulator.broker.sessions()}


async def _secrets(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return {"secrets": simulator.state.secrets()}


async def _info(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    return simulator.ready_info


def create_app(simulator: Simulator) -> web.Application:
    """The control application (served on control_url)."""
    app = web.Application()
    app[SIMULATOR_KEY] = simulator
    routes = app.router
    routes.add_get("/", handler(_info))
    routes.add_post("/reset", handler(_reset))
    routes.add_post("/approve", handler(_approve))
    routes.add_post("/deny", handler(_deny))
    routes.add_get("/clock", handler(_get_clock))
    routes.add_post("/clock", handler(_advance_clock))
    routes.add_post("/vehicles/{vin}/telematics", handler(_set_telematics))
    routes.add_post("/scenario", handler(_start_scenario))
    routes.add_get("/calls", handler(_calls))
    routes.add_post("/faults", handler(_fault))
    routes.add_post("/stream/drop", handler(_drop_stream))
    routes.add_get("/stream/sessions", handler(_sessions))
    routes.add_get("/secrets", handler(_secrets))
    routes.add_post("/quirks", handler(_quirks))
    routes.add_get("/config", handler(_get_config))
    routes.add_post("/config", handler(_set_config))
    routes.add_post("/clients/{client_id}/subscriptions", handler(_subscriptions))
    routes.add_post("/accounts/{gcid}/containers", handler(_foreign_containers))
    return app
