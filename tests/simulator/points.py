"""One telematics data point as the simulator stores it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class TelematicPoint:
    """A descriptor's value, its unit (None when BMW sends none) and its measurement time."""

    value: Any
    unit: str | None
    timestamp: datetime | None
