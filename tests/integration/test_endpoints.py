"""The development switch: CARDATA_SIMULATOR points the integration at the simulator."""

from __future__ import annotations

import ssl

from homeassistant.core import HomeAssistant
import pytest

from custom_components.cardata.const import SIMULATOR_ENV
from custom_components.cardata.endpoints import (
    PRODUCTION,
    async_resolve_endpoints,
    async_stream_ssl_context,
)
from tests.simulator.handle import SimulatorHandle


async def test_switch_points_at_the_simulator(hass: HomeAssistant, sim: SimulatorHandle) -> None:
    """With the switch set (as scripts/develop and these tests do), every URL is the simulator's."""
    endpoints = await async_resolve_endpoints(hass)
    assert endpoints.is_simulator
    assert endpoints.api_url == sim.api_url
    assert endpoints.gcdm_url == sim.gcdm_url
    assert (endpoints.mqtt_host, endpoints.mqtt_port) == (sim.mqtt_host, sim.mqtt_port)
    context = await async_stream_ssl_context(hass, endpoints)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] == 1


async def test_without_switch_bmw_production(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production installs never set the switch and talk to BMW with the system's CA store."""
    monkeypatch.delenv(SIMULATOR_ENV)
    endpoints = await async_resolve_endpoints(hass)
    assert endpoints == PRODUCTION
    assert endpoints.api_url == "https://api-cardata.bmwgroup.com"
    assert endpoints.gcdm_url == "https://customer.bmwgroup.com"
    assert (endpoints.mqtt_host, endpoints.mqtt_port) == (
        "customer.streaming-cardata.bmwgroup.com",
        9000,
    )
    assert not endpoints.is_simulator
    context = await async_stream_ssl_context(hass, endpoints)
    assert context.verify_mode == ssl.CERT_REQUIRED
