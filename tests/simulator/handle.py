"""A test's grip on a running simulator: its addresses and the control API as async methods.

Each control call opens and closes its own short-lived aiohttp session, so a handle can be
shared between tests and event loops. Only `reset_blocking()` uses blocking I/O, for sync
fixtures that run before a test's event loop starts.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
import hashlib
import json
import secrets
from typing import Any
import urllib.request

import aiohttp

from . import fleet

FULL_SCOPE = "authenticate_user openid cardata:api:read cardata:streaming:read"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


class SimulatorControlError(Exception):
    """The control API refused a request (bad input, unknown VIN, no pending code...)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"simulator control API answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class SimulatorHandle:
    """The ready line's fields plus async control methods."""

    gcdm_url: str
    api_url: str
    mqtt_host: str
    mqtt_port: int
    ca_file: str
    client_id: str
    control_url: str
    clients: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, Any] = field(default_factory=dict)
    timeout: float = 10.0

    @classmethod
    def from_ready_line(cls, line: str) -> SimulatorHandle:
        """Build a handle from the JSON line the simulator prints when it is ready."""
        data = json.loads(line)
        return cls(
            gcdm_url=data["gcdm_url"],
            api_url=data["api_url"],
            mqtt_host=data["mqtt_host"],
            mqtt_port=int(data["mqtt_port"]),
            ca_file=data["ca_file"],
            client_id=data["client_id"],
            control_url=data["control_url"],
            clients=dict(data.get("clients", {})),
            accounts=dict(data.get("accounts", {})),
        )

    @property
    def gcid(self) -> str:
        """GCID of account "main" (the account of `client_id`)."""
        return fleet.GCID_MAIN

    # --- transport ---------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, self.control_url + path, json=dict(body) if body is not None else None
            ) as response,
        ):
            payload = await response.json(content_type=None)
            if response.status >= 400:
                raise SimulatorControlError(response.status, payload)
            return payload

    def reset_blocking(self) -> None:
        """`POST /reset` with blocking I/O: only for code outside a running event loop."""
        # control_url comes from the simulator's ready line: always http on loopback.
        request = urllib.request.Request(  # noqa: S310
            self.control_url + "/reset", data=b"{}", method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read()

    def advance_blocking(self, seconds: float) -> datetime:
        """`POST /clock` with blocking I/O, for fixtures outside a running event loop."""
        # control_url comes from the simulator's ready line: always http on loopback.
        request = urllib.request.Request(  # noqa: S310
            self.control_url + "/clock",
            data=json.dumps({"advance_seconds": seconds}).encode(),
            method="POST",
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            now: str = json.loads(response.read())["now"]
        return datetime.fromisoformat(now)

    def secrets_blocking(self) -> list[str]:
        """`GET /secrets` with blocking I/O: every credential issued or received since reset."""
        # control_url comes from the simulator's ready line: always http on loopback.
        with urllib.request.urlopen(  # noqa: S310
            self.control_url + "/secrets", timeout=self.timeout
        ) as response:
            issued: list[str] = json.loads(response.read())["secrets"]
        return issued

    # --- control API -------------------------------------------------------------------

    async def reset(self) -> None:
        """Back to the start state (clock, tokens, budgets, containers, quirks, faults...)."""
        await self._request("POST", "/reset", {})

    async def approve(
        self, user_code: str | None = None, gcid: str | None = None
    ) -> dict[str, Any]:
        """Approve a pending device code (the newest one if no code is given).

        `gcid` lets another account approve, as if a different person logged in.
        """
        body: dict[str, Any] = {}
        if user_code is not None:
            body["user_code"] = user_code
        if gcid is not None:
            body["gcid"] = gcid
        result: dict[str, Any] = await self._request("POST", "/approve", body)
        return result

    async def deny(self, user_code: str | None = None) -> dict[str, Any]:
        """Deny a pending device code (the newest one if no code is given)."""
        body = {"user_code": user_code} if user_code is not None else {}
        result: dict[str, Any] = await self._request("POST", "/deny", body)
        return result

    async def now(self) -> datetime:
        """The simulator's current time."""
        result = await self._request("GET", "/clock")
        return datetime.fromisoformat(result["now"])

    async def advance(self, seconds: float) -> datetime:
        """Move the simulator's clock forward; returns the new time."""
        result = await self._request("POST", "/clock", {"advance_seconds": seconds})
        return datetime.fromisoformat(result["now"])

    async def freeze_clock(self, frozen: bool = True) -> datetime:
        """Stop the simulator's clock (it then moves only by `advance`), or let it run again.

        For benches and tests that move Home Assistant's frozen clock in step with it: the
        two then never drift apart by the real time the run takes. `reset` lets it run.
        """
        result = await self._request("POST", "/clock", {"freeze": frozen})
        return datetime.fromisoformat(result["now"])

    async def set_telematics(self, vin: str, values: Mapping[str, Any]) -> None:
        """Make the car report values: `{descriptor: value | {"value", "unit"?, "timestamp"?}}`.

        REST sees them (newer measurement times win) and the stream publishes them.
        """
        await self._request("POST", f"/vehicles/{vin}/telematics", values)

    async def start_scenario(self, vin: str, name: str, step_seconds: float | None = None) -> None:
        """Start `parked`, `driving`, `charging` or `unlocking` for a car."""
        body: dict[str, Any] = {"vin": vin, "name": name}
        if step_seconds is not None:
            body["step_seconds"] = step_seconds
        await self._request("POST", "/scenario", body)

    async def calls(self) -> dict[str, dict[str, Any]]:
        """REST budget per GCID: used, remaining, limit, by_endpoint, refused, reset_mode."""
        result: dict[str, dict[str, Any]] = (await self._request("GET", "/calls"))["accounts"]
        return result

    async def fault(
        self,
        endpoint: str,
        *,
        count: int = 1,
        status: int | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: bool = False,  # noqa: ASYNC109  # the control API's field: hang, not a deadline
    ) -> None:
        """Make the next `count` calls of `endpoint` fail (status/body) or hang (timeout)."""
        request: dict[str, Any] = {"endpoint": endpoint, "count": count, "timeout": timeout}
        if status is not None:
            request["status"] = status
        if body is not None:
            request["body"] = body
        if content_type is not None:
            request["content_type"] = content_type
        await self._request("POST", "/faults", request)

    async def drop_stream(self) -> None:
        """Close every stream connection, as a broker restart at BMW would."""
        await self._request("POST", "/stream/drop", {})

    async def set_quirks(
        self, quirks: Mapping[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        """Switch stream quirks; returns them all."""
        result = await self._request("POST", "/quirks", {**(quirks or {}), **more})
        switches: dict[str, Any] = result["quirks"]
        return switches

    async def set_config(
        self, config: Mapping[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        """Change simulator switches (e.g. `budget_reset="rolling"`); returns them all."""
        result = await self._request("POST", "/config", {**(config or {}), **more})
        switches: dict[str, Any] = result["config"]
        return switches

    async def set_subscriptions(
        self, client_id: str, *, api: bool | None = None, stream: bool | None = None
    ) -> None:
        """Subscribe or unsubscribe a client id; unsubscribing revokes its refresh tokens."""
        body = {
            key: value for key, value in (("api", api), ("stream", stream)) if value is not None
        }
        await self._request("POST", f"/clients/{client_id}/subscriptions", body)

    async def add_foreign_containers(self, gcid: str, count: int) -> list[str]:
        """Containers made by another app of the account (they count against the limit)."""
        result = await self._request("POST", f"/accounts/{gcid}/containers", {"count": count})
        containers: list[str] = result["containers"]
        return containers

    async def stream_sessions(self) -> list[dict[str, Any]]:
        """Connected stream sessions (gcid, client_id, subscriptions, connected_since)."""
        result = await self._request("GET", "/stream/sessions")
        sessions: list[dict[str, Any]] = result["sessions"]
        return sessions

    # --- charging sessions (docs/contracts.md, "Charging sessions") --------------------

    async def start_charging(
        self,
        vin: str,
        mode: str = "ac",
        *,
        target_soc: float | None = None,
        start_soc: float | None = None,
        capacity_kwh: float | None = None,
        power_kw: float | None = None,
        profile: list[tuple[float, float]] | None = None,
        losses: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """Plug `vin` in and charge (`ac`, `dc` or `solar`); returns `charging_truth`.

        `profile` is offered power over time as (seconds, kW) segments, repeated after the
        last; below 1.38 kW (6 A on one phase) the car pauses. `losses` as (efficiency,
        overhead kW) gives this session a charger other than the usual one. Unset values
        come from the car: its state of charge, target and maxEnergy.
        """
        optional = {
            "target_soc": target_soc,
            "start_soc": start_soc,
            "capacity_kwh": capacity_kwh,
            "power_kw": power_kw,
        }
        body: dict[str, Any] = {
            "mode": mode,
            **{key: value for key, value in optional.items() if value is not None},
        }
        if profile is not None:
            body["profile"] = [
                {"seconds": seconds, "power_kw": power} for seconds, power in profile
            ]
        if losses is not None:
            body["losses"] = {"efficiency": losses[0], "overhead_kw": losses[1]}
        result: dict[str, Any] = await self._request("POST", f"/vehicles/{vin}/charging", body)
        return result

    async def stop_charging(self, vin: str, *, unplug: bool = False) -> dict[str, Any]:
        """The driver ends the charge (END_REQUESTED_BY_DRIVER) or pulls the cable."""
        result: dict[str, Any] = await self._request(
            "POST", f"/vehicles/{vin}/charging/stop", {"unplug": unplug}
        )
        return result

    async def charging_truth(self, vin: str) -> dict[str, Any]:
        """The true state of the current and last session: {vin, now, session, last_session}.

        A session: mode, phase (initializing|charging|paused|ended), soc (true, float),
        start_soc, target_soc, capacity_kwh, battery_kwh, grid_kwh, battery_added_kwh,
        loss_kwh, grid_power_w, started, ended, finish_reason, history_entry.
        """
        result: dict[str, Any] = await self._request("GET", f"/vehicles/{vin}/charging")
        return result

    # --- shortcuts -----------------------------------------------------------------------

    async def issue_tokens(
        self, client_id: str | None = None, scope: str = FULL_SCOPE, *, gcid: str | None = None
    ) -> dict[str, Any]:
        """Run a whole device flow over HTTP and return GCDM's token response.

        Requests a device code for `client_id` (default: the ready line's), approves it
        (as `gcid`'s account if given) and polls once. Raises SimulatorControlError if GCDM
        refuses a step, with GCDM's answer as `body`.
        """
        client = client_id or self.client_id
        verifier = secrets.token_urlsafe(32)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(
                self.gcdm_url + "/gcdm/oauth/device/code",
                data={
                    "client_id": client,
                    "response_type": "device_code",
                    "scope": scope,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            ) as response:
                device = await response.json(content_type=None)
                if response.status != 200:
                    raise SimulatorControlError(response.status, device)
            await self.approve(device["user_code"], gcid)
            async with session.post(
                self.gcdm_url + "/gcdm/oauth/token",
                data={
                    "client_id": client,
                    "device_code": device["device_code"],
                    "grant_type": DEVICE_GRANT_TYPE,
                    "code_verifier": verifier,
                },
            ) as response:
                tokens: dict[str, Any] = await response.json(content_type=None)
                if response.status != 200:
                    raise SimulatorControlError(response.status, tokens)
                return tokens
