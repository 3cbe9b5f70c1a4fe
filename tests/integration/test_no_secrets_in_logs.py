"""No token, refresh token, code verifier or device code reaches a log line or diagnostics.

One scenario walks through everything that handles secrets: a device flow, set-up, REST
polls, the stream, a token renewal with its reconnect, and a refused refresh that ends in a
reauthentication. Every log record (at DEBUG, the integration's and Home Assistant's) and the
token and stream diagnostics are then searched for every secret that was issued.
"""

from __future__ import annotations

from datetime import timedelta
import json
import logging

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest

from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.models import TokenGranted, TokenSet
from custom_components.cardata.const import CONF_TOKENS
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_wait_for

# The test harness's storage mock logs what is written, tokens included, by design.
HARNESS_LOGGERS = ("pytest_homeassistant_custom_component",)
_FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")


def secrets_of(tokens: TokenSet) -> set[str]:
    """Return the secrets of a token set."""
    return {tokens.access_token, tokens.id_token, tokens.refresh_token}


async def test_no_secret_reaches_a_log_line_or_diagnostics(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Log everything at DEBUG through a whole token life; no secret shows up anywhere."""
    caplog.set_level(logging.DEBUG)
    secrets: set[str] = set()

    auth = GcdmAuth(async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url)
    device = await auth.request_device_code()
    secrets |= {device.device_code, device.code_verifier}
    await sim.approve(device.user_code)
    outcome = await auth.poll_token(device)
    assert isinstance(outcome, TokenGranted)
    granted = outcome.tokens
    secrets |= secrets_of(granted)

    entry = await async_add_entry(hass, sim, tokens=granted)
    runtime = entry.runtime_data
    await async_wait_for(hass, lambda: runtime.stream.connected, "the stream to connect")
    await sim.set_telematics(fleet.VIN_BEV, {"vehicle.drivetrain.batteryManagement.header": 61})
    await async_wait_for(
        hass, lambda: runtime.stream.as_diagnostics()["messages_received"] > 0, "a message"
    )
    travel = TimeTravel(hass, sim, freezer, settled=lambda: runtime.stream.connected)
    await travel.async_advance(timedelta(minutes=51))
    renewed = TokenSet.from_dict(entry.data[CONF_TOKENS])
    assert renewed != granted
    secrets |= secrets_of(renewed)
    await async_wait_for(hass, lambda: runtime.stream.connected, "the stream to reconnect")

    # An old backup of Home Assistant uses the refresh token: ours is refused next time.
    elsewhere = await GcdmAuth(
        async_get_clientsession(hass), sim.client_id, base_url=sim.gcdm_url
    ).refresh(renewed)
    secrets |= secrets_of(elsewhere)
    await travel.async_advance(timedelta(minutes=51))
    assert runtime.tokens.reauth_required
    assert list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))

    texts = [
        _FORMATTER.format(record)
        for record in caplog.records
        if not record.name.startswith(HARNESS_LOGGERS)
    ]
    texts.append(json.dumps(runtime.tokens.as_diagnostics()))
    texts.append(json.dumps(runtime.stream.as_diagnostics()))
    # The scenario did log (at DEBUG, tokens renewed, a reauthentication asked for).
    assert any("Renewed the BMW CarData tokens" in text for text in texts)
    assert any("re-authenticate" in text for text in texts)
    assert all(len(secret) >= 32 for secret in secrets)
    # Name the leaking logger, not the secret.
    leaks = [
        (secret[:4] + "…", text.split(" ", 1)[0])
        for secret in secrets
        for text in texts
        if secret in text
    ]
    assert not leaks
