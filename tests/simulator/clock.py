"""The simulator's own clock: wall time plus an offset that tests can advance.

Token lifetimes, the daily budget and the stream's token-expiry disconnects all read this
clock, so a test can live through days of BMW behaviour in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
import time


class SimClock:
    """Wall-clock time shifted by an adjustable offset; it can also stand still.

    A frozen clock moves only when advanced, like Home Assistant's clock under freezegun,
    so a test or bench that moves both in step sees no drift between them.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._listeners: list[Callable[[], None]] = []

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still between advances."""
        return self._frozen_at is not None

    def timestamp(self) -> float:
        """Seconds since the epoch, as the simulator sees it."""
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset

    def freeze(self, frozen: bool) -> None:
        """Stop the clock where it is, or let it run on from where it stands."""
        if frozen and self._frozen_at is None:
            self._frozen_at = self.timestamp()
        elif not frozen and self._frozen_at is not None:
            self._offset = self._frozen_at - time.time()
            self._frozen_at = None

    def now(self) -> datetime:
        """Aware UTC datetime, as the simulator sees it."""
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Jump forward and let listeners (token expiry, scenarios) react at once."""
        if seconds < 0:
            raise ValueError("the simulator's clock only moves forward")
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds
        for listener in list(self._listeners):
            listener()

    def reset(self) -> None:
        """Back to running wall time (used by the control API's reset)."""
        self._offset = 0.0
        self._frozen_at = None
        for listener in list(self._listeners):
            listener()

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every jump; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


def iso_seconds(moment: datetime) -> str:
    """BMW's per-datapoint timestamp: second precision, `Z` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(moment: datetime) -> str:
    """BMW's envelope and REST timestamps: millisecond precision, `Z` suffix."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )
