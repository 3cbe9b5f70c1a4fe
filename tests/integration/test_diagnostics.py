"""The diagnostics download: everything that explains a problem, nothing that identifies anyone."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.cardata.api.errors import CarDataConnectionError
from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import DOMAIN
from custom_components.cardata.diagnostics import async_get_config_entry_diagnostics
from custom_components.cardata.runtime import CarDataRuntimeData
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import ENTRY_TITLE, async_add_entry, async_wait_for

REDACTED = "**REDACTED**"
SOC = "vehicle.drivetrain.batteryManagement.header"
POSITION = "vehicle.cabin.infotainment.navigation.currentLocation."
LATITUDE = POSITION + "latitude"
LONGITUDE = POSITION + "longitude"


def _runtime(entry: MockConfigEntry) -> CarDataRuntimeData:
    runtime: CarDataRuntimeData = entry.runtime_data
    return runtime


def _connected(entry: MockConfigEntry) -> bool:
    return _runtime(entry).stream.status.state is StreamState.CONNECTED


def _secrets(sim: SimulatorHandle, entry: MockConfigEntry) -> dict[str, str]:
    """What must not appear anywhere in the download, by what it is."""
    current = _runtime(entry).tokens.tokens
    stored = entry.data["tokens"]
    secrets = {
        "access token": current.access_token,
        "id token": current.id_token,
        "refresh token": current.refresh_token,
        "stored access token": stored["access_token"],
        "stored id token": stored["id_token"],
        "stored refresh token": stored["refresh_token"],
        "client id": sim.client_id,
        "GCID": sim.gcid,
    }
    secrets.update({f"VIN {vin}": vin for vin in fleet.VEHICLES})
    coordinator = _runtime(entry).coordinator
    for vin in coordinator.vehicles:
        for descriptor in (LATITUDE, LONGITUDE):
            if (state := coordinator.state(vin).get(descriptor)) and state.raw_value is not None:
                secrets[f"{descriptor} of {vin}"] = str(state.raw_value)
    return secrets


async def test_diagnostics_content_without_secrets(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, sim: SimulatorHandle
) -> None:
    """Budget, stream, container and descriptor values are there; tokens, ids, VINs, places not."""
    entry = await async_add_entry(hass, sim)
    await async_wait_for(hass, lambda: _connected(entry), "the stream")
    await sim.set_telematics(
        fleet.VIN_BEV, {LATITUDE: 48.123456, LONGITUDE: 11.654321, SOC: {"value": 64, "unit": "%"}}
    )
    coordinator = _runtime(entry).coordinator
    await async_wait_for(
        hass,
        lambda: coordinator.state(fleet.VIN_BEV)[LATITUDE].value == 48.123456,
        "the position from the stream",
    )
    # A reconnect leaves a reason behind; an error text may quote a VIN.
    await sim.drop_stream()
    await async_wait_for(
        hass, lambda: bool(_runtime(entry).stream.as_diagnostics()["recent_disconnects"]), "a drop"
    )
    await async_wait_for(hass, lambda: _connected(entry), "the reconnect")
    coordinator.last_exception = CarDataConnectionError(
        f"GET {sim.api_url}/customers/vehicles/{fleet.VIN_PHEV}/telematicData: timeout"
    )

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    dump = json.dumps(diagnostics, ensure_ascii=False)
    for what, secret in _secrets(sim, entry).items():
        assert secret not in dump, f"the diagnostics show the {what}"
    assert "48.123456" not in dump
    assert "11.654321" not in dump

    assert diagnostics["entry"]["title"] == ENTRY_TITLE
    assert diagnostics["entry"]["data"] == {
        "client_id": REDACTED,
        "gcid": REDACTED,
        "tokens": REDACTED,
    }
    assert diagnostics["entry"]["unique_id"] == REDACTED
    assert diagnostics["entry"]["options"] == dict(entry.options)

    budget = diagnostics["budget"]
    assert budget["daily_limit"] == 50
    assert budget["spent_last_24h"] == (await sim.calls())[sim.gcid]["used"]
    assert budget["remaining"] == 50 - budget["spent_last_24h"]

    stream = diagnostics["stream"]
    assert stream["state"] == "connected"
    assert stream["messages_received"] >= 3
    assert stream["mqtt_client_id"] == REDACTED
    assert stream["recent_disconnects"][0]["reason"]
    assert any(status["state"] == "connected" for status in stream["recent_statuses"])

    assert diagnostics["login"]["reauth_required"] is False
    assert "cardata:api:read" in diagnostics["login"]["scope"]

    container = diagnostics["container"]
    assert container["state"] == "ready"
    assert container["id"] == _runtime(entry).cache.container_id
    assert container["signature"] == container["expected_signature"]

    assert diagnostics["polling"]["last_error"] == (
        f"GET {sim.api_url}/customers/vehicles/vehicle_2/telematicData: timeout"
    )
    assert diagnostics["mappings"] == [
        {
            "vehicle": "vehicle_1",
            "mapping_type": "PRIMARY",
            "mapped_since": "2023-02-14T08:21:37+00:00",
        },
        {
            "vehicle": "vehicle_2",
            "mapping_type": "PRIMARY",
            "mapped_since": "2024-03-11T09:15:00+00:00",
        },
        {
            "vehicle": "vehicle_3",
            "mapping_type": "SECONDARY",
            "mapped_since": "2025-05-20T17:02:11+00:00",
        },
    ]

    vehicles: dict[str, Any] = diagnostics["vehicles"]
    assert vehicles.keys() == {"vehicle_1", "vehicle_2"}
    bev = vehicles["vehicle_1"]
    assert bev["mapping_type"] == "PRIMARY"
    assert bev["basic_data"]["modelName"] == "i4 eDrive40"
    assert bev["last_rest_fetch"] is not None
    soc = bev["descriptors"][SOC]
    assert soc["value"] == 64
    assert soc["unit"] == "%"
    assert soc["source"] == "stream"
    assert soc["timestamp"]
    latitude = bev["descriptors"][LATITUDE]
    assert latitude["source"] == "stream"
    for vehicle in vehicles.values():
        positions = [
            state for name, state in vehicle["descriptors"].items() if name.startswith(POSITION)
        ]
        assert len(positions) == 4  # latitude, longitude, heading, altitude
        assert all(state["value"] == state["raw_value"] == REDACTED for state in positions)
    rest_only = bev["descriptors"]["vehicle.drivetrain.electricEngine.charging.hvStatus"]
    assert rest_only["source"] == "rest"


async def test_diagnostics_of_an_entry_that_is_not_loaded(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """An account that is not running still shows its (redacted) entry, and nothing else."""
    entry = await async_add_entry(hass, sim)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)

    assert diagnostics.keys() == {"entry"}
    assert diagnostics["entry"]["state"] == "not_loaded"
    dump = json.dumps(diagnostics)
    for secret in (sim.gcid, sim.client_id, entry.data["tokens"]["refresh_token"]):
        assert secret not in dump


async def test_diagnostics_tell_container_trouble(
    hass: HomeAssistant, sim: SimulatorHandle
) -> None:
    """A container of an older descriptor set, or none at all, shows as such."""
    entry = await async_add_entry(hass, sim)
    cache = _runtime(entry).cache

    cache.set_container("ABCDEFGHIJKLM", "0123456789abcdef")
    outdated = (await async_get_config_entry_diagnostics(hass, entry))["container"]
    cache.clear_container()
    missing = (await async_get_config_entry_diagnostics(hass, entry))["container"]

    assert outdated["state"] == "outdated"
    assert outdated["id"] == "ABCDEFGHIJKLM"
    assert outdated["signature"] != outdated["expected_signature"]
    assert missing["state"] == "missing"
    assert missing["id"] is None


async def test_diagnostics_of_an_entry_with_damaged_data(hass: HomeAssistant) -> None:
    """An entry whose stored login is damaged still downloads, with its ids redacted."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=ENTRY_TITLE,
        unique_id=fleet.GCID_MAIN,
        data={"client_id": fleet.CLIENT_FULL, "gcid": fleet.GCID_MAIN, "tokens": "damaged"},
    )
    entry.add_to_hass(hass)

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)

    assert diagnostics["entry"]["data"] == {
        "client_id": REDACTED,
        "gcid": REDACTED,
        "tokens": REDACTED,
    }
    dump = json.dumps(diagnostics)
    assert fleet.GCID_MAIN not in dump
    assert fleet.CLIENT_FULL not in dump
