"""The user's journey in a real browser: add BMW CarData to a real Home Assistant, use it.

scripts/develop starts the simulator and Home Assistant; Chromium logs in through the real
login page, adds the integration from Settings, follows the link to the simulator's
verification page, approves, watches the dialog finish by itself, and finds the car's state
of charge on its device page and on the development dashboard. After a restart it builds an
automation on the charging status in the automation editor, lets the car charge, reads in
the automation's trace that it ran, and calls `cardata.fetch_basic_data` from the actions
page. Every step leaves a screenshot in artifacts/browser/. Ctrl-C must stop everything.
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
    from playwright.sync_api import BrowserContext, Locator, Page

    from .conftest import Screenshots

# One poll interval of the device flow (5 s), reading the vehicles, and a slow machine.
FLOW_FINISH_TIMEOUT_MS = 60_000
LOGIN_TIMEOUT_MS = 60_000
# A stream message reaches the page in well under a second; allow for a busy machine.
STREAM_TIMEOUT_MS = 20_000
# The editors load their dialogs on first use; on two shared cores that took up to 20 s.
EDITOR_TIMEOUT_MS = 60_000
# The charging scenario's first steps plug in and initialise; "charging active" follows.
CHARGING_STEP_SECONDS = 2.0
AUTOMATION_NAME = "i4 starts charging"
# Tall enough for every card of a car's device page at the window's width.
DEVICE_PAGE_HEIGHT = 2800
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


def _wait_until_loaded(page: Page) -> None:
    """Wait until every cardata entry is loaded (asked over the frontend's connection)."""
    page.evaluate(
        """async (timeout) => {
            const deadline = Date.now() + timeout;
            for (;;) {
                const entries = await document.querySelector("home-assistant").hass.callWS(
                    {type: "config_entries/get", domain: "cardata"});
                if (entries.length && entries.every(entry => entry.state === "loaded")) return;
                if (Date.now() > deadline) {
                    throw new Error("not loaded: " + entries.map(entry => entry.state));
                }
                await new Promise(resolve => setTimeout(resolve, 500));
            }
        }""",
        FLOW_FINISH_TIMEOUT_MS,
    )


def _control(dev: DevInstance, path: str, body: dict[str, Any]) -> None:
    """POST to the simulator's control API (what the banner's curl line does)."""
    request = urllib.request.Request(  # noqa: S310 - the simulator's control URL on 127.0.0.1
        f"{dev.ready['control_url']}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


def _set_state_of_charge(dev: DevInstance, vin: str, percent: int) -> None:
    """Let the simulated car report a new state of charge (it goes out on the stream)."""
    _control(dev, f"/vehicles/{vin}/telematics", dict.fromkeys(SOC_DESCRIPTORS, percent))


def _create_charging_automation(page: Page, dev: DevInstance, screenshots: Screenshots) -> None:
    """Settings -> Automations & scenes -> Create automation, all in the visual editor.

    When the i4's charging status changes to "Charging active" (a state the editor offers
    because the sensor is an enum), create a persistent notification.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError, expect

    page.goto(f"{dev.url}/config")
    page.get_by_role("link", name=re.compile(r"^Automations & scenes")).click()
    page.get_by_role("heading", name="Start automating").wait_for()
    page.get_by_role("button", name="Create automation").click()
    page.get_by_text("Create new automation").click()

    # When: the state of "Charging status" (BMW i4 eDrive40) changes to "Charging active".
    page.get_by_role("button", name="Add trigger").click()
    page.get_by_placeholder("Search").last.fill("State")
    page.get_by_text("State changed", exact=True).click()
    page.get_by_text("Select an entity", exact=False).click()
    page.get_by_placeholder("Search").last.fill("Charging status i4")
    # The picker is a dialog of list items on 2026.10 and an inline list of options on
    # 2026.11: either way, the one entry for the i4's charging status.
    entity = (
        page.get_by_role("dialog", name="Select option")
        .get_by_role("listitem")
        .or_(page.get_by_role("option").filter(has_text="Charging status"))
    )
    expect(entity).to_have_count(1, timeout=EDITOR_TIMEOUT_MS)
    expect(entity).to_contain_text("BMW i4 eDrive40")
    entity.click()
    # 2026.10 opens the "To" list from its label; 2026.11 from the second "State" field
    # (the first is "From").
    page.get_by_text("To (optional)", exact=True).click()
    charging_active = page.get_by_text("Charging active", exact=True)
    try:
        charging_active.wait_for(timeout=5000)
    except PlaywrightTimeoutError:
        page.get_by_text("State", exact=True).last.click()
    charging_active.click()
    expect(
        page.get_by_role("heading", name="State changed to Charging active")
        .or_(page.get_by_text("Charging active", exact=True))
        .first
    ).to_be_visible(timeout=EDITOR_TIMEOUT_MS)

    # Then: a persistent notification.
    page.get_by_role("button", name="Add action").click()
    page.get_by_placeholder("Search").last.fill("persistent notification")
    page.get_by_text(re.compile(r"Create persistent notification$")).click()
    # The message is the form's one enabled field (title and id are optional, off), once
    # the action picker and its search box have closed.
    expect(page.get_by_placeholder("Search")).to_have_count(0, timeout=EDITOR_TIMEOUT_MS)
    page.get_by_role("textbox", disabled=False).fill("The i4 started charging")
    screenshots.take(page, "automation-editor")

    page.get_by_role("button", name="Save").click()
    page.get_by_role("textbox", name=re.compile(r"^Name")).fill(AUTOMATION_NAME)
    page.get_by_role("button", name="Save").last.click()
    # Saved: the editor now offers the automation's traces.
    _traces(page).wait_for()
    screenshots.take(page, "automation-saved")


def _traces(page: Page) -> Locator:
    """The editor's way to the traces: a button on 2026.10, a link on 2026.11."""
    return (
        page.get_by_role("button", name="Traces").or_(page.get_by_role("link", name="Traces")).first
    )


def _check_automation_ran(page: Page, screenshots: Screenshots) -> None:
    """The automation's trace shows the trigger and the notification, both executed."""
    from playwright.sync_api import expect

    # The frontend's own copy of the automation's state says when it last ran.
    page.wait_for_function(
        """(name) => Object.values(document.querySelector("home-assistant").hass.states)
               .some(state => state.entity_id.startsWith("automation.")
                     && state.attributes.friendly_name === name
                     && state.attributes.last_triggered)""",
        arg=AUTOMATION_NAME,
        timeout=STREAM_TIMEOUT_MS + 10 * CHARGING_STEP_SECONDS * 1000,
    )
    _traces(page).click()
    expect(page.get_by_role("img", name=re.compile(r"Charging active, executed"))).to_be_visible(
        timeout=EDITOR_TIMEOUT_MS
    )
    expect(
        page.get_by_role("img", name=re.compile(r"Create persistent notification, executed"))
    ).to_be_visible()
    screenshots.take(page, "automation-trace")


def _fetch_basic_data(page: Page, screenshots: Screenshots) -> None:
    """Settings -> Tools -> Actions: cardata.fetch_basic_data, and BMW's answer shown."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name=re.compile(r"^Tools")).click()
    page.get_by_role("tab", name="Actions").click()
    page.get_by_text("Action", exact=True).click()
    page.get_by_placeholder("Search").last.fill("fetch basic data")
    page.get_by_text("cardata.fetch_basic_data", exact=True).click()
    # Pick the car (the account follows from it): the form's first optional field.
    # The checkbox's own input sits under the component's ripple: check it regardless.
    car_field = page.get_by_role("checkbox").first
    car_field.check(force=True)
    expect(car_field).to_be_checked()
    page.get_by_text("Select a device", exact=True).click()
    page.get_by_placeholder("Search").last.fill("i4")
    car = (
        page.get_by_role("dialog", name="Select option")
        .get_by_role("listitem")
        .or_(page.get_by_role("option").filter(has_text="BMW i4 eDrive40"))
    )
    expect(car).to_have_count(1, timeout=EDITOR_TIMEOUT_MS)
    car.click()
    expect(page.get_by_text("BMW i4 eDrive40", exact=True).first).to_be_visible()
    page.get_by_role("button", name="Perform action").click()
    # One REST request to the simulator, through the budget.
    expect(page.get_by_role("heading", name="Response")).to_be_visible(timeout=EDITOR_TIMEOUT_MS)
    response = page.get_by_role("textbox").last
    expect(response).to_contain_text("modelName: i4 eDrive40")
    expect(response).to_contain_text("driveTrain: BEV")
    response.scroll_into_view_if_needed()
    screenshots.take(page, "action-response")


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
    # The whole device page, for the README.
    screenshots.take_tall(page, "device-page-streamed", DEVICE_PAGE_HEIGHT)

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
        # Home Assistant may still be setting the entry up; the integration's page does not
        # always list an entry that finishes loading after it was drawn (2026.11), so it is
        # drawn again once the entry is loaded.
        page.wait_for_function(
            "() => document.querySelector('home-assistant')?.hass?.connection !== undefined"
        )
        _wait_until_loaded(page)
        page.reload()
        page.get_by_role("button", name=re.compile(r"^BMW i4 eDrive40")).wait_for()
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

        # The mission's end: an automation on the charge state, a charge, and an action.
        page.set_default_timeout(EDITOR_TIMEOUT_MS)
        _create_charging_automation(page, again, screenshots)
        _control(
            again,
            "/scenario",
            {"vin": VIN_BEV, "name": "charging", "step_seconds": CHARGING_STEP_SECONDS},
        )
        _check_automation_ran(page, screenshots)
        _fetch_basic_data(page, screenshots)
        page.close()
        assert again.interrupt() == 130
        assert again.left_running() == {}
    finally:
        again.keep_logs(dev.log_path.parent)
        again.kill_everything()
