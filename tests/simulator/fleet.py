"""The simulator's fixed world: accounts, CarData clients, vehicles and their data.

Everything here is static or derived deterministically from a vehicle's VIN and a reference
moment, so two runs of the simulator (and every test) see the same cars. Shapes follow what BMW
was observed to send (cardata/spec.md §2.2), not only what the swagger documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import json
import random
import struct
from typing import TYPE_CHECKING, Any

from .points import TelematicPoint

if TYPE_CHECKING:
    from collections.abc import Mapping

# --- identities (docs/contracts.md) -------------------------------------------------------

GCID_MAIN = "5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70"
GCID_OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

VIN_BEV = "WBA00000000000001"
VIN_PHEV = "WBA00000000000002"
VIN_SECONDARY = "WBA00000000000003"
VIN_OTHER = "WBA00000000000004"

CLIENT_FULL = "0c7e2f5a-3b1d-4e8f-9a6c-1d2e3f4a5b6c"
CLIENT_API_ONLY = "1d8f3a6b-4c2e-4f9a-8b7d-2e3f4a5b6c7d"
CLIENT_STREAM_ONLY = "2e9a4b7c-5d3f-4a0b-9c8e-3f4a5b6c7d8e"
CLIENT_NONE = "3fab5c8d-6e4a-4b1c-8d9f-4a5b6c7d8e9f"
CLIENT_OTHER = "4abc6d9e-7f5b-4c2d-9e0a-5b6c7d8e9f0a"

SCOPE_API = "cardata:api:read"
SCOPE_STREAM = "cardata:streaming:read"


@dataclass(frozen=True, slots=True)
class Account:
    """A BMW customer account (one GCID)."""

    name: str
    gcid: str


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """A CarData client id created in the customer portal, with its service subscriptions."""

    name: str
    client_id: str
    gcid: str
    api: bool
    stream: bool


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A car mapped to an account, with everything the REST API can say about it."""

    vin: str
    gcid: str
    mapping_type: str
    mapped_since: str
    kind: str  # BEV | PHEV: decides which telematics it has
    basic_data: Mapping[str, Any]
    home: tuple[float, float]
    body_colour: tuple[int, int, int]
    has_image: bool
    has_lbcs: bool
    has_tyre_data: bool
    history_sessions: int
    time_zone: str = "Europe/Berlin"
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_primary(self) -> bool:
        """Only PRIMARY users may read a vehicle's data."""
        return self.mapping_type == "PRIMARY"


ACCOUNTS: dict[str, Account] = {
    "main": Account("main", GCID_MAIN),
    "other": Account("other", GCID_OTHER),
}

CLIENTS: dict[str, ClientSpec] = {
    spec.client_id: spec
    for spec in (
        ClientSpec("full", CLIENT_FULL, GCID_MAIN, api=True, stream=True),
        ClientSpec("api_only", CLIENT_API_ONLY, GCID_MAIN, api=True, stream=False),
        ClientSpec("stream_only", CLIENT_STREAM_ONLY, GCID_MAIN, api=False, stream=True),
        ClientSpec("none", CLIENT_NONE, GCID_MAIN, api=False, stream=False),
        ClientSpec("other", CLIENT_OTHER, GCID_OTHER, api=True, stream=True),
    )
}

_MUNICH_HOME = (48.177112, 11.556212)
_MUNICH_OFFICE = (48.134722, 11.579537)
_AUGSBURG_HOME = (48.370545, 10.897790)

VEHICLES: dict[str, Vehicle] = {
    VIN_BEV: Vehicle(
        vin=VIN_BEV,
        gcid=GCID_MAIN,
        mapping_type="PRIMARY",
        mapped_since="2023-02-14T08:21:37Z",
        kind="BEV",
        basic_data={
            "bodyType": "Gran Coupe",
            "brand": "BMW",
            "chargingModes": ["AC_TYPE2PLUG", "DC"],
            "colourCodeRaw": "P0C4W",
            "colourDescription": "BRIGHTON GRAU METALLIC",
            "constructionDate": "2022-10-17T00:00:00.000+0000",
            "countryCode": "DE",
            "driveTrain": "BEV",
            "engine": "HA0001N0",
            "fullSAList": "01CE,01MA,0230,02VB,0302,0322,03MB,0402,0430,04FL,0548,05AC,0654,06AK,06C4",
            "hasNavi": True,
            "hasSunRoof": False,
            "headUnit": "HU_MGU",
            "isTelematicsCapable": True,
            "modelKey": "31AW",
            "modelName": "i4 eDrive40",
            "modelRange": "i4",
            "numberOfDoors": 5,
            "propulsionType": "BEV",
            "puStep": "0722",
            "reessNominalCapacityGross": 210.6,
            "series": "4",
            "seriesDevt": "G26",
            "simStatus": "ACTIVE",
            "steering": "LL",
        },
        home=_MUNICH_HOME,
        body_colour=(112, 118, 126),
        has_image=True,
        has_lbcs=True,
        has_tyre_data=True,
        history_sessions=24,
    ),
    VIN_PHEV: Vehicle(
        vin=VIN_PHEV,
        gcid=GCID_MAIN,
        mapping_type="PRIMARY",
        mapped_since="2024-03-11T09:15:00Z",
        kind="PHEV",
        basic_data={
            "bodyType": "Sports Activity Vehicle",
            "brand": "BMW",
            "chargingModes": ["AC_TYPE2PLUG"],
            "colourCodeRaw": "475",
            "colourDescription": "BLACK SAPPHIRE METALLIC",
            "constructionDate": "2023-06-05T00:00:00.000+0000",
            "countryCode": "DE",
            "driveTrain": "PHEV",
            "engine": "B58B30O2",
            "fullSAList": "0248,02TF,0322,03MB,0402,0407,0430,04FL,04GQ,0552,05AS,06AK,06C4,06U3",
            "hasNavi": True,
            "hasSunRoof": True,
            "headUnit": "HU_MGU",
            "isTelematicsCapable": True,
            "modelKey": "21EV",
            "modelName": "X5 xDrive50e",
            "modelRange": "X5",
            "numberOfDoors": 5,
            "propulsionType": "PHEV",
            "puStep": "0323",
            "series": "X",
            "seriesDevt": "G05",
            "simStatus": "ACTIVE",
            "steering": "LL",
        },
        home=_MUNICH_OFFICE,
        body_colour=(28, 30, 38),
        has_image=True,
        has_lbcs=False,
        has_tyre_data=False,
        history_sessions=21,
    ),
    VIN_SECONDARY: Vehicle(
        vin=VIN_SECONDARY,
        gcid=GCID_MAIN,
        mapping_type="SECONDARY",
        mapped_since="2025-05-20T17:02:11Z",
        kind="BEV",
        basic_data={
            "bodyType": "Hatchback",
            "brand": "MINI",
            "chargingModes": ["AC_TYPE2PLUG", "DC"],
            "colourCodeRaw": "C5A",
            "colourDescription": "OCEAN WAVE GREEN",
            "constructionDate": "2024-09-02T00:00:00.000+0000",
            "countryCode": "DE",
            "driveTrain": "BEV",
            "engine": "HA0002N0",
            "fullSAList": "0230,02VB,0302,0322,0430,0548,06AK",
            "hasNavi": True,
            "hasSunRoof": False,
            "headUnit": "HU_MGU",
            "isTelematicsCapable": True,
            "modelKey": "21GA",
            "modelName": "Cooper SE",
            "modelRange": "MINI Cooper",
            "numberOfDoors": 3,
            "propulsionType": "BEV",
            "puStep": "0324",
            "series": "MINI",
            "seriesDevt": "J01",
            "simStatus": "ACTIVE",
            "steering": "LL",
        },
        home=_MUNICH_HOME,
        body_colour=(60, 110, 96),
        has_image=False,
        has_lbcs=False,
        has_tyre_data=False,
        history_sessions=20,
    ),
    VIN_OTHER: Vehicle(
        vin=VIN_OTHER,
        gcid=GCID_OTHER,
        mapping_type="PRIMARY",
        mapped_since="2024-11-29T12:44:05Z",
        kind="BEV",
        basic_data={
            "bodyType": "Sports Activity Vehicle",
            "brand": "BMW",
            "chargingModes": ["AC_TYPE2PLUG", "DC"],
            "colourCodeRaw": "300",
            "colourDescription": "ALPINWEISS  III",
            "constructionDate": "2024-01-22T00:00:00.000+0000",
            "countryCode": "DE",
            "driveTrain": "BEV",
            "engine": "HA0003N0",
            "fullSAList": "0230,02VB,0302,0322,0430,0548,05AC,06AK,06C4",
            "hasNavi": True,
            "hasSunRoof": False,
            "headUnit": "HU_MGU",
            "isTelematicsCapable": True,
            "modelKey": "31EF",
            "modelName": "iX1 xDrive30",
            "modelRange": "iX1",
            "numberOfDoors": 5,
            "propulsionType": "BEV",
            "puStep": "0723",
            "series": "X",
            "seriesDevt": "U11",
            "simStatus": "ACTIVE",
            "steering": "LL",
        },
        home=_AUGSBURG_HOME,
        body_colour=(236, 236, 232),
        has_image=False,
        has_lbcs=True,
        has_tyre_data=True,
        history_sessions=20,
    ),
}


