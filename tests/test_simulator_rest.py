"""The simulator's CarData REST API: endpoints, BMW's error bodies, the daily budget, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import re
import struct
from typing import Any

import aiohttp
import pytest

from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

MS_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SOC = "vehicle.drivetrain.batteryManagement.header"
SOC_DISPLAYED = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
LOW_VOLTAGE_SOC = "vehicle.electricalSystem.battery.stateOfCharge"
IS_PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
CHARGING_STATUS = "vehicle.drivetrain.electricEngine.charging.status"
ODOMETER = "vehicle.vehicle.travelledDistance"
IMAGE_KEY = "vehicle.look.image"
CONTAINER_KEYS = [
    SOC,
    SOC_DISPLAYED,
    LOW_VOLTAGE_SOC,
    IS_PLUGGED,
    CHARGING_STATUS,
    ODOMETER,
    IMAGE_KEY,
]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Api:
    """A bare CarData REST client: bearer token and x-version, nothing else."""

    def __init__(
        self, session: aiohttp.ClientSession, sim: SimulatorHandle, token: str | None
    ) -> None:
        self.session = session
        self.sim = sim
        self.token = token

    def headers(self, *, version: bool = True) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if version:
            headers["x-version"] = "v1"
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        version: bool = True,
        client_timeout: float = 10,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.sim.api_url + path,
            params=params,
            json=json,
            headers=self.headers(version=version),
            timeout=aiohttp.ClientTimeout(total=client_timeout),
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            if response.content_type.startswith("text/"):
                return response.status, await response.text()
            return response.status, await response.read()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def create_container(self, descriptors: list[str] | None = None) -> tuple[int, Any]:
        return await self.call(
            "POST",
            "/customers/containers",
            json={
                "name": "Home Assistant",
                "purpose": "dashboard",
                "technicalDescriptors": descriptors or CONTAINER_KEYS,
            },
        )

    async def history(self, vin: str, start: str, end: str, **extra: str) -> tuple[int, Any]:
        return await self.get(
            f"/customers/vehicles/{vin}/chargingHistory", params={"from": start, "to": end, **extra}
        )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def api(sim: SimulatorHandle, session: aiohttp.ClientSession) -> Api:
    tokens = await sim.issue_tokens()
    return Api(session, sim, tokens["access_token"])


def assert_error(
    result: tuple[int, Any], status: int, error_id: str, message: str | None = None
) -> None:
    actual_status, body = result
    assert actual_status == status, body
    assert set(body) == {"exveErrorId", "exveErrorMsg", "exveErrorRef", "exveNote"}
    assert body["exveErrorId"] == error_id
    if message is not None:
        assert body["exveErrorMsg"] == message


async def seconds_to_midnight(sim: SimulatorHandle) -> float:
    now = await sim.now()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


async def used_calls(sim: SimulatorHandle, gcid: str = fleet.GCID_MAIN) -> int:
    used: int = (await sim.calls())[gcid]["used"]
    return used


# --- happy paths ---------------------------------------------------------------------------


async def test_vehicle_mappings_are_an_array(api: Api) -> None:
    status, mappings = await api.get("/customers/vehicles/mappings")

    assert status == 200
    assert {item["vin"]: item["mappingType"] for item in mappings} == {
        fleet.VIN_BEV: "PRIMARY",
        fleet.VIN_PHEV: "PRIMARY",
        fleet.VIN_SECONDARY: "SECONDARY",
    }
    assert all(set(item) == {"vin", "mappedSince", "mappingType"} for item in mappings)


@pytest.mark.parametrize(("vin", "drive_train"), [(fleet.VIN_BEV, "BEV"), (fleet.VIN_PHEV, "PHEV")])
async def test_basic_data_has_the_observed_shape(api: Api, vin: str, drive_train: str) -> None:
    status, data = await api.get(f"/customers/vehicles/{vin}/basicData")

    assert status == 200
    assert data["driveTrain"] == drive_train
    assert data["propulsionType"] == drive_train
    assert data["countryCode"] == "DE"
    assert "countryCodeISO" not in data
    assert "vin" not in data
    assert {"colourDescription", "seriesDevt", "modelName", "brand"} <= set(data)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00\.000\+0000", data["constructionDate"])


async def test_container_lifecycle(api: Api) -> None:
    status, created = await api.create_container()
    container_id = created["containerId"]
    listed = await api.get("/customers/containers")
    fetched = await api.get(f"/customers/containers/{container_id}")
    deleted = await api.call("DELETE", f"/customers/containers/{container_id}")
    deleted_again = await api.call("DELETE", f"/customers/containers/{container_id}")
    after = await api.get(f"/customers/containers/{container_id}")

    assert status == 201
    assert len(container_id) == 13
    assert created["state"] == "ACTIVE"
    assert MS_TIMESTAMP.fullmatch(created["created"])
    assert created["technicalDescriptors"] == CONTAINER_KEYS
    assert listed == (
        200,
        {
            "containers": [
                {
                    key: created[key]
                    for key in ("containerId", "name", "purpose", "state", "created")
                }
            ]
        },
    )
    assert fetched == (200, created)
    assert deleted == (204, b"")
    assert_error(deleted_again, 208, "CU-122")
    assert after[1]["state"] == "DELETED"


async def test_delete_accepts_a_request_without_x_version(api: Api) -> None:
    _, created = await api.create_container()

    status, _ = await api.call(
        "DELETE", f"/customers/containers/{created['containerId']}", version=False
    )

    assert status == 204


async def test_telematic_data_answers_every_key_as_strings(api: Api) -> None:
    _, container = await api.create_container()

    bev_status, bev = await api.get(
        f"/customers/vehicles/{fleet.VIN_BEV}/telematicData",
        params={"containerId": container["containerId"]},
    )
    _, phev = await api.get(
        f"/customers/vehicles/{fleet.VIN_PHEV}/telematicData",
        params={"containerId": container["containerId"]},
    )

    assert bev_status == 200
    data = bev["telematicData"]
    # Keys bound to a dedicated endpoint (the image) are left out; all others are present.
    assert set(data) == set(CONTAINER_KEYS) - {IMAGE_KEY}
    assert data[SOC]["value"] == "78"
    assert data[SOC]["unit"] == "percent"
    assert data[IS_PLUGGED]["value"] == "false"
    assert data[CHARGING_STATUS]["value"] == "NOCHARGING"
    assert data[ODOMETER] | {"timestamp": None} == {
        "value": "18234",
        "unit": "km",
        "timestamp": None,
    }
    for entry in data.values():
        assert entry["value"] is None or isinstance(entry["value"], str)
        assert entry["timestamp"] is None or MS_TIMESTAMP.fullmatch(entry["timestamp"])
    # No data: value and timestamp null, unit still filled.
    assert data[LOW_VOLTAGE_SOC] == {"value": None, "unit": "%", "timestamp": None}
    assert phev["telematicData"][SOC_DISPLAYED] == {
        "value": None,
        "unit": "percent",
        "timestamp": None,
    }
    assert phev["telematicData"][CHARGING_STATUS]["value"] == "CHARGINGACTIVE"


async def test_telematic_data_shows_the_newest_reported_values(
    api: Api, sim: SimulatorHandle
) -> None:
    _, container = await api.create_container()
    await sim.set_telematics(fleet.VIN_BEV, {SOC: 81.5, IS_PLUGGED: True})
    await sim.set_telematics(
        fleet.VIN_BEV,
        {
            SOC: {"value": 12, "timestamp": "2020-01-01T00:00:00Z"},
            ODOMETER: {"value": 20000, "unit": "miles"},
        },
    )

    _, body = await api.get(
        f"/customers/vehicles/{fleet.VIN_BEV}/telematicData",
        params={"containerId": container["containerId"]},
    )

    data = body["telematicData"]
    assert data[SOC]["value"] == "81.5"  # the older 12 % report does not win
    assert data[IS_PLUGGED]["value"] == "true"
    assert (data[ODOMETER]["value"], data[ODOMETER]["unit"]) == ("20000", "miles")


async def all_pages(api: Api, vin: str, start: str, end: str) -> tuple[list[dict[str, Any]], int]:
    """Every session in the range and the number of pages it took."""
    _, first = await api.history(vin, start, end)
    assert len(first["data"]) <= 10
    sessions = list(first["data"])
    token = first["next_token"]
    pages = 1
    while token:
        # Both spellings of the request parameter are accepted.
        name = "nextToken" if pages % 2 else "next_token"
        status, page = await api.history(vin, start, end, **{name: token})
        assert status == 200
        assert len(page["data"]) <= 10
        sessions += page["data"]
        token = page["next_token"]
        pages += 1
    return sessions, pages


async def test_charging_history_pages_of_ten(api: Api, sim: SimulatorHandle) -> None:
    now = await sim.now()
    split = now - timedelta(days=45)

    recent, recent_pages = await all_pages(api, fleet.VIN_BEV, iso(split), iso(now))
    older, _ = await all_pages(
        api, fleet.VIN_BEV, iso(now - timedelta(days=60)), iso(split - timedelta(seconds=1))
    )

    # The BEV has 24 sessions over the last 60 days, most of them in the last 45.
    assert len(recent) + len(older) == 24
    assert len(recent) > 10
    assert recent_pages == 2
    starts = [item["startTime"] for item in recent + older]
    assert starts == sorted(starts, reverse=True)
    assert all(isinstance(value, int) for value in starts)
    assert min(item["startTime"] for item in recent) >= split.timestamp()
    assert {
        "startTime",
        "endTime",
        "timeZone",
        "displayedStartSoc",
        "displayedSoc",
        "totalChargingDurationSec",
        "isPreconditioningActivated",
        "mileage",
        "mileageUnits",
        "chargingLocation",
    } <= set(recent[0])
    by_endpoint = (await sim.calls())[fleet.GCID_MAIN]["by_endpoint"]
    # Every page costs one call of the budget.
    assert by_endpoint["charging_history"] == recent_pages + 1 + (len(older) > 10)


async def test_tyre_diagnosis_with_and_without_data(api: Api) -> None:
    bev_status, bev = await api.get(
        f"/customers/vehicles/{fleet.VIN_BEV}/smartMaintenanceTyreDiagnosis"
    )
    _, phev = await api.get(f"/customers/vehicles/{fleet.VIN_PHEV}/smartMaintenanceTyreDiagnosis")

    assert bev_status == 200
    wear = bev["passengerCar"]["mountedTyres"]["frontLeft"]["tyreWear"]
    assert wear["dueMileage"] > 0
    assert wear["unit"] == "KILOMETER"
    assert wear["statusColor"] in {"RED", "YELLOW", "GREEN", "GREY"}
    empty = phev["passengerCar"]["mountedTyres"]["frontLeft"]
    assert phev["errors"] == []
    assert empty["tyreWear"] == {"dueMileage": 0, "label": "Service due in"}
    assert empty["runFlat"] == {"label": "Run-flat tyres", "runFlat": False}


async def test_image_is_a_png(api: Api) -> None:
    status, content = await api.get(f"/customers/vehicles/{fleet.VIN_BEV}/image")

    assert status == 200
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", content[16:24])
    assert (width, height) == (320, 160)


async def test_location_based_charging_settings_pages(api: Api) -> None:
    path = f"/customers/vehicles/{fleet.VIN_BEV}/locationBasedChargingSettings"

    status, first = await api.get(path)
    _, second = await api.get(path, params={"nextToken": first["nextToken"]})

    assert status == 200
    assert len(first["data"]) == 10
    assert len(second["data"]) == 2
    assert second["nextToken"] is None
    assert {
        "latitude",
        "longitude",
        "chargingMode",
        "acCurrentLimit",
        "chargingTimeWindows",
    } <= set(first["data"][0])


# --- BMW's errors ---------------------------------------------------------------------------


async def test_missing_token_is_tp_403(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    anonymous = Api(session, sim, None)

    assert_error(
        await anonymous.get("/customers/vehicles/mappings"), 403, "TP-403", "Bad Request. Forbidden"
    )


async def test_expired_access_token_is_cu_127_invalid_token(api: Api, sim: SimulatorHandle) -> None:
    await sim.advance(3600)

    assert_error(await api.get("/customers/vehicles/mappings"), 403, "CU-127", "invalid_token")
    await sim.set_config(expired_token_mode="documented")
    assert_error(await api.get("/customers/vehicles/mappings"), 401, "CU-102")


async def test_unknown_access_token_is_refused(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    stranger = Api(session, sim, "x" * 53)

    assert_error(await stranger.get("/customers/vehicles/mappings"), 403, "CU-127", "invalid_token")


async def test_token_without_api_scope_is_cu_103(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    tokens = await sim.issue_tokens(
        fleet.CLIENT_STREAM_ONLY, "authenticate_user openid cardata:streaming:read"
    )
    stream_only = Api(session, sim, tokens["access_token"])

    assert_error(await stream_only.get("/customers/vehicles/mappings"), 403, "CU-103")


async def test_missing_x_version_is_cu_400(api: Api) -> None:
    assert_error(await api.get("/customers/vehicles/mappings", version=False), 400, "CU-400")


@pytest.mark.parametrize("vin", [fleet.VIN_SECONDARY, fleet.VIN_OTHER, "WBA99999999999999"])
async def test_vin_not_readable_is_cu_104(api: Api, vin: str) -> None:
    assert_error(await api.get(f"/customers/vehicles/{vin}/basicData"), 403, "CU-104")


@pytest.mark.parametrize("vin", ["wba00000000000001", "WBA0000000000001"])
async def test_malformed_vin_is_cu_120(api: Api, vin: str) -> None:
    assert_error(await api.get(f"/customers/vehicles/{vin}/basicData"), 400, "CU-120")


async def test_foreign_or_unknown_container_is_cu_105(
    api: Api, sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    other_tokens = await sim.issue_tokens(fleet.CLIENT_OTHER)
    _, foreign = await Api(session, sim, other_tokens["access_token"]).create_container()
    vin_path = f"/customers/vehicles/{fleet.VIN_BEV}/telematicData"

    assert_error(await api.get(f"/customers/containers/{foreign['containerId']}"), 403, "CU-105")
    assert_error(
        await api.get(vin_path, params={"containerId": foreign["containerId"]}), 403, "CU-105"
    )
    assert_error(await api.call("DELETE", "/customers/containers/ABCDEFGHIJKLM"), 403, "CU-105")
    assert_error(await api.get("/customers/containers/short"), 400, "CU-121")


async def test_telematic_data_of_a_deleted_container_is_cu_105(api: Api) -> None:
    _, container = await api.create_container()
    await api.call("DELETE", f"/customers/containers/{container['containerId']}")

    result = await api.get(
        f"/customers/vehicles/{fleet.VIN_BEV}/telematicData",
        params={"containerId": container["containerId"]},
    )

    assert_error(result, 403, "CU-105")


async def test_eleventh_container_is_cu_124(api: Api, sim: SimulatorHandle) -> None:
    await sim.add_foreign_containers(fleet.GCID_MAIN, 9)
    tenth, _ = await api.create_container()

    assert tenth == 201
    assert_error(
        await api.create_container(), 403, "CU-124", "Maximum number of containers reached"
    )


@pytest.mark.parametrize("descriptor", ["vehicle.no.such.key", "vehicle.learningNavigation"])
async def test_unknown_or_deprecated_descriptor_is_cu_402(api: Api, descriptor: str) -> None:
    assert_error(await api.create_container([SOC, descriptor]), 400, "CU-402")


async def test_no_image_is_cu_126(sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
    tokens = await sim.issue_tokens(fleet.CLIENT_OTHER)
    other = Api(session, sim, tokens["access_token"])

    assert_error(await other.get(f"/customers/vehicles/{fleet.VIN_OTHER}/image"), 404, "CU-126")


async def test_no_charging_settings_is_cu_127(api: Api) -> None:
    result = await api.get(f"/customers/vehicles/{fleet.VIN_PHEV}/locationBasedChargingSettings")

    assert_error(result, 404, "CU-127", "No LBCS data found")


async def test_charging_history_range_and_format_are_cu_401(api: Api, sim: SimulatorHandle) -> None:
    now = await sim.now()
    epoch_start, epoch_end = (
        str(int((now - timedelta(days=10)).timestamp())),
        str(int(now.timestamp())),
    )

    too_long = await api.history(fleet.VIN_BEV, iso(now - timedelta(days=46)), iso(now))
    epoch = await api.history(fleet.VIN_BEV, epoch_start, epoch_end)
    garbage = await api.history(fleet.VIN_BEV, "yesterday", iso(now))
    reversed_range = await api.history(fleet.VIN_BEV, iso(now), iso(now - timedelta(days=1)))

    for result in (too_long, epoch, garbage, reversed_range):
        assert_error(result, 400, "CU-401", "Parameter Invalid")


# --- budget ---------------------------------------------------------------------------------


async def test_fifty_calls_then_cu_429(api: Api, sim: SimulatorHandle) -> None:
    if await seconds_to_midnight(sim) < 120:
        # Fifty calls must not straddle the daily reset.
        await sim.advance(await seconds_to_midnight(sim) + 60)
    for _ in range(50):
        status, _ = await api.get("/customers/vehicles/mappings")
        assert status == 200

    refused = await api.get("/customers/vehicles/mappings")
    calls = await sim.calls()

    assert_error(refused, 403, "CU-429", "API rate limit reached")
    assert calls[fleet.GCID_MAIN] | {"by_endpoint": None} == {
        "used": 50,
        "remaining": 0,
        "limit": 50,
        "by_endpoint": None,
        "refused": 1,
        "reset_mode": "utc_midnight",
    }
    assert calls[fleet.GCID_OTHER]["used"] == 0


async def test_failed_calls_count_too(api: Api, sim: SimulatorHandle) -> None:
    await api.get(f"/customers/vehicles/{fleet.VIN_SECONDARY}/basicData")
    await api.get("/customers/vehicles/mappings", version=False)

    assert await used_calls(sim) == 2


async def use_budget(api: Api, sim: SimulatorHandle) -> None:
    # A smaller daily limit keeps these tests short; the reset rules are the same.
    await sim.set_config(budget_limit=3)
    for _ in range(3):
        await api.get("/customers/vehicles/mappings")
    assert_error(await api.get("/customers/vehicles/mappings"), 403, "CU-429")


async def test_budget_resets_at_utc_midnight(api: Api, sim: SimulatorHandle) -> None:
    await use_budget(api, sim)
    await sim.advance(await seconds_to_midnight(sim) + 1)

    # The token has expired by now if midnight was far: get a fresh one.
    api.token = (await sim.issue_tokens())["access_token"]
    status, _ = await api.get("/customers/vehicles/mappings")

    assert status == 200


async def test_rolling_budget_frees_calls_after_24_hours(api: Api, sim: SimulatorHandle) -> None:
    await sim.set_config(budget_reset="rolling")
    await use_budget(api, sim)
    first_jump = min(await seconds_to_midnight(sim) + 1, 23 * 3600)
    await sim.advance(first_jump)
    api.token = (await sim.issue_tokens())["access_token"]
    assert_error(await api.get("/customers/vehicles/mappings"), 403, "CU-429")

    await sim.advance(24 * 3600 - first_jump + 1)
    api.token = (await sim.issue_tokens())["access_token"]
    status, _ = await api.get("/customers/vehicles/mappings")

    assert status == 200


# --- faults ---------------------------------------------------------------------------------


async def test_fault_answers_the_next_calls_and_counts(api: Api, sim: SimulatorHandle) -> None:
    await sim.fault("basic_data", count=2, status=500)
    path = f"/customers/vehicles/{fleet.VIN_BEV}/basicData"

    first = await api.get(path)
    second = await api.get(path)
    third, _ = await api.get(path)

    assert_error(first, 500, "CU-500")
    assert_error(second, 500, "CU-500")
    assert third == 200
    assert await used_calls(sim) == 3


async def test_fault_with_an_html_body(api: Api, sim: SimulatorHandle) -> None:
    html = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
    await sim.fault("vehicle_mappings", status=503, body=html, content_type="text/html")

    status, body = await api.get("/customers/vehicles/mappings")

    assert (status, body) == (503, html)


async def test_timeout_fault_hangs_until_the_client_gives_up(
    api: Api, sim: SimulatorHandle
) -> None:
    await sim.fault("telematic_data", timeout=True)
    _, container = await api.create_container()
    path = f"/customers/vehicles/{fleet.VIN_BEV}/telematicData"

    with pytest.raises(TimeoutError):
        await api.get(path, params={"containerId": container["containerId"]}, client_timeout=0.3)
    status, _ = await api.get(path, params={"containerId": container["containerId"]})

    assert status == 200
