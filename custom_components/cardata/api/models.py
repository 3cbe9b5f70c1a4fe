"""Typed results of the CarData client library and their tolerant parsers.

BMW's payloads deviate from its own documentation (arrays where the swagger says object,
quoted numbers, missing and extra fields), so every `from_json` accepts any JSON-like
input, keeps what it understands and never raises. Every REST result keeps `raw`, the
JSON BMW sent, for the actions that show it to the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from .errors import CarDataError
from .values import (
    ParsedValue,
    as_bool,
    as_float,
    as_int,
    as_str,
    parse_epoch,
    parse_timestamp,
    parse_value,
)


def _mapping(raw: Any) -> Mapping[str, Any]:
    """Return `raw` if it is a JSON object, else an empty one."""
    return raw if isinstance(raw, Mapping) else {}


def _first_present(data: Mapping[str, Any], *keys: str) -> Any:
    """Return the first value that is present and not null among `keys`."""
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _objects(raw: Any) -> list[Mapping[str, Any]]:
    """Return the JSON objects of a list, skipping anything else."""
    if not isinstance(raw, list):
        return []
    return [item for item in raw if isinstance(item, Mapping)]


# --- OAuth ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    """The tokens GCDM granted, with absolute expiry times (aware UTC datetimes).

    `access_token` authorises REST calls, `id_token` is the MQTT password, `gcid` the
    MQTT user name. `id_token` is empty when GCDM issued none (scope `openid` not
    requested); its expiry then equals the access token's. The tokens never appear in
    the repr.
    """

    access_token: str = field(repr=False)
    id_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_token_expires_at: datetime
    id_token_expires_at: datetime
    refresh_token_expires_at: datetime
    scope: tuple[str, ...]
    gcid: str

    def needs_refresh(self, now: datetime | None = None, margin: timedelta = timedelta()) -> bool:
        """Return True when the access or id token expires within `margin` of `now`."""
        moment = (now or datetime.now(UTC)) + margin
        return moment >= min(self.access_token_expires_at, self.id_token_expires_at)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form for persistence (contains the secrets)."""
        return {
            "access_token": self.access_token,
            "id_token": self.id_token,
            "refresh_token": self.refresh_token,
            "access_token_expires_at": self.access_token_expires_at.isoformat(),
            "id_token_expires_at": self.id_token_expires_at.isoformat(),
            "refresh_token_expires_at": self.refresh_token_expires_at.isoformat(),
            "scope": list(self.scope),
            "gcid": self.gcid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a TokenSet stored with `as_dict`.

        Raises ValueError when a field is missing or malformed.
        """

        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str):
                raise ValueError(f"stored token set lacks {key}")  # noqa: TRY004 - one error type for bad data
            return value

        def moment(key: str) -> datetime:
            value = data.get(key)
            parsed = parse_timestamp(value) if isinstance(value, str) else None
            if parsed is None:
                raise ValueError(f"stored token set has no valid {key}")
            return parsed

        scope = data.get("scope", [])
        if isinstance(scope, str):
            scope = scope.split()
        if not isinstance(scope, list | tuple) or not all(isinstance(s, str) for s in scope):
            raise ValueError("stored token set has no valid scope")
        return cls(
            access_token=text("access_token"),
            id_token=text("id_token"),
            refresh_token=text("refresh_token"),
            access_token_expires_at=moment("access_token_expires_at"),
            id_token_expires_at=moment("id_token_expires_at"),
            refresh_token_expires_at=moment("refresh_token_expires_at"),
            scope=tuple(scope),
            gcid=text("gcid"),
        )


@dataclass(slots=True, kw_only=True)
class DeviceAuthorization:
    """A started device authorization: what the user must do and what polling needs.

    Not frozen on purpose: `interval` (seconds between polls) grows by five seconds each
    time GCDM answers `slow_down`, and `GcdmAuth.poll_token` updates it in place so the
    grown interval stays in force for the rest of the flow. Everything else is fixed.
    """

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    interval: int
    expires_at: datetime
    code_verifier: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenGranted:
    """The user approved; here are the tokens."""

    tokens: TokenSet


@dataclass(frozen=True, slots=True)
class AuthorizationPending:
    """The user has not yet approved; poll again after the interval."""


@dataclass(frozen=True, slots=True)
class SlowDown:
    """Polled too fast; `interval` is the new (grown) polling interval in seconds."""

    interval: int


@dataclass(frozen=True, slots=True)
class AuthorizationExpired:
    """The device code expired; the flow has to start again."""


@dataclass(frozen=True, slots=True)
class AuthorizationDenied:
    """The user (or BMW, for an unsubscribed client id) declined the authorization."""


@dataclass(frozen=True, slots=True)
class PollFailed:
    """The poll failed; with `retryable` the caller may keep polling within the code's life."""

    error: str
    description: str | None = None
    retryable: bool = False


type PollOutcome = (
    TokenGranted
    | AuthorizationPending
    | SlowDown
    | AuthorizationExpired
    | AuthorizationDenied
    | PollFailed
)


# --- Vehicles -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleMapping:
    """A vehicle mapped to the account; only PRIMARY users may read its data."""

    vin: str
    mapped_since: datetime | None
    mapping_type: str | None
    raw: Any = field(repr=False, compare=False)

    @property
    def is_primary(self) -> bool:
        """Return True when the account is the vehicle's primary user."""
        return (self.mapping_type or "").upper() == "PRIMARY"

    @classmethod
    def from_json(cls, raw: Any) -> Self | None:
        """Parse one mapping; None when it has no VIN."""
        data = _mapping(raw)
        vin = as_str(data.get("vin"))
        if vin is None:
            return None
        return cls(
            vin=vin,
            mapped_since=parse_timestamp(data.get("mappedSince")),
            mapping_type=as_str(data.get("mappingType")),
            raw=raw,
        )

    @classmethod
    def list_from_json(cls, raw: Any) -> list[Self]:
        """Parse the mappings response: an array, a single object or `{"mappings": [...]}`."""
        if isinstance(raw, Mapping):
            items = raw.get("mappings")
            if isinstance(items, list):
                raw = items
            elif isinstance(items, Mapping):
                raw = [items]
            else:
                raw = [raw]
        mappings = (cls.from_json(item) for item in _objects(raw))
        return [mapping for mapping in mappings if mapping is not None]


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicData:
    """A vehicle's static description (`basicData`); any field may be missing."""

    vin: str | None
    brand: str | None
    model_name: str | None
    model_key: str | None
    model_range: str | None
    series: str | None
    series_development: str | None
    body_type: str | None
    drive_train: str | None
    propulsion_type: str | None
    engine: str | None
    construction_date: datetime | None
    country_code: str | None
    colour: str | None
    colour_code: str | None
    steering: str | None
    head_unit: str | None
    number_of_doors: int | None
    has_navi: bool | None
    has_sun_roof: bool | None
    is_telematics_capable: bool | None
    sim_status: str | None
    charging_modes: tuple[str, ...]
    hvs_max_energy_absolute: float | None
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Any, vin: str | None = None) -> Self:
        """Parse `basicData`; `vin` fills in when BMW leaves the VIN out."""
        data = _mapping(raw)
        modes = data.get("chargingModes")
        if isinstance(modes, str):
            modes = [modes]
        return cls(
            vin=as_str(data.get("vin")) or vin,
            brand=as_str(data.get("brand")),
            model_name=as_str(data.get("modelName")),
            model_key=as_str(data.get("modelKey")),
            model_range=as_str(data.get("modelRange")),
            series=as_str(data.get("series")),
            series_development=as_str(data.get("seriesDevt")),
            body_type=as_str(data.get("bodyType")),
            drive_train=as_str(data.get("driveTrain")),
            propulsion_type=as_str(data.get("propulsionType")),
            engine=as_str(data.get("engine")),
            construction_date=parse_timestamp(data.get("constructionDate")),
            country_code=as_str(_first_present(data, "countryCodeISO", "countryCode")),
            colour=as_str(data.get("colourDescription")),
            colour_code=as_str(_first_present(data, "colourCode", "colourCodeRaw")),
            steering=as_str(data.get("steering")),
            head_unit=as_str(data.get("headUnit")),
            number_of_doors=as_int(data.get("numberOfDoors")),
            has_navi=as_bool(data.get("hasNavi")),
            has_sun_roof=as_bool(data.get("hasSunRoof")),
            is_telematics_capable=as_bool(data.get("isTelematicsCapable")),
            sim_status=as_str(data.get("simStatus")),
            charging_modes=tuple(
                mode for mode in (as_str(m) for m in (modes or [])) if mode is not None
            )
            if isinstance(modes, list)
            else (),
            hvs_max_energy_absolute=as_float(data.get("hvsMaxEnergyAbsolute")),
            raw=raw,
        )


