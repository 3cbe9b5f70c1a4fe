"""Runs the cars' charging sessions (charging.py) as the simulator's clock moves.

Sessions advance on every clock jump at once, and every `tick_seconds` of real time in
between, so a session runs both under a test's jumps and in `scripts/develop` as it is.
What a session sends goes through the simulator's `apply` (REST snapshot and stream); an
ended session becomes the newest entry of the car's charging history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from .charging import ChargingSession, FinishReason, SessionRequest, unplug_points

if TYPE_CHECKING:
    from .points import TelematicPoint
    from .quirks import StreamQuirks
    from .state import SimState

_LOGGER = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class ChargingDesk:
    """Every car's current and last charging session."""

    def __init__(
        self,
        state: SimState,
        quirks: StreamQuirks,
        apply: Callable[[str, dict[str, TelematicPoint]], None],
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        """`apply(vin, points)` stores and streams what a car sends."""
        self._state = state
        self._quirks = quirks
        self._apply = apply
        self._tick_seconds = tick_seconds
        self._current: dict[str, ChargingSession] = {}
        self._last_ended: dict[str, ChargingSession] = {}
        self._recorded: set[ChargingSession] = set()
        self._ticker: asyncio.Task[None] | None = None
        state.clock.add_listener(self.tick)

    # --- control ---------------------------------------------------------------------

    def start(self, vin: str, request: SessionRequest) -> dict[str, Any]:
        """Plug the car in and charge; a session still running is stopped first."""
        now = self._state.clock.now()
        if (running := self._current.get(vin)) is not None and running.running:
            self._send(vin, running.finish(now, FinishReason.DRIVER))
            self._record(vin, running)
        car = self._state.telematics.get(vin, {})
        session = ChargingSession(vin, request, car, self._quirks, now)
        self._current[vin] = session
        self._send(vin, session.advance(now))
        self._ensure_ticker()
        _LOGGER.info(
            "charging session started (%s, target %.0f %%)", request.mode, session.target_soc
        )
        return self.truth(vin)

    def stop(self, vin: str, *, unplug: bool) -> dict[str, Any]:
        """End the charge as the driver would; with `unplug`, pull the cable too."""
        now = self._state.clock.now()
        session = self._current.get(vin)
        if session is not None and (session.ended is None or unplug):
            reason = FinishReason.UNPLUGGED if unplug else FinishReason.DRIVER
            self._send(vin, session.finish(now, reason))
            self._record(vin, session)
        elif unplug:
            self._send(vin, [(now, unplug_points(now, self._state.telematics.get(vin, {})))])
        return self.truth(vin)

    def truth(self, vin: str) -> dict[str, Any]:
        """The current (running or just ended) session and the last ended one, as they are."""
        now = self._state.clock.now()
        current = self._current.get(vin)
        last = self._last_ended.get(vin)
        return {
            "vin": vin,
            "now": now.isoformat(),
            "session": current.truth(now) if current is not None else None,
            "last_session": last.truth(now) if last is not None else None,
        }

    def reset(self) -> None:
        """Forget every session (the control API's reset)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._current.clear()
        self._last_ended.clear()
        self._recorded.clear()

    async def close(self) -> None:
        """Stop ticking (server shutdown)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    # --- time ------------------------------------------------------------------------

    def tick(self) -> None:
        """Bring every running session up to the simulator's present."""
        now = self._state.clock.now()
        for vin, session in list(self._current.items()):
            if session.running:
                self._send(vin, session.advance(now))
                self._record(vin, session)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick_in_real_time(), name="cardata simulator: charging"
            )

    async def _tick_in_real_time(self) -> None:
        while any(session.running for session in self._current.values()):
            await asyncio.sleep(self._tick_seconds)
            self.tick()

    # --- output ----------------------------------------------------------------------

    def _send(self, vin: str, emissions: list[tuple[Any, dict[str, TelematicPoint]]]) -> None:
        for _moment, points in emissions:
            self._apply(vin, points)

    def _record(self, vin: str, session: ChargingSession) -> None:
        """Once a session has ended, it is the last one and BMW's newest history entry."""
        if session.history_entry is None or session in self._recorded:
            return
        self._recorded.add(session)
        self._last_ended[vin] = session
        self._state.history.setdefault(vin, []).insert(0, session.history_entry)
