"""The actions: each asks the simulator once per page, logs BMW's answer and returns it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import json
import logging
import socket
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cardata.api.client import CarDataClient
from custom_components.cardata.const import DOMAIN
from custom_components.cardata.diagnostics import redact_personal_data
from custom_components.cardata.runtime import CarDataRuntimeData
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import ENTRY_TITLE, async_add_entry

VIN_BEV = fleet.VIN_BEV
VIN_PHEV = fleet.VIN_PHEV
LOGGER_NAME = "custom_components.cardata"
PAGING_TOKENS = ("next_token", "nextToken")


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> MockConfigEntry:
    """A set-up account "main" whose stream and polling are running."""
    return await async_add_entry(hass, sim)


def _runtime(entry: MockConfigEntry) -> CarDataRuntimeData:
    runtime: CarDataRuntimeData = entry.runtime_data
    return runtime


async def _call(
    hass: HomeAssistant, entry: MockConfigEntry, action: str, **data: Any
) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        action,
        {"config_entry_id": entry.entry_id, **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


async def _call_without_entry(hass: HomeAssistant, action: str, **data: Any) -> dict[str, Any]:
    """Call as the action form does when the user picks only a car (or a script names a VIN)."""
    response = await hass.services.async_call(
        DOMAIN, action, data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


def _car(hass: HomeAssistant, vin: str) -> str:
    """The device id of a car, as the action form's device picker sends it."""
    registry = dr.async_get(hass)
    (device_id,) = (
        device.id
        for entry in hass.config_entries.async_entries(DOMAIN)
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if (DOMAIN, vin) in device.identifiers
    )
    return device_id


async def _bmw_get(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    entry: MockConfigEntry,
    path: str,
    params: Mapping[str, str] | None = None,
) -> Any:
    """Ask the simulator directly, as BMW's API, with the entry's current access token."""
    token = _runtime(entry).tokens.tokens.access_token
    async with async_get_clientsession(hass).get(
        sim.api_url + path,
        params=params,
        headers={"Authorization": f"Bearer {token}", "x-version": "v1"},
    ) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _used(sim: SimulatorHandle) -> tuple[int, dict[str, int]]:
    """Requests the simulator counted for account main: in all and per endpoint."""
    usage = (await sim.calls())[sim.gcid]
    return usage["used"], dict(usage["by_endpoint"])


def _secrets(entry: MockConfigEntry) -> list[str]:
    """Every token the entry held or holds."""
    current = _runtime(entry).tokens.tokens
    stored = entry.data["tokens"]
    return [
        secret
        for secret in (
            current.access_token,
            current.id_token,
            current.refresh_token,
            stored["access_token"],
            stored["id_token"],
            stored["refresh_token"],
        )
        if secret
    ]


def _action_lines(caplog: pytest.LogCaptureFixture, action: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER_NAME
        and record.levelno == logging.INFO
        and record.getMessage().startswith(f"{action} for ")
    ]


def _without_paging_token(body: Any) -> Any:
    """BMW's paging tokens are random per request: compare only whether there is one."""
    if not isinstance(body, dict):
        return body
    return {
        key: (value is not None) if key in PAGING_TOKENS else value for key, value in body.items()
    }


def _values_of(body: Any, keys: frozenset[str]) -> list[Any]:
    """Every value under one of `keys`, however deeply nested."""
    if isinstance(body, dict):
        return [
            found
            for key, value in body.items()
            for found in ([value] if key in keys else _values_of(value, keys))
        ]
    if isinstance(body, list):
        return [found for item in body for found in _values_of(item, keys)]
    return []


ADDRESS_KEYS = frozenset({"formattedAddress", "streetAddress", "postalCode"})
COORDINATE_KEYS = frozenset({"latitude", "longitude", "mapMatchedLatitude", "mapMatchedLongitude"})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _local_minute(moment: datetime) -> str:
    return dt_util.as_local(moment).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Action:
    """One action, the endpoint it spends and how to ask BMW the same directly."""

    name: str
    endpoint: str
    data: Mapping[str, Any]
    path: str
    params: Callable[[MockConfigEntry], dict[str, str] | None] = lambda _entry: None
    target: str = "…0001"


