"""One charging session: its power over time, its anchor and the measurements it saw.

Power is held from one reading to the next (a car streams on change, so a steady power
means silence, not zero) and integrated into grid energy and, with the efficiency in force,
energy stored. The state of charge shown is the anchor (the last trusted measurement) plus
what was stored since, never below what was shown before while the session runs, never
above the target. Home Assistant free; nothing here raises.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import math
from typing import Any, Final

from .charging_efficiency import DC, LearningSample

# Two measurements this close are the same value (BMW sends integers or tenths).
_SAME: Final = 0.05
# A repeat of the last measured value this close before "ended" is the final measurement.
_FINAL_SLACK: Final = timedelta(minutes=1)
# Power changes kept in memory; the anchor's segment is kept whatever its age.
_MAX_SEGMENTS: Final = 1_000


def as_number(value: Any) -> float | None:
    """Return a finite float from a number or numeric text; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def as_time(value: Any) -> datetime | None:
    """Return an aware datetime from a datetime or ISO text; naive ones are UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def iso(at: datetime) -> str:
    """ISO text for storage."""
    return at.isoformat()


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measured state of charge and its measurement time."""

    soc: float
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"soc": self.soc, "at": iso(self.at)}

    @classmethod
    def from_dict(cls, data: Any) -> Measurement | None:
        """Restore; None when malformed."""
        if not isinstance(data, Mapping):
            return None
        soc, at = as_number(data.get("soc")), as_time(data.get("at"))
        return cls(soc, at) if soc is not None and at is not None and 0 <= soc <= 100 else None


@dataclass(slots=True)
class _Segment:
    """Constant power from `at` on, and the energy counted before it, per kind."""

    at: datetime
    power_w: float
    kind: str | None
    efficiency: float
    grid: dict[str, float] = field(default_factory=dict)
    stored: dict[str, float] = field(default_factory=dict)


def _totals_at(segment: _Segment, at: datetime) -> tuple[dict[str, float], dict[str, float]]:
    """Cumulative grid and stored energy per kind at a time inside a segment."""
    grid, stored = dict(segment.grid), dict(segment.stored)
    hours = max((at - segment.at).total_seconds(), 0.0) / 3600
    if segment.kind is not None and segment.power_w > 0 and hours > 0:
        energy = segment.power_w / 1000 * hours
        grid[segment.kind] = grid.get(segment.kind, 0.0) + energy
        stored[segment.kind] = stored.get(segment.kind, 0.0) + energy * segment.efficiency
    return grid, stored


def _minus(later: Mapping[str, float], earlier: Mapping[str, float]) -> dict[str, float]:
    return {kind: value - earlier.get(kind, 0.0) for kind, value in later.items()}


