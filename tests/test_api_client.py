"""CarDataClient against the simulator's REST API: every endpoint, BMW's errors, the hook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.client import CarDataClient
from custom_components.cardata.api.const import BASE_SCOPES, SCOPE_STREAMING
from custom_components.cardata.api.errors import (
    BadRequestError,
    CarDataConnectionError,
    ContainerLimitError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
    ServerError,
    TokenInvalidError,
    UnexpectedResponseError,
)
from custom_components.cardata.api.models import TokenGranted, TokenSet
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

BEV, PHEV, SECONDARY, OTHER = (
    fleet.VIN_BEV,
    fleet.VIN_PHEV,
    fleet.VIN_SECONDARY,
    fleet.VIN_OTHER,
)
SOC = "vehicle.drivetrain.batteryManagement.header"
PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
CHARGING_STATUS = "vehicle.drivetrain.electricEngine.charging.status"
PRESSURE = "vehicle.chassis.axle.row1.wheel.left.tire.pressure"
DESCRIPTORS = [SOC, PLUGGED, CHARGING_STATUS, PRESSURE]
OFFLINE_URL = "http://127.0.0.1:1"


class TokenKeeper:
    """The caller's side of tokens: hands out the access token, refreshes on request."""

    def __init__(self, auth: GcdmAuth, tokens: TokenSet) -> None:
        self.auth = auth
        self.tokens = tokens

    async def access_token(self) -> str:
        return self.tokens.access_token

    async def refresh(self) -> None:
        self.tokens = await self.auth.refresh(self.tokens)


class RecordingHook:
    """A before_request hook that records endpoint names and can refuse."""

    def __init__(self) -> None:
        self.endpoints: list[str] = []
        self.refusal: RequestRefusedError | None = None

    async def __call__(self, endpoint: str) -> None:
        self.endpoints.append(endpoint)
        if self.refusal is not None:
            raise self.refusal


async def login(
    session: aiohttp.ClientSession,
    sim: SimulatorHandle,
    client_id: str | None = None,
    scopes: tuple[str, ...] | None = None,
) -> TokenKeeper:
    """Tokens through the real device flow."""
    auth = GcdmAuth(session, client_id or sim.client_id, base_url=sim.gcdm_url)
    device = await (auth.request_device_code(scopes) if scopes else auth.request_device_code())
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    return TokenKeeper(auth, outcome.tokens)


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def keeper(session: aiohttp.ClientSession, sim: SimulatorHandle) -> TokenKeeper:
    return await login(session, sim)


@pytest.fixture
def hook() -> RecordingHook:
    return RecordingHook()


@pytest.fixture
def client(
    session: aiohttp.ClientSession, sim: SimulatorHandle, keeper: TokenKeeper, hook: RecordingHook
) -> CarDataClient:
    return CarDataClient(
        session, keeper.access_token, base_url=sim.api_url, before_request=hook, timeout=5
    )


async def used_calls(sim: SimulatorHandle, gcid: str = fleet.GCID_MAIN) -> dict[str, Any]:
    return (await sim.calls())[gcid]


# --- endpoints ------------------------------------------------------------------------


async def test_vehicle_mappings(client: CarDataClient, hook: RecordingHook) -> None:
    mappings = await client.get_vehicle_mappings()
    assert {m.vin: m.is_primary for m in mappings} == {BEV: True, PHEV: True, SECONDARY: False}
    bev = next(m for m in mappings if m.vin == BEV)
    assert bev.mapped_since == datetime(2023, 2, 14, 8, 21, 37, tzinfo=UTC)
    assert bev.raw == {"vin": BEV, "mappedSince": "2023-02-14T08:21:37Z", "mappingType": "PRIMARY"}
    assert hook.endpoints == ["vehicle_mappings"]


async def test_basic_data(client: CarDataClient) -> None:
    data = await client.get_basic_data(BEV)
    # BMW leaves the VIN out of basicData; the client fills in the one it asked for.
    assert data.vin == BEV
    assert (data.brand, data.model_name, data.series_development) == ("BMW", "i4 eDrive40", "G26")
    assert (data.drive_train, data.propulsion_type, data.country_code) == ("BEV", "BEV", "DE")
    assert data.colour == "BRIGHTON GRAU METALLIC"
    assert data.charging_modes == ("AC_TYPE2PLUG", "DC")
    assert data.construction_date == datetime(2022, 10, 17, tzinfo=UTC)
    assert data.has_navi is True
    assert data.number_of_doors == 5
    assert data.raw["reessNominalCapacityGross"] == 210.6