HISTORY_END = datetime.now(UTC).replace(microsecond=0)
HISTORY_START = HISTORY_END - timedelta(days=40)

ACTIONS = [
    Action(
        "fetch_vehicle_mappings",
        "vehicle_mappings",
        {},
        "/customers/vehicles/mappings",
        target=ENTRY_TITLE,
    ),
    Action(
        "fetch_basic_data",
        "basic_data",
        {"vin": VIN_BEV},
        f"/customers/vehicles/{VIN_BEV}/basicData",
    ),
    Action(
        "fetch_telematic_data",
        "telematic_data",
        {"vin": VIN_PHEV},
        f"/customers/vehicles/{VIN_PHEV}/telematicData",
        lambda entry: {"containerId": _runtime(entry).cache.container_id or ""},
        target="…0002",
    ),
    Action(
        "fetch_charging_history",
        "charging_history",
        {"vin": VIN_BEV, "start": HISTORY_START, "end": HISTORY_END},
        f"/customers/vehicles/{VIN_BEV}/chargingHistory",
        lambda _entry: {"from": _iso(HISTORY_START), "to": _iso(HISTORY_END)},
    ),
    Action(
        "fetch_tyre_diagnosis",
        "tyre_diagnosis",
        {"vin": VIN_BEV},
        f"/customers/vehicles/{VIN_BEV}/smartMaintenanceTyreDiagnosis",
    ),
    Action(
        "fetch_location_based_charging_settings",
        "location_based_charging_settings",
        {"vin": VIN_BEV},
        f"/customers/vehicles/{VIN_BEV}/locationBasedChargingSettings",
    ),
]


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
async def test_action_returns_and_logs_bmw_answer(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    action: Action,
) -> None:
    """The response is BMW's JSON, logged once at info level; it costs one request."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    budget = _runtime(entry).budget
    remaining = budget.remaining()
    used, by_endpoint = await _used(sim)

    response = await _call(hass, entry, action.name, **action.data)

    used_after, by_endpoint_after = await _used(sim)
    assert used_after == used + 1
    assert by_endpoint_after[action.endpoint] == by_endpoint.get(action.endpoint, 0) + 1
    assert budget.remaining() == remaining - 1

    expected = await _bmw_get(hass, sim, entry, action.path, action.params(entry))
    if isinstance(expected, list):
        expected = {"mappings": expected}
    assert _without_paging_token(response) == _without_paging_token(expected)
    assert response  # the simulator always has something to say here

    lines = _action_lines(caplog, action.name)
    assert len(lines) == 1
    prefix = f"{action.name} for {action.target}: "
    assert lines[0].startswith(prefix)
    logged = json.loads(lines[0].removeprefix(prefix))
    if isinstance(logged, list):
        logged = {"mappings": logged}
    # The log holds BMW's answer as the diagnostics would show it.
    assert logged == redact_personal_data(entry, response)
    log_text = caplog.text
    for secret in _secrets(entry):
        assert secret not in log_text
    assert VIN_BEV not in lines[0]
    assert VIN_PHEV not in lines[0]
    assert sim.gcid not in lines[0]


async def test_mappings_response_wraps_bmw_list(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """BMW's mappings array comes back under "mappings", every VIN whole; the log hides them."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    response = await _call(hass, entry, "fetch_vehicle_mappings")

    vins = {mapping["vin"]: mapping["mappingType"] for mapping in response["mappings"]}
    assert vins == {VIN_BEV: "PRIMARY", VIN_PHEV: "PRIMARY", fleet.VIN_SECONDARY: "SECONDARY"}
    (line,) = _action_lines(caplog, "fetch_vehicle_mappings")
    assert all(vin not in line for vin in vins)
    assert '"mappingType": "SECONDARY"' in line


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("fetch_charging_history", {"all_pages": True}),
        ("fetch_location_based_charging_settings", {"all_pages": True}),
    ],
)
async def test_logged_answer_hides_where_the_car_charges(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    action: str,
    data: dict[str, Any],
) -> None:
    """BMW's answers name the GCID, streets and coordinates: the response keeps them, the log not.

    Logs are posted in public bug reports; the response is the user's own.
    """
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    response = await _call(hass, entry, action, vin=VIN_BEV, **data)

    addresses = {str(value) for value in _values_of(response, ADDRESS_KEYS)}
    coordinates = {str(value) for value in _values_of(response, COORDINATE_KEYS)}
    assert coordinates
    whole = json.dumps(response, ensure_ascii=False)
    (line,) = _action_lines(caplog, action)
    private = {VIN_BEV, sim.gcid, *addresses, *coordinates}
    assert [value for value in private if value in line] == []
    # The rest of BMW's answer is still there to read.
    assert '"chargingMode"' in line or '"displayedSoc"' in line
    if action == "fetch_charging_history":
        assert "Am Olympiapark 1" in addresses
    else:
        assert f"{VIN_BEV}_{sim.gcid}" in whole  # "vehicleIdWithGcid"


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
async def test_action_by_picked_car(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry, action: Action
) -> None:
    """Picking the car is enough: the account follows from it, the answer is BMW's."""
    vin = action.data.get("vin", VIN_BEV)
    data = {key: value for key, value in action.data.items() if key != "vin"}
    used, _ = await _used(sim)

    response = await _call_without_entry(hass, action.name, device_id=_car(hass, vin), **data)

    assert (await _used(sim))[0] == used + 1
    expected = await _bmw_get(hass, sim, entry, action.path, action.params(entry))
    if isinstance(expected, list):
        expected = {"mappings": expected}
    assert _without_paging_token(response) == _without_paging_token(expected)


