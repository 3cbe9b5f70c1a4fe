"""The entry's title: the names of the account's PRIMARY vehicles, never a full VIN.

The title shows in the UI, in log lines and in repair issues, and those end up in bug
reports; a full VIN identifies a person's car.
"""

from __future__ import annotations

from collections.abc import Iterable
import re
from typing import Final

from .api.models import BasicData, VehicleMapping
from .vehicle import redact_vin

# A VIN: 17 letters and digits, without I, O and Q (ISO 3779).
_FULL_VIN: Final = re.compile(r"\b[A-HJ-NPR-Z0-9]{17}\b")


def vin_label(vin: str) -> str:
    """Name a vehicle BMW told nothing else about by the end of its VIN."""
    return f"VIN {redact_vin(vin)}"


def vehicle_name(mapping: VehicleMapping, basic_data: BasicData | None) -> str:
    """Name a vehicle by brand and model, falling back to the end of its VIN."""
    if basic_data is None or not basic_data.model_name:
        return vin_label(mapping.vin)
    if basic_data.brand and not basic_data.model_name.startswith(basic_data.brand):
        return f"{basic_data.brand} {basic_data.model_name}"
    return basic_data.model_name


def entry_title(names: Iterable[str]) -> str:
    """Join the vehicles' names into the entry's title."""
    return ", ".join(names)


def redact_title(title: str) -> str:
    """Shorten every full VIN in a title (entries named by older versions had them)."""
    return _FULL_VIN.sub(lambda match: vin_label(match.group()), title)
