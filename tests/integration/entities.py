"""Helpers the entity tests share: setting up some platforms, reading states, snapshots.

Snapshots use a version-independent picture of a platform's entities, so one snapshot file
holds for every supported Home Assistant version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.cardata.api.stream import StreamState
from custom_components.cardata.const import DOMAIN
from tests.simulator.handle import SimulatorHandle

from .common import async_add_entry, async_wait_for

# Attributes and states that carry the moment of a test run, not behaviour.
_VOLATILE_ATTRIBUTES = {"measured_at", "last_measured_at", "access_token", "entity_picture"}
# What newer Home Assistant versions add to every tracker: left out, so one snapshot fits all.
_VERSION_DEPENDENT = {"in_zones", "tracking_type"}


ALL_PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.DEVICE_TRACKER,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.SENSOR,
]


@asynccontextmanager
async def async_platforms_set_up(
    hass: HomeAssistant, sim: SimulatorHandle, platforms: list[Platform]
) -> AsyncIterator[MockConfigEntry]:
    """Set up account "main" with only `platforms`, wait for its stream, unload at the end."""
    with patch("custom_components.cardata.PLATFORMS", platforms):
        entry = await async_add_entry(hass, sim)
        await async_wait_for_stream(hass, entry)
        yield entry
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()


async def async_wait_for_stream(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait until the entry's stream is connected."""
    await async_wait_for(
        hass,
        lambda: entry.runtime_data.stream.status.state is StreamState.CONNECTED,
        "the stream",
    )


def entity_id(hass: HomeAssistant, domain: str, vin: str, key: str) -> str:
    """Return the entity id of a vehicle's entity from its unique id."""
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{vin}_{key}")
    assert found is not None, f"no {domain} {key} for {vin}"
    return found


def state_of(hass: HomeAssistant, domain: str, vin: str, key: str) -> str:
    """Return the state of a vehicle's entity."""
    state = hass.states.get(entity_id(hass, domain, vin, key))
    assert state is not None
    return state.state


async def async_reading(
    hass: HomeAssistant, entry: MockConfigEntry, vin: str, descriptor: str, value: Any
) -> None:
    """Wait until the coordinator holds `value` for the descriptor (it came through the stream)."""
    coordinator = entry.runtime_data.coordinator

    def arrived() -> bool:
        reading = coordinator.state(vin).get(descriptor)
        return reading is not None and reading.value == value

    await async_wait_for(hass, arrived, f"{descriptor} = {value!r}")
    await hass.async_block_till_done()


def _plain(value: Any) -> Any:
    """Turn enums, tuples and nested containers into plain JSON-like values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(_plain(key)): _plain(item) for key, item in sorted(value.items(), key=str)}
    return value


def entities_picture(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Return the entry's entities, registry and state, without what changes from run to run.

    Registry fields are picked by hand: the registry entry's own fields differ between
    Home Assistant versions.
    """
    registry = er.async_get(hass)
    picture: dict[str, Any] = {}
    for entity in sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda e: e.entity_id
    ):
        state = hass.states.get(entity.entity_id)
        shown: dict[str, Any] | None = None
        if state is not None:
            # Moments, and what a charging car's estimate made of the seconds since set-up.
            volatile_state = (
                entity.domain == "image"
                or entity.unique_id.endswith(("_last_stream_message", "_charged_energy"))
                or (
                    entity.unique_id.endswith("_estimated_state_of_charge")
                    and state.attributes.get("estimated") is True
                )
            )
            shown = {
                "state": "<moment>" if volatile_state and state.state != "unknown" else state.state,
                "attributes": {
                    str(_plain(key)): "<volatile>" if key in _VOLATILE_ATTRIBUTES else _plain(value)
                    for key, value in state.attributes.items()
                    if key not in _VERSION_DEPENDENT
                },
            }
        picture[entity.entity_id] = {
            "unique_id": entity.unique_id,
            "translation_key": entity.translation_key,
            "original_name": entity.original_name,
            "has_entity_name": entity.has_entity_name,
            "device_class": _plain(entity.original_device_class),
            "entity_category": _plain(entity.entity_category),
            "disabled_by": _plain(entity.disabled_by),
            "unit_of_measurement": entity.unit_of_measurement,
            "capabilities": _plain(
                {
                    key: value
                    for key, value in (entity.capabilities or {}).items()
                    if key not in _VERSION_DEPENDENT
                }
            ),
            "device": _device_name(hass, entity.device_id),
            "shown": shown,
        }
    return picture


def _device_name(hass: HomeAssistant, device_id: str | None) -> str | None:
    from homeassistant.helpers import device_registry as dr

    device = dr.async_get(hass).async_get(device_id) if device_id else None
    return device.name if device else None


async def async_enable_all(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Enable the entities disabled by default and reload, as a user would."""
    registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.disabled_by is not None:
            registry.async_update_entity(entity.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await async_wait_for_stream(hass, entry)


async def async_snapshot_platform(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Compare the entities with the snapshot: as set up, then every one enabled."""
    as_set_up = entities_picture(hass, entry)
    await async_enable_all(hass, entry)
    enabled = entities_picture(hass, entry)
    for picture in enabled.values():
        assert picture["shown"] is not None
    assert {"as_set_up": as_set_up, "all_enabled": enabled} == snapshot


@callback
def record_states(hass: HomeAssistant, entity_ids: Iterable[str]) -> dict[str, list[str]]:
    """Record every state the entities take from now on."""
    seen: dict[str, list[str]] = {entity: [] for entity in entity_ids}

    @callback
    def on_change(event: Event[EventStateChangedData]) -> None:
        new_state = event.data["new_state"]
        if event.data["entity_id"] in seen and new_state is not None:
            seen[event.data["entity_id"]].append(new_state.state)

    hass.bus.async_listen("state_changed", on_change)
    return seen
