"""The development switch: CARDATA_SIMULATOR points the integration at the simulator."""

from __future__ import annotations

import json
import logging
from pathlib import Path
import ssl

from homeassistant.core import HomeAssistant
import pytest

from custom_components.cardata import endpoints as endpoints_module
from custom_components.cardata.const import SIMULATOR_ENV
from custom_components.cardata.endpoints import (
    PRODUCTION,
    SIMULATOR_NOT_LOOPBACK,
    SimulatorSwitchError,
    async_resolve_endpoints,
    async_stream_ssl_context,
    is_loopback,
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


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("::ffff:8.8.8.8", False),
        ("localhost.example.net", False),
        ("api-cardata.bmwgroup.com", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Only names and addresses that never leave the machine count as loopback."""
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("field", ["gcdm_url", "api_url", "mqtt_host"])
async def test_switch_to_another_machine_is_refused(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    point_integration_at_simulator: Path,
    caplog: pytest.LogCaptureFixture,
    field: str,
) -> None:
    """One host off this machine is enough to refuse the whole switch, with an error line."""
    ready = json.loads(point_integration_at_simulator.read_text())
    ready[field] = "http://192.0.2.7:8080" if field.endswith("url") else "192.0.2.7"
    point_integration_at_simulator.write_text(json.dumps(ready))

    with pytest.raises(SimulatorSwitchError) as refused:
        await async_resolve_endpoints(hass)

    assert refused.value.reason == SIMULATOR_NOT_LOOPBACK
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "192.0.2.7" in errors[0].getMessage()
    assert SIMULATOR_ENV in errors[0].getMessage()


async def test_simulator_is_announced_once_per_process(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every flow and set-up resolves the endpoints; the log says it once, at INFO."""
    monkeypatch.setattr(endpoints_module, "_announced", False)
    for _ in range(3):
        await async_resolve_endpoints(hass)

    mentions = [
        record for record in caplog.records if "Using the BMW CarData simulator" in record.message
    ]
    assert [record.levelno for record in mentions] == [logging.INFO]
