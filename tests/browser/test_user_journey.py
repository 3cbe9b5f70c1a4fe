"""The user's journey in a real browser: add BMW CarData to a real Home Assistant.

scripts/develop starts the simulator and Home Assistant; Chromium logs in through the real
login page, adds the integration from Settings, follows the link to the simulator's
verification page, approves, watches the dialog finish by itself, and finds the car's state
of charge on its device page and on the development dashboard. Every step leaves a
screenshot in artifacts/browser/. At the end Ctrl-C must stop everything.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
import urllib.request

import pytest

from tests.simulator.fleet import VIN_BEV

from .conftest import DevInstance

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from .conftest import Screenshots

# One poll interval of the device flow (5 s), reading the vehicles, and a slow machine.
FLOW_FINISH_TIMEOUT_MS = 60_000
LOGIN_TIMEOUT_MS = 60_000
# A stream message reaches the page in well under a second; allow for a busy machine.
STREAM_TIMEOUT_MS = 20_000
SOC_DESCRIPTORS = (
    "vehicle.drivetrain.batteryManagement.header",
    "vehicle.powertrain.electric.battery.stateOfCharge.displayed",
)


def _log_in(page: Page, dev: DevInstance, screenshots: Screenshots) -> None:
    """Log in as the development user through Home Assistant's login page."""
    page.goto(dev.url)
    page.get_by_role("textbox", name="Username").fill("dev")
    page.get_by_role("textbox", name="Password").fill("dev")
    screenshots.take(page, "login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/auth/" not in url, timeout=LOGIN_TIMEOUT_MS)
    page.get_by_role("link", name="Settings").wait_for()


def _cardata_entries(page: Page) -> list[dict[str, Any]]:
    """The cardata config entries, asked over the frontend's own websocket connection."""
    entries: list[dict[str, Any]] = page.evaluate(
        """() => document.querySelector("home-assistant").hass.callWS(
               {type: "config_entries/get", domain: "cardata"})"""
    )
    return entries


