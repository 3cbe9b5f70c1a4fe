"""A live state of charge while a car charges, estimated between BMW's measurements.

Many cars stream charging power but not the state of charge while they charge, so the
measured value can be hours old. The estimator integrates the charging power over time
(grid side), turns it into energy stored with a charging efficiency learned per car, and
adds that to the last measured state of charge, using the usable battery capacity.

Home Assistant free on purpose: it takes readings and times and returns numbers, so it is
tested on its own and the coordinator only feeds it. Nothing here raises on odd input.
The rules are written down in docs/contracts.md, "State-of-charge estimate".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import math
from typing import Any, Final

from .charging_efficiency import DC, EfficiencyModel, band_for
from .charging_session import ChargingSession, Measurement, as_number, as_time, iso

SOC_MEASURED: Final = "vehicle.drivetrain.batteryManagement.header"
SOC_DISPLAYED: Final = "vehicle.powertrain.electric.battery.stateOfCharge.displayed"
POWER: Final = "vehicle.powertrain.electric.battery.charging.power"
AC_VOLTAGE: Final = "vehicle.drivetrain.electricEngine.charging.acVoltage"
AC_AMPERE: Final = "vehicle.drivetrain.electricEngine.charging.acAmpere"
PHASES: Final = "vehicle.drivetrain.electricEngine.charging.phaseNumber"
STATUS: Final = "vehicle.drivetrain.electricEngine.charging.status"
FINISH_REASON: Final = "vehicle.drivetrain.electricEngine.charging.hvpmFinishReason"
TARGET: Final = "vehicle.powertrain.electric.battery.stateOfCharge.target"
MAX_ENERGY: Final = "vehicle.drivetrain.batteryManagement.maxEnergy"
PLUGGED: Final = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"

# Statuses that mean a session stopped or never ran, and the one that pauses it.
_ENDED_STATUSES: Final = frozenset({"CHARGINGENDED", "NOCHARGING", "CHARGINGERROR"})
_PAUSED: Final = "CHARGINGPAUSED"
_ACTIVE: Final = "CHARGINGACTIVE"
# Order within one batch of readings: what opens, pauses or ends a session comes before
# the power it carries, and the state of charge last, so an end and the final measurement
# sent together are taken as "ended, then measured".
_ORDER: Final = {PLUGGED: 0, STATUS: 1, FINISH_REASON: 1, MAX_ENERGY: 1, TARGET: 1}
_SOC_KEYS: Final = frozenset({SOC_MEASURED, SOC_DISPLAYED})
INPUTS: Final = frozenset(
    {*_SOC_KEYS, POWER, AC_VOLTAGE, AC_AMPERE, PHASES, STATUS, FINISH_REASON, TARGET}
    | {MAX_ENERGY, PLUGGED}
)
# Measurement times before this are corrupt (and would overflow date arithmetic).
_EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)

# Above this grid power a charge is DC whatever else the car says (AC tops out at 22 kW).
_DC_ONLY_ABOVE_W: Final = 22_500.0
# AC voltage or current older than this before the session began tell nothing about it.
_AC_EVIDENCE_SLACK: Final = timedelta(minutes=5)
# How long the estimate holds after "charging ended" waiting for the final measurement.
FINAL_MEASUREMENT_GRACE: Final = timedelta(minutes=10)
# A car that sends no charging status: a session without power this long has ended.
_IDLE_WITHOUT_STATUS: Final = timedelta(hours=2)
_STORAGE_VERSION: Final = 1
_NEVER: Final = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SocEstimate:
    """The state of charge to show, and what it rests on."""

    soc: float
    estimated: bool
    measured_soc: float | None
    measured_at: datetime | None
    charging: bool
    method: str | None
    session_energy_kwh: float


@dataclass(frozen=True, slots=True)
class FinishedSession:
    """What a "charging finished" event carries."""

    started_at: datetime
    ended_at: datetime
    method: str | None
    soc_from: float | None
    soc_to: float | None
    energy_kwh: float
    finish_reason: str | None


class ChargingEstimator:
    """Estimate one car's state of charge while it charges; learn its efficiency."""

    def __init__(
        self,
        *,
        capacity_fallback_kwh: float | None = None,
        stored: Mapping[str, Any] | None = None,
    ) -> None:
        """Start empty, or continue from what as_dict() returned earlier."""
        self._capacity_fallback = _capacity(capacity_fallback_kwh)
        self._readings: dict[str, tuple[Any, datetime]] = {}
        self._measured: Measurement | None = None
        self._session: ChargingSession | None = None
        self._finished: list[FinishedSession] = []
        self._efficiency = EfficiencyModel()
        self._closed_energy_kwh = 0.0
        self._total_energy_kwh = 0.0
        self._last_end = _NEVER
        if isinstance(stored, Mapping):
            self._restore(stored)

    # --- feeding ---------------------------------------------------------------------------

    def update(self, readings: Mapping[str, tuple[Any, datetime]], now: datetime) -> None:
        """Take descriptor readings (key -> (value, measurement time)) seen up to now.

        Readings already seen, or older than the one kept for their key, change nothing,
        so the caller may pass the whole state each time. A measurement time after `now`
        counts as `now`: a car clock running ahead must not freeze the estimate.
        """
        now_time = as_time(now)
        if now_time is None or now_time < _EARLIEST:
            return
        fresh: list[tuple[datetime, int, str, Any]] = []
        for key, reading in _items(readings):
            value, at = reading
            when = as_time(at)
            if key not in INPUTS or when is None or when < _EARLIEST:
                continue
            when = min(when, now_time)
            known = self._readings.get(key)
            if known is not None and (when < known[1] or (when == known[1] and value == known[0])):
                continue
            order = 3 if key in _SOC_KEYS else _ORDER.get(key, 2)
            fresh.append((when, order, key, value))
        # In the order they were measured, each reading seeing only what was known by then:
        # a batch (a REST poll, a restart) must not open a session at the time of its
        # oldest reading because its newest says the car charges.
        for when, _, key, value in sorted(fresh, key=lambda item: (item[0], item[1])):
            self._readings[key] = (value, when)
            if key in _SOC_KEYS:
                self._take_measurement(as_number(value), when, now_time)
            else:
                self._follow_charging(key, when)
        self._advance(now_time)

    def _follow_charging(self, key: str, at: datetime) -> None:
        """Open, pause, end a session or change its power after a non-SoC reading."""
        session = self._session
        status, status_at = self._text(STATUS), self._time(STATUS)
        power, power_at = self._grid_power(), max(self._time(POWER), self._time(AC_AMPERE))
        unplugged = self._readings.get(PLUGGED, (None,))[0] is False
        if unplugged and self._time(PLUGGED) < power_at:
            unplugged = False  # charging power measured after the plug reading wins
        stops = (key == PLUGGED and unplugged) or (key == STATUS and status in _ENDED_STATUSES)
        if stops and session is not None and session.ended_at is None:
            self._end_session(at)
            return
        status_fresh = status is not None and status_at >= at - _IDLE_WITHOUT_STATUS
        opens = (status == _ACTIVE and status_at > self._last_end) or (
            not status_fresh and power > 0 and power_at > self._last_end and not unplugged
        )
        if opens and (session is None or session.ended_at is not None):
            if session is not None:
                self._finalize(session)
            session = self._start_session(at)
        if session is None or session.ended_at is not None:
            return
        if key == MAX_ENERGY:
            session.adopt_capacity(_capacity(self._number(MAX_ENERGY)), from_car=True)
        status_applies = status is not None and status_at >= session.started_at
        stopped = status_applies and (status == _PAUSED or status in _ENDED_STATUSES)
        effective = 0.0 if stopped else power
        kind = self._kind(session, effective, at)
        efficiency = self._efficiency.efficiency(kind, effective) if kind else 1.0
        session.set_power(at, effective, kind, efficiency)

    def _take_measurement(self, soc: float | None, at: datetime, now: datetime) -> None:
        """Anchor to a measured state of charge unless it is old news."""
        if soc is None or not 0.0 <= soc <= 100.0:
            return
        if self._measured is not None and at <= self._measured.at:
            return
        session = self._session
        if session is None:
            self._measured = Measurement(soc, at)
            return
        verdict = session.judge(soc, at)
        if verdict == "stale":
            return
        if verdict == "final":
            self._measured = Measurement(soc, at)
            session.record(soc, at)
            self._finalize(session)
            return
        shown = self._shown(session, now)
        then = self._shown(session, at, floor=False)
        session.anchor(soc, at, shown_now=shown, estimate_then=then)
        self._measured = Measurement(soc, at)

    # --- sessions --------------------------------------------------------------------------

    def _start_session(self, at: datetime) -> ChargingSession:
        capacity = _capacity(self._number(MAX_ENERGY))
        session = ChargingSession(
            started_at=at,
            capacity_kwh=capacity or self._capacity_fallback,
            capacity_from_car=capacity is not None,
            measured=self._measured,
        )
        self._session = session
        return session

    def _end_session(self, at: datetime) -> None:
        session = self._session
        if session is None or session.ended_at is not None:
            return
        hold = self._shown(session, at)
        session.end(at, hold, self._text(FINISH_REASON))
        self._last_end = max(self._last_end, session.ended_at or at)

    def _finalize(self, session: ChargingSession) -> None:
        """Close a session: count its energy, report it, learn from it."""
        if session.ended_at is None:
            self._end_session(session.last_time)
        energy = session.energy_kwh()
        self._closed_energy_kwh += energy
        self._total_energy_kwh = max(self._total_energy_kwh, self._closed_energy_kwh)
        reason = self._text(FINISH_REASON)
        reason_at = self._readings.get(FINISH_REASON, (None, session.started_at))[1]
        self._finished.append(
            FinishedSession(
                started_at=session.started_at,
                ended_at=session.ended_at or session.last_time,
                method=session.method(),
                soc_from=session.first.soc if session.first else None,
                soc_to=session.last.soc if session.last else None,
                energy_kwh=round(energy, 3),
                finish_reason=reason if reason_at >= session.started_at else None,
            )
        )
        sample = session.learning_sample()
        if sample is not None:
            self._efficiency.learn(sample)
        self._session = None

    def _advance(self, now: datetime) -> None:
        """Let time pass: close overdue sessions and count energy up to now."""
        session = self._session
        if session is None:
            return
        if session.ended_at is not None and now - session.ended_at >= FINAL_MEASUREMENT_GRACE:
            self._finalize(session)
            return
        if (
            session.ended_at is None
            and self._text(STATUS) not in {_ACTIVE, _PAUSED}
            and session.idle_since(now) >= _IDLE_WITHOUT_STATUS
        ):
            self._end_session(session.last_time)
            self._finalize(session)
            return
        self._total_energy_kwh = max(
            self._total_energy_kwh, self._closed_energy_kwh + session.energy_kwh(now)
        )

    # --- reading the estimate --------------------------------------------------------------

    def estimate(self, now: datetime) -> SocEstimate | None:
        """Return the state of charge to show at `now`; None before any is known.

        Also closes a session whose final measurement did not come within the grace
        period, so call pop_finished() after it as after update().
        """
        now_time = as_time(now)
        if now_time is not None:
            self._advance(now_time)
        measured = self._measured
        session = self._session
        if session is None or now_time is None:
            if measured is None:
                return None
            return SocEstimate(measured.soc, False, measured.soc, measured.at, False, None, 0.0)
        shown = self._shown(session, now_time)
        if shown is None:
            return None
        return SocEstimate(
            soc=round(shown, 2),
            estimated=measured is None or abs(shown - measured.soc) > 0.005,
            measured_soc=measured.soc if measured else None,
            measured_at=measured.at if measured else None,
            charging=session.charging(now_time),
            method=session.method(now_time),
            session_energy_kwh=round(session.energy_kwh(now_time), 3),
        )

    def _shown(self, session: ChargingSession, at: datetime, *, floor: bool = True) -> float | None:
        """Return the number to show at a time while a session is open."""
        target = self._number(TARGET)
        valid = target if target is not None and 0 < target <= 100 else None
        return session.shown(at, valid, floor=floor)

    @property
    def total_energy_kwh(self) -> float:
        """Grid energy integrated over the car's life here, as of the last call; never falls."""
        return round(self._total_energy_kwh, 3)

    def pop_finished(self) -> list[FinishedSession]:
        """Sessions closed since the last call, oldest first."""
        finished, self._finished = self._finished, []
        return finished

    @property
    def needs_timer(self) -> bool:
        """True while a session is open: the estimate moves without new readings."""
        return self._session is not None

    @property
    def efficiencies(self) -> dict[str, float]:
        """What has been learned so far, per charging kind (for diagnostics)."""
        return self._efficiency.learned()

    # --- input helpers ---------------------------------------------------------------------

    def _number(self, key: str) -> float | None:
        return as_number(self._readings.get(key, (None,))[0])

    def _time(self, key: str) -> datetime:
        """Measurement time of a key's reading; the distant past when there is none."""
        reading = self._readings.get(key)
        return reading[1] if reading is not None else _NEVER

    def _text(self, key: str) -> str | None:
        value = self._readings.get(key, (None,))[0]
        return value.strip().upper() if isinstance(value, str) and value.strip() else None

    def _grid_power(self) -> float:
        """Charging power in W: the car's own reading, else AC volts x amps x phases."""
        if POWER in self._readings:
            power = self._number(POWER)
        else:
            volts, amps = self._number(AC_VOLTAGE), self._number(AC_AMPERE)
            power = (
                volts * amps * _phases(self._readings.get(PHASES, (None,))[0])
                if (volts is not None and amps is not None)
                else None
            )
        return max(power or 0.0, 0.0)

    def _kind(self, session: ChargingSession, power: float, at: datetime) -> str | None:
        """Which efficiency applies: DC, or the AC power band; None without power."""
        if power <= 0:
            return None
        if power > _DC_ONLY_ABOVE_W:
            session.saw_dc = True
            return DC
        volts = self._readings.get(AC_VOLTAGE)
        amps = self._readings.get(AC_AMPERE)
        evidence_from = session.started_at - _AC_EVIDENCE_SLACK
        fresh = [
            as_number(reading[0])
            for reading in (volts, amps)
            if reading is not None and reading[1] >= evidence_from
        ]
        if any(value == 0 for value in fresh):
            session.saw_dc = True
            return DC
        if any(value is not None and value > 0 for value in fresh):
            session.saw_dc = False
            return band_for(power)
        return DC if session.saw_dc else band_for(power)

    # --- persistence -----------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe state: learned efficiencies, the running session, lifetime energy."""
        return {
            "version": _STORAGE_VERSION,
            "efficiency": self._efficiency.as_dict(),
            "total_energy_kwh": self._total_energy_kwh,
            "closed_energy_kwh": self._closed_energy_kwh,
            "measured": self._measured.as_dict() if self._measured else None,
            "readings": {
                key: [value, iso(at)]
                for key, (value, at) in self._readings.items()
                if value is None
                or isinstance(value, (str, int, bool))
                or (isinstance(value, float) and math.isfinite(value))
            },
            "session": self._session.as_dict() if self._session else None,
            "last_end": iso(self._last_end) if self._last_end > _NEVER else None,
        }

    def _restore(self, stored: Mapping[str, Any]) -> None:
        self._efficiency = EfficiencyModel.from_dict(stored.get("efficiency"))
        closed = as_number(stored.get("closed_energy_kwh"))
        total = as_number(stored.get("total_energy_kwh"))
        self._closed_energy_kwh = max(closed or 0.0, 0.0)
        self._total_energy_kwh = max(total or 0.0, self._closed_energy_kwh)
        self._measured = Measurement.from_dict(stored.get("measured"))
        readings = stored.get("readings")
        if isinstance(readings, Mapping):
            for key, pair in readings.items():
                if isinstance(key, str) and isinstance(pair, (list, tuple)) and len(pair) == 2:
                    at = as_time(pair[1])
                    if at is not None:
                        self._readings[key] = (pair[0], at)
        self._session = ChargingSession.from_dict(stored.get("session"), self._measured)
        self._last_end = as_time(stored.get("last_end")) or _NEVER


def _items(readings: object) -> list[tuple[str, tuple[Any, Any]]]:
    """Return the well-formed (key, (value, time)) pairs of a mapping of readings."""
    if not isinstance(readings, Mapping):
        return []
    return [
        (key, (pair[0], pair[1]))
        for key, pair in readings.items()
        if isinstance(key, str) and isinstance(pair, (tuple, list)) and len(pair) == 2
    ]


def _capacity(value: Any) -> float | None:
    """Return a usable battery capacity in kWh; None when implausible (0, > 300)."""
    number = as_number(value)
    return number if number is not None and 1.0 <= number <= 300.0 else None


def _phases(value: Any) -> int:
    """Return the number of phases from `3-PHASES`, `1-PHASES`, 3 ...; 1 when unknown."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int) and 1 <= value <= 3:
        return value
    if isinstance(value, str) and value[:1] in {"1", "2", "3"}:
        return int(value[0])
    return 1