async def test_container_lifecycle_and_telematic_data(
    client: CarDataClient, sim: SimulatorHandle, hook: RecordingHook
) -> None:
    created = await client.create_container("Home Assistant", "Dashboard", DESCRIPTORS)
    assert len(created.container_id) == 13
    assert created.is_active
    assert created.technical_descriptors == tuple(DESCRIPTORS)
    assert created.created is not None

    assert created.container_id in [c.container_id for c in await client.list_containers()]
    fetched = await client.get_container(created.container_id)
    assert fetched.technical_descriptors == tuple(DESCRIPTORS)

    moment = (await sim.now()).replace(microsecond=0) - timedelta(minutes=1)
    await sim.set_telematics(
        BEV,
        {
            SOC: {"value": 81.5, "unit": "%", "timestamp": moment.isoformat()},
            PLUGGED: True,
            CHARGING_STATUS: "CHARGINGACTIVE",
            PRESSURE: {"value": "-NA-", "unit": "kPa"},
        },
    )
    data = await client.get_telematic_data(BEV, created.container_id)
    assert set(data.values) == set(DESCRIPTORS)
    soc = data.values[SOC]
    assert (soc.value, soc.raw_value, soc.unit, soc.timestamp) == (81.5, "81.5", "%", moment)
    assert data.values[PLUGGED].value is True
    assert data.values[CHARGING_STATUS].value == "CHARGINGACTIVE"
    assert data.values[PRESSURE].value is None
    assert data.values[PRESSURE].raw_value == "-NA-"
    assert data.raw["telematicData"][SOC]["value"] == "81.5"

    await client.delete_container(created.container_id)
    # BMW answers a second delete with 208 CU-122: the container is gone all the same.
    await client.delete_container(created.container_id)
    assert not (await client.get_container(created.container_id)).is_active
    with pytest.raises(PermissionDeniedError) as raised:
        await client.get_telematic_data(BEV, created.container_id)
    assert raised.value.container
    assert raised.value.error_id == "CU-105"

    assert hook.endpoints == [
        "container_create",
        "containers",
        "container",
        "telematic_data",
        "container_delete",
        "container_delete",
        "container",
        "telematic_data",
    ]
    assert (await used_calls(sim))["used"] == len(hook.endpoints)


async def test_charging_history_one_page_or_all(
    client: CarDataClient, sim: SimulatorHandle, hook: RecordingHook
) -> None:
    end = await sim.now()
    # Exactly the 45 days BMW allows, with sub-millisecond noise in both ends.
    start = end - timedelta(days=45)

    first = await client.get_charging_history(BEV, start, end)
    assert len(first.sessions) == 10
    assert first.next_token
    assert hook.endpoints == ["charging_history"]

    everything = await client.get_charging_history(BEV, start, end, all_pages=True)
    assert len(everything.sessions) > 10
    assert everything.next_token is None
    assert everything.sessions[:10] == first.sessions
    assert len(everything.raw["data"]) == len(everything.sessions)
    assert all(start <= s.start_time <= end for s in everything.sessions if s.start_time)
    pages = 1 + (len(everything.sessions) - 1) // 10
    assert hook.endpoints == ["charging_history"] * (1 + pages)

    second = await client.get_charging_history(BEV, start, end, next_token=first.next_token)
    assert second.sessions == everything.sessions[10:20]

    session = first.sessions[0]
    assert session.time_zone == "Europe/Berlin"
    assert session.mileage_unit == "KM"
    assert session.energy_kwh is not None
    assert session.energy_kwh > 0
    calls = await used_calls(sim)
    assert calls["by_endpoint"] == {"charging_history": len(hook.endpoints)}


@pytest.mark.parametrize(
    ("start_offset", "end_offset"),
    [
        (timedelta(days=-46), timedelta()),
        (timedelta(hours=1), timedelta()),
    ],
)
async def test_charging_history_refuses_bad_ranges_without_a_request(
    client: CarDataClient,
    sim: SimulatorHandle,
    hook: RecordingHook,
    start_offset: timedelta,
    end_offset: timedelta,
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError):
        await client.get_charging_history(BEV, now + start_offset, now + end_offset)
    with pytest.raises(ValueError):
        await client.get_charging_history(BEV, datetime(2026, 1, 1), datetime(2026, 1, 2))  # noqa: DTZ001
    assert hook.endpoints == []
    assert (await used_calls(sim))["used"] == 0


