"""The simulator's own clock: it runs at wall-clock speed from a start, and tests advance it.

Token lifetimes, the daily budget and the stream's token-expiry disconnects all read this
clock, so a test can live through days of BMW behaviour in seconds.

Without a start the clock shows wall time (scripts/develop, and the test suite by default, where
the `sim` fixture moves it to the next noon UTC for tests whose clocks it controls). A start
(`--start-time`) pins it instead: `scripts/clock-check` runs tests from awkward moments so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import os
import time


def parse_start_time(raw: str) -> datetime:
    """An ISO 8601 time with an offset or `Z` (e.g. 2026-03-04T12:00:00Z) as aware UTC."""
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise ValueError(f"{raw!r} has no UTC offset; add Z or +00:00")
    return moment.astimezone(UTC)


def next_noon_utc(now: datetime) -> datetime:
    """The first 12:00 UTC at or after `now`: twelve hours from BMW's midnight either way."""
    noon = now.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return noon if noon >= now else noon + timedelta(days=1)


# A pinned start for the test suite's simulators, as ISO 8601 (scripts/test --sim-start and
# scripts/clock-check set it).
PINNED_START_ENV = "CARDATA_SIM_START"


def pinned_start_time() -> datetime | None:
    """Where the test suite's simulators start their clocks; None for wall time."""
    if raw := os.environ.get(PINNED_START_ENV):
        return parse_start_time(raw)
    return None


class SimClock:
    """Time since a start (wall time by default), plus what tests advanced it by."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._shift = 0.0
        self._advanced = 0.0
        self._frozen_at: float | None = None
        self._listeners: list[Callable[[], None]] = []
        self._anchor()

    def _anchor(self) -> None:
        """Show the start now (or wall time when there is none), running, nothing advanced."""
        self._shift = 0.0 if self._start is None else self._start.timestamp() - time.time()
        self._advanced = 0.0
        self._frozen_at = None

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still between advances.

        A frozen clock moves only when advanced, like Home Assistant's clock under freezegun,
        so a test or bench that moves both in step sees no drift between them.
        """
        return self._frozen_at is not None

    def freeze(self, frozen: bool) -> None:
        """Stop the clock where it is, or let it run on from where it stands."""
        if frozen and self._frozen_at is None:
            self._frozen_at = self.timestamp()
        elif not frozen and self._frozen_at is not None:
            self._shift = self._frozen_at - time.time() - self._advanced
            self._frozen_at = None

    @property
    def advanced(self) -> float:
        """Seconds the clock was moved forward since it started or was last reset."""
        return self._advanced

    def timestamp(self) -> float:
        """Seconds since the epoch, as the simulator sees it."""
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._shift + self._advanced

    def now(self) -> datetime:
        """Aware UTC datetime, as the simulator sees it."""
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Jump forward and let listeners (token expiry, scenarios) react at once."""
        if seconds < 0:
            raise ValueError("the simulator's clock only moves forward")
        self._advanced += seconds
        if self._frozen_at is not None:
            self._frozen_at += seconds
        for listener in list(self._listeners):
            listener()

    def reset(self) -> None:
        """Back to the start, or to wall time without one (the control API's reset)."""
        self._anchor()
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