def accounts_summary() -> dict[str, dict[str, Any]]:
    """The ready line's `accounts` object: name -> gcid and mapped vehicles."""
    return {
        account.name: {
            "gcid": account.gcid,
            "vehicles": {
                vehicle.vin: vehicle.mapping_type
                for vehicle in VEHICLES.values()
                if vehicle.gcid == account.gcid
            },
        }
        for account in ACCOUNTS.values()
    }


def clients_summary() -> dict[str, str]:
    """The ready line's `clients` object: short name -> client id."""
    return {spec.name: spec.client_id for spec in CLIENTS.values()}


def gcid_of_vin(vin: str) -> str | None:
    """The account a VIN is mapped to, or None for a VIN the simulator does not know."""
    vehicle = VEHICLES.get(vin)
    return vehicle.gcid if vehicle else None


# --- telematics ------------------------------------------------------------------------

_CBS = json.dumps(
    [
        {
            "date": "2027-07",
            "description": "Next service due when the stated distance has been covered or by the specified date.",
            "id": 1,
            "messageType": "CBS",
            "status": "OK",
            "title": "Vehicle check",
            "text": "-",
            "unitOfLengthRemaining": "31000",
        },
        {
            "date": "2027-02",
            "description": "Next change due at the latest by the stated date.",
            "id": 2,
            "messageType": "CBS",
            "status": "OK",
            "title": "Brake fluid",
            "text": "-",
            "unitOfLengthRemaining": "",
        },
    ],
    separators=(",", ":"),
)

# descriptor -> (value, unit, age in seconds before the reference moment)
_COMMON: dict[str, tuple[Any, str | None, int]] = {
    "vehicle.vehicle.travelledDistance": (18234, "km", 3_900),
    "vehicle.cabin.infotainment.navigation.currentLocation.heading": (271, "degrees", 3_900),
    "vehicle.cabin.infotainment.navigation.currentLocation.altitude": (521, None, 3_900),
    "vehicle.cabin.door.lock.status": ("SECURED", None, 3_840),
    "vehicle.cabin.door.status": ("ASN_secured", None, 3_840),
    "vehicle.cabin.door.row1.driver.isOpen": ("CLOSED", None, 3_850),
    "vehicle.cabin.door.row1.passenger.isOpen": ("CLOSED", None, 3_850),
    "vehicle.cabin.door.row2.driver.isOpen": ("CLOSED", None, 3_850),
    "vehicle.cabin.door.row2.passenger.isOpen": ("CLOSED", None, 3_850),
    "vehicle.cabin.window.row1.driver.status": ("CLOSED", None, 3_850),
    "vehicle.cabin.window.row1.passenger.status": ("CLOSED", None, 3_850),
    "vehicle.cabin.window.row2.driver.status": ("CLOSED", None, 3_850),
    "vehicle.cabin.window.row2.passenger.status": ("CLOSED", None, 3_850),
    "vehicle.cabin.sunroof.status": ("CLOSED", None, 3_850),
    "vehicle.body.trunk.isOpen": ("CLOSED", None, 3_850),
    "vehicle.body.hood.isOpen": ("CLOSED", None, 3_850),
    "vehicle.body.lights.isRunningOn": ("ASN_isFalse", None, 3_860),
    "vehicle.isMoving": ("ASN_isFalse", None, 3_900),
    "vehicle.chassis.axle.row1.wheel.left.tire.pressure": (250, "kPa", 3_910),
    "vehicle.chassis.axle.row1.wheel.right.tire.pressure": (247, "kPa", 3_910),
    "vehicle.chassis.axle.row2.wheel.left.tire.pressure": (270, "kPa", 3_910),
    "vehicle.chassis.axle.row2.wheel.right.tire.pressure": (272, "kPa", 3_910),
    "vehicle.chassis.axle.row1.wheel.left.tire.pressureTarget": (250, "kPa", 86_400),
    "vehicle.chassis.axle.row1.wheel.right.tire.pressureTarget": (250, "kPa", 86_400),
    "vehicle.chassis.axle.row2.wheel.left.tire.pressureTarget": (270, "kPa", 86_400),
    "vehicle.chassis.axle.row2.wheel.right.tire.pressureTarget": (270, "kPa", 86_400),
    "vehicle.chassis.axle.row1.wheel.left.tire.temperature": (17.5, "Celsius", 3_910),
    "vehicle.chassis.axle.row1.wheel.right.tire.temperature": (17.0, "Celsius", 3_910),
    "vehicle.chassis.axle.row2.wheel.left.tire.temperature": (18.5, "Celsius", 3_910),
    "vehicle.chassis.axle.row2.wheel.right.tire.temperature": (18.0, "Celsius", 3_910),
    "vehicle.electricalSystem.battery.voltage": (12.62, "V", 3_600),
    "vehicle.vehicle.preConditioning.activity": ("standby", None, 7_200),
    "vehicle.cabin.hvac.preconditioning.status.comfortState": ("NOT_ACTIVE", None, 7_200),
    "vehicle.status.serviceTime.yellow": (4, "weeks", 43_200),
    "vehicle.status.serviceTime.hUandAuServiceYellow": (1, "months", 43_200),
    "vehicle.status.serviceTime.inspectionDateLegal": ("17.01.2027 00:00:00 UTC", None, 43_200),
    "vehicle.status.conditionBasedServices": (_CBS, None, 43_200),
    "vehicle.status.checkControlMessages": ("[]", None, 43_200),
    "vehicle.status.conditionBasedServicesCount": (2, None, 43_200),
    # BMW answers such keys with a unit but neither value nor timestamp (spec §2.2).
    "vehicle.electricalSystem.battery.stateOfCharge": (None, "%", 0),
}