async def test_tyre_diagnosis(client: CarDataClient) -> None:
    diagnosis = await client.get_tyre_diagnosis(BEV)
    assert set(diagnosis.mounted) == {"frontLeft", "frontRight", "rearLeft", "rearRight"}
    front_left = diagnosis.mounted["frontLeft"]
    assert front_left.dimension == "245/45 R19 98Y"
    assert (front_left.manufacturer, front_left.season) == ("Pirelli", "SUMMER")
    assert front_left.wear_due_mileage == 22_300
    assert front_left.run_flat is False
    assert diagnosis.mounted_quality_status == "OK"
    assert "passengerCar" in diagnosis.raw

    # The PHEV has no tyre data: BMW sends labels only, which still parses.
    empty = await client.get_tyre_diagnosis(PHEV)
    assert all(tyre.wear_due_mileage in (None, 0) for tyre in empty.mounted.values())


async def test_image(
    client: CarDataClient, session: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    image = await client.get_image(BEV)
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.content_type == "image/png"

    other = await login(session, sim, sim.clients["other"])
    other_client = CarDataClient(session, other.access_token, base_url=sim.api_url)
    with pytest.raises(NotFoundError) as raised:
        await other_client.get_image(OTHER)
    assert (raised.value.status, raised.value.error_id) == (404, "CU-126")


async def test_location_based_charging_settings(client: CarDataClient, hook: RecordingHook) -> None:
    first = await client.get_location_based_charging_settings(BEV)
    assert len(first.entries) == 10
    assert first.next_token
    everything = await client.get_location_based_charging_settings(BEV, all_pages=True)
    assert len(everything.entries) == 12
    assert everything.next_token is None
    assert everything.raw["nextToken"] is None
    assert everything.entries[0].latitude is not None
    assert everything.entries[0].charging_mode in {"IMMEDIATE_CHARGING", "DELAYED_CHARGING"}
    assert hook.endpoints == ["location_based_charging_settings"] * 3

    with pytest.raises(NotFoundError) as raised:
        await client.get_location_based_charging_settings(PHEV)
    assert raised.value.error_id == "CU-127"


# --- BMW's real error conditions ------------------------------------------------------


async def test_daily_budget_runs_out_after_50_calls(
    client: CarDataClient, sim: SimulatorHandle
) -> None:
    for _ in range(50):
        await client.get_vehicle_mappings()
    with pytest.raises(RateLimitError) as raised:
        await client.get_vehicle_mappings()
    assert (raised.value.status, raised.value.error_id) == (403, "CU-429")
    assert raised.value.endpoint == "vehicle_mappings"
    assert "API rate limit reached" in str(raised.value)


@pytest.mark.parametrize(
    ("mode", "status", "error_id"), [("observed", 403, "CU-127"), ("documented", 401, "CU-102")]
)
async def test_expired_access_token_then_refresh(
    client: CarDataClient,
    keeper: TokenKeeper,
    sim: SimulatorHandle,
    mode: str,
    status: int,
    error_id: str,
) -> None:
    await sim.set_config(expired_token_mode=mode)
    await sim.advance(3600)
    with pytest.raises(TokenInvalidError) as raised:
        await client.get_vehicle_mappings()
    assert (raised.value.status, raised.value.error_id) == (status, error_id)
    await keeper.refresh()
    assert len(await client.get_vehicle_mappings()) == 3


async def test_token_without_api_scope(
    session: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    keeper = await login(session, sim, scopes=(*BASE_SCOPES, SCOPE_STREAMING))
    client = CarDataClient(session, keeper.access_token, base_url=sim.api_url)
    with pytest.raises(ScopeError) as raised:
        await client.get_vehicle_mappings()
    assert raised.value.error_id == "CU-103"


async def test_secondary_vehicle_is_refused(client: CarDataClient) -> None:
    with pytest.raises(PermissionDeniedError) as raised:
        await client.get_basic_data(SECONDARY)
    assert not raised.value.container
    assert (raised.value.status, raised.value.error_id) == (403, "CU-104")


async def test_container_limit(client: CarDataClient, sim: SimulatorHandle) -> None:
    await sim.add_foreign_containers(fleet.GCID_MAIN, 10)
    with pytest.raises(ContainerLimitError) as raised:
        await client.create_container("Home Assistant", "Dashboard", DESCRIPTORS)
    assert raised.value.error_id == "CU-124"


async def test_bad_requests(client: CarDataClient, sim: SimulatorHandle) -> None:
    with pytest.raises(BadRequestError) as raised:
        await client.create_container("HA", "Dashboard", ["vehicle.learningNavigation"])
    assert raised.value.error_id == "CU-402"
    with pytest.raises(BadRequestError) as raised:
        await client.get_basic_data("wba-short")
    assert raised.value.error_id == "CU-120"
    with pytest.raises(BadRequestError) as raised:
        await client.get_container("short")
    assert raised.value.error_id == "CU-121"
    foreign = await sim.add_foreign_containers(fleet.GCID_OTHER, 1)
    with pytest.raises(PermissionDeniedError) as denied:
        await client.get_container(foreign[0])
    assert denied.value.container


# --- the request hook -----------------------------------------------------------------


async def test_refusing_hook_stops_the_request(
    client: CarDataClient, sim: SimulatorHandle, hook: RecordingHook
) -> None:
    retry_at = datetime(2026, 1, 2, tzinfo=UTC)
    hook.refusal = RequestRefusedError("budget spent", retry_at=retry_at)
    with pytest.raises(RequestRefusedError) as raised:
        await client.get_vehicle_mappings()
    assert raised.value is hook.refusal
    assert raised.value.retry_at == retry_at
    end = datetime.now(UTC)
    with pytest.raises(RequestRefusedError):
        await client.get_charging_history(BEV, end - timedelta(days=1), end, all_pages=True)
    assert (await used_calls(sim))["used"] == 0
    assert hook.endpoints == ["vehicle_mappings", "charging_history"]


async def test_hook_refusing_a_later_page_keeps_the_paid_ones(
    client: CarDataClient, sim: SimulatorHandle
) -> None:
    allowed = 1

    async def one_call_left(endpoint: str) -> None:
        nonlocal allowed
        if allowed == 0:
            raise RequestRefusedError
        allowed -= 1

    client._before_request = one_call_left
    paid = await client.get_location_based_charging_settings(BEV, all_pages=True)

    # The page paid for comes back, with the token that continues where paging stopped.
    assert isinstance(paid.stopped_by, RequestRefusedError)
    assert len(paid.entries) == 10
    assert paid.next_token is not None
    assert (await used_calls(sim))["used"] == 1
    allowed = 1
    rest = await client.get_location_based_charging_settings(BEV, next_token=paid.next_token)
    assert rest.stopped_by is None
    assert rest.next_token is None
    assert {entry.setting_id for entry in paid.entries + rest.entries} == {
        f"{BEV[-4:]}-lbcs-{number:02d}" for number in range(1, 13)
    }


# --- injected faults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (500, None, None, ServerError),
        (503, None, None, ServerError),
        (502, "<html><body>Bad Gateway</body></html>", None, ServerError),
        (429, "", "text/plain", RateLimitError),
        (404, "<html>Not Found</html>", None, NotFoundError),
        (403, "<html><body>Request blocked</body></html>", None, UnexpectedResponseError),
        (200, "<html>maintenance</html>", None, UnexpectedResponseError),
        (200, '{"truncated": ', "application/json", UnexpectedResponseError),
        (200, "", "application/json", UnexpectedResponseError),
        (400, {"message": "no BMW error id"}, None, BadRequestError),
    ],
)
async def test_error_bodies(
    client: CarDataClient,
    sim: SimulatorHandle,
    status: int,
    body: object,
    content_type: str | None,
    expected: type[Exception],
) -> None:
    await sim.fault("vehicle_mappings", status=status, body=body, content_type=content_type)
    with pytest.raises(expected) as raised:
        await client.get_vehicle_mappings()
    assert type(raised.value) is expected
    assert raised.value.status == status
    assert raised.value.endpoint == "vehicle_mappings"


