"""Assemble the simulator: state, the three HTTP applications and the stream broker.

GCDM, REST and control each listen on their own port, as BMW's hosts are separate; the broker
listens with TLS on a fourth. The TLS material lives in a temporary directory that `stop()`
removes. With a state file, what BMW remembers survives restarts (persistence.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
import logging
from pathlib import Path
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import control, control_charging, fleet, oauth, persistence, rest
from .broker import Broker
from .charging_desk import ChargingDesk
from .clock import SimClock
from .quirks import StreamQuirks
from .scenarios import ScenarioRunner
from .state import SimConfig, SimState
from .tls import make_tls

if TYPE_CHECKING:
    from .points import TelematicPoint

_LOGGER = logging.getLogger(__name__)

# Seconds aiohttp waits for open connections when shutting down; hung requests are released
# before, so this only bounds keep-alive connections of clients that went away.
_SHUTDOWN_TIMEOUT = 2.0


@dataclass
class ServerOptions:
    """Where to listen and which switches to start with."""

    host: str = "127.0.0.1"
    gcdm_port: int = 0
    api_port: int = 0
    control_port: int = 0
    mqtt_port: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    quirks: dict[str, object] = field(default_factory=dict)
    # Where BMW's memory (tokens, containers, budgets, clock...) is kept across restarts.
    state_file: Path | None = None
    # When the simulator's clock starts (None: wall time); the test suite pins it.
    start_time: datetime | None = None


class SimulatorServer:
    """The running simulator; `start()` returns the ready line's content."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.clock = SimClock(options.start_time)
        config = SimConfig()
        config.update(options.config)
        self.state = SimState(self.clock, config)
        if options.state_file is not None:
            # Before anything listens to the clock: restoring advances it.
            persistence.load_state_file(self.state, options.state_file)
        self.quirks = StreamQuirks()
        self.quirks.update(options.quirks)
        self._tls_dir = Path(tempfile.mkdtemp(prefix="cardata-simulator-"))
        self._runners: list[web.AppRunner] = []
        self.broker: Broker | None = None
        self.scenarios: ScenarioRunner | None = None
        self.charging: ChargingDesk | None = None

    def _apply(self, vin: str, points: dict[str, TelematicPoint]) -> None:
        """A car reports `points`: REST sees the newest values, the stream gets them all."""
        self.state.store_points(vin, points)
        gcid = fleet.gcid_of_vin(vin)
        if gcid is not None and self.broker is not None:
            self.broker.publish(gcid, vin, points)

    def _current_state(self, vin: str) -> dict[str, TelematicPoint]:
        return dict(self.state.telematics.get(vin, {}))

    async def _serve(self, app: web.Application, port: int) -> int:
        # handler_cancellation: a client that gives up on a hung (timeout-fault) request
        # ends the handler instead of leaving it waiting.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.options.host, port)
        await site.start()
        bound: int = runner.addresses[0][1]
        return bound

    async def start(self) -> dict[str, Any]:
        """Listen everywhere; returns the ready line's fields."""
        host = self.options.host
        tls = make_tls(self._tls_dir)
        self.broker = Broker(
            host=host,
            port=self.options.mqtt_port,
            ssl_context=tls.server_context,
            clock=self.clock,
            login=self.state.stream_login,
            allowed_vins=self.state.allowed_vins,
            quirks=self.quirks,
        )
        self.scenarios = ScenarioRunner(self.clock, self._apply, self._current_state)
        self.charging = ChargingDesk(self.state, self.quirks, self._apply)
        simulator = control.Simulator(
            state=self.state,
            broker=self.broker,
            quirks=self.quirks,
            scenarios=self.scenarios,
            apply=self._apply,
            startup_quirks=dict(self.options.quirks),
            charging=self.charging,
        )
        mqtt_port = await self.broker.start()
        gcdm_port = await self._serve(oauth.create_app(self.state), self.options.gcdm_port)
        api_port = await self._serve(rest.create_app(self.state), self.options.api_port)
        control_app = control.create_app(simulator)
        control_charging.add_routes(control_app)
        control_port = await self._serve(control_app, self.options.control_port)
        url_host = f"[{host}]" if ":" in host else host
        ready = {
            "gcdm_url": f"http://{url_host}:{gcdm_port}",
            "api_url": f"http://{url_host}:{api_port}",
            "mqtt_host": host,
            "mqtt_port": mqtt_port,
            "ca_file": str(tls.ca_file),
            "client_id": fleet.CLIENT_FULL,
            "control_url": f"http://{url_host}:{control_port}",
            "clients": fleet.clients_summary(),
            "accounts": fleet.accounts_summary(),
        }
        simulator.ready_info = ready
        return ready

    def save_state(self) -> bool:
        """Write BMW's memory to the state file, if there is one; returns whether it was written."""
        if self.options.state_file is None:
            return False
        return persistence.save_state_file(self.state, self.options.state_file)

    async def stop(self) -> None:
        """Stop scenarios, the broker and the HTTP servers; remove the TLS material."""
        self.state.release_hung.set()
        try:
            if self.scenarios is not None:
                await self.scenarios.stop_all()
            if self.charging is not None:
                await self.charging.close()
            if self.broker is not None:
                await self.broker.stop()
            for runner in reversed(self._runners):
                await runner.cleanup()
            self._runners.clear()
        finally:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
