"""The control API's charging routes (docs/contracts.md, "Charging sessions").

- `POST /vehicles/{vin}/charging`: plug in and charge (mode, target, start SoC, capacity,
  power or power profile);
- `POST /vehicles/{vin}/charging/stop`: the driver ends the charge, or pulls the cable;
- `GET /vehicles/{vin}/charging`: the truth (true SoC, energies) of the current and last session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import fleet
from .battery import ChargeMode, LossModel, ProfileSegment
from .charging import SessionRequest
from .control import ControlRequestError, handler, json_object

if TYPE_CHECKING:
    from aiohttp import web

    from .control import Simulator


def _vin(simulator: Simulator, request: web.Request) -> str:
    vin = request.match_info["vin"]
    if vin not in fleet.VEHICLES:
        raise ControlRequestError(f"unknown VIN {vin}", 404)
    if simulator.charging is None:
        raise ControlRequestError("this simulator has no charging sessions", 404)
    return vin


def _optional_number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ControlRequestError(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def _profile(raw: Any) -> tuple[ProfileSegment, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise ControlRequestError("profile must be a non-empty list of {seconds, power_kw}")
    segments: list[ProfileSegment] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ControlRequestError("each profile segment must be {seconds, power_kw}")
        seconds = _optional_number(item, "seconds", 1, 7 * 86_400)
        power = _optional_number(item, "power_kw", 0, 350)
        if seconds is None or power is None:
            raise ControlRequestError("each profile segment needs seconds and power_kw")
        segments.append(ProfileSegment(seconds, power))
    return tuple(segments)


def session_request(body: dict[str, Any]) -> SessionRequest:
    """Check a start request's body."""
    try:
        mode = ChargeMode(body.get("mode", "ac"))
    except ValueError:
        raise ControlRequestError("mode must be one of ac, dc, solar") from None
    profile = _profile(body.get("profile"))
    if profile is not None and mode is ChargeMode.DC:
        raise ControlRequestError("a power profile is for AC and solar charging")
    known = {"mode", "target_soc", "start_soc", "capacity_kwh", "power_kw", "profile", "losses"}
    if unknown := set(body) - known:
        raise ControlRequestError(f"unknown fields {sorted(unknown)}; known: {sorted(known)}")
    return SessionRequest(
        mode=mode,
        target_soc=_optional_number(body, "target_soc", 1, 100),
        start_soc=_optional_number(body, "start_soc", 0, 99),
        capacity_kwh=_optional_number(body, "capacity_kwh", 1, 300),
        power_kw=_optional_number(body, "power_kw", 1, 350),
        profile=profile,
        losses=_losses(body.get("losses")),
    )


def _losses(raw: Any) -> LossModel | None:
    """A car with other charging losses: {efficiency 0.5-1, overhead_kw 0-5}."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"efficiency", "overhead_kw"}:
        raise ControlRequestError("losses must be {efficiency, overhead_kw}")
    efficiency = _optional_number(raw, "efficiency", 0.5, 1)
    overhead = _optional_number(raw, "overhead_kw", 0, 5)
    if efficiency is None or overhead is None:
        raise ControlRequestError("losses need both efficiency and overhead_kw")
    return LossModel(efficiency=efficiency, overhead_kw=overhead)


async def _start(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    vin = _vin(simulator, request)
    session = session_request(await json_object(request))
    assert simulator.charging is not None
    # A charge started here replaces a `charging` scenario the car may be running.
    simulator.scenarios.stop(vin)
    try:
        return simulator.charging.start(vin, session)
    except ValueError as err:
        raise ControlRequestError(str(err)) from None


async def _stop(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    vin = _vin(simulator, request)
    body = await json_object(request)
    unplug = body.get("unplug", False)
    if not isinstance(unplug, bool):
        raise ControlRequestError("unplug must be true or false")
    assert simulator.charging is not None
    return simulator.charging.stop(vin, unplug=unplug)


async def _truth(simulator: Simulator, request: web.Request) -> dict[str, Any]:
    vin = _vin(simulator, request)
    assert simulator.charging is not None
    return simulator.charging.truth(vin)


def add_routes(app: web.Application) -> None:
    """Serve the charging routes on the control application."""
    app.router.add_post("/vehicles/{vin}/charging", handler(_start))
    app.router.add_post("/vehicles/{vin}/charging/stop", handler(_stop))
    app.router.add_get("/vehicles/{vin}/charging", handler(_truth))