class ChargingSession:
    """A session from "charging" to its final measurement."""

    def __init__(
        self,
        *,
        started_at: datetime,
        capacity_kwh: float | None,
        capacity_from_car: bool,
        measured: Measurement | None,
    ) -> None:
        """Open a session anchored to the last measured state of charge, if any."""
        self.started_at = started_at
        self.capacity_kwh = capacity_kwh
        self.capacity_from_car = capacity_from_car
        self.segments: list[_Segment] = []
        self.anchor_soc: float | None = measured.soc if measured else None
        self.anchor_at: datetime | None = measured.at if measured else None
        self.hold: float = measured.soc if measured else 0.0
        self.seen: list[float] = [measured.soc] if measured else []
        self.first: Measurement | None = measured
        self.first_grid: dict[str, float] = {}
        self.first_stored: dict[str, float] = {}
        self.last: Measurement | None = measured
        self.ended_at: datetime | None = None
        self.end_hold: float | None = None
        self.finish_reason: str | None = None
        self.saw_dc = False

    # --- power and energy ------------------------------------------------------------------

    @property
    def last_time(self) -> datetime:
        """Time of the last power change (the start when there was none)."""
        return self.segments[-1].at if self.segments else self.started_at

    def set_power(self, at: datetime, power_w: float, kind: str | None, efficiency: float) -> None:
        """From `at` on, the car charges with this grid power (W) of this kind."""
        if self.ended_at is not None:
            return
        at = max(at, self.last_time)
        if kind is None:
            power_w = 0.0
        current = self.segments[-1] if self.segments else None
        if current is not None and (current.power_w, current.kind) == (power_w, kind):
            return
        if current is not None and current.at == at:
            current.power_w, current.kind, current.efficiency = power_w, kind, efficiency
            return
        grid, stored = _totals_at(current, at) if current else ({}, {})
        self.segments.append(_Segment(at, power_w, kind, efficiency, grid, stored))
        self._trim()

    def _trim(self) -> None:
        """Forget power changes from before the anchor; cap the history."""
        keep_from = 0
        if self.anchor_at is not None:
            keep_from = max(self._index(self.anchor_at), 0)
        keep_from = max(keep_from, len(self.segments) - _MAX_SEGMENTS)
        if keep_from > 0:
            del self.segments[:keep_from]

    def _index(self, at: datetime) -> int:
        return bisect_right([segment.at for segment in self.segments], at) - 1

    def totals(self, at: datetime) -> tuple[dict[str, float], dict[str, float]]:
        """Cumulative grid and stored energy per kind at a time (no later than the end)."""
        if self.ended_at is not None:
            at = min(at, self.ended_at)
        index = self._index(at)
        if index < 0:
            return (
                ({}, {}) if not self.segments else (self.segments[0].grid, self.segments[0].stored)
            )
        return _totals_at(self.segments[index], at)

    def energy_kwh(self, at: datetime | None = None) -> float:
        """Grid energy integrated this session up to a time (default: the last change)."""
        return max(sum(self.totals(at or self.ended_at or self.last_time)[0].values()), 0.0)

    def idle_since(self, now: datetime) -> timedelta:
        """How long the car has charged with no power (zero when it has power now)."""
        if self.segments and self.segments[-1].power_w > 0:
            return timedelta(0)
        return max(now - self.last_time, timedelta(0))

    def charging(self, now: datetime) -> bool:
        """Whether energy flows now."""
        return self.ended_at is None and bool(self.segments) and self.segments[-1].power_w > 0

    def method(self, at: datetime | None = None) -> str | None:
        """Return "dc" or "ac" by where most energy went up to a time; None before any."""
        grid = self.totals(at or self.ended_at or self.last_time)[0]
        dc = grid.get(DC, 0.0)
        ac = sum(value for kind, value in grid.items() if kind != DC)
        if dc <= 0 and ac <= 0:
            return "dc" if self.saw_dc else None
        return "dc" if dc > ac else "ac"

    # --- measurements ----------------------------------------------------------------------

    def judge(self, soc: float, at: datetime) -> str:
        """Judge a measurement newer than the last one: "stale", "final" or "anchor".

        A value equal to one already superseded this session is the car re-sending the
        start of the session (it does so when the charging speed changes). A repeat of the
        latest value is no news either, except just before or after "ended", where it is
        the final measurement.
        """
        highest = max(self.seen, default=None)
        if highest is not None and abs(soc - highest) <= _SAME:
            if self.ended_at is not None and at >= self.ended_at - _FINAL_SLACK:
                return "final"
            return "stale"
        if (
            highest is not None
            and soc < highest
            and any(abs(soc - value) <= _SAME for value in self.seen)
        ):
            return "stale"
        return "final" if self.ended_at is not None else "anchor"

    def record(self, soc: float, at: datetime) -> None:
        """Note a trusted measurement (for learning and stale detection)."""
        self.seen.append(soc)
        self.last = Measurement(soc, at)
        if self.first is None:
            self.first = self.last
            self.first_grid, self.first_stored = self.totals(at)

    def anchor(
        self, soc: float, at: datetime, *, shown_now: float | None, estimate_then: float | None
    ) -> None:
        """Re-anchor to a newer measurement.

        A whole-number measurement from a car that sends only whole numbers, agreeing
        with the estimate to that resolution (BMW rounds or truncates), keeps the
        estimate's fraction; the number shown never falls.
        """
        self.record(soc, at)
        whole_numbers = all(float(value).is_integer() for value in self.seen)
        keep = (
            estimate_then is not None and whole_numbers and soc - 0.5 <= estimate_then < soc + 1.0
        )
        self.anchor_soc = estimate_then if keep and estimate_then is not None else soc
        self.anchor_at = at
        self.hold = max(self.hold, shown_now if shown_now is not None else soc)
        self._trim()

    def shown(self, at: datetime, target: float | None, *, floor: bool = True) -> float | None:
        """Return the state of charge to show at a time; None before any measurement.

        `floor=False` gives the estimate at that time alone, without the number shown
        since: a measurement judged against the estimate at its own moment must not be
        compared with what was shown later (readings can arrive late, in a burst).
        """
        if self.anchor_soc is None or self.anchor_at is None:
            return None
        if self.ended_at is not None and at >= self.ended_at and self.end_hold is not None:
            return self.end_hold
        value = self.anchor_soc
        if self.capacity_kwh:
            stored_now = sum(self.totals(at)[1].values())
            stored_then = sum(self.totals(self.anchor_at)[1].values())
            value += max(stored_now - stored_then, 0.0) / self.capacity_kwh * 100
            if floor:
                value = max(value, self.hold)
        ceiling = max(min(target if target is not None else 100.0, 100.0), *self.seen, 0.0)
        return min(value, ceiling)

    def end(self, at: datetime, hold: float | None, reason: str | None) -> None:
        """Charging stopped at `at`: hold the number until the final measurement."""
        if self.ended_at is not None:
            return
        at = max(at, self.last_time)
        self.set_power(at, 0.0, None, 1.0)
        self.ended_at = at
        self.end_hold = hold
        self.finish_reason = reason

    def adopt_capacity(self, capacity_kwh: float | None, *, from_car: bool) -> None:
        """Take the car's usable capacity when the session has none from the car yet."""
        if capacity_kwh is not None and not self.capacity_from_car:
            self.capacity_kwh, self.capacity_from_car = capacity_kwh, from_car

    def learning_sample(self) -> LearningSample | None:
        """Return what this session says about the efficiency; None when it cannot."""
        first, last = self.first, self.last
        if first is None or last is None or last.at <= first.at or not self.capacity_kwh:
            return None
        grid, stored = self.totals(last.at)
        return LearningSample(
            grid_kwh=_minus(grid, self.first_grid),
            assumed_kwh=_minus(stored, self.first_stored),
            stored_kwh=(last.soc - first.soc) / 100 * self.capacity_kwh,
            gain_pp=last.soc - first.soc,
        )

    # --- persistence -----------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form; energy totals are recomputed from the segments on restore."""
        return {
            "started_at": iso(self.started_at),
            "capacity_kwh": self.capacity_kwh,
            "capacity_from_car": self.capacity_from_car,
            "segments": [
                [iso(item.at), item.power_w, item.kind, item.efficiency, item.grid, item.stored]
                for item in self.segments[:1]
            ]
            + [
                [iso(item.at), item.power_w, item.kind, item.efficiency]
                for item in self.segments[1:]
            ],
            "anchor": [self.anchor_soc, iso(self.anchor_at)] if self.anchor_at else None,
            "hold": self.hold,
            "seen": self.seen[-50:],
            "first": self.first.as_dict() if self.first else None,
            "first_grid": self.first_grid,
            "first_stored": self.first_stored,
            "last": self.last.as_dict() if self.last else None,
            "ended_at": iso(self.ended_at) if self.ended_at else None,
            "end_hold": self.end_hold,
            "finish_reason": self.finish_reason,
            "saw_dc": self.saw_dc,
        }

    @classmethod
    def from_dict(cls, data: Any, measured: Measurement | None) -> ChargingSession | None:
        """Restore a running session; None when there is none or it is malformed."""
        if not isinstance(data, Mapping):
            return None
        started = as_time(data.get("started_at"))
        if started is None:
            return None
        capacity = as_number(data.get("capacity_kwh"))
        session = cls(
            started_at=started,
            capacity_kwh=capacity if capacity and capacity > 0 else None,
            capacity_from_car=data.get("capacity_from_car") is True,
            measured=measured,
        )
        session._restore_segments(data.get("segments"))
        anchor = data.get("anchor")
        if isinstance(anchor, list) and len(anchor) == 2:
            soc, at = as_number(anchor[0]), as_time(anchor[1])
            if soc is not None and at is not None:
                session.anchor_soc, session.anchor_at = soc, at
        session.hold = as_number(data.get("hold")) or session.hold
        seen = data.get("seen")
        if isinstance(seen, list):
            session.seen = [n for n in (as_number(v) for v in seen) if n is not None]
        session.first = Measurement.from_dict(data.get("first"))
        session.last = Measurement.from_dict(data.get("last")) or session.first
        session.first_grid = _energies(data.get("first_grid"))
        session.first_stored = _energies(data.get("first_stored"))
        session.ended_at = as_time(data.get("ended_at"))
        session.end_hold = as_number(data.get("end_hold"))
        reason = data.get("finish_reason")
        session.finish_reason = reason if isinstance(reason, str) else None
        session.saw_dc = data.get("saw_dc") is True
        return session

    def _restore_segments(self, rows: Any) -> None:
        if not isinstance(rows, list):
            return
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) < 4:
                continue
            at, power, efficiency = as_time(row[0]), as_number(row[1]), as_number(row[2 + 1])
            kind = row[2] if isinstance(row[2], str) else None
            if at is None or power is None or efficiency is None:
                continue
            if self.segments and at < self.segments[-1].at:
                continue
            if index == 0 and len(row) >= 6:
                self.segments.append(
                    _Segment(at, power, kind, efficiency, _energies(row[4]), _energies(row[5]))
                )
                continue
            previous = self.segments[-1] if self.segments else None
            grid, stored = _totals_at(previous, at) if previous else ({}, {})
            self.segments.append(_Segment(at, power, kind, efficiency, grid, stored))


def _energies(data: Any) -> dict[str, float]:
    """Energies per kind from storage; malformed entries are dropped."""
    if not isinstance(data, Mapping):
        return {}
    return {
        str(kind): number
        for kind, value in data.items()
        if (number := as_number(value)) is not None and number >= 0
    }
