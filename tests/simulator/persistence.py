"""What BMW's back end remembers, kept across simulator restarts (`--state-file PATH`).

BMW does not forget an issued token, a container or the calls counted against a day's budget
because one of its servers restarted, and Home Assistant keeps its refresh token across its own
restarts. So the simulator writes that memory to a JSON file on a clean shutdown and reads it
back at start-up. Pending device codes, faults, quirks, switches, pagination cursors and stream
sessions are left out: they are short-lived, or they steer a test rather than being BMW's memory.

Reading is all or nothing: the whole file is checked before anything is applied, so a damaged
file leaves the fresh start state untouched.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import logging
import math
import os
from pathlib import Path
import tempfile
from typing import Any

from . import fleet
from .clock import iso_millis
from .points import TelematicPoint
from .state import REFRESH_TOKEN_LIFETIME, CallLog, Container, SimState, TokenGrant

_LOGGER = logging.getLogger(__name__)

STATE_FORMAT = "cardata-simulator-state"
STATE_VERSION = 1
# Grants that expired this long ago are not written back, so the file of a development
# instance that refreshes every hour does not grow forever. BMW forgets them too at some point;
# until then an expired and an unknown token get the same answer almost everywhere.
FORGET_EXPIRED_AFTER = REFRESH_TOKEN_LIFETIME
_CONTAINER_STATES = ("ACTIVE", "DELETED")
_TOKEN_KINDS = ("access", "id", "refresh")


class StateFileError(ValueError):
    """The file does not hold a state this simulator wrote; the message names the place."""


# --- writing -------------------------------------------------------------------------------


def _grant_json(grant: TokenGrant) -> dict[str, Any]:
    return {
        "client_id": grant.client_id,
        "gcid": grant.gcid,
        "scopes": list(grant.scopes),
        "expires_at": grant.expires_at,
        "revoked": grant.revoked,
    }


def _container_json(container: Container) -> dict[str, Any]:
    return {
        "container_id": container.container_id,
        "gcid": container.gcid,
        "name": container.name,
        "purpose": container.purpose,
        "descriptors": list(container.descriptors),
        "created": container.created.isoformat(),
        "state": container.state,
        "deleted_at": container.deleted_at,
    }


def _point_json(point: TelematicPoint) -> dict[str, Any]:
    return {
        "value": point.value,
        "unit": point.unit,
        "timestamp": point.timestamp.isoformat() if point.timestamp is not None else None,
    }


def _clock_offset(state: SimState) -> float:
    """How far the simulator's clock was advanced since it started or was last reset."""
    # Milliseconds are exact enough: the offset is made of whole advances.
    return round(state.clock.advanced, 3)


def snapshot(state: SimState) -> dict[str, Any]:
    """Everything BMW would remember, as JSON-ready data."""
    forget_before = state.clock.timestamp() - FORGET_EXPIRED_AFTER
    tokens = {
        kind: {
            token: _grant_json(grant)
            for token, grant in grants.items()
            if grant.expires_at > forget_before
        }
        for kind, grants in zip(
            _TOKEN_KINDS,
            (state.access_tokens, state.id_tokens, state.refresh_tokens),
            strict=True,
        )
    }
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": iso_millis(state.clock.now()),
        "clock_offset": _clock_offset(state),
        "subscriptions": {
            client_id: dict(services) for client_id, services in state.subscriptions.items()
        },
        "tokens": tokens,
        "containers": [_container_json(container) for container in state.containers.values()],
        "budgets": {
            gcid: {"calls": [list(call) for call in log.calls], "refused": log.refused}
            for gcid, log in state.call_logs.items()
        },
        "telematics": {
            vin: {descriptor: _point_json(point) for descriptor, point in points.items()}
            for vin, points in state.telematics.items()
        },
        "charging_history": state.history,
        "charging_settings": state.charging_settings,
    }


def save_state_file(state: SimState, path: Path) -> bool:
    """Write the state atomically (temporary file in the same directory, then rename).

    The file holds tokens, so it is readable by its owner only. Returns whether it was
    written; a failure is logged, and an older file stays as it was.
    """
    try:
        text = json.dumps(snapshot(state), indent=1)
    except (TypeError, ValueError) as err:
        # A telematics value of a type JSON cannot hold (a future scenario's, say) must not
        # break the shutdown.
        _LOGGER.error("cannot write the simulator state to %s: %s", path, err)
        return False
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as err:
        _LOGGER.error("cannot write the simulator state to %s: %s", path, err)
        return False
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        _LOGGER.error("cannot write the simulator state to %s: %s", path, err)
        return False
    _LOGGER.info("simulator state saved to %s", path)
    return True