async def test_vin_alone_with_one_account(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """A script that names only the VIN works while one account is set up."""
    response = await _call_without_entry(hass, "fetch_basic_data", vin=VIN_PHEV)

    assert response == dict(fleet.VEHICLES[VIN_PHEV].basic_data)


async def test_picked_car_refusals(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """A wrong pick is explained in the user's language, and nothing is spent."""
    foreign = MockConfigEntry(domain="demo", title="Not BMW")
    foreign.add_to_hass(hass)
    lamp = dr.async_get(hass).async_get_or_create(
        config_entry_id=foreign.entry_id, identifiers={("demo", "lamp")}, name="Kitchen lamp"
    )
    used, _ = await _used(sim)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"device_id": "no-such-device"}, "action_device_not_found", "no-such-device"),
        ({"device_id": lamp.id}, "action_device_not_a_vehicle", "Kitchen lamp"),
        (
            {"device_id": _car(hass, VIN_BEV), "vin": VIN_PHEV},
            "action_device_vin_mismatch",
            "ending …0001, but the VIN given ends …0002",
        ),
        ({}, "action_vehicle_missing", "pick it, or give its VIN"),
    ]

    for data, key, text in cases:
        with pytest.raises(ServiceValidationError) as caught:
            await _call_without_entry(hass, "fetch_tyre_diagnosis", **data)
        assert caught.value.translation_key == key
        assert text in str(caught.value)

    # The same car picked and named by VIN is no contradiction.
    response = await _call_without_entry(
        hass, "fetch_basic_data", device_id=_car(hass, VIN_BEV), vin=VIN_BEV.lower()
    )
    assert response == dict(fleet.VEHICLES[VIN_BEV].basic_data)
    assert (await _used(sim))[0] == used + 1