async def test_unexpected_body_error_carries_a_short_excerpt(
    client: CarDataClient, sim: SimulatorHandle
) -> None:
    page = "<html><head><title>Akamai</title></head><body>" + "x " * 500 + "</body></html>"
    await sim.fault("basic_data", status=403, body=page)
    with pytest.raises(UnexpectedResponseError) as raised:
        await client.get_basic_data(BEV)
    assert raised.value.excerpt.startswith("<html><head><title>Akamai")
    assert len(raised.value.excerpt) <= 120
    assert "HTTP 403" in str(raised.value)


async def test_odd_answers_on_other_endpoints(client: CarDataClient, sim: SimulatorHandle) -> None:
    await sim.fault("container_create", status=201, body={"name": "no id"})
    with pytest.raises(UnexpectedResponseError):
        await client.create_container("HA", "Dashboard", DESCRIPTORS)
    await sim.fault("container", status=200, body=[])
    with pytest.raises(UnexpectedResponseError):
        await client.get_container("ABCDEFGHIJKLM")
    await sim.fault("container_delete", status=403, body={"exveErrorId": "CU-105"})
    with pytest.raises(PermissionDeniedError):
        await client.delete_container("ABCDEFGHIJKLM")
    await sim.fault("image", status=200, body={"exveErrorId": "CU-126"})
    with pytest.raises(NotFoundError):
        await client.get_image(BEV)
    await sim.fault("image", status=200, body={"unexpected": True})
    with pytest.raises(UnexpectedResponseError):
        await client.get_image(BEV)
    await sim.fault("image", status=500)
    with pytest.raises(ServerError):
        await client.get_image(BEV)