_BEV_PARKED: dict[str, tuple[Any, str | None, int]] = {
    "vehicle.drivetrain.batteryManagement.header": (78.0, "percent", 3_900),
    "vehicle.powertrain.electric.battery.stateOfCharge.displayed": (78.0, "percent", 3_900),
    "vehicle.drivetrain.electricEngine.charging.level": (78.0, "%", 3_900),
    "vehicle.powertrain.electric.battery.stateOfCharge.target": (80, "%", 86_400),
    "vehicle.drivetrain.electricEngine.charging.status": ("NOCHARGING", None, 3_900),
    "vehicle.drivetrain.electricEngine.charging.hvStatus": ("NOT_CHARGING", None, 3_900),
    "vehicle.powertrain.electric.battery.charging.power": (0, "W", 3_900),
    "vehicle.drivetrain.electricEngine.charging.acVoltage": (0.0, "V", 3_900),
    "vehicle.drivetrain.electricEngine.charging.acAmpere": (0, "A", 3_900),
    "vehicle.drivetrain.electricEngine.charging.phaseNumber": ("1-PHASES", None, 3_900),
    "vehicle.drivetrain.electricEngine.charging.timeRemaining": (0, "min", 3_900),
    "vehicle.drivetrain.electricEngine.charging.timeToFullyCharged": (0, "min", 3_900),
    "vehicle.drivetrain.electricEngine.charging.method": ("NOCHARGING", None, 3_900),
    "vehicle.body.chargingPort.status": ("DISCONNECTED", None, 3_900),
    "vehicle.body.chargingPort.combinedStatus": ("DISCONNECTED", None, 3_900),
    "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged": (False, None, 3_900),
    "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange": (392.0, "km", 3_900),
    "vehicle.drivetrain.lastRemainingRange": (392.0, "km", 3_900),
    "vehicle.drivetrain.batteryManagement.maxEnergy": (80.7, "kWh", 86_400),
    "vehicle.drivetrain.batteryManagement.batterySizeMax": (83.9, "kWh", 86_400),
    "vehicle.powertrain.electric.battery.preconditioning.state": ("OFF", None, 7_200),
}

_PHEV_CHARGING: dict[str, tuple[Any, str | None, int]] = {
    "vehicle.drivetrain.batteryManagement.header": (45.0, "percent", 240),
    "vehicle.drivetrain.electricEngine.charging.level": (45.0, "%", 240),
    "vehicle.powertrain.electric.battery.stateOfCharge.target": (100, "%", 86_400),
    "vehicle.drivetrain.electricEngine.charging.status": ("CHARGINGACTIVE", None, 1_800),
    "vehicle.drivetrain.electricEngine.charging.hvStatus": ("CHARGING", None, 1_800),
    "vehicle.powertrain.electric.battery.charging.power": (3_680, "W", 240),
    "vehicle.drivetrain.electricEngine.charging.acVoltage": (230.0, "V", 240),
    "vehicle.drivetrain.electricEngine.charging.acAmpere": (16, "A", 240),
    "vehicle.drivetrain.electricEngine.charging.phaseNumber": ("1-PHASES", None, 1_800),
    "vehicle.drivetrain.electricEngine.charging.timeRemaining": (95, "min", 240),
    "vehicle.drivetrain.electricEngine.charging.timeToFullyCharged": (95, "min", 240),
    "vehicle.drivetrain.electricEngine.charging.method": ("AC_TYPE2PLUG", None, 1_800),
    "vehicle.body.chargingPort.status": ("CONNECTED", None, 1_810),
    "vehicle.body.chargingPort.combinedStatus": ("CONNECTED", None, 1_810),
    "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged": (True, None, 1_810),
    "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange": (38.0, "km", 240),
    "vehicle.drivetrain.lastRemainingRange": (512.0, "km", 1_900),
    "vehicle.drivetrain.batteryManagement.maxEnergy": (25.7, "kWh", 86_400),
    "vehicle.drivetrain.batteryManagement.batterySizeMax": (0, "kWh", 86_400),
    "vehicle.drivetrain.fuelSystem.level": (62, "%", 1_900),
    "vehicle.drivetrain.fuelSystem.remainingFuel": (42.5, "l", 1_900),
    "vehicle.vehicle.travelledDistance": (31_877, "km", 1_900),
}

