"""Everything the simulated BMW back end remembers, in one place that `reset()` rewinds.

The HTTP layers (oauth.py, rest.py, control.py) and the MQTT broker read and change this
state; none of them keeps state of its own, so a reset through the control API really brings
the whole simulator back to its start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
import logging
import secrets
import string
from typing import TYPE_CHECKING, Any, ClassVar

from . import fleet

if TYPE_CHECKING:
    from .clock import SimClock
    from .points import TelematicPoint

_LOGGER = logging.getLogger(__name__)

DEVICE_CODE_LIFETIME = 300
POLL_INTERVAL = 5
ACCESS_TOKEN_LIFETIME = 3600
REFRESH_TOKEN_LIFETIME = 14 * 24 * 3600
CONTAINER_LIMIT = 10
# BMW purges containers 29 days after their deletion (Integration Guide §3.3.2).
CONTAINER_PURGE_SECONDS = 29 * 24 * 3600

_ALPHANUMERIC = string.ascii_letters + string.digits
_CONTAINER_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(slots=True)
class StreamLogin:
    """The broker's verdict on an MQTT CONNECT (MQTT 3.1.1 return codes).

    0 accepted; 4 bad user name or password (unknown or expired id token, or a user name that
    is not the token's GCID); 5 not authorized (valid token, client not subscribed to Stream).
    """

    return_code: int
    gcid: str | None
    expires_at: float | None


@dataclass(slots=True)
class SimConfig:
    """Switches for the places where BMW's documentation and observed behaviour disagree."""

    omit_verification_uri_complete: bool = True
    expired_token_status: int = 401
    stale_refresh_error: str = "invalid_request"
    omit_gcid_on_refresh: bool = False
    expired_token_mode: str = "observed"
    budget_reset: str = "utc_midnight"
    budget_limit: int = 50
    auto_approve: bool = False
    client_id_case_sensitive: bool = True

    _CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "expired_token_status": (400, 401),
        "stale_refresh_error": ("invalid_request", "invalid_grant"),
        "expired_token_mode": ("observed", "documented"),
        "budget_reset": ("utc_midnight", "rolling"),
    }

    def update(self, changes: dict[str, Any]) -> None:
        """Apply `changes` (values may be strings, as given on the command line).

        Raises ValueError for an unknown key or a value outside a switch's choices; nothing is
        changed in that case.
        """
        known = {item.name: item for item in fields(self)}
        converted: dict[str, Any] = {}
        for key, raw in changes.items():
            if key not in known:
                raise ValueError(f"unknown config key {key!r}; known: {sorted(known)}")
            current = getattr(self, key)
            value = _coerce(raw, type(current))
            choices = self._CHOICES.get(key)
            if choices is not None and value not in choices:
                raise ValueError(f"{key} must be one of {choices}, not {raw!r}")
            converted[key] = value
        for key, value in converted.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        """Current switches, for the control API."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


def _coerce(raw: Any, kind: type) -> Any:
    """Turn a command-line string (or JSON value) into the switch's type."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError(f"not an integer: {raw!r}")
        return int(raw)
    return str(raw)


@dataclass(slots=True)
class DeviceGrant:
    """One device authorization: from `/device/code` until tokens are issued or it dies."""

    device_code: str
    user_code: str
    client_id: str
    gcid: str
    scopes: tuple[str, ...]
    code_challenge: str
    issued_at: float
    expires_at: float
    status: str = "pending"  # pending | approved | denied | consumed
    last_poll: float | None = None


@dataclass(slots=True)
class TokenGrant:
    """What an access, id or refresh token stands for."""

    client_id: str
    gcid: str
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class Container:
    """A telematics container of an account."""

    container_id: str
    gcid: str
    name: str
    purpose: str
    descriptors: list[str]
    created: datetime
    state: str = "ACTIVE"
    deleted_at: float | None = None


@dataclass(slots=True)
class Fault:
    """The next `count` calls of an endpoint answer this instead of the real thing."""

    count: int
    status: int = 500
    body: Any = None
    content_type: str | None = None
    timeout: bool = False


@dataclass(slots=True)
class PageCursor:
    """Where a paged answer (charging history, LBCS) continues."""

    gcid: str
    vin: str
    endpoint: str
    offset: int
    created: float
    start: datetime | None = None
    end: datetime | None = None


@dataclass(slots=True)
class CallLog:
    """REST calls of one account: (timestamp, endpoint) of every counted call."""

    calls: list[tuple[float, str]] = field(default_factory=list)
    refused: int = 0


