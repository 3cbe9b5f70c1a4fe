"""A vehicle's identity and the state of its telematics descriptors.

Values reach the integration from two sources: the MQTT stream (pushed, free) and the REST
API (polled, budgeted). Both carry a measurement time per descriptor, and the newer
measurement wins whatever its source, so a REST snapshot taken before the last stream
message can never turn a value back.

A measurement time is trusted up to MAX_CLOCK_SKEW ahead of the moment the value arrived;
a value stamped further ahead counts as measured when it arrived. Otherwise one value
stamped a year ahead (a car whose clock is wrong, a corrupted message) would beat every
real reading for a year, across restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.util import dt as dt_util

from .api.models import BasicData, TelematicValue, VehicleMapping
from .api.values import ParsedValue
from .const import DOMAIN

type Source = Literal["stream", "rest"]

# How far ahead of our clock a car's clock may plausibly be.
MAX_CLOCK_SKEW = timedelta(minutes=10)

# Brand names as BMW's basicData spells them, as a person would write the manufacturer.
_MANUFACTURERS = {
    "BMWI": "BMW",
    "BMW MOTORRAD": "BMW Motorrad",
    "TOYOTA-SUPRA": "Toyota",
    "ROLLS-ROYCE": "Rolls-Royce",
    "MINI": "MINI",
    "BMW": "BMW",
}


def redact_vin(vin: str) -> str:
    """Return a VIN shortened to its last four characters, for log lines.

    A VIN identifies a person's car; logs are shared in bug reports.
    """
    return f"…{vin[-4:]}"


def _aware(moment: datetime | None) -> datetime | None:
    """Return a stored time as an aware one (a time without offset is UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def trusted_time(measured_at: datetime, received_at: datetime) -> datetime:
    """Return the measurement time to rank a value by: at most MAX_CLOCK_SKEW ahead of arrival.

    Further ahead, the car's clock (or the message) is wrong: the value counts as measured
    when it arrived.
    """
    if measured_at - received_at > MAX_CLOCK_SKEW:
        return received_at
    return measured_at


@dataclass(frozen=True, slots=True, kw_only=True)
class DescriptorState:
    """The current value of one descriptor of one vehicle.

    `timestamp` is when the car measured the value; when BMW sent no measurement time it
    is the moment the value was received, and `measured` is False. `source` says whether
    the stream or a REST poll delivered it, `received_at` when it arrived.
    """

    value: ParsedValue
    raw_value: Any
    unit: str | None
    timestamp: datetime
    source: Source
    received_at: datetime
    measured: bool = True

    @classmethod
    def from_telematic_value(
        cls, point: TelematicValue, source: Source, received_at: datetime
    ) -> DescriptorState:
        """Build the state for a value just received from `source`."""
        return cls(
            value=point.value,
            raw_value=point.raw_value,
            unit=point.unit,
            timestamp=trusted_time(point.timestamp or received_at, received_at),
            source=source,
            received_at=received_at,
            measured=point.timestamp is not None,
        )

    @property
    def is_placeholder(self) -> bool:
        """Return True for "no data": BMW named the descriptor but sent no value nor time.

        REST answers every descriptor of the container, with null value and null time
        where the car has nothing; such an entry says the descriptor exists, not that its
        value is gone.
        """
        return self.raw_value is None and not self.measured

    def supersedes(self, current: DescriptorState) -> bool:
        """Return True when this state should replace `current`.

        The newer measurement wins, whatever the source. A placeholder never replaces a
        value, and anything replaces a placeholder. At equal measurement times the later
        arrival wins, unless it says the same (a duplicate).
        """
        if self.is_placeholder:
            return current.is_placeholder and self.unit != current.unit
        if current.is_placeholder:
            return True
        if self.timestamp != current.timestamp:
            return self.timestamp > current.timestamp
        return not self.says_the_same_as(current)

    def says_the_same_as(self, other: DescriptorState) -> bool:
        """Return True when both carry the same value and unit (`78` and `"78"` agree)."""
        return (
            self.value == other.value
            and isinstance(self.value, bool) == isinstance(other.value, bool)
            and self.unit == other.unit
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form for the Store."""
        return {
            "value": self.value,
            "raw_value": self.raw_value,
            "unit": self.unit,
            "timestamp": self.timestamp.isoformat(),
            "source": self.source,
            "received_at": self.received_at.isoformat(),
            "measured": self.measured,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DescriptorState | None:
        """Rebuild a stored state; None when the stored form is damaged."""
        timestamp = _aware(dt_util.parse_datetime(str(data.get("timestamp"))))
        received_at = _aware(dt_util.parse_datetime(str(data.get("received_at"))))
        source = data.get("source")
        value = data.get("value")
        if (
            timestamp is None
            or received_at is None
            or source not in ("stream", "rest")
            or not (value is None or isinstance(value, str | int | float | bool))
        ):
            return None
        unit = data.get("unit")
        # Stored before the rule held, or by a clock that jumped back since: the same rule.
        received_at = min(received_at, dt_util.utcnow())
        return cls(
            value=value,
            raw_value=data.get("raw_value"),
            unit=unit if isinstance(unit, str) else None,
            timestamp=trusted_time(timestamp, received_at),
            source="stream" if source == "stream" else "rest",
            received_at=received_at,
            measured=bool(data.get("measured", True)),
        )


@dataclass(frozen=True, slots=True)
class VehicleChange:
    """What one batch of updates (a stream message or a REST poll) changed for a vehicle.

    `changed` holds every descriptor whose state changed, `added` those among them seen
    for the first time (the entity layer creates entities for them).
    """

    vin: str
    changed: frozenset[str]
    added: frozenset[str]


def _moment(raw: Any) -> datetime | None:
    return dt_util.parse_datetime(raw) if isinstance(raw, str) else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(slots=True)
class VehicleState:
    """The descriptor states of one vehicle, merged from the stream and REST.

    `last_poll_attempt` is when a REST poll of the vehicle was last sent (it spaces the
    polls, across restarts too), `last_rest_fetch` when REST values last arrived.
    """

    descriptors: dict[str, DescriptorState] = field(default_factory=dict)
    last_poll_attempt: datetime | None = None
    last_rest_fetch: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form for the Store."""
        return {
            "last_poll_attempt": _iso(self.last_poll_attempt),
            "last_rest_fetch": _iso(self.last_rest_fetch),
            "descriptors": {key: state.as_dict() for key, state in self.descriptors.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VehicleState:
        """Rebuild a stored vehicle state, skipping whatever is damaged."""
        stored = data.get("descriptors")
        descriptors: dict[str, DescriptorState] = {}
        if isinstance(stored, Mapping):
            for key, raw in stored.items():
                if isinstance(raw, Mapping) and (state := DescriptorState.from_dict(raw)):
                    descriptors[key] = state
        return cls(
            descriptors=descriptors,
            last_poll_attempt=_moment(data.get("last_poll_attempt")),
            last_rest_fetch=_moment(data.get("last_rest_fetch")),
        )

    def merge(
        self, updates: Mapping[str, TelematicValue], source: Source, received_at: datetime
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Apply what a source sent; return the changed and the newly seen descriptors."""
        changed: set[str] = set()
        added: set[str] = set()
        for descriptor, point in updates.items():
            candidate = DescriptorState.from_telematic_value(point, source, received_at)
            current = self.descriptors.get(descriptor)
            if current is None:
                added.add(descriptor)
            elif not candidate.supersedes(current):
                continue
            self.descriptors[descriptor] = candidate
            changed.add(descriptor)
        return frozenset(changed), frozenset(added)


@dataclass(slots=True)
class Vehicle:
    """A vehicle the account may read (PRIMARY mapping) and what BMW says about it."""

    vin: str
    mapping: VehicleMapping
    basic_data: BasicData | None

    @property
    def manufacturer(self) -> str:
        """Return the maker's name as people write it (BMW's `brand`)."""
        brand = (self.basic_data.brand if self.basic_data else None) or "BMW"
        return _MANUFACTURERS.get(brand.strip().upper(), brand.strip())

    @property
    def model(self) -> str | None:
        """Return the model name, e.g. "i4 eDrive40"."""
        return self.basic_data.model_name if self.basic_data else None

    @property
    def name(self) -> str:
        """Return the device name, e.g. "BMW i4 eDrive40"."""
        model = self.model
        if not model:
            return f"{self.manufacturer} {self.vin[-4:]}"
        if model.upper().startswith(self.manufacturer.upper()):
            return model
        return f"{self.manufacturer} {model}"

    @property
    def device_info(self) -> DeviceInfo:
        """Return the device registry entry of this vehicle."""
        info = DeviceInfo(
            identifiers={(DOMAIN, self.vin)},
            manufacturer=self.manufacturer,
            name=self.name,
            serial_number=self.vin,
        )
        if self.model:
            info["model"] = self.model
        if self.basic_data and self.basic_data.model_key:
            info["model_id"] = self.basic_data.model_key
        return info