# --- Containers and telematic data ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """A telematic data container: the set of descriptors `telematicData` returns."""

    container_id: str
    name: str | None
    purpose: str | None
    state: str | None
    created: datetime | None
    technical_descriptors: tuple[str, ...]
    raw: Any = field(repr=False, compare=False)

    @property
    def is_active(self) -> bool:
        """Return True when BMW serves data for this container."""
        return (self.state or "").upper() == "ACTIVE"

    @classmethod
    def from_json(cls, raw: Any) -> Self | None:
        """Parse one container; None when it has no id."""
        data = _mapping(raw)
        container_id = as_str(data.get("containerId"))
        if container_id is None:
            return None
        descriptors = data.get("technicalDescriptors")
        return cls(
            container_id=container_id,
            name=as_str(data.get("name")),
            purpose=as_str(data.get("purpose")),
            state=as_str(data.get("state")),
            created=parse_timestamp(data.get("created")),
            technical_descriptors=tuple(d for d in descriptors if isinstance(d, str))
            if isinstance(descriptors, list)
            else (),
            raw=raw,
        )

    @classmethod
    def list_from_json(cls, raw: Any) -> list[Self]:
        """Parse the container list: `{"containers": [...]}` or a bare array."""
        items = raw.get("containers") if isinstance(raw, Mapping) else raw
        containers = (cls.from_json(item) for item in _objects(items))
        return [container for container in containers if container is not None]


