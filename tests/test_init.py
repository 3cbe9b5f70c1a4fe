"""The integration loads in Home Assistant."""

from __future__ import annotations

import json
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component
import pytest

from custom_components.cardata.const import DOMAIN

MANIFEST = Path(__file__).parents[1] / "custom_components" / DOMAIN / "manifest.json"


@pytest.mark.usefixtures("enable_custom_integrations")
async def test_integration_loads(hass: HomeAssistant) -> None:
    """Home Assistant finds the custom integration by its domain and sets it up."""
    integration = await async_get_integration(hass, DOMAIN)
    assert integration.name == "BMW CarData"
    assert integration.config_flow is True

    assert await async_setup_component(hass, DOMAIN, {})
    assert DOMAIN in hass.config.components


def test_manifest_declares_what_hacs_and_hassfest_need() -> None:
    """The manifest carries the keys HACS and hassfest insist on for a custom integration."""
    manifest = json.loads(MANIFEST.read_text())
    assert manifest["domain"] == DOMAIN
    assert manifest["iot_class"] == "cloud_push"
    assert manifest["integration_type"] == "hub"
    assert manifest["requirements"] == ["paho-mqtt>=2.1.0"]
    for key in ("version", "codeowners", "documentation", "issue_tracker"):
        assert manifest[key]
