"""Where BMW CarData lives: production hosts, or the local simulator in development.

The development instance (scripts/develop) sets CARDATA_SIMULATOR to the path of the
simulator's ready-line file; this is the only place production code looks at it.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import ssl

from homeassistant.core import HomeAssistant
from homeassistant.util.ssl import get_default_context

from .api.const import API_BASE_URL, GCDM_BASE_URL, STREAM_HOST, STREAM_PORT
from .const import LOGGER, SIMULATOR_ENV


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The three services' addresses and the TLS trust for the stream."""

    gcdm_url: str
    api_url: str
    mqtt_host: str
    mqtt_port: int
    ca_file: str | None = None

    @property
    def is_simulator(self) -> bool:
        """Return True when a development switch points at the simulator."""
        return self.ca_file is not None


PRODUCTION = Endpoints(GCDM_BASE_URL, API_BASE_URL, STREAM_HOST, STREAM_PORT)


def _read_simulator(path: str) -> Endpoints:
    ready = json.loads(Path(path).read_text(encoding="utf-8"))
    return Endpoints(
        gcdm_url=ready["gcdm_url"],
        api_url=ready["api_url"],
        mqtt_host=ready["mqtt_host"],
        mqtt_port=int(ready["mqtt_port"]),
        ca_file=ready["ca_file"],
    )


async def async_resolve_endpoints(hass: HomeAssistant) -> Endpoints:
    """Return the simulator's endpoints when the development switch is set, else BMW's."""
    path = os.environ.get(SIMULATOR_ENV)
    if not path:
        return PRODUCTION
    endpoints = await hass.async_add_executor_job(_read_simulator, path)
    LOGGER.warning(
        "Using the BMW CarData simulator at %s (%s is set)", endpoints.api_url, SIMULATOR_ENV
    )
    return endpoints


async def async_stream_ssl_context(hass: HomeAssistant, endpoints: Endpoints) -> ssl.SSLContext:
    """TLS context for the MQTT stream: Home Assistant's trust store, or the simulator's CA."""
    if endpoints.ca_file is None:
        return get_default_context()
    ca_file = endpoints.ca_file
    return await hass.async_add_executor_job(
        lambda: ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    )