@dataclass(frozen=True, slots=True, kw_only=True)
class TelematicValue:
    """One descriptor's value: parsed `value`, what BMW sent (`raw_value`), unit and time.

    `value` is None when the car has no valid value (null, `-NA-`, `INVALID`,
    `ASN_isUnknown`); `raw_value` still holds what BMW sent.
    """

    value: ParsedValue
    raw_value: Any
    unit: str | None = None
    timestamp: datetime | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Parse `{"value", "unit"?, "timestamp"?}`; a bare scalar is taken as the value."""
        if not isinstance(raw, Mapping):
            return cls(value=parse_value(raw), raw_value=raw)
        raw_value = raw.get("value")
        return cls(
            value=parse_value(raw_value),
            raw_value=raw_value,
            unit=as_str(raw.get("unit")),
            timestamp=parse_timestamp(raw.get("timestamp")),
        )


def parse_telematic_values(raw: Any) -> dict[str, TelematicValue]:
    """Parse a descriptor -> data point object (REST `telematicData`, stream `data`)."""
    return {
        key: TelematicValue.from_json(point)
        for key, point in _mapping(raw).items()
        if isinstance(key, str) and key
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class TelematicData:
    """A `telematicData` answer: every descriptor of the container with its value."""

    vin: str
    container_id: str
    values: dict[str, TelematicValue]
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Any, vin: str, container_id: str) -> Self:
        """Parse `{"telematicData": {...}}`."""
        data = _mapping(raw)
        points = data.get("telematicData", data)
        return cls(
            vin=vin,
            container_id=container_id,
            values=parse_telematic_values(points),
            raw=raw,
        )


# --- Charging history and settings ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingSession:
    """One charging session from the charging history."""

    start_time: datetime | None
    end_time: datetime | None
    time_zone: str | None
    start_soc: int | None
    end_soc: int | None
    duration_seconds: int | None
    energy_kwh: float | None
    mileage: int | None
    mileage_unit: str | None
    is_preconditioning_activated: bool | None
    municipality: str | None
    address: str | None
    latitude: float | None
    longitude: float | None
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Parse a `ChargingSessionDto` (epoch-second times)."""
        data = _mapping(raw)
        location = _mapping(data.get("chargingLocation"))
        unit = as_str(data.get("mileageUnits"))
        return cls(
            start_time=parse_epoch(data.get("startTime")),
            end_time=parse_epoch(data.get("endTime")),
            time_zone=as_str(data.get("timeZone")),
            start_soc=as_int(data.get("displayedStartSoc")),
            end_soc=as_int(data.get("displayedSoc")),
            duration_seconds=as_int(data.get("totalChargingDurationSec")),
            energy_kwh=as_float(data.get("energyConsumedFromPowerGridKwh")),
            mileage=as_int(data.get("mileage")),
            # BMW prefixes the enum name ("MileageUnits.KM"); keep only the unit.
            mileage_unit=unit.rsplit(".", 1)[-1] if unit else None,
            is_preconditioning_activated=as_bool(data.get("isPreconditioningActivated")),
            municipality=as_str(location.get("municipality")),
            address=as_str(location.get("formattedAddress")),
            latitude=as_float(location.get("mapMatchedLatitude")),
            longitude=as_float(location.get("mapMatchedLongitude")),
            raw=raw,
        )