def _set_state_of_charge(dev: DevInstance, vin: str, percent: int) -> None:
    """Let the simulated car report a new state of charge (it goes out on the stream)."""
    request = urllib.request.Request(  # noqa: S310 - the simulator's control URL on 127.0.0.1
        f"{dev.ready['control_url']}/vehicles/{vin}/telematics",
        data=json.dumps(dict.fromkeys(SOC_DESCRIPTORS, percent)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


@pytest.mark.timeout(900)
def test_add_bmw_cardata_in_the_browser(
    dev_instance: DevInstance, context: BrowserContext, screenshots: Screenshots
) -> None:
    """Settings -> Add integration -> client id -> approve at BMW -> the car's charge.

    Then Ctrl-C and scripts/develop once more: still logged in, the charge shown at once.
    """
    from playwright.sync_api import expect

    dev = dev_instance
    client_id = dev.ready["client_id"]
    # scripts/develop tells the developer where to go and what to paste.
    assert f"http://localhost:{dev.port}" in dev.banner
    assert client_id in dev.banner

    page = context.new_page()
    _log_in(page, dev, screenshots)

    # Settings -> Devices & services -> Add integration -> BMW CarData.
    page.get_by_role("link", name="Settings").click()
    devices_and_services = page.get_by_role("link", name=re.compile(r"^Devices & services"))
    devices_and_services.wait_for()
    screenshots.take(page, "settings")
    devices_and_services.click()
    page.get_by_role("button", name="Add integration").click()
    page.get_by_placeholder("Search for a brand name").fill("BMW CarData")
    brand = page.get_by_role("button", name="BMW CarData", exact=True)
    brand.wait_for()
    screenshots.take(page, "add-integration")
    brand.click()

    page.get_by_role("textbox", name=re.compile(r"^Client ID")).fill(client_id)
    screenshots.take(page, "client-id")
    page.get_by_role("button", name="Submit").click()

    # The progress step shows BMW's code and a link to BMW's (here: the simulator's) login.
    link = page.locator('a[href*="/oneid/link?user_code="]')
    link.wait_for()
    match = re.search(r"user_code=([\w-]+)", link.get_attribute("href") or "")
    assert match is not None
    user_code = match.group(1)
    expect(page.get_by_text(user_code, exact=True)).to_be_visible()
    screenshots.take(page, "waiting-for-approval")

    with context.expect_page() as opened:
        link.click()
    verification = opened.value
    verification.wait_for_load_state()
    assert verification.url.startswith(dev.ready["gcdm_url"])
    expect(verification.locator("#user_code")).to_have_value(user_code)
    screenshots.take(verification, "verification-page")
    verification.locator("#approve").click()
    expect(verification.locator("#result")).to_contain_text("Success")
    screenshots.take(verification, "approved")
    verification.close()

    # Nothing is clicked in Home Assistant now: the dialog continues by itself and offers
    # to name the cars it found.
    page.bring_to_front()
    expect(page.get_by_role("textbox", name="Device name").first).to_have_value(
        "BMW i4 eDrive40", timeout=FLOW_FINISH_TIMEOUT_MS
    )
    screenshots.take(page, "flow-finished")
    entries = _cardata_entries(page)
    assert [(entry["title"], entry["state"]) for entry in entries] == [
        ("BMW i4 eDrive40, BMW X5 xDrive50e", "loaded")
    ]
    page.get_by_role("button", name="Skip and finish").click()

    # The integration's page lists the cars; the i4's device page shows its charge, which
    # the first REST poll brought, then what the car streams.
    page.get_by_role("button", name=re.compile(r"^BMW i4 eDrive40")).click()
    state_of_charge = page.locator("hui-generic-entity-row").filter(
        has=page.get_by_text("State of charge", exact=True)
    )
    expect(state_of_charge).to_contain_text(re.compile(r"\d+\s?%"))
    state_of_charge.scroll_into_view_if_needed()
    screenshots.take(page, "device-page")
    _set_state_of_charge(dev, VIN_BEV, 63)
    expect(state_of_charge).to_contain_text("63", timeout=STREAM_TIMEOUT_MS)
    screenshots.take(page, "device-page-streamed")

    # The development dashboard finds every entity it names.
    page.get_by_role("link", name="BMW CarData", exact=True).click()
    expect(page.locator("hui-gauge-card").first).to_be_visible()
    expect(page.locator("hui-map-card ha-entity-marker").first).to_be_visible()
    expect(page.locator("hui-warning")).to_have_count(0)
    screenshots.take(page, "dashboard")
    page.close()

    # Ctrl-C stops scripts/develop, Home Assistant and the simulator.
    started = sorted(
        "simulator" if "tests.simulator" in cmdline else "home assistant"
        for cmdline in dev.processes.values()
    )
    assert started == ["home assistant", "simulator"]
    assert dev.interrupt() == 130  # 128 + SIGINT, as a shell reports Ctrl-C
    assert dev.left_running() == {}
    assert "develop: stopped" in dev.output()

    # Started again, the instance is still logged in at BMW: the simulator remembered the
    # tokens, so no re-authentication is asked, and the car shows its last charge at once.
    again = DevInstance(dev.config_dir, dev.port, dev.log_path.with_name("develop-restart.log"))
    try:
        again.wait_until_ready()
        page = context.new_page()
        page.goto(f"{again.url}/config/integrations/integration/cardata")
        if "/auth/" in page.url:
            _log_in(page, again, screenshots)
            page.goto(f"{again.url}/config/integrations/integration/cardata")
        page.get_by_role("button", name=re.compile(r"^BMW i4 eDrive40")).wait_for()
        page.wait_for_function(
            """() => document.querySelector("home-assistant").hass.callWS(
                   {type: "config_entries/get", domain: "cardata"}
               ).then(entries => entries.every(entry => entry.state === "loaded"))""",
            timeout=FLOW_FINISH_TIMEOUT_MS,
        )
        assert [entry["state"] for entry in _cardata_entries(page)] == ["loaded"]
        flows: list[dict[str, Any]] = page.evaluate(
            """() => document.querySelector("home-assistant").hass.callWS(
                   {type: "config_entries/flow/progress"})"""
        )
        assert [flow for flow in flows if flow.get("handler") == "cardata"] == []
        page.get_by_role("button", name=re.compile(r"^BMW i4 eDrive40")).click()
        state_of_charge = page.locator("hui-generic-entity-row").filter(
            has=page.get_by_text("State of charge", exact=True)
        )
        expect(state_of_charge).to_contain_text("63")
        state_of_charge.scroll_into_view_if_needed()
        screenshots.take(page, "after-restart")
        page.close()
        assert again.interrupt() == 130
        assert again.left_running() == {}
    finally:
        again.keep_logs(dev.log_path.parent)
        again.kill_everything()