# --- reading: checks that name the place, never the content (it holds tokens) -------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateFileError(f"{where} is not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise StateFileError(f"{where} is not a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise StateFileError(f"{where} is not a string")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise StateFileError(f"{where} is not true or false")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StateFileError(f"{where} is not a finite number")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StateFileError(f"{where} is not a count")
    return int(value)


def _instant(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value, where))
    except ValueError:
        raise StateFileError(f"{where} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional_instant(value: Any, where: str) -> datetime | None:
    return None if value is None else _instant(value, where)


def _grant(value: Any, where: str) -> TokenGrant:
    raw = _object(value, where)
    return TokenGrant(
        client_id=_str(raw.get("client_id"), f"{where}.client_id"),
        gcid=_str(raw.get("gcid"), f"{where}.gcid"),
        scopes=tuple(
            _str(scope, f"{where}.scopes[]")
            for scope in _list(raw.get("scopes"), f"{where}.scopes")
        ),
        expires_at=_number(raw.get("expires_at"), f"{where}.expires_at"),
        revoked=_bool(raw.get("revoked", False), f"{where}.revoked"),
    )


def _container(value: Any, where: str) -> Container:
    raw = _object(value, where)
    state = _str(raw.get("state"), f"{where}.state")
    if state not in _CONTAINER_STATES:
        raise StateFileError(f"{where}.state is not one of {_CONTAINER_STATES}")
    deleted_at = raw.get("deleted_at")
    return Container(
        container_id=_str(raw.get("container_id"), f"{where}.container_id"),
        gcid=_str(raw.get("gcid"), f"{where}.gcid"),
        name=_str(raw.get("name"), f"{where}.name"),
        purpose=_str(raw.get("purpose"), f"{where}.purpose"),
        descriptors=[
            _str(item, f"{where}.descriptors[]")
            for item in _list(raw.get("descriptors"), f"{where}.descriptors")
        ],
        created=_instant(raw.get("created"), f"{where}.created"),
        state=state,
        deleted_at=None if deleted_at is None else _number(deleted_at, f"{where}.deleted_at"),
    )


def _call_log(value: Any, where: str) -> CallLog:
    raw = _object(value, where)
    calls: list[tuple[float, str]] = []
    for call in _list(raw.get("calls"), f"{where}.calls"):
        pair = _list(call, f"{where}.calls[]")
        if len(pair) != 2:
            raise StateFileError(f"{where}.calls[] is not a [timestamp, endpoint] pair")
        calls.append(
            (_number(pair[0], f"{where}.calls[][0]"), _str(pair[1], f"{where}.calls[][1]"))
        )
    return CallLog(calls=calls, refused=_count(raw.get("refused", 0), f"{where}.refused"))


def _point(value: Any, where: str) -> TelematicPoint:
    raw = _object(value, where)
    if "value" not in raw:
        raise StateFileError(f"{where} has no value")
    return TelematicPoint(
        value=raw["value"],
        unit=_optional_str(raw.get("unit"), f"{where}.unit"),
        timestamp=_optional_instant(raw.get("timestamp"), f"{where}.timestamp"),
    )


def _history_entry(value: Any, where: str) -> dict[str, Any]:
    entry = _object(value, where)
    # The REST layer filters on it, so it must be a number.
    _number(entry.get("startTime"), f"{where}.startTime")
    return entry


def _per_vin[T](value: Any, where: str, parse: Callable[[Any, str], T]) -> dict[str, T]:
    """Entries of the fleet's VINs; a VIN the fleet no longer has is dropped."""
    return {
        vin: parse(item, f"{where}.{vin}")
        for vin, item in _object(value, where).items()
        if vin in fleet.VEHICLES
    }


@dataclass(slots=True)
class _Remembered:
    """A checked state file, ready to be applied."""

    clock_offset: float
    subscriptions: dict[str, dict[str, bool]]
    tokens: dict[str, dict[str, TokenGrant]]
    containers: dict[str, Container]
    call_logs: dict[str, CallLog]
    telematics: dict[str, dict[str, TelematicPoint]]
    history: dict[str, list[dict[str, Any]]]
    charging_settings: dict[str, list[dict[str, Any]]]


def _parse(data: Any) -> _Remembered:
    """Check a state file's content completely; raises StateFileError."""
    root = _object(data, "the file")
    if root.get("format") != STATE_FORMAT or root.get("version") != STATE_VERSION:
        raise StateFileError(f"not a {STATE_FORMAT} file of version {STATE_VERSION}")
    clock_offset = _number(root.get("clock_offset"), "clock_offset")
    if clock_offset < 0:
        raise StateFileError("clock_offset is negative (the clock only moves forward)")
    subscriptions: dict[str, dict[str, bool]] = {}
    for client_id, raw in _object(root.get("subscriptions"), "subscriptions").items():
        services = _object(raw, f"subscriptions.{client_id}")
        checked = {
            service: _bool(services.get(service), f"subscriptions.{client_id}.{service}")
            for service in ("api", "stream")
        }
        # A client the fleet no longer has is dropped.
        if client_id in fleet.CLIENTS:
            subscriptions[client_id] = checked
    token_section = _object(root.get("tokens"), "tokens")
    tokens = {
        kind: {
            token: _grant(grant, f"a grant in tokens.{kind}")
            for token, grant in _object(token_section.get(kind), f"tokens.{kind}").items()
        }
        for kind in _TOKEN_KINDS
    }
    containers: dict[str, Container] = {}
    for index, raw in enumerate(_list(root.get("containers"), "containers")):
        container = _container(raw, f"containers[{index}]")
        containers[container.container_id] = container
    known_gcids = set(SimState.gcids())
    call_logs = {
        gcid: _call_log(raw, f"budgets.{gcid}")
        for gcid, raw in _object(root.get("budgets"), "budgets").items()
        if gcid in known_gcids
    }
    telematics = _per_vin(
        root.get("telematics"),
        "telematics",
        lambda raw, where: {
            descriptor: _point(point, f"{where}.{descriptor}")
            for descriptor, point in _object(raw, where).items()
        },
    )
    history = _per_vin(
        root.get("charging_history"),
        "charging_history",
        lambda raw, where: [_history_entry(entry, f"{where}[]") for entry in _list(raw, where)],
    )
    charging_settings = _per_vin(
        root.get("charging_settings"),
        "charging_settings",
        lambda raw, where: [_object(entry, f"{where}[]") for entry in _list(raw, where)],
    )
    return _Remembered(
        clock_offset=clock_offset,
        subscriptions=subscriptions,
        tokens=tokens,
        containers=containers,
        call_logs=call_logs,
        telematics=telematics,
        history=history,
        charging_settings=charging_settings,
    )


def restore(state: SimState, data: Any) -> None:
    """Replace the state's memory with a state file's content (already decoded from JSON).

    Raises StateFileError and changes nothing when the content is damaged. Meant for a state
    fresh from start-up: the clock is advanced by the saved offset.
    """
    remembered = _parse(data)
    if remembered.clock_offset > 0:
        state.clock.advance(remembered.clock_offset)
    for client_id, services in remembered.subscriptions.items():
        state.subscriptions[client_id] = services
    state.access_tokens = remembered.tokens["access"]
    state.id_tokens = remembered.tokens["id"]
    state.refresh_tokens = remembered.tokens["refresh"]
    state.containers = remembered.containers
    state.call_logs.update(remembered.call_logs)
    state.telematics.update(remembered.telematics)
    state.history.update(remembered.history)
    state.charging_settings.update(remembered.charging_settings)


def load_state_file(state: SimState, path: Path) -> bool:
    """Restore the state from `path`; returns whether it was restored.

    A missing file means a first start. A file that cannot be read or is damaged gets one
    warning, and the simulator starts fresh: a development instance then asks to log in again,
    which beats not starting at all.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _LOGGER.info("no simulator state in %s yet: starting fresh", path)
        return False
    except (OSError, UnicodeDecodeError) as err:
        _LOGGER.warning("cannot read the simulator state in %s (%s): starting fresh", path, err)
        return False
    try:
        restore(state, json.loads(text))
    except (ValueError, RecursionError) as err:
        # ValueError covers undecodable JSON and StateFileError; absurdly deep nesting makes
        # the JSON decoder raise RecursionError instead.
        _LOGGER.warning("ignoring the simulator state in %s (%s): starting fresh", path, err)
        return False
    _LOGGER.info(
        "simulator state restored from %s: %d refresh tokens, %d containers",
        path,
        len(state.refresh_tokens),
        len(state.containers),
    )
    return True
