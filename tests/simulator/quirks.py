"""How BMW's stream deviates from a clean feed, switchable one quirk at a time.

Every quirk here was seen in production (spec §3.2, §2.2): numbers sent as strings, missing
units, messages sent twice, distances tagged "miles" or flipping between km and miles,
ASN_isTrue/ASN_isFalse instead of booleans, "-NA-" values and, rarely, several descriptors in one
message. Everything is deterministic so tests can predict each message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .clock import iso_seconds

if TYPE_CHECKING:
    from datetime import datetime

    from .points import TelematicPoint

LATITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
NOT_AVAILABLE = "-NA-"
KM_PER_MILE = 1.609344
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})

# What BMW's stream does not carry: the catalogue's non-streamable descriptors (shared
# descriptors.tsv, column "streamable") and hvStatus, streamable on paper but in practice
# delivered by the REST API only (spec §3.2, evcc PR #26235).
REST_ONLY_DESCRIPTORS = frozenset(
    {
        "vehicle.body.chargingPort.combinedStatus",
        "vehicle.body.chargingPort.isoSessionId",
        "vehicle.body.chargingPort.lockedStatus",
        "vehicle.cabin.door.lock.status",
        "vehicle.cabin.hvac.preconditioning.configuration.isRemoteEngineStartDisclaimer",
        "vehicle.cabin.infotainment.navigation.destinationSet.latitude",
        "vehicle.cabin.infotainment.navigation.destinationSet.longitude",
        "vehicle.channel.ista.obfcm.lastTransmissionStatus",
        "vehicle.channel.teleservice.lastBreakdownCallTime",
        "vehicle.channel.teleservice.lastManualCallTime",
        "vehicle.chassis.axle.wheel.tire.diagnosis",
        "vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOff.gridEnergy",
        "vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOff.referenceDistance",
        "vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOn.gridEnergy",
        "vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOn.referenceDistance",
        "vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.overall.referenceDistance",
        "vehicle.drivetrain.electricEngine.charging.level",
        "vehicle.drivetrain.electricEngine.hvsMaxEnergyAbsolute",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeDepleting.fuel",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeDepleting.referenceDistanceEngineOff",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeDepleting.referenceDistanceEngineOn",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeIncreasing.fuel",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeIncreasing.referenceDistance",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.overall.fuel",
        "vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.overall.referenceDistance",
        "vehicle.electricalSystem.battery.serviceDemand.recharge",
        "vehicle.electricalSystem.battery.serviceDemand.replace",
        "vehicle.electricalSystem.battery.stateOfChargePlausibility",
        "vehicle.extras.optionalEquipment.code",
        "vehicle.learningNavigation",
        "vehicle.look.image",
        "vehicle.powertrain.electric.battery.biDirectionalCharging.availability",
        "vehicle.powertrain.electric.battery.charging.authenticationStatus",
        "vehicle.powertrain.electric.battery.charging.batteryCarePersisted.isActive",
        "vehicle.powertrain.electric.battery.charging.batteryCarePersisted.isPreservingChargingMode",
        "vehicle.powertrain.electric.battery.charging.batteryCarePersisted.isReducedTargetSoe",
        "vehicle.powertrain.electric.battery.charging.cableCheckVoltage",
        "vehicle.powertrain.electric.battery.charging.dcChargingModeActive",
        "vehicle.powertrain.electric.battery.charging.history.sessionsList",
        "vehicle.powertrain.electric.battery.charging.settingsList",
        "vehicle.powertrain.electric.battery.stateOfHealth.displayed",
        "vehicle.privacySettings.dataCollection.regulations.obfcm",
        "vehicle.serviceDemand.defect.id",
        "vehicle.sevice.preferredSevicePartner",
        "vehicle.sim.status",
        "vehicle.status.checkControlMessages",
        "vehicle.status.conditionBasedServices",
        "vehicle.status.conditionBasedServicesAverageDistancePerDay",
        "vehicle.vehicleIdentification.basicVehicleData",
        "vehicle.vehicleIdentification.connectedDriveContractList",
        "vehicle.drivetrain.electricEngine.charging.hvStatus",
    }
)

# One message's `data` object: descriptor -> {"timestamp", "value", "unit"?}.
MessageData = dict[str, dict[str, Any]]


@dataclass
class StreamQuirks:
    """The stream's switchable deviations.

    The feed's quirks are off by default (a clean, documented feed). The charging quirks
    (charging.py) that every reported car shows are on by default: re-sending the session's
    start state of charge when the speed changes, and CHARGINGENDED arriving before the final
    state of charge. Withholding the state of charge while charging, which only some cars
    do, is off.
    """

    quoted_numbers: bool = False
    missing_units: bool = False
    duplicates: bool = False
    miles: bool = False
    mile_flips: bool = False
    asn_booleans: bool = False
    not_available: str | None = None  # the descriptor whose value is sent as "-NA-"
    multi_descriptor: bool = False
    rest_only: bool = False  # drop what BMW's stream does not carry (REST_ONLY_DESCRIPTORS)
    # Charging sessions: no state of charge (nor range) from plug-in until the end.
    withhold_charging_soc: bool = False
    # Charging sessions: a speed change re-sends the start state of charge, freshly stamped.
    resend_start_soc: bool = True
    # Charging sessions: the final state of charge follows CHARGINGENDED 75 s later.
    early_charging_end: bool = True
    _distance_messages: int = field(default=0, init=False, repr=False, compare=False)

    def update(self, mapping: Mapping[str, object]) -> None:
        """Switch quirks by name; nothing changes if any name or value is invalid."""
        known = {item.name: item for item in fields(self) if not item.name.startswith("_")}
        changes: dict[str, object] = {}
        for name, value in mapping.items():
            if name not in known:
                raise ValueError(f"unknown stream quirk {name!r}; known: {', '.join(known)}")
            if name == "not_available":
                changes[name] = _descriptor_or_none(value)
            else:
                changes[name] = _switch(name, value)
        for name, value in changes.items():
            setattr(self, name, value)
        if "miles" in changes or "mile_flips" in changes:
            self._distance_messages = 0

    def reset(self) -> None:
        """Every quirk off again."""
        self.update({item.name: item.default for item in fields(self) if item.init})

    def as_dict(self) -> dict[str, bool | str | None]:
        """The current switches, for the control API."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.init}

    def messages(self, points: Mapping[str, TelematicPoint], now: datetime) -> list[MessageData]:
        """The `data` objects of the messages that carry `points`, in sending order.

        `now` stands in for a point's measurement time when it has none.
        """
        if self.rest_only:
            points = {d: p for d, p in points.items() if d not in REST_ONLY_DESCRIPTORS}
        groups: list[list[str]]
        if self.multi_descriptor:
            # Even batched, BMW never puts latitude and longitude into one message (spec §3.2).
            batch = [descriptor for descriptor in points if descriptor != LONGITUDE]
            groups = [batch] if batch else []
            if LONGITUDE in points:
                groups.append([LONGITUDE])
        else:
            groups = [[descriptor] for descriptor in points]
        rendered: list[MessageData] = []
        for group in groups:
            in_miles = self._next_distance_unit_is_miles(points[d] for d in group)
            data = {d: self.render_point(d, points[d], now, in_miles=in_miles) for d in group}
            rendered.append(data)
            if self.duplicates:
                rendered.append(data)
        return rendered

    def render_point(
        self, descriptor: str, point: TelematicPoint, now: datetime, *, in_miles: bool = False
    ) -> dict[str, Any]:
        """One descriptor's entry in a message's `data` object."""
        value: Any = point.value
        unit = point.unit
        if descriptor == self.not_available:
            value = NOT_AVAILABLE
        elif in_miles and _is_distance(point):
            value = _km_to_miles(value)
            unit = "miles"
        if isinstance(value, bool):
            if self.asn_booleans:
                value = "ASN_isTrue" if value else "ASN_isFalse"
        elif isinstance(value, int | float) and self.quoted_numbers:
            value = str(value)
        entry: dict[str, Any] = {"timestamp": iso_seconds(point.timestamp or now), "value": value}
        if unit is not None and not self.missing_units:
            entry["unit"] = unit
        return entry

    def _next_distance_unit_is_miles(self, points: Iterable[TelematicPoint]) -> bool:
        """Whether the next message's distances go out in miles (flips count messages)."""
        if not (self.miles or self.mile_flips) or not any(_is_distance(p) for p in points):
            return False
        if not self.mile_flips:
            return True
        self._distance_messages += 1
        return self._distance_messages % 2 == 0


def _switch(name: str, value: object) -> bool:
    """An on/off quirk: a boolean, or its spelling on the command line ("on", "false", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.lower() in _TRUE_WORDS
    raise ValueError(f"stream quirk {name!r} takes true or false, not {value!r}")


def _descriptor_or_none(value: object) -> str | None:
    """The not_available switch: a descriptor name, or false/None/"" to switch it off."""
    if (
        value is False
        or value is None
        or (isinstance(value, str) and value.lower() in {"", *_FALSE_WORDS})
    ):
        return None
    if isinstance(value, str):
        return value
    raise ValueError("not_available takes a descriptor name (or false to clear)")


def _is_distance(point: TelematicPoint) -> bool:
    """A numeric value measured in kilometres."""
    return point.unit == "km" and _number(point.value) is not None


def _number(value: Any) -> float | None:
    """The value as a number, accepting numeric strings; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _km_to_miles(value: Any) -> Any:
    """Convert, keeping the value's JSON type (a numeric string stays a string)."""
    number = _number(value)
    assert number is not None
    miles = round(number / KM_PER_MILE, 1)
    if isinstance(value, str):
        return str(miles)
    return miles