class SimState:
    """The simulated back end's memory."""

    def __init__(self, clock: SimClock, config: SimConfig | None = None) -> None:
        self.clock = clock
        self._startup_config = (config or SimConfig()).as_dict()
        self.config = SimConfig()
        self.config.update(self._startup_config)
        # Hung (timeout-fault) requests wait on this; reset and shutdown release them.
        self.release_hung = asyncio.Event()
        self.reset()

    # --- lifecycle -----------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start state (configuration as given at start-up)."""
        self.config = SimConfig()
        self.config.update(self._startup_config)
        self.subscriptions: dict[str, dict[str, bool]] = {
            spec.client_id: {"api": spec.api, "stream": spec.stream}
            for spec in fleet.CLIENTS.values()
        }
        self.device_grants: dict[str, DeviceGrant] = {}
        self.access_tokens: dict[str, TokenGrant] = {}
        self.id_tokens: dict[str, TokenGrant] = {}
        self.refresh_tokens: dict[str, TokenGrant] = {}
        # PKCE verifiers clients sent since the reset: secrets a client must never log.
        self.verifiers: list[str] = []
        self.containers: dict[str, Container] = {}
        self.faults: dict[str, Fault] = {}
        self.cursors: dict[str, PageCursor] = {}
        self.call_logs: dict[str, CallLog] = {gcid: CallLog() for gcid in self.gcids()}
        now = self.clock.now()
        self.telematics: dict[str, dict[str, TelematicPoint]] = {
            vin: fleet.initial_telematics(vin, now) for vin in fleet.VEHICLES
        }
        self.history: dict[str, list[dict[str, Any]]] = {
            vin: fleet.charging_sessions(vin, now) for vin in fleet.VEHICLES
        }
        self.charging_settings: dict[str, list[dict[str, Any]]] = {
            vin: fleet.charging_settings(vin, now) for vin in fleet.VEHICLES
        }
        # Wake requests hung by an earlier test's timeout fault, then arm a fresh event.
        self.release_hung.set()
        self.release_hung = asyncio.Event()

    def secrets(self) -> list[str]:
        """Every credential issued or received since the reset, for log scans in tests."""
        return [
            *self.access_tokens,
            *self.id_tokens,
            *self.refresh_tokens,
            *self.device_grants,
            *self.verifiers,
        ]

    @staticmethod
    def gcids() -> list[str]:
        """Every account's GCID."""
        return [account.gcid for account in fleet.ACCOUNTS.values()]

    # --- identities ----------------------------------------------------------------------

    def find_client(self, client_id: str) -> fleet.ClientSpec | None:
        """The client registered under `client_id` (case rules per config)."""
        if not self.config.client_id_case_sensitive:
            client_id = client_id.lower()
        return fleet.CLIENTS.get(client_id)

    def subscribed(self, client_id: str, service: str) -> bool:
        """Whether the client is currently subscribed to `api` or `stream`."""
        return self.subscriptions.get(client_id, {}).get(service, False)

    def set_subscriptions(self, client_id: str, *, api: bool | None, stream: bool | None) -> None:
        """Change a client's services; dropping one revokes its refresh tokens, as BMW does."""
        current = self.subscriptions[client_id]
        dropped = (api is False and current["api"]) or (stream is False and current["stream"])
        if api is not None:
            current["api"] = api
        if stream is not None:
            current["stream"] = stream
        if dropped:
            for grant in self.refresh_tokens.values():
                if grant.client_id == client_id:
                    grant.revoked = True

    # --- device flow ---------------------------------------------------------------------

    def new_user_code(self) -> str:
        """Eight mixed-case alphanumerics, unique among live device grants."""
        taken = {grant.user_code for grant in self.device_grants.values()}
        while True:
            code = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(8))
            if code not in taken:
                return code

    def find_device_grant(self, user_code: str | None) -> DeviceGrant | None:
        """The live pending grant with `user_code`, or the newest pending one if None."""
        now = self.clock.timestamp()
        pending = [
            grant
            for grant in self.device_grants.values()
            if grant.status == "pending" and grant.expires_at > now
        ]
        if user_code is None:
            return max(pending, key=lambda grant: grant.issued_at, default=None)
        wanted = user_code.strip()
        return next((grant for grant in pending if grant.user_code == wanted), None)

    # --- tokens --------------------------------------------------------------------------

    def token_expired(self, grant: TokenGrant) -> bool:
        """Whether a token's lifetime is over on the simulator's clock."""
        return self.clock.timestamp() >= grant.expires_at

    def stream_login(self, username: str, password: str) -> StreamLogin:
        """Judge MQTT credentials: user name = GCID, password = id token."""
        grant = self.id_tokens.get(password)
        if grant is None or grant.revoked or self.token_expired(grant) or username != grant.gcid:
            return StreamLogin(4, None, None)
        if fleet.SCOPE_STREAM not in grant.scopes or not self.subscribed(grant.client_id, "stream"):
            return StreamLogin(5, grant.gcid, grant.expires_at)
        return StreamLogin(0, grant.gcid, grant.expires_at)

    @staticmethod
    def allowed_vins(gcid: str) -> set[str]:
        """VINs whose stream the account may read: its PRIMARY mappings."""
        return {
            vehicle.vin
            for vehicle in fleet.VEHICLES.values()
            if vehicle.gcid == gcid and vehicle.is_primary
        }

    # --- containers ----------------------------------------------------------------------

    def purge_containers(self) -> None:
        """Forget containers deleted more than 29 days ago."""
        now = self.clock.timestamp()
        for container_id, container in list(self.containers.items()):
            if (
                container.deleted_at is not None
                and now - container.deleted_at > CONTAINER_PURGE_SECONDS
            ):
                del self.containers[container_id]

    def containers_of(self, gcid: str) -> list[Container]:
        """The account's containers (active and deleted), oldest first."""
        self.purge_containers()
        return [container for container in self.containers.values() if container.gcid == gcid]

    def active_container_count(self, gcid: str) -> int:
        """Containers that count against the limit of ten."""
        return sum(1 for container in self.containers_of(gcid) if container.state == "ACTIVE")

    def add_container(
        self, gcid: str, name: str, purpose: str, descriptors: list[str]
    ) -> Container:
        """Create an ACTIVE container with a fresh 13-character id."""
        while True:
            container_id = "".join(secrets.choice(_CONTAINER_ALPHABET) for _ in range(13))
            if container_id not in self.containers:
                break
        container = Container(
            container_id=container_id,
            gcid=gcid,
            name=name,
            purpose=purpose,
            descriptors=list(dict.fromkeys(descriptors)),
            created=self.clock.now(),
        )
        self.containers[container_id] = container
        return container

    # --- telematics ----------------------------------------------------------------------

    def store_points(self, vin: str, points: dict[str, TelematicPoint]) -> None:
        """Keep each point unless the stored one was measured later (newer wins)."""
        stored = self.telematics.setdefault(vin, {})
        for descriptor, point in points.items():
            previous = stored.get(descriptor)
            if (
                previous is not None
                and previous.timestamp is not None
                and point.timestamp is not None
                and previous.timestamp > point.timestamp
            ):
                continue
            stored[descriptor] = point

    # --- budget --------------------------------------------------------------------------

    def _window_start(self) -> float:
        """Start of the budget window on the simulator's clock."""
        now = self.clock.now()
        if self.config.budget_reset == "rolling":
            return (now - timedelta(days=1)).timestamp()
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        return midnight.timestamp()

    def _calls_in_window(self, gcid: str) -> list[tuple[float, str]]:
        log = self.call_logs.setdefault(gcid, CallLog())
        start = self._window_start()
        # Older calls can never come back into a window that only moves forward.
        log.calls = [call for call in log.calls if call[0] > start]
        return log.calls

    def budget_exhausted(self, gcid: str) -> bool:
        """Whether the account has used its daily REST calls."""
        return len(self._calls_in_window(gcid)) >= self.config.budget_limit

    def count_call(self, gcid: str, endpoint: str) -> None:
        """Book one REST call against the account's budget."""
        self._calls_in_window(gcid).append((self.clock.timestamp(), endpoint))

    def count_refused(self, gcid: str) -> None:
        """Note a call refused with CU-429 (it does not extend the window)."""
        self.call_logs.setdefault(gcid, CallLog()).refused += 1

    def budget_report(self) -> dict[str, dict[str, Any]]:
        """Per account: used, remaining, limit, calls per endpoint, refused calls."""
        report: dict[str, dict[str, Any]] = {}
        limit = self.config.budget_limit
        for gcid in sorted(set(self.gcids()) | set(self.call_logs)):
            calls = self._calls_in_window(gcid)
            by_endpoint: dict[str, int] = {}
            for _, endpoint in calls:
                by_endpoint[endpoint] = by_endpoint.get(endpoint, 0) + 1
            report[gcid] = {
                "used": len(calls),
                "remaining": max(0, limit - len(calls)),
                "limit": limit,
                "by_endpoint": by_endpoint,
                "refused": self.call_logs[gcid].refused,
                "reset_mode": self.config.budget_reset,
            }
        return report

    # --- faults --------------------------------------------------------------------------

    def take_fault(self, endpoint: str) -> Fault | None:
        """The fault armed for `endpoint`, using up one of its answers."""
        fault = self.faults.get(endpoint)
        if fault is None:
            return None
        fault.count -= 1
        if fault.count <= 0:
            del self.faults[endpoint]
        _LOGGER.info("answering %s with an injected fault (status %s)", endpoint, fault.status)
        return fault
