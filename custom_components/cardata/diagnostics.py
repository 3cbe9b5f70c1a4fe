"""The diagnostics download of a BMW CarData account, without secrets or personal data.

It holds what explains most problems: the entry, the token lifetimes, the request budget,
the stream's state and recent disconnects, the telematics container, and per vehicle the
latest descriptor values. Tokens, the client id and the GCID are redacted; VINs become
`vehicle_1`, `vehicle_2`, ... (as keys too), positions and street addresses are removed. A last pass
replaces any of those strings wherever else they appear (an error text, say), because a
diagnostics file is usually attached to a public issue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_UNIQUE_ID
from homeassistant.core import HomeAssistant

from .const import CONF_CLIENT_ID, CONF_GCID, CONF_TOKENS
from .containers import REST_DESCRIPTORS, descriptor_signature
from .runtime import CarDataConfigEntry
from .vehicle import DescriptorState, Vehicle

TO_REDACT: Final = {
    "access_token",
    "id_token",
    "refresh_token",
    CONF_TOKENS,
    CONF_CLIENT_ID,
    CONF_GCID,
    CONF_UNIQUE_ID,
    "vin",
    "latitude",
    "longitude",
    "mapMatchedLatitude",
    "mapMatchedLongitude",
    # The stream's message envelope names the GCID so.
    "entityId",
    # Derived from the GCID: stable per account, so it identifies one.
    "mqtt_client_id",
    # Where the car charged (charging history): the street, not only the town.
    "formattedAddress",
    "streetAddress",
    "postalCode",
}
# Every descriptor of the vehicle's position (latitude, longitude, heading, altitude).
POSITION_DESCRIPTOR_PREFIX: Final = "vehicle.cabin.infotainment.navigation.currentLocation."


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: CarDataConfigEntry
) -> dict[str, Any]:
    """Return the diagnostics of one BMW account."""
    diagnostics: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "state": entry.state.value,
            "version": entry.version,
            "unique_id": entry.unique_id,
            "data": dict(entry.data),
            "options": dict(entry.options),
        }
    }
    if entry.state is ConfigEntryState.LOADED:
        diagnostics.update(_runtime_diagnostics(entry, _vehicle_aliases(entry)))
    redacted: dict[str, Any] = redact_personal_data(entry, diagnostics)
    return redacted


def redact_personal_data(entry: CarDataConfigEntry, data: Any) -> Any:
    """Return `data` (BMW's JSON, say) without the account's secrets and personal data.

    The one redaction of this integration, for the diagnostics and for log lines alike:
    the keys of TO_REDACT are redacted, and every VIN of the account, its GCID and its
    tokens are replaced wherever they appear (VINs become `vehicle_<n>`).
    """
    aliases = _vehicle_aliases(entry) if entry.state is ConfigEntryState.LOADED else {}
    return _scrub(async_redact_data(data, TO_REDACT), _replacements(entry, aliases))


def _runtime_diagnostics(entry: CarDataConfigEntry, aliases: Mapping[str, str]) -> dict[str, Any]:
    """Return what the running account knows about itself."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    plan = coordinator.polling
    return {
        "login": runtime.tokens.as_diagnostics(),
        "budget": runtime.budget.as_diagnostics(),
        "stream": runtime.stream.as_diagnostics(),
        "polling": {
            "last_update_success": coordinator.last_update_success,
            "last_error": str(coordinator.last_exception) if coordinator.last_exception else None,
            "next_poll_at": _iso(coordinator.next_poll_at),
            "last_stream_message_at": _iso(coordinator.last_stream_message_at),
            "tick_seconds": plan.tick.total_seconds() if plan else None,
            "per_vehicle_seconds": plan.per_vehicle.total_seconds() if plan else None,
        },
        "container": _container_diagnostics(entry),
        "mappings": [
            {
                "vehicle": aliases[mapping.vin],
                "mapping_type": mapping.mapping_type,
                "mapped_since": _iso(mapping.mapped_since),
            }
            for mapping in runtime.cache.mappings or ()
        ],
        "vehicles": {
            aliases[vin]: _vehicle_diagnostics(entry, vehicle)
            for vin, vehicle in coordinator.vehicles.items()
        },
    }


def _container_diagnostics(entry: CarDataConfigEntry) -> dict[str, Any]:
    """Return which telematics container REST reads, and whether it fits this version."""
    cache = entry.runtime_data.cache
    expected = descriptor_signature(REST_DESCRIPTORS)
    if cache.container_id is None:
        state = "missing"
    elif cache.container_signature != expected:
        state = "outdated"
    else:
        state = "ready"
    return {
        "state": state,
        "id": cache.container_id,
        "signature": cache.container_signature,
        "expected_signature": expected,
        "descriptors": len(REST_DESCRIPTORS),
    }


def _vehicle_diagnostics(entry: CarDataConfigEntry, vehicle: Vehicle) -> dict[str, Any]:
    """Return what is known about one vehicle, its position left out."""
    coordinator = entry.runtime_data.coordinator
    basic_data = vehicle.basic_data.raw if vehicle.basic_data else None
    return {
        "name": vehicle.name,
        "mapping_type": vehicle.mapping.mapping_type,
        "mapped_since": _iso(vehicle.mapping.mapped_since),
        "basic_data": dict(basic_data) if isinstance(basic_data, Mapping) else basic_data,
        "last_rest_fetch": _iso(coordinator.last_rest_fetch(vehicle.vin)),
        "descriptors": {
            descriptor: _descriptor_diagnostics(descriptor, state)
            for descriptor, state in sorted(coordinator.state(vehicle.vin).items())
        },
    }


def _descriptor_diagnostics(descriptor: str, state: DescriptorState) -> dict[str, Any]:
    """Return one descriptor's latest value with unit, time and source."""
    position = descriptor.startswith(POSITION_DESCRIPTOR_PREFIX)
    return {
        "value": REDACTED if position else state.value,
        "raw_value": REDACTED if position else state.raw_value,
        "unit": state.unit,
        "timestamp": _iso(state.timestamp),
        "measured": state.measured,
        "source": state.source,
        "received_at": _iso(state.received_at),
    }


def _vehicle_aliases(entry: CarDataConfigEntry) -> dict[str, str]:
    """Name every VIN of the account `vehicle_<n>`, in VIN order."""
    runtime = entry.runtime_data
    vins = set(runtime.coordinator.vehicles)
    vins.update(mapping.vin for mapping in runtime.cache.mappings or ())
    return {vin: f"vehicle_{number}" for number, vin in enumerate(sorted(vins), start=1)}


def _replacements(entry: CarDataConfigEntry, aliases: Mapping[str, str]) -> dict[str, str]:
    """Return each secret string of the account with what replaces it."""
    replacements = dict(aliases)
    secrets: list[Any] = [entry.data.get(CONF_CLIENT_ID), entry.data.get(CONF_GCID)]
    stored_tokens = entry.data.get(CONF_TOKENS)
    if isinstance(stored_tokens, Mapping):
        secrets.extend(
            stored_tokens.get(key) for key in ("access_token", "id_token", "refresh_token")
        )
    if entry.state is ConfigEntryState.LOADED:
        current = entry.runtime_data.tokens.tokens
        secrets.extend(
            (current.access_token, current.id_token, current.refresh_token, current.gcid)
        )
    replacements.update(_secret_replacements(secrets))
    return replacements


def _secret_replacements(secrets: Iterable[Any]) -> dict[str, str]:
    return {secret: REDACTED for secret in secrets if isinstance(secret, str) and secret}


def _scrub(value: Any, replacements: Mapping[str, str]) -> Any:
    """Replace every secret string in keys and values, however deeply nested."""
    if isinstance(value, str):
        for secret, replacement in replacements.items():
            value = value.replace(secret, replacement)
        return value
    if isinstance(value, Mapping):
        return {
            _scrub(key, replacements): _scrub(item, replacements) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, replacements) for item in value]
    return value


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
