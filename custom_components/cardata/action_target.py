"""Which account and which car an action call names.

A call picks the car as a device (the account follows from it), names it by VIN (for
scripts written before devices could be picked), or names neither for the account-wide
action. `config_entry_id` is needed only when the car alone does not decide the account:
several accounts are loaded and no picked car or known VIN says which one.

Every refusal is a translated ServiceValidationError raised before any request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, cast

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN
from .runtime import CarDataConfigEntry
from .vehicle import redact_vin

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_VIN: Final = "vin"


def _refusal(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


def _is_loaded(entry: ConfigEntry) -> bool:
    return entry.state is ConfigEntryState.LOADED


def _reads(entry: ConfigEntry, vin: str) -> bool:
    """Whether a loaded entry reads `vin` as the car's primary user."""
    return vin in cast(CarDataConfigEntry, entry).runtime_data.coordinator.vehicles


def _named_entry(hass: HomeAssistant, entry_id: str) -> CarDataConfigEntry:
    """Return the entry `config_entry_id` names; it must be a loaded BMW CarData entry."""
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise _refusal("action_entry_not_found", entry_id=entry_id)
    if not _is_loaded(entry):
        raise _refusal("action_entry_not_loaded", account=entry.title)
    return cast(CarDataConfigEntry, entry)


@dataclass(frozen=True, slots=True)
class _PickedCar:
    """What the device registry knows of the picked car."""

    vin: str
    name: str
    config_entry_ids: frozenset[str]


def _picked_car(hass: HomeAssistant, device_id: str) -> _PickedCar:
    """Return the picked car; the device must be a car this integration added."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise _refusal("action_device_not_found", device_id=device_id)
    name = device.name_by_user or device.name or device_id
    vin = next((ident for domain, ident in device.identifiers if domain == DOMAIN), None)
    if vin is None:
        raise _refusal("action_device_not_a_vehicle", device=name)
    return _PickedCar(vin, name, _owning_entries(device))


def _owning_entries(device: object) -> frozenset[str]:
    """Return the config entries a device belongs to, the way this Home Assistant says it.

    Newer releases give a device one owning entry (`config_entry_id`) and report reading
    `config_entries` as deprecated; older ones (2025.4) have only `config_entries`.
    """
    if hasattr(device, "config_entry_id"):
        owner = getattr(device, "config_entry_id", None)
        return frozenset({owner}) if isinstance(owner, str) else frozenset()
    entries = getattr(device, "config_entries", ())
    return frozenset(entry for entry in entries if isinstance(entry, str))


def _entry_of_car(hass: HomeAssistant, car: _PickedCar) -> CarDataConfigEntry:
    """Return the loaded account a picked car belongs to."""
    entries = [
        entry
        for entry_id in car.config_entry_ids
        if (entry := hass.config_entries.async_get_entry(entry_id)) is not None
        and entry.domain == DOMAIN
    ]
    loaded = [entry for entry in entries if _is_loaded(entry)]
    if not loaded:
        if entries:
            raise _refusal("action_entry_not_loaded", account=entries[0].title)
        # A device the registry still keeps after its account was removed.
        raise _refusal("action_device_not_a_vehicle", device=car.name)
    # BMW serves a car to its one primary user only, so at most one account reads it.
    reading = [entry for entry in loaded if _reads(entry, car.vin)]
    return cast(CarDataConfigEntry, (reading or loaded)[0])


def _only_entry(hass: HomeAssistant, vin: str | None) -> CarDataConfigEntry:
    """Return the account when the call names none: the one loaded, or the one reading `vin`."""
    loaded = [entry for entry in hass.config_entries.async_entries(DOMAIN) if _is_loaded(entry)]
    if not loaded:
        raise _refusal("action_no_account_loaded")
    if vin is not None:
        reading = [entry for entry in loaded if _reads(entry, vin)]
        if len(reading) == 1:
            return cast(CarDataConfigEntry, reading[0])
    if len(loaded) == 1:
        return cast(CarDataConfigEntry, loaded[0])
    raise _refusal("action_account_ambiguous", accounts=", ".join(entry.title for entry in loaded))


def _resolve(call: ServiceCall) -> tuple[CarDataConfigEntry, str | None]:
    """Return the call's account and car (None when the call names no car)."""
    hass = call.hass
    device_id: str | None = call.data.get(ATTR_DEVICE_ID) or None
    entry_id: str | None = call.data.get(ATTR_CONFIG_ENTRY_ID) or None
    vin: str | None = call.data.get(ATTR_VIN) or None
    car: _PickedCar | None = None
    if device_id is not None:
        car = _picked_car(hass, device_id)
        if vin is not None and vin != car.vin:
            raise _refusal(
                "action_device_vin_mismatch",
                device=car.name,
                device_vin=redact_vin(car.vin),
                vin=redact_vin(vin),
            )
        vin = car.vin
    if entry_id is not None:
        entry = _named_entry(hass, entry_id)
    elif car is not None:
        entry = _entry_of_car(hass, car)
    else:
        entry = _only_entry(hass, vin)
    return entry, vin


def account_of_call(call: ServiceCall) -> CarDataConfigEntry:
    """Return the loaded account an account-wide action asks about."""
    entry, _vin = _resolve(call)
    return entry


def vehicle_of_call(call: ServiceCall) -> tuple[CarDataConfigEntry, str]:
    """Return the loaded account and the car a vehicle action asks about.

    The account must read the car as its primary user: BMW serves no other car.
    """
    if not (call.data.get(ATTR_DEVICE_ID) or call.data.get(ATTR_VIN)):
        raise _refusal("action_vehicle_missing")
    entry, vin = _resolve(call)
    if vin is None or not _reads(entry, vin):
        raise _refusal("action_unknown_vehicle", vin=vin or "", account=entry.title)
    return entry, vin