_PER_VIN: dict[str, dict[str, tuple[Any, str | None, int]]] = {
    VIN_BEV: _BEV_PARKED,
    VIN_PHEV: _PHEV_CHARGING,
    VIN_SECONDARY: {
        **_BEV_PARKED,
        "vehicle.drivetrain.batteryManagement.header": (64.0, "percent", 5_000),
        "vehicle.powertrain.electric.battery.stateOfCharge.displayed": (64.0, "percent", 5_000),
        "vehicle.drivetrain.batteryManagement.maxEnergy": (49.2, "kWh", 86_400),
        "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange": (231.0, "km", 5_000),
        "vehicle.drivetrain.lastRemainingRange": (231.0, "km", 5_000),
        "vehicle.vehicle.travelledDistance": (6_402, "km", 5_000),
    },
    VIN_OTHER: {
        **_BEV_PARKED,
        "vehicle.drivetrain.batteryManagement.header": (91.0, "percent", 2_000),
        "vehicle.powertrain.electric.battery.stateOfCharge.displayed": (91.0, "percent", 2_000),
        "vehicle.drivetrain.batteryManagement.maxEnergy": (64.7, "kWh", 86_400),
        "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange": (371.0, "km", 2_000),
        "vehicle.drivetrain.lastRemainingRange": (371.0, "km", 2_000),
        "vehicle.vehicle.travelledDistance": (12_050, "km", 2_000),
    },
}


def initial_telematics(vin: str, now: datetime | None = None) -> dict[str, TelematicPoint]:
    """The car's state at start-up: value, unit and measurement time per descriptor.

    Measurement times lie before `now` (default: wall time) with millisecond jitter, as BMW's
    snapshots do. A point whose value is None has no timestamp either.
    """
    vehicle = VEHICLES[vin]
    reference = now or datetime.now(UTC)
    jitter = random.Random(vin)
    points: dict[str, TelematicPoint] = {}
    for descriptor, (value, unit, age) in {**_COMMON, **_PER_VIN[vin]}.items():
        if value is None:
            points[descriptor] = TelematicPoint(None, unit, None)
            continue
        moment = reference - timedelta(seconds=age, milliseconds=jitter.randrange(1000))
        points[descriptor] = TelematicPoint(value, unit, moment)
    lat, lon = vehicle.home
    located = reference - timedelta(seconds=3_900)
    points["vehicle.cabin.infotainment.navigation.currentLocation.latitude"] = TelematicPoint(
        lat, "degrees", located
    )
    points["vehicle.cabin.infotainment.navigation.currentLocation.longitude"] = TelematicPoint(
        lon, "degrees", located + timedelta(seconds=2)
    )
    return points


# --- charging history -------------------------------------------------------------------


