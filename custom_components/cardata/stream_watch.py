"""Whether the stream counts as delivering, for deciding how often REST is polled.

The stream reconnects about every 50 minutes with a renewed id token, and BMW drops idle
sessions now and then. Such a reconnect is not an outage: treating it as one would switch
REST polling to the no-stream plan and spend a request on every token renewal. So a lost
connection counts as down only when it has not come back within a short grace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from .api.stream import StreamState, StreamStatus

STREAM_DOWN_GRACE: Final = timedelta(minutes=3)
_RECONNECTING: Final = frozenset({StreamState.CONNECTING, StreamState.DISCONNECTED})


class StreamWatch:
    """The stream's last status and whether it delivers; `on_change(delivers)` on a flip."""

    def __init__(self, hass: HomeAssistant, on_change: Callable[[bool], None]) -> None:
        """Start with no status (the stream has not reported yet: not delivering)."""
        self._hass = hass
        self._on_change = on_change
        self.status: StreamStatus | None = None
        self._lost_at: datetime | None = None
        self._unsub_grace: CALLBACK_TYPE | None = None
        self._stopped = False

    @property
    def delivers(self) -> bool:
        """Return True while connected, or lost for less than the grace."""
        if self.status is None:
            return False
        if self.status.state is StreamState.CONNECTED:
            return True
        return (
            self._lost_at is not None
            and self.status.state in _RECONNECTING
            and dt_util.utcnow() < self._lost_at + STREAM_DOWN_GRACE
        )

    @callback
    def update(self, status: StreamStatus) -> None:
        """Take note of a new status; tell the owner when `delivers` flips."""
        was_delivering = self.delivers
        previous = self.status
        self.status = status
        if status.state not in _RECONNECTING:
            self._lost_at = None
        elif previous is not None and previous.state is StreamState.CONNECTED:
            # A renewed id token, or a dropped connection: the stream reconnects.
            self._lost_at = status.since
            self._watch_grace()
        self._settled(was_delivering)

    @callback
    def stop(self) -> None:
        """Cancel the grace timer; later statuses (the stream stopping) start none."""
        self._stopped = True
        if self._unsub_grace is not None:
            self._unsub_grace()
            self._unsub_grace = None

    @callback
    def _watch_grace(self) -> None:
        if self._stopped:
            return
        if self._unsub_grace is not None:
            self._unsub_grace()
        self._unsub_grace = async_call_later(self._hass, STREAM_DOWN_GRACE, self._grace_over)

    @callback
    def _grace_over(self, _now: datetime) -> None:
        self._unsub_grace = None
        self._settled(was_delivering=True)

    @callback
    def _settled(self, was_delivering: bool) -> None:
        if self.delivers != was_delivering:
            self._on_change(self.delivers)
