"""The integration loads in Home Assistant."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component
import pytest

from custom_components.cardata.const import DOMAIN
from tests.conftest import DeprecationReports, is_deprecation_report

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


# The keys HACS's hacs.json schema accepts; any other key fails its `hacsjson` check.
HACS_JSON_KEYS = {
    "content_in_root",
    "country",
    "filename",
    "hacs",
    "hide_default_branch",
    "homeassistant",
    "persistent_directory",
    "render_readme",
    "zip_release",
    "name",
}
REPO_ROOT = MANIFEST.parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_repository_passes_hacs_store_checks() -> None:
    """What HACS's validation checks without any check skipped: license, hacs.json, brand.

    GitHub recognises the license from the LICENSE file (pyproject's `license` does not
    count); the brands check accepts an icon shipped in the integration's brand/ folder.
    """
    license_text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The BMW CarData for Home Assistant contributors" in license_text

    hacs = json.loads((REPO_ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert set(hacs) <= HACS_JSON_KEYS
    assert hacs["name"] == "BMW CarData"
    assert hacs["homeassistant"] == "2025.4.0"

    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        header = (MANIFEST.parent / "brand" / name).read_bytes()[:24]
        assert header.startswith(PNG_SIGNATURE)
        # The IHDR chunk: width and height, big-endian, right after the signature.
        assert int.from_bytes(header[16:20]) == int.from_bytes(header[20:24]) == size

    workflow = (REPO_ROOT / ".github" / "workflows" / "validate.yml").read_text(encoding="utf-8")
    assert "ignore:" not in workflow


@pytest.mark.usefixtures("enable_custom_integrations")
async def test_deprecation_guard_catches_a_report(
    hass: HomeAssistant,
    deprecation_reports: DeprecationReports,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The suite-wide guard sees Home Assistant reporting the integration's usage.

    Provoked the way Home Assistant reports an update listener next to a flow's reload;
    the guard's reports are taken here, so this test itself passes.
    """
    await async_get_integration(hass, DOMAIN)

    frame.report_usage(
        "has an update listener and should use it for scheduling a reload",
        core_behavior=frame.ReportBehavior.LOG,
        breaks_in_ha_version="2026.12.0",
        integration_domain=DOMAIN,
    )

    reports = deprecation_reports.take()
    assert any(report.startswith("report_usage: has an update listener") for report in reports)
    assert any("Detected that custom integration 'cardata'" in report for report in reports)
    (logged,) = [record for record in caplog.records if record.name == frame.__name__]
    assert is_deprecation_report(logged)


def test_deprecation_check_leaves_other_warnings_alone() -> None:
    """Ordinary warnings (a refused login, a budget block) are no deprecation reports."""
    record = logging.LogRecord(
        "custom_components.cardata", logging.WARNING, __file__, 1, "BMW refused", None, None
    )
    assert not is_deprecation_report(record)
    deprecated = logging.LogRecord(
        "homeassistant.const",
        logging.WARNING,
        __file__,
        1,
        "The deprecated constant %s was used from cardata",
        ("X",),
        None,
    )
    assert is_deprecation_report(deprecated)
    quiet = logging.LogRecord(
        "homeassistant.helpers.frame", logging.DEBUG, __file__, 1, "debug", None, None
    )
    assert not is_deprecation_report(quiet)