def _float32(value: float) -> float:
    """Round-trip through float32, giving BMW's full-precision noise (22.979991912841797)."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def charging_sessions(vin: str, now: datetime) -> list[dict[str, Any]]:
    """ChargingSessionDto list, newest first, spread over the 60 days before `now`."""
    vehicle = VEHICLES[vin]
    rng = random.Random(f"history-{vin}")
    capacity = 80.7 if vehicle.kind == "BEV" else 25.7
    end_of_last = now - timedelta(hours=9)
    spacing = timedelta(days=58) / vehicle.history_sessions
    mileage = int(_PER_VIN[vin].get("vehicle.vehicle.travelledDistance", (18234, "", 0))[0])
    sessions: list[dict[str, Any]] = []
    for index in range(vehicle.history_sessions):
        end = end_of_last - spacing * index - timedelta(minutes=rng.randrange(0, 240))
        public = index % 5 == 3
        power_kw = rng.choice((50.0, 75.0, 150.0)) if public else rng.choice((3.7, 7.4, 11.0))
        start_soc = rng.randrange(12, 55)
        end_soc = min(100, start_soc + rng.randrange(20, 60))
        energy = capacity * (end_soc - start_soc) / 100 * rng.uniform(1.04, 1.12)
        duration = int(energy / power_kw * 3600)
        start = end - timedelta(seconds=duration)
        lat, lon = (48.351, 11.7861) if public else vehicle.home
        mileage -= rng.randrange(40, 160)
        session: dict[str, Any] = {
            "startTime": int(start.timestamp()),
            "endTime": int(end.timestamp()),
            "timeZone": vehicle.time_zone,
            "displayedStartSoc": start_soc,
            "displayedSoc": end_soc,
            "totalChargingDurationSec": duration,
            "energyConsumedFromPowerGridKwh": _float32(energy),
            "isPreconditioningActivated": index % 4 == 1,
            "mileage": mileage,
            "mileageUnits": "MileageUnits.KM",
            "chargingLocation": {
                "municipality": "Freising" if public else "München",
                "formattedAddress": "Nordallee 25, 85356 Freising"
                if public
                else "Am Olympiapark 1, 80809 München",
                "streetAddress": "Nordallee 25" if public else "Am Olympiapark 1",
                "mapMatchedLatitude": lat,
                "mapMatchedLongitude": lon,
            },
            "chargingBlocks": [
                {
                    "startTime": int(start.timestamp()),
                    "endTime": int(end.timestamp()),
                    "averagePowerGridKw": _float32(power_kw * rng.uniform(0.9, 0.98)),
                }
            ],
            "businessErrors": [],
        }
        if public:
            session["publicChargingPoint"] = {
                "potentialChargingPointMatches": [
                    {
                        "postalCode": "85356",
                        "streetAddress": "Nordallee 25",
                        "providerName": "HPC/DC IONITY GmbH",
                        "city": "Freising",
                    }
                ]
            }
        if index == 6:
            # Observed: sessions with 0 kWh exist (plugged in, nothing charged).
            session["energyConsumedFromPowerGridKwh"] = 0.0
            session["displayedSoc"] = start_soc
        if index == 11:
            # Observed: sessions without any energy figure exist.
            del session["energyConsumedFromPowerGridKwh"]
        sessions.append(session)
    return sessions


# --- tyre diagnosis ---------------------------------------------------------------------

_WHEEL_LABELS = {
    "frontLeft": "Front left tyre",
    "frontRight": "Front right tyre",
    "rearLeft": "Rear left tyre",
    "rearRight": "Rear right tyre",
}


def _empty_wheel(label: str) -> dict[str, Any]:
    """A wheel as BMW sends it when it has no data: labels, zeros and false only."""
    return {
        "label": label,
        "dimension": {
            "label": "Dimension",
            "aspectRatio": 0,
            "loadIndex": 0,
            "rimDiameter": 0,
            "sectionWidth": 0,
        },
        "mountingDate": {"label": "Mounting date"},
        "optimizedForOem": {"label": "Optimised for OEM"},
        "partNumber": {"label": "Part number"},
        "qualityStatus": {"label": "Tyre pressure status"},
        "runFlat": {"label": "Run-flat tyres", "runFlat": False},
        "season": {"label": "Season"},
        "tread": {"label": "Tread"},
        "tyreDefect": {"label": "Tyre defect"},
        "tyreProductionDate": {"label": "Production date"},
        "tyreWear": {"dueMileage": 0, "label": "Service due in"},
    }


def _wheel(label: str, *, front: bool, due_km: int, wear_colour: str) -> dict[str, Any]:
    """A wheel with real data (documented TyreDataDto shape)."""
    width, ratio = (245, 45) if front else (255, 40)
    dimension = f"{width}/{ratio} R19 98Y"
    return {
        "label": label,
        "dimension": {
            "label": "Dimension",
            "aspectRatio": ratio,
            "constructionType": "R",
            "loadIndex": 98,
            "rimDiameter": 19,
            "sectionWidth": width,
            "speedRating": "Y",
            "value": dimension,
        },
        "mountingDate": {
            "label": "Mounting date",
            "mountingDate": "2024-04-06",
            "value": "04/2024",
        },
        "optimizedForOem": {"label": "Optimised for OEM", "optimizedForOem": True, "value": "Yes"},
        "partNumber": {
            "label": "Part number",
            "partNumber": "6891543" if front else "6891544",
            "value": "6891543" if front else "6891544",
        },
        "qualityStatus": {"label": "Tyre pressure status", "qualityStatus": "OK", "value": "OK"},
        "runFlat": {"label": "Run-flat tyres", "runFlat": False, "value": "No"},
        "season": {"label": "Season", "season": "SUMMER", "value": "Summer tyre"},
        "tread": {
            "carcass": "XL",
            "label": "Tread",
            "manufacturer": "Pirelli",
            "treadDesign": "P Zero PZ4",
            "value": "Pirelli P Zero PZ4",
        },
        "tyreDefect": {
            "label": "Tyre defect",
            "value": "No defect",
            "status": "OK",
            "statusColor": "GREEN",
        },
        "tyreProductionDate": {
            "label": "Production date",
            "statusColor": "GREEN",
            "value": "11/2023",
        },
        "tyreWear": {
            "label": "Service due in",
            "value": f"Service in {due_km:,} km".replace(",", "."),
            "status": "OK" if wear_colour == "GREEN" else "WARNING",
            "statusColor": wear_colour,
            "dueMileage": due_km,
            "unit": "KILOMETER",
        },
    }


def tyre_diagnosis(vin: str) -> dict[str, Any]:
    """SmartMaintenanceTyreDiagnosis: real values, or the observed all-labels "no data" shape."""
    vehicle = VEHICLES[vin]
    if vehicle.has_tyre_data:
        mounted: dict[str, Any] = {
            "label": "Mounted",
            "aggregatedQualityStatus": {
                "label": "Data source",
                "qualityStatus": "OK",
                "value": "Vehicle",
            },
            "frontLeft": _wheel(
                _WHEEL_LABELS["frontLeft"], front=True, due_km=22_300, wear_colour="GREEN"
            ),
            "frontRight": _wheel(
                _WHEEL_LABELS["frontRight"], front=True, due_km=21_900, wear_colour="GREEN"
            ),
            "rearLeft": _wheel(
                _WHEEL_LABELS["rearLeft"], front=False, due_km=8_400, wear_colour="YELLOW"
            ),
            "rearRight": _wheel(
                _WHEEL_LABELS["rearRight"], front=False, due_km=8_100, wear_colour="YELLOW"
            ),
        }
    else:
        mounted = {
            "label": "Mounted",
            "aggregatedQualityStatus": {"label": "Data source"},
            **{key: _empty_wheel(label) for key, label in _WHEEL_LABELS.items()},
        }
    unmounted = {
        "label": "Unmounted",
        "aggregatedQualityStatus": {"label": "Data source"},
        **{key: _empty_wheel(label) for key, label in _WHEEL_LABELS.items()},
    }
    return {"passengerCar": {"mountedTyres": mounted, "unmountedTyres": unmounted}, "errors": []}


# --- location-based charging settings ---------------------------------------------------

_LBCS_PLACES = (
    ("Home", 0.0, 0.0, "IMMEDIATE_CHARGING", 16.0),
    ("Office", -0.04239, 0.02333, "DELAYED_CHARGING", 32.0),
    ("Gym", 0.01071, -0.03112, "IMMEDIATE_CHARGING", 16.0),
    ("Parents", 0.20412, -0.66017, "IMMEDIATE_CHARGING", 10.0),
    ("Supermarket", -0.00912, 0.00845, "IMMEDIATE_CHARGING", 16.0),
    ("Airport", 0.17388, 0.22988, "IMMEDIATE_CHARGING", 32.0),
    ("Holiday flat", -0.72311, 0.40561, "DELAYED_CHARGING", 13.0),
    ("Friends", 0.03014, 0.07702, "IMMEDIATE_CHARGING", 16.0),
    ("Garage", -0.01533, -0.01209, "IMMEDIATE_CHARGING", 16.0),
    ("Ski hut", -0.69071, 0.18862, "DELAYED_CHARGING", 10.0),
    ("Lake house", -0.28722, 0.01788, "DELAYED_CHARGING", 16.0),
    ("Client site", 0.13209, -0.20012, "IMMEDIATE_CHARGING", 32.0),
)


def charging_settings(vin: str, now: datetime) -> list[dict[str, Any]]:
    """Location-based charging settings (documented LBCS shape); empty when the car has none."""
    vehicle = VEHICLES[vin]
    if not vehicle.has_lbcs:
        return []
    rng = random.Random(f"lbcs-{vin}")
    entries: list[dict[str, Any]] = []
    home_lat, home_lon = vehicle.home
    places = _LBCS_PLACES if vin == VIN_BEV else _LBCS_PLACES[:2]
    for index, (_name, d_lat, d_lon, mode, limit) in enumerate(places):
        last_visit = now - timedelta(days=rng.randrange(0, 40), minutes=rng.randrange(0, 1440))
        delayed = mode == "DELAYED_CHARGING"
        entries.append(
            {
                "id": f"{vin[-4:]}-lbcs-{index + 1:02d}",
                "lastUpdated": (last_visit - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "clusterLocationId": f"cl-{rng.randrange(10**8, 10**9)}",
                "latitude": round(home_lat + d_lat, 6),
                "longitude": round(home_lon + d_lon, 6),
                "lastVisit": last_visit.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "visits": rng.randrange(1, 120),
                "chargingMode": mode,
                "optimizedChargingPreference": "CHARGING_WINDOW" if delayed else "NO_PREFERENCE",
                "startChargingTimePeriodHour": 22 if delayed else 0,
                "startChargingTimePeriodMinute": 30 if delayed else 0,
                "stopChargingTimePeriodHour": 6 if delayed else 0,
                "stopChargingTimePeriodMinute": 0,
                "vehicleIdWithGcid": f"{vin}_{vehicle.gcid}",
                "chargingTimeWindows": [
                    {
                        "startChargingTimePeriodHour": 22,
                        "startChargingTimePeriodMinute": 30,
                        "stopChargingTimePeriodHour": 6,
                        "stopChargingTimePeriodMinute": 0,
                    }
                ]
                if delayed
                else [],
                "acCurrentLimitFlag": limit < 32.0,
                "acCurrentLimit": limit,
                "acousticLimit": "UNLIMITED",
                "flapLock": "AUTOMATIC",
                "chargingPlug": "TYPE_2",
            }
        )
    return entries


# --- the Telematics Data Catalogue ------------------------------------------------------

# Keys served by their own endpoint: containers may hold them, telematicData leaves them out.
DEDICATED_ENDPOINT_KEYS = frozenset(
    {
        "vehicle.chassis.axle.wheel.tire.diagnosis",
        "vehicle.look.image",
        "vehicle.powertrain.electric.battery.charging.history.sessionsList",
        "vehicle.powertrain.electric.battery.charging.settingsList",
        "vehicle.vehicleIdentification.basicVehicleData",
    }
)


def catalogue() -> dict[str, str | None]:
    """Every descriptor BMW accepts in a container, with the unit REST fills in for it.

    `vehicle.learningNavigation` is absent on purpose: BMW removed it in Dec 2025, so a
    container asking for it is refused with CU-402.
    """
    result: dict[str, str | None] = {}
    for line in _CATALOGUE.split():
        descriptor, _, unit = line.partition("|")
        result[descriptor] = unit or None
    return result


# descriptor|unit as REST reports it when the car has no value (from cardata/descriptors.tsv)
_CATALOGUE = """
vehicle.body.chargingPort.combinedStatus|
vehicle.body.chargingPort.dcStatus|
vehicle.body.chargingPort.isHospitalityActive|
vehicle.body.chargingPort.isoSessionId|
vehicle.body.chargingPort.lockedStatus|
vehicle.body.chargingPort.plugEventId|
vehicle.body.chargingPort.status|
vehicle.body.chargingPort.statusClearText|
vehicle.body.flap.isLocked|
vehicle.body.flap.isPermanentlyUnlocked|
vehicle.body.hood.isOpen|
vehicle.body.lights.isRunningOn|
vehicle.body.trunk.door.isOpen|
vehicle.body.trunk.isLocked|
vehicle.body.trunk.isOpen|
vehicle.body.trunk.left.door.isOpen|
vehicle.body.trunk.lower.door.isOpen|
vehicle.body.trunk.right.door.isOpen|
vehicle.body.trunk.upper.door.isOpen|
vehicle.body.trunk.window.isOpen|
vehicle.cabin.climate.timers.overwriteTimer.action|
vehicle.cabin.climate.timers.overwriteTimer.hour|h
vehicle.cabin.climate.timers.overwriteTimer.minute|min
vehicle.cabin.climate.timers.weekdaysTimer1.action|
vehicle.cabin.climate.timers.weekdaysTimer1.hour|h
vehicle.cabin.climate.timers.weekdaysTimer1.minute|min
vehicle.cabin.climate.timers.weekdaysTimer2.action|
vehicle.cabin.climate.timers.weekdaysTimer2.hour|h
vehicle.cabin.climate.timers.weekdaysTimer2.minute|min
vehicle.cabin.convertible.roofRetractableStatus|
vehicle.cabin.convertible.roofStatus|
vehicle.cabin.door.lock.status|
vehicle.cabin.door.row1.driver.isOpen|
vehicle.cabin.door.row1.driver.position|percent
vehicle.cabin.door.row1.passenger.isOpen|
vehicle.cabin.door.row1.passenger.position|percent
vehicle.cabin.door.row2.driver.isOpen|
vehicle.cabin.door.row2.driver.position|percent
vehicle.cabin.door.row2.passenger.isOpen|
vehicle.cabin.door.row2.passenger.position|percent
vehicle.cabin.door.status|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row1.driverSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row1.driverSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row1.passengerSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row1.passengerSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row2.driverSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row2.driverSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row2.passengerSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row2.passengerSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row3.driverSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row3.driverSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row3.passengerSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.seat.row3.passengerSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.steeringWheel.heating|
vehicle.cabin.hvac.preconditioning.configuration.defaultSettings.targetTemperature|celsius
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row1.driverSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row1.driverSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row1.passengerSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row1.passengerSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row2.driverSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row2.driverSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row2.passengerSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row2.passengerSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row3.driverSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row3.driverSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row3.passengerSide.cooling|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.seat.row3.passengerSide.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.steeringWheel.heating|
vehicle.cabin.hvac.preconditioning.configuration.directStartSettings.targetTemperature|celsius
vehicle.cabin.hvac.preconditioning.configuration.isRemoteEngineStartDisclaimer|
vehicle.cabin.hvac.preconditioning.status.comfortState|
vehicle.cabin.hvac.preconditioning.status.isExteriorMirrorHeatingActive|
vehicle.cabin.hvac.preconditioning.status.progress|percent
vehicle.cabin.hvac.preconditioning.status.rearDefrostActive|
vehicle.cabin.hvac.preconditioning.status.remainingRunningTime|s
vehicle.cabin.hvac.statusAirPurification|
vehicle.cabin.infotainment.displayUnit.distance|
vehicle.cabin.infotainment.hmi.distanceUnit|
vehicle.cabin.infotainment.isMobilePhoneConnected|
vehicle.cabin.infotainment.navigation.currentLocation.altitude|
vehicle.cabin.infotainment.navigation.currentLocation.fixStatus|
vehicle.cabin.infotainment.navigation.currentLocation.heading|degrees
vehicle.cabin.infotainment.navigation.currentLocation.latitude|degrees
vehicle.cabin.infotainment.navigation.currentLocation.longitude|degrees
vehicle.cabin.infotainment.navigation.currentLocation.numberOfSatellites|
vehicle.cabin.infotainment.navigation.destinationSet.arrivalTime|
vehicle.cabin.infotainment.navigation.destinationSet.distance|
vehicle.cabin.infotainment.navigation.destinationSet.latitude|
vehicle.cabin.infotainment.navigation.destinationSet.longitude|
vehicle.cabin.infotainment.navigation.pointsOfInterests.available|
vehicle.cabin.infotainment.navigation.pointsOfInterests.max|
vehicle.cabin.infotainment.navigation.remainingRange|
vehicle.cabin.seat.row1.driverSide.cooling|percent
vehicle.cabin.seat.row1.driverSide.heating|percent
vehicle.cabin.seat.row1.passengerSide.cooling|percent
vehicle.cabin.seat.row1.passengerSide.heating|percent
vehicle.cabin.seat.row2.driverSide.cooling|percent
vehicle.cabin.seat.row2.driverSide.heating|percent
vehicle.cabin.seat.row2.passengerSide.cooling|percent
vehicle.cabin.seat.row2.passengerSide.heating|percent
vehicle.cabin.seat.row3.driverSide.cooling|percent
vehicle.cabin.seat.row3.driverSide.heating|percent
vehicle.cabin.seat.row3.passengerSide.cooling|percent
vehicle.cabin.seat.row3.passengerSide.heating|percent
vehicle.cabin.steeringWheel.heating|percent
vehicle.cabin.sunroof.overallStatus|
vehicle.cabin.sunroof.relativePosition|percent
vehicle.cabin.sunroof.shade.position|percent
vehicle.cabin.sunroof.status|
vehicle.cabin.sunroof.tiltStatus|
vehicle.cabin.window.row1.driver.status|
vehicle.cabin.window.row1.passenger.status|
vehicle.cabin.window.row2.driver.status|
vehicle.cabin.window.row2.passenger.status|
vehicle.channel.ista.obfcm.lastTransmissionStatus|
vehicle.channel.ngtp.timeVehicle|
vehicle.channel.teleservice.lastAutomaticServiceCallTime|
vehicle.channel.teleservice.lastBreakdownCallTime|
vehicle.channel.teleservice.lastManualCallTime|
vehicle.channel.teleservice.lastTeleserviceReportTime|
vehicle.channel.teleservice.status|
vehicle.chassis.axle.row1.wheel.left.tire.pressure|kPa
vehicle.chassis.axle.row1.wheel.left.tire.pressureTarget|kPa
vehicle.chassis.axle.row1.wheel.left.tire.temperature|Celsius
vehicle.chassis.axle.row1.wheel.right.tire.pressure|kPa
vehicle.chassis.axle.row1.wheel.right.tire.pressureTarget|kPa
vehicle.chassis.axle.row1.wheel.right.tire.temperature|Celsius
vehicle.chassis.axle.row2.wheel.left.tire.pressure|kPa
vehicle.chassis.axle.row2.wheel.left.tire.pressureTarget|kPa
vehicle.chassis.axle.row2.wheel.left.tire.temperature|Celsius
vehicle.chassis.axle.row2.wheel.right.tire.pressure|kPa
vehicle.chassis.axle.row2.wheel.right.tire.pressureTarget|kPa
vehicle.chassis.axle.row2.wheel.right.tire.temperature|Celsius
vehicle.chassis.axle.wheel.tire.diagnosis|
vehicle.drivetrain.avgElectricRangeConsumption|
vehicle.drivetrain.batteryManagement.batterySizeMax|kWh
vehicle.drivetrain.batteryManagement.header|percent
vehicle.drivetrain.batteryManagement.maxEnergy|kWh
vehicle.drivetrain.electricEngine.charging.acAmpere|A
vehicle.drivetrain.electricEngine.charging.acRestriction.factor|
vehicle.drivetrain.electricEngine.charging.acRestriction.isChosen|
vehicle.drivetrain.electricEngine.charging.acVoltage|V
vehicle.drivetrain.electricEngine.charging.authentication.status|
vehicle.drivetrain.electricEngine.charging.chargingMode|
vehicle.drivetrain.electricEngine.charging.connectionType|
vehicle.drivetrain.electricEngine.charging.connectorStatus|
vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOff.gridEnergy|kWh
vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOff.referenceDistance|km
vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOn.gridEnergy|kWh
vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.engineOn.referenceDistance|km
vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.overall.gridEnergy|kWh
vehicle.drivetrain.electricEngine.charging.consumptionOverLifeTime.overall.referenceDistance|km
vehicle.drivetrain.electricEngine.charging.hvStatus|
vehicle.drivetrain.electricEngine.charging.hvpmFinishReason|
vehicle.drivetrain.electricEngine.charging.isImmediateChargingSystemReason|
vehicle.drivetrain.electricEngine.charging.isSingleImmediateCharging|
vehicle.drivetrain.electricEngine.charging.lastChargingReason|
vehicle.drivetrain.electricEngine.charging.lastChargingResult|
vehicle.drivetrain.electricEngine.charging.level|%
vehicle.drivetrain.electricEngine.charging.method|
vehicle.drivetrain.electricEngine.charging.modeDeviation|
vehicle.drivetrain.electricEngine.charging.phaseNumber|
vehicle.drivetrain.electricEngine.charging.profile.climatizationActive|
vehicle.drivetrain.electricEngine.charging.profile.isRcpConfigComplete|
vehicle.drivetrain.electricEngine.charging.profile.mode|
vehicle.drivetrain.electricEngine.charging.profile.preference|
vehicle.drivetrain.electricEngine.charging.profile.settings.biDirectionalCharging.departureTimeRelevant|
vehicle.drivetrain.electricEngine.charging.profile.settings.biDirectionalCharging.dischargeAllowed|
vehicle.drivetrain.electricEngine.charging.profile.timerType|
vehicle.drivetrain.electricEngine.charging.reasonChargingEnd|
vehicle.drivetrain.electricEngine.charging.routeOptimizedChargingStatus|
vehicle.drivetrain.electricEngine.charging.smeEnergyDeltaFullyCharged|kWh
vehicle.drivetrain.electricEngine.charging.status|
vehicle.drivetrain.electricEngine.charging.timeRemaining|min
vehicle.drivetrain.electricEngine.charging.timeToFullyCharged|min
vehicle.drivetrain.electricEngine.charging.windowSelection|
vehicle.drivetrain.electricEngine.hvsMaxEnergyAbsolute|kWh
vehicle.drivetrain.electricEngine.kombiRemainingElectricRange|
vehicle.drivetrain.electricEngine.remainingElectricRange|km
vehicle.drivetrain.engine.isActive|
vehicle.drivetrain.engine.isIgnitionOn|
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeDepleting.fuel|l
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeDepleting.referenceDistanceEngineOff|km
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeDepleting.referenceDistanceEngineOn|km
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeIncreasing.fuel|l
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.inChargeIncreasing.referenceDistance|km
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.overall.fuel|l
vehicle.drivetrain.fuelSystem.consumptionOverLifeTime.overall.referenceDistance|km
vehicle.drivetrain.fuelSystem.level|%
vehicle.drivetrain.fuelSystem.remainingFuel|
vehicle.drivetrain.internalCombustionEngine.engine.ect|Celsius
vehicle.drivetrain.lastRemainingRange|km
vehicle.drivetrain.totalRemainingRange|km
vehicle.electricalSystem.battery.serviceDemand.recharge|
vehicle.electricalSystem.battery.serviceDemand.replace|
vehicle.electricalSystem.battery.stateOfCharge|%
vehicle.electricalSystem.battery.stateOfChargePlausibility|
vehicle.electricalSystem.battery.voltage|V
vehicle.electricalSystem.battery48V.stateOfHealth.displayed|percent
vehicle.electronicControlUnit.diagnosticTroubleCodes.raw|
vehicle.extras.optionalEquipment.code|
vehicle.isMoving|
vehicle.look.image|
vehicle.powertrain.electric.battery.biDirectionalCharging.availability|
vehicle.powertrain.electric.battery.charging.acLimit.isActive|
vehicle.powertrain.electric.battery.charging.acLimit.max|A
vehicle.powertrain.electric.battery.charging.acLimit.min|A
vehicle.powertrain.electric.battery.charging.acLimit.selected|A
vehicle.powertrain.electric.battery.charging.acousticLimit|
vehicle.powertrain.electric.battery.charging.authenticationStatus|
vehicle.powertrain.electric.battery.charging.batteryCarePersisted.isActive|
vehicle.powertrain.electric.battery.charging.batteryCarePersisted.isPreservingChargingMode|
vehicle.powertrain.electric.battery.charging.batteryCarePersisted.isReducedTargetSoe|
vehicle.powertrain.electric.battery.charging.cableCheckVoltage|V
vehicle.powertrain.electric.battery.charging.dcChargingModeActive|
vehicle.powertrain.electric.battery.charging.history.sessionsList|
vehicle.powertrain.electric.battery.charging.power|W
vehicle.powertrain.electric.battery.charging.preferenceSmartCharging|
vehicle.powertrain.electric.battery.charging.settingsList|
vehicle.powertrain.electric.battery.preconditioning.automaticMode.statusFeedback|
vehicle.powertrain.electric.battery.preconditioning.manualMode.statusFeedback|
vehicle.powertrain.electric.battery.preconditioning.state|
vehicle.powertrain.electric.battery.stateOfCharge.displayed|percent
vehicle.powertrain.electric.battery.stateOfCharge.target|%
vehicle.powertrain.electric.battery.stateOfCharge.targetMin|percent
vehicle.powertrain.electric.battery.stateOfCharge.targetSoCForProfessionalMode|percent
vehicle.powertrain.electric.battery.stateOfHealth.displayed|
vehicle.powertrain.electric.chargingDuration.displayControl|
vehicle.powertrain.electric.departureTime.displayControl|
vehicle.powertrain.electric.range.displayControl|
vehicle.powertrain.electric.range.target|km
vehicle.powertrain.tractionBattery.charging.port.anyPosition.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.anyPosition.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged|
vehicle.powertrain.tractionBattery.charging.port.frontLeft.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.frontLeft.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.frontLeft.isPlugged|
vehicle.powertrain.tractionBattery.charging.port.frontMiddle.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.frontMiddle.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.frontMiddle.isPlugged|
vehicle.powertrain.tractionBattery.charging.port.frontRight.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.frontRight.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.frontRight.isPlugged|
vehicle.powertrain.tractionBattery.charging.port.rearLeft.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.rearLeft.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.rearLeft.isPlugged|
vehicle.powertrain.tractionBattery.charging.port.rearMiddle.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.rearMiddle.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.rearMiddle.isPlugged|
vehicle.powertrain.tractionBattery.charging.port.rearRight.flap.isAutomaticOpenAndCloseActive|
vehicle.powertrain.tractionBattery.charging.port.rearRight.flap.isOpen|
vehicle.powertrain.tractionBattery.charging.port.rearRight.isPlugged|
vehicle.privacySettings.dataCollection.regulations.obfcm|
vehicle.serviceDemand.defect.id|
vehicle.sevice.preferredSevicePartner|
vehicle.sim.status|
vehicle.status.checkControlMessages|
vehicle.status.conditionBasedServices|
vehicle.status.conditionBasedServicesAverageDistancePerDay|km
vehicle.status.conditionBasedServicesCount|
vehicle.status.serviceDistance.next|
vehicle.status.serviceDistance.yellow|
vehicle.status.serviceTime.hUandAuServiceYellow|months
vehicle.status.serviceTime.inspectionDateLegal|
vehicle.status.serviceTime.yellow|weeks
vehicle.trip.segment.accumulated.acceleration.starsAverage|stars
vehicle.trip.segment.accumulated.chassis.brake.starsAverage|stars
vehicle.trip.segment.accumulated.drivetrain.electricEngine.energyConsumptionComfort|kWh
vehicle.trip.segment.accumulated.drivetrain.electricEngine.recuperationTotal|
vehicle.trip.segment.accumulated.drivetrain.transmission.setting.fractionDriveEcoPro|percent
vehicle.trip.segment.accumulated.drivetrain.transmission.setting.fractionDriveEcoProPlus|percent
vehicle.trip.segment.accumulated.drivetrain.transmission.setting.fractionDriveElectric|percent
vehicle.trip.segment.end.drivetrain.batteryManagement.hvSoc|percent
vehicle.trip.segment.end.time|
vehicle.trip.segment.end.travelledDistance|
vehicle.vehicle.antiTheftAlarmSystem.alarm.activationTime|
vehicle.vehicle.antiTheftAlarmSystem.alarm.armStatus|
vehicle.vehicle.antiTheftAlarmSystem.alarm.isOn|
vehicle.vehicle.averageWeeklyDistanceLongTerm|
vehicle.vehicle.averageWeeklyDistanceShortTerm|
vehicle.vehicle.avgAuxPower|kW
vehicle.vehicle.avgSpeed|km/h
vehicle.vehicle.deepSleepModeActive|
vehicle.vehicle.preConditioning.activity|
vehicle.vehicle.preConditioning.error|
vehicle.vehicle.preConditioning.isRemoteEngineRunning|
vehicle.vehicle.preConditioning.isRemoteEngineStartAllowed|
vehicle.vehicle.preConditioning.remainingTime|min
vehicle.vehicle.speedRange.lowerBound|km/h
vehicle.vehicle.speedRange.upperBound|km/h
vehicle.vehicle.timeSetting|
vehicle.vehicle.travelledDistance|km
vehicle.vehicleIdentification.basicVehicleData|
vehicle.vehicleIdentification.connectedDriveContractList|
"""
