"""Where BMW CarData lives: production hosts, or the local simulator in development.

The development instance (scripts/develop) sets CARDATA_SIMULATOR to the path of the
simulator's ready-line file; this is the only place production code looks at it.
"""

from __future__ import annotations

from dataclasses import dataclass
import ipaddress
import json
import os
from pathlib import Path
import ssl
from typing import Final
from urllib.parse import urlsplit

from homeassistant.core import HomeAssistant
from homeassistant.util.ssl import get_default_context

from .api.const import API_BASE_URL, GCDM_BASE_URL, STREAM_HOST, STREAM_PORT
from .const import LOGGER, SIMULATOR_ENV

# Why the switch is refused; each is a translation key of the set-up error and the flow's
# abort reason.
SIMULATOR_NOT_LOOPBACK: Final = "simulator_not_loopback"
SIMULATOR_UNREADABLE: Final = "simulator_unreadable"


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

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host a request or the stream goes to."""
        return (
            urlsplit(self.gcdm_url).hostname or "",
            urlsplit(self.api_url).hostname or "",
            self.mqtt_host,
        )


PRODUCTION = Endpoints(GCDM_BASE_URL, API_BASE_URL, STREAM_HOST, STREAM_PORT)


class SimulatorSwitchError(Exception):
    """The development switch is set but cannot be honoured; nothing may be sent.

    `reason` is SIMULATOR_NOT_LOOPBACK or SIMULATOR_UNREADABLE.
    """

    def __init__(self, reason: str, detail: str) -> None:
        """Keep why, and a detail without secrets for the log."""
        super().__init__(detail)
        self.reason = reason


def is_loopback(host: str) -> bool:
    """Return True for localhost, 127.0.0.0/8 and ::1: hosts that never leave the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_simulator(path: str) -> Endpoints:
    """Read the simulator's ready-line file; raise SimulatorSwitchError when it is unusable."""
    try:
        ready = json.loads(Path(path).read_text(encoding="utf-8"))
        return Endpoints(
            gcdm_url=str(ready["gcdm_url"]),
            api_url=str(ready["api_url"]),
            mqtt_host=str(ready["mqtt_host"]),
            mqtt_port=int(ready["mqtt_port"]),
            ca_file=str(ready["ca_file"]),
        )
    # OSError: missing or unreadable file; ValueError: no JSON (or no port number);
    # KeyError and TypeError: JSON of another shape than the ready line.
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SimulatorSwitchError(SIMULATOR_UNREADABLE, f"{type(err).__name__}: {err}") from err


# The simulator is announced once per process, not at every flow and set-up.
_announced = False


async def async_resolve_endpoints(hass: HomeAssistant) -> Endpoints:
    """Return the simulator's endpoints when the development switch is set, else BMW's.

    The switch is honoured only when every host in it is a loopback address: the
    simulator speaks plain HTTP, so anything else would send the BMW login over the
    network unencrypted. Raises SimulatorSwitchError otherwise, or when the file is
    unusable; callers refuse to continue, so no token is sent anywhere.
    """
    global _announced  # noqa: PLW0603 - a once-per-process flag, see above
    path = os.environ.get(SIMULATOR_ENV)
    if not path:
        return PRODUCTION
    try:
        endpoints = await hass.async_add_executor_job(_read_simulator, path)
    except SimulatorSwitchError as err:
        LOGGER.error(
            "%s is set, but its file cannot be used (%s); BMW CarData is not contacted. "
            "Unset %s on a production install",
            SIMULATOR_ENV,
            err,
            SIMULATOR_ENV,
        )
        raise
    foreign = sorted({host for host in endpoints.hosts if not is_loopback(host)})
    if foreign:
        LOGGER.error(
            "%s is set and points at %s, which is not this machine; refusing to send the "
            "BMW login there. The simulator switch is for development only: unset %s",
            SIMULATOR_ENV,
            ", ".join(foreign),
            SIMULATOR_ENV,
        )
        raise SimulatorSwitchError(SIMULATOR_NOT_LOOPBACK, f"not loopback: {', '.join(foreign)}")
    if not _announced:
        _announced = True
        LOGGER.info(
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