def _next_token(data: Mapping[str, Any]) -> str | None:
    """Return the paging token under either spelling BMW uses."""
    return as_str(_first_present(data, "next_token", "nextToken"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingHistory:
    """Charging sessions of one or more pages.

    `next_token` is set when more pages exist and were not fetched. When several pages
    were fetched, `raw` has BMW's page shape with `data` holding every page's sessions.
    `stopped_by` is the refusal or failure that ended `all_pages` early, after the pages
    here were paid for; `next_token` then continues where it stopped.
    """

    sessions: tuple[ChargingSession, ...]
    next_token: str | None
    raw: Any = field(repr=False, compare=False)
    stopped_by: CarDataError | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Parse one page `{"data": [...], "next_token": ...}`."""
        data = _mapping(raw)
        items = data.get("data")
        if items is None and isinstance(raw, list):
            items = raw
        return cls(
            sessions=tuple(ChargingSession.from_json(item) for item in _objects(items)),
            next_token=_next_token(data),
            raw=raw,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LocationChargingSetting:
    """Charging preferences BMW learned for one location (LBCS)."""

    setting_id: str | None
    latitude: float | None
    longitude: float | None
    charging_mode: str | None
    optimized_charging_preference: str | None
    ac_current_limit: float | None
    last_visit: datetime | None
    visits: int | None
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Parse one LBCS entry."""
        data = _mapping(raw)
        return cls(
            setting_id=as_str(data.get("id")),
            latitude=as_float(data.get("latitude")),
            longitude=as_float(data.get("longitude")),
            charging_mode=as_str(data.get("chargingMode")),
            optimized_charging_preference=as_str(data.get("optimizedChargingPreference")),
            ac_current_limit=as_float(data.get("acCurrentLimit")),
            last_visit=parse_timestamp(data.get("lastVisit")),
            visits=as_int(data.get("visits")),
            raw=raw,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingSettings:
    """Location-based charging settings of one or more pages (see ChargingHistory)."""

    entries: tuple[LocationChargingSetting, ...]
    next_token: str | None
    raw: Any = field(repr=False, compare=False)
    stopped_by: CarDataError | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Parse one page `{"data": [...], "nextToken": ...}`."""
        data = _mapping(raw)
        items = data.get("data")
        if items is None and isinstance(raw, list):
            items = raw
        return cls(
            entries=tuple(LocationChargingSetting.from_json(item) for item in _objects(items)),
            next_token=_next_token(data),
            raw=raw,
        )


# --- Tyres and image ------------------------------------------------------------------


def _labelled(data: Mapping[str, Any], key: str, *fields: str) -> Any:
    """Read a field of one of BMW's `{"label": ..., <field>: ..., "value": ...}` objects."""
    return _first_present(_mapping(data.get(key)), *fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tyre:
    """One wheel's tyre as the smart maintenance diagnosis describes it."""

    position: str
    label: str | None
    dimension: str | None
    season: str | None
    manufacturer: str | None
    tread_design: str | None
    part_number: str | None
    run_flat: bool | None
    mounting_date: str | None
    production_date: str | None
    quality_status: str | None
    defect_status: str | None
    defect_status_color: str | None
    wear_status: str | None
    wear_status_color: str | None
    wear_due_mileage: int | None
    wear_unit: str | None

    @classmethod
    def from_json(cls, position: str, raw: Any) -> Self:
        """Parse a `TyreDataDto`."""
        data = _mapping(raw)
        wear = _mapping(data.get("tyreWear"))
        defect = _mapping(data.get("tyreDefect"))
        return cls(
            position=position,
            label=as_str(data.get("label")),
            dimension=as_str(_labelled(data, "dimension", "value")),
            season=as_str(_labelled(data, "season", "season", "value")),
            manufacturer=as_str(_labelled(data, "tread", "manufacturer")),
            tread_design=as_str(_labelled(data, "tread", "treadDesign")),
            part_number=as_str(_labelled(data, "partNumber", "partNumber", "value")),
            run_flat=as_bool(_labelled(data, "runFlat", "runFlat")),
            mounting_date=as_str(_labelled(data, "mountingDate", "mountingDate", "value")),
            production_date=as_str(_labelled(data, "tyreProductionDate", "value")),
            quality_status=as_str(_labelled(data, "qualityStatus", "qualityStatus", "value")),
            defect_status=as_str(defect.get("status")),
            defect_status_color=as_str(defect.get("statusColor")),
            wear_status=as_str(wear.get("status")),
            wear_status_color=as_str(wear.get("statusColor")),
            wear_due_mileage=as_int(wear.get("dueMileage")),
            wear_unit=as_str(wear.get("unit")),
        )


_WHEELS = ("frontLeft", "frontRight", "rearLeft", "rearRight")


def _tyre_set(raw: Any) -> dict[str, Tyre]:
    """Parse a `TyreSet` into position -> Tyre for the wheels present."""
    data = _mapping(raw)
    return {
        wheel: Tyre.from_json(wheel, data[wheel])
        for wheel in _WHEELS
        if isinstance(data.get(wheel), Mapping)
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class TyreDiagnosis:
    """Smart maintenance tyre diagnosis: mounted and unmounted tyres by wheel position."""

    mounted: dict[str, Tyre]
    unmounted: dict[str, Tyre]
    mounted_quality_status: str | None
    errors: tuple[Any, ...]
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Parse `{"passengerCar": {"mountedTyres", "unmountedTyres"}, "errors"}`."""
        data = _mapping(raw)
        car = _mapping(data.get("passengerCar"))
        mounted = _mapping(car.get("mountedTyres"))
        errors = data.get("errors")
        return cls(
            mounted=_tyre_set(mounted),
            unmounted=_tyre_set(car.get("unmountedTyres")),
            mounted_quality_status=as_str(
                _labelled(mounted, "aggregatedQualityStatus", "qualityStatus", "value")
            ),
            errors=tuple(errors) if isinstance(errors, list) else (),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class VehicleImage:
    """The vehicle picture BMW renders for a VIN."""

    content: bytes = field(repr=False)
    content_type: str


# --- Stream ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamMessage:
    """One MQTT message: descriptor updates for one VIN.

    `timestamp` is BMW's send time; each update carries its own measurement time.
    """

    vin: str
    gcid: str | None
    timestamp: datetime | None
    updates: dict[str, TelematicValue]

    @classmethod
    def from_json(cls, raw: Any, *, topic_vin: str | None = None) -> Self:
        """Parse a stream payload `{"vin", "entityId", "timestamp", "data": {...}}`.

        `topic_vin` (the last topic level) fills in a missing `vin`. Raises ValueError
        when the payload is not an object or has no VIN or no `data` object.
        """
        if not isinstance(raw, Mapping):
            raise ValueError("stream payload is not a JSON object")  # noqa: TRY004 - one error type for bad payloads
        vin = as_str(raw.get("vin")) or as_str(raw.get("topic")) or topic_vin
        if vin is None:
            raise ValueError("stream payload has no VIN")
        data = raw.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("stream payload has no data object")  # noqa: TRY004 - one error type for bad payloads
        return cls(
            vin=vin,
            gcid=as_str(raw.get("entityId")),
            timestamp=parse_timestamp(raw.get("timestamp")),
            updates=parse_telematic_values(data),
        )