async def test_timeout_and_network_errors(
    session: aiohttp.ClientSession, keeper: TokenKeeper, sim: SimulatorHandle
) -> None:
    impatient = CarDataClient(session, keeper.access_token, base_url=sim.api_url, timeout=0.3)
    await sim.fault("vehicle_mappings", timeout=True)
    with pytest.raises(CarDataConnectionError):
        await impatient.get_vehicle_mappings()

    offline = CarDataClient(session, keeper.access_token, base_url=OFFLINE_URL)
    with pytest.raises(CarDataConnectionError):
        await offline.get_vehicle_mappings()


async def test_no_access_token_means_no_budget_spent(
    session: aiohttp.ClientSession, sim: SimulatorHandle, hook: RecordingHook
) -> None:
    async def gcdm_down() -> str:
        raise CarDataConnectionError("token refresh failed")

    client = CarDataClient(session, gcdm_down, base_url=sim.api_url, before_request=hook)
    with pytest.raises(CarDataConnectionError, match="token refresh failed"):
        await client.get_basic_data(BEV)
    assert hook.endpoints == []


# --- untidy answers (issue 10.2, 10.5) ----------------------------------------------------------


async def test_deeply_nested_answer_is_an_unexpected_response(
    client: CarDataClient, sim: SimulatorHandle
) -> None:
    """A body nested too deeply for the JSON decoder is a CarDataError, not a RecursionError."""
    await sim.fault("basic_data", status=200, body="[" * 200_000 + "]" * 200_000)
    with pytest.raises(UnexpectedResponseError):
        await client.get_basic_data(BEV)


async def test_values_json_cannot_store_are_repaired_at_the_parse(
    client: CarDataClient, sim: SimulatorHandle
) -> None:
    """A 65-bit integer, a lone surrogate and a huge epoch: the rest of the answer survives."""
    created = await client.create_container("untidy", "test", [SOC, CHARGING_STATUS])
    await sim.fault(
        "telematic_data",
        status=200,
        body=(
            '{"telematicData": {'
            f'"{SOC}": {{"value": 18446744073709551616, "unit": "%", "timestamp": 1e300}},'
            f'"{CHARGING_STATUS}": {{"value": "\\ud800CHARGING", "unit": null}},'
            f'"{PLUGGED}": {{"value": "true", "timestamp": 100000000000000000000000000000}}'
            "}}"
        ),
    )
    data = await client.get_telematic_data(BEV, created.container_id)
    assert data.values[SOC].value == float(2**64)
    assert data.values[SOC].timestamp is None
    assert data.values[CHARGING_STATUS].value == "\ufffdCHARGING"
    assert data.values[PLUGGED].value is True
    assert data.values[PLUGGED].timestamp is None
    # What actions hand to the caller and the Store writes: plain, storable JSON.
    orjson.dumps(data.raw)
