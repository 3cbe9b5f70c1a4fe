"""Constants of the BMW CarData integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "cardata"