async def test_no_account_loaded(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """With the account unloaded, a VIN finds no account and a picked car names its own."""
    device_id = _car(hass, VIN_BEV)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    with pytest.raises(ServiceValidationError) as caught:
        await _call_without_entry(hass, "fetch_basic_data", vin=VIN_BEV)
    assert caught.value.translation_key == "action_no_account_loaded"
    assert "No BMW CarData account is loaded" in str(caught.value)

    with pytest.raises(ServiceValidationError) as caught:
        await _call_without_entry(hass, "fetch_basic_data", device_id=device_id)
    assert caught.value.translation_key == "action_entry_not_loaded"
    assert entry.title in str(caught.value)


async def test_two_accounts_the_car_decides(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """With two accounts, a car or a VIN names its account; the account-wide action asks which."""
    other = await async_add_entry(hass, sim, client_id=fleet.CLIENT_OTHER)
    used_other = (await sim.calls())[fleet.GCID_OTHER]["used"]

    by_car = await _call_without_entry(
        hass, "fetch_vehicle_mappings", device_id=_car(hass, fleet.VIN_OTHER)
    )
    assert [mapping["vin"] for mapping in by_car["mappings"]] == [fleet.VIN_OTHER]
    by_vin = await _call_without_entry(hass, "fetch_basic_data", vin=fleet.VIN_OTHER)
    assert by_vin == dict(fleet.VEHICLES[fleet.VIN_OTHER].basic_data)
    assert (await sim.calls())[fleet.GCID_OTHER]["used"] == used_other + 2

    with pytest.raises(ServiceValidationError) as caught:
        await _call_without_entry(hass, "fetch_vehicle_mappings")
    assert caught.value.translation_key == "action_account_ambiguous"
    assert "Pick a car, or choose the account" in str(caught.value)

    # A picked car and a different account named with it: that account cannot read the car.
    with pytest.raises(ServiceValidationError) as caught:
        await _call_without_entry(
            hass,
            "fetch_basic_data",
            device_id=_car(hass, fleet.VIN_OTHER),
            config_entry_id=entry.entry_id,
        )
    assert caught.value.translation_key == "action_unknown_vehicle"
    assert other.state is entry.state


async def test_telematic_data_reaches_the_entities_state(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """What the action fetched is merged into the vehicle's state, as a poll's would be."""
    coordinator = _runtime(entry).coordinator
    before = coordinator.last_rest_fetch(VIN_BEV)

    response = await _call(hass, entry, "fetch_telematic_data", vin=VIN_BEV.lower())

    fetched = coordinator.last_rest_fetch(VIN_BEV)
    assert fetched is not None
    assert before is None or fetched > before
    level = response["telematicData"]["vehicle.drivetrain.electricEngine.charging.level"]
    state = coordinator.state(VIN_BEV)["vehicle.drivetrain.electricEngine.charging.level"]
    assert str(state.raw_value) == str(level["value"])


async def test_charging_history_all_pages_costs_one_request_per_page(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """`all_pages` follows BMW's next_token: every session of the range, one request a page."""
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=45)
    path = f"/customers/vehicles/{VIN_BEV}/chargingHistory"
    budget = _runtime(entry).budget
    remaining = budget.remaining()
    used, _ = await _used(sim)

    response = await _call(
        hass, entry, "fetch_charging_history", vin=VIN_BEV, start=start, end=end, all_pages=True
    )

    used_after, _ = await _used(sim)
    first = await _bmw_get(hass, sim, entry, path, {"from": _iso(start), "to": _iso(end)})
    assert first["next_token"] is not None
    second = await _bmw_get(hass, sim, entry, path, {"nextToken": first["next_token"]})
    assert second["next_token"] is None
    assert response == {"data": first["data"] + second["data"], "next_token": None}
    assert used_after == used + 2
    assert budget.remaining() == remaining - 2


async def test_charging_settings_all_pages(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """The settings of all twelve locations come in two pages, two requests."""
    used, _ = await _used(sim)

    response = await _call(
        hass, entry, "fetch_location_based_charging_settings", vin=VIN_BEV, all_pages=True
    )

    assert (await _used(sim))[0] == used + 2
    assert len(response["data"]) == 12
    assert response["nextToken"] is None


async def test_charging_history_default_range_is_last_30_days(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """Without start and end the action asks for the 30 days until now."""
    before = datetime.now(UTC)
    response = await _call(hass, entry, "fetch_charging_history", vin=VIN_PHEV)
    after = datetime.now(UTC)

    starts = [session["startTime"] for session in response["data"]]
    assert starts
    assert all(
        (before - timedelta(days=30)).timestamp() - 1 <= start <= after.timestamp()
        for start in starts
    )
    expected = await _bmw_get(
        hass,
        sim,
        entry,
        f"/customers/vehicles/{VIN_PHEV}/chargingHistory",
        {"from": _iso(before - timedelta(days=30)), "to": _iso(after + timedelta(seconds=1))},
    )
    assert response["data"] == expected["data"]


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        (
            {"start": datetime(2026, 3, 1, tzinfo=UTC), "end": datetime(2026, 4, 16, tzinfo=UTC)},
            "action_range_too_long",
            "at most 45 days",
        ),
        (
            {"start": datetime(2026, 3, 1, tzinfo=UTC), "end": datetime(2026, 3, 1, tzinfo=UTC)},
            "action_invalid_range",
            "must be before the end",
        ),
        # A start in the future lies after the default end, now.
        (
            {"start": datetime.now(UTC) + timedelta(days=1)},
            "action_invalid_range",
            "must be before",
        ),
    ],
    ids=["46_days", "empty", "future_start"],
)
async def test_charging_history_range_refused_without_request(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    entry: MockConfigEntry,
    data: dict[str, Any],
    key: str,
    text: str,
) -> None:
    """A range BMW would refuse is refused here, before any request is spent."""
    budget = _runtime(entry).budget
    remaining = budget.remaining()
    used, _ = await _used(sim)

    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, entry, "fetch_charging_history", vin=VIN_BEV, **data)

    assert caught.value.translation_key == key
    assert text in str(caught.value)
    assert (await _used(sim))[0] == used
    assert budget.remaining() == remaining


@pytest.mark.parametrize("vin", [fleet.VIN_SECONDARY, fleet.VIN_OTHER, "WBA0000000000000X"])
async def test_vehicle_not_readable_by_account(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry, vin: str
) -> None:
    """Secondary, foreign and unknown VINs are refused without a request."""
    used, _ = await _used(sim)

    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, entry, "fetch_basic_data", vin=vin)

    assert caught.value.translation_key == "action_unknown_vehicle"
    assert vin in str(caught.value)
    assert "primary user" in str(caught.value)
    assert (await _used(sim))[0] == used


async def test_entry_not_loaded_or_unknown(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """An unloaded account and an entry id that is not BMW CarData's are refused."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, entry, "fetch_vehicle_mappings")
    assert caught.value.translation_key == "action_entry_not_loaded"
    assert entry.title in str(caught.value)

    foreign = MockConfigEntry(domain="demo", title="Not BMW")
    foreign.add_to_hass(hass)
    for entry_id in (foreign.entry_id, "no-such-entry"):
        with pytest.raises(ServiceValidationError) as caught:
            await hass.services.async_call(
                DOMAIN,
                "fetch_vehicle_mappings",
                {"config_entry_id": entry_id},
                blocking=True,
                return_response=True,
            )
        assert caught.value.translation_key == "action_entry_not_found"
        assert entry_id in str(caught.value)


async def test_budget_spent_refuses_with_time(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """With the budget spent, the action says when the next request is possible, sends nothing."""
    budget = _runtime(entry).budget
    while budget.remaining() > 0:
        budget.acquire("elsewhere", automatic=False)
    used, _ = await _used(sim)

    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, "fetch_tyre_diagnosis", vin=VIN_BEV)

    assert caught.value.translation_key == "action_budget_spent"
    next_at = budget.next_request_at(automatic=False)
    assert next_at > dt_util.utcnow()
    assert str(caught.value) == (
        "The daily budget of BMW CarData API requests has no request left; "
        f"the next one is possible at {_local_minute(next_at)}"
    )
    assert (await _used(sim))[0] == used


async def test_bmw_rate_limit_blocks_budget_and_raises_issue(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """BMW's CU-429 (its count, not ours) blocks the budget until BMW's reset and says so."""
    used, _ = await _used(sim)
    await sim.set_config(budget_limit=used)
    budget = _runtime(entry).budget

    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, "fetch_basic_data", vin=VIN_BEV)
    await hass.async_block_till_done()

    assert caught.value.translation_key == "action_rate_limited"
    blocked_until = budget.blocked_until
    assert blocked_until is not None
    assert blocked_until == datetime.combine(
        dt_util.utcnow().date() + timedelta(days=1), datetime.min.time(), UTC
    )
    assert _local_minute(blocked_until) in str(caught.value)
    assert budget.remaining() == 0
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"budget_exhausted_{entry.entry_id}")
    assert issue is not None


@pytest.mark.parametrize(
    ("action", "vin", "endpoint", "status", "body", "key", "text"),
    [
        (
            "fetch_tyre_diagnosis",
            VIN_BEV,
            "tyre_diagnosis",
            500,
            None,
            "action_server_error",
            "internal error",
        ),
        (
            "fetch_basic_data",
            VIN_BEV,
            "basic_data",
            403,
            {"exveErrorId": "CU-104", "exveErrorMsg": "No permission for specified VIN"},
            "action_vehicle_refused",
            "vehicle …0001",
        ),
        (
            "fetch_telematic_data",
            VIN_BEV,
            "telematic_data",
            403,
            {"exveErrorId": "CU-105", "exveErrorMsg": "No permission for specified containerId"},
            "action_container_refused",
            "telematics container",
        ),
        (
            "fetch_basic_data",
            VIN_PHEV,
            "basic_data",
            400,
            {"exveErrorId": "CU-402", "exveErrorMsg": "Telematic key is invalid"},
            "action_bad_request",
            "CU-402",
        ),
        (
            "fetch_basic_data",
            VIN_BEV,
            "basic_data",
            404,
            {"exveErrorId": "CU-126"},
            "action_not_found",
            "CU-126",
        ),
        (
            "fetch_vehicle_mappings",
            None,
            "vehicle_mappings",
            403,
            {"exveErrorId": "CU-103", "exveErrorMsg": "Token-scope is not CarData"},
            "action_api_not_subscribed",
            "CarData API",
        ),
        (
            "fetch_tyre_diagnosis",
            VIN_PHEV,
            "tyre_diagnosis",
            200,
            "<html><body>Gateway maintenance</body></html>",
            "action_unexpected_response",
            "unexpected",
        ),
    ],
    ids=[
        "server_error",
        "vehicle_refused",
        "container_refused",
        "bad_request",
        "not_found",
        "scope",
        "html",
    ],
)
async def test_bmw_errors_become_translated_messages(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    entry: MockConfigEntry,
    action: str,
    vin: str | None,
    endpoint: str,
    status: int,
    body: Any,
    key: str,
    text: str,
) -> None:
    """Each kind of BMW refusal tells the user what happened in their language."""
    await sim.fault(endpoint, status=status, body=body)
    data = {"vin": vin} if vin else {}

    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, action, **data)

    assert caught.value.translation_key == key
    assert text in str(caught.value)
    # A refusal of BMW's is not a budget block of ours.
    assert _runtime(entry).budget.blocked_until is None


async def test_no_charging_settings(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """BMW's CU-127 for a car without learned locations is said plainly."""
    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, "fetch_location_based_charging_settings", vin=VIN_PHEV)

    assert caught.value.translation_key == "action_no_charging_settings"
    assert str(caught.value) == "BMW has no location-based charging settings for vehicle …0002"


async def test_refused_token_is_renewed_and_request_repeated(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """A token BMW refuses once is renewed; the repeated request answers the action."""
    tokens = _runtime(entry).tokens
    old_token = tokens.tokens.access_token
    await sim.fault(
        "basic_data",
        status=401,
        body={"exveErrorId": "CU-101", "exveErrorMsg": "Authentication error"},
    )

    response = await _call(hass, entry, "fetch_basic_data", vin=VIN_BEV)

    assert response == dict(fleet.VEHICLES[VIN_BEV].basic_data)
    assert tokens.tokens.access_token != old_token


async def test_token_refused_twice_asks_for_reauthentication(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """When BMW refuses the renewed token too, the message suggests re-authenticating."""
    await sim.fault(
        "basic_data",
        count=2,
        status=401,
        body={"exveErrorId": "CU-102", "exveErrorMsg": "Token expired"},
    )

    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, "fetch_basic_data", vin=VIN_BEV)

    assert caught.value.translation_key == "action_token_invalid"
    assert "re-authenticate" in str(caught.value)


async def test_bmw_unreachable(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """A network failure is reported as BMW being unreachable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    runtime = _runtime(entry)
    runtime.action_client = CarDataClient(
        async_get_clientsession(hass),
        runtime.tokens.async_get_access_token,
        base_url=f"http://127.0.0.1:{closed_port}",
        before_request=runtime.budget.request_hook(automatic=False),
    )

    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, "fetch_basic_data", vin=VIN_BEV)

    assert caught.value.translation_key == "action_cannot_connect"
    assert "cannot be reached" in str(caught.value)


async def test_telematic_data_without_container(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """Before the container exists there is nothing to ask, and nothing is spent."""
    _runtime(entry).cache.clear_container()
    used, _ = await _used(sim)

    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, entry, "fetch_telematic_data", vin=VIN_BEV)

    assert caught.value.translation_key == "action_no_container"
    assert (await _used(sim))[0] == used


async def test_non_object_answer_is_wrapped(
    hass: HomeAssistant, sim: SimulatorHandle, entry: MockConfigEntry
) -> None:
    """Home Assistant responses are objects: an array where BMW promised an object is wrapped."""
    await sim.fault("tyre_diagnosis", status=200, body=[{"label": "Mounted"}])

    response = await _call(hass, entry, "fetch_tyre_diagnosis", vin=VIN_BEV)

    assert response == {"data": [{"label": "Mounted"}]}


@pytest.mark.parametrize("language", ["en", "de"])
async def test_actions_are_described(
    hass: HomeAssistant, entry: MockConfigEntry, language: str
) -> None:
    """Every action has a car picker, a translated name, and says what it costs."""
    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    texts = await async_get_translations(hass, language, "services", [DOMAIN])
    cost = {"en": "daily CarData API requests", "de": "täglichen CarData-API-Anfragen"}[language]

    assert {action.name for action in ACTIONS} == descriptions.keys()
    for action in ACTIONS:
        prefix = f"component.{DOMAIN}.services.{action.name}"
        assert texts[f"{prefix}.name"]
        assert cost in texts[f"{prefix}.description"]
        fields = descriptions[action.name]["fields"]
        car_picker = fields["device_id"]["selector"]["device"]
        assert car_picker["filter"] == [{"integration": DOMAIN}]
        assert not car_picker.get("multiple")
        assert fields["config_entry_id"]["selector"] == {"config_entry": {"integration": DOMAIN}}
        # Picking the car is enough: nothing else is required.
        assert not any(field.get("required") for field in fields.values())
        for field in fields:
            assert texts[f"{prefix}.fields.{field}.name"]
            assert texts[f"{prefix}.fields.{field}.description"]
    all_pages = texts[
        f"component.{DOMAIN}.services.fetch_charging_history.fields.all_pages.description"
    ]
    assert {"en": "each page costs one request", "de": "jede Seite kostet eine Anfrage"}[
        language
    ] in all_pages
