"""One charging session of one car, integrated over simulated time and streamed as a car does.

The true state of charge moves in fixed internal steps of `STEP_SECONDS` from the moment the
car is plugged in, so the outcome depends only on simulated time, never on how the clock got
there (one jump of an hour or sixty of a minute give the same session). Every reading is
stamped with the simulated moment it happened, also when a jump delivers many at once.

What the car streams (on change only, as real cars do):
- plug-in: plug and port, INITIALIZATION, method (AC only: BMW has no DC value), target,
  maxEnergy (read per session: it can change between sessions) and the state of charge;
- after `INITIALIZATION_SECONDS`: CHARGINGACTIVE with power, AC voltage/current and phases
  (DC: voltage and current 0), remaining time;
- the charging power when it moved by `POWER_THRESHOLD` (a steady 11 kW: no message);
- the state of charge at every whole percent (batteryManagement.header and
  stateOfCharge.displayed), with the range;
- CHARGINGPAUSED with power 0 when solar power is too low, CHARGINGACTIVE when it returns;
- at the target: CHARGINGENDED with BMW's finish reason, and a charging-history entry.
The quirks (quirks.py) bend this: withhold the state of charge while charging, re-send the
start state of charge when the speed changes, send the end before the final state of charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import math
import struct
from typing import TYPE_CHECKING, Any

from . import fleet
from .battery import (
    DEFAULT_SOLAR_PROFILE,
    AcSupply,
    ChargeMode,
    ChargerLimits,
    LossModel,
    ProfileSegment,
    ac_min_kw,
    ac_supply,
    dc_power_kw,
    losses_for,
    profile_power_kw,
)
from .points import TelematicPoint
from .scenarios import (
    AC_AMPERE,
    AC_VOLTAGE,
    CHARGING_LEVEL,
    CHARGING_METHOD,
    CHARGING_POWER,
    CHARGING_STATUS,
    ELECTRIC_RANGE,
    FINISH_REASON,
    HV_STATUS,
    IS_PLUGGED,
    MAX_ENERGY,
    ODOMETER,
    PHASE_NUMBER,
    PORT_COMBINED_STATUS,
    PORT_STATUS,
    SOC,
    SOC_DISPLAYED,
    SOC_TARGET,
    TIME_REMAINING,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .quirks import StreamQuirks

STEP_SECONDS = 10.0
INITIALIZATION_SECONDS = 30.0
# Power changes smaller than this (or 5 % of the last sent power) are not streamed.
POWER_THRESHOLD_W = 250
POWER_THRESHOLD_SHARE = 0.05
# The remaining time is re-sent when it moved by this many minutes.
TIME_REMAINING_THRESHOLD_MIN = 5
# With the early_charging_end quirk, the final state of charge follows the end this late.
FINAL_SOC_DELAY_SECONDS = 75.0
# A real AC supply wobbles a little; the wobble is integrated but stays below the threshold.
AC_WOBBLE_SHARE = 0.003
AC_WOBBLE_PERIOD_SECONDS = 600.0
PUBLIC_DC_LOCATION = (48.351, 11.7861)

Emission = tuple[datetime, dict[str, TelematicPoint]]


class Phase(StrEnum):
    """Where a session stands."""

    INITIALIZING = "initializing"
    CHARGING = "charging"
    PAUSED = "paused"
    ENDED = "ended"


class FinishReason(StrEnum):
    """BMW's hvpmFinishReason values the simulator produces."""

    GOAL = "CHARGING_GOAL_REACHED"
    DRIVER = "END_REQUESTED_BY_DRIVER"
    UNPLUGGED = "CONNECTOR_REMOVED"


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What `POST /vehicles/{vin}/charging` asks for."""

    mode: ChargeMode
    target_soc: float | None = None
    start_soc: float | None = None
    capacity_kwh: float | None = None
    power_kw: float | None = None  # AC: offered power (capped by the car); DC: peak
    profile: tuple[ProfileSegment, ...] | None = None  # AC/solar: offered power over time
    # A car whose charger loses more or less than the usual one (benches of learning).
    losses: LossModel | None = None


@dataclass(slots=True)
class _Block:
    """A stretch of actual charging between pauses (a history entry's chargingBlocks)."""

    start: datetime
    end: datetime
    grid_kwh: float = 0.0


@dataclass(slots=True)
class _Sent:
    """What the car last streamed, to send on change only."""

    power_w: int | None = None
    supply: AcSupply | None = None
    minutes_left: int | None = None
    whole_soc: int = 0


@dataclass(slots=True)
class _Energy:
    """Energy bookkeeping of a session (kWh)."""

    grid: float = 0.0
    battery: float = 0.0

    @property
    def losses(self) -> float:
        return self.grid - self.battery


class ChargingSession:
    """A car plugged in at `start`, charging towards its target until it ends."""

    def __init__(
        self,
        vin: str,
        request: SessionRequest,
        car: Mapping[str, TelematicPoint],
        quirks: StreamQuirks,
        start: datetime,
    ) -> None:
        """Plug in at `start`; `car` is the car's current telematics."""
        self.vin = vin
        self.mode = request.mode
        self._quirks = quirks
        self.capacity_kwh = request.capacity_kwh or _number(car, MAX_ENERGY) or 80.0
        self.limits = ChargerLimits.for_car(
            self.capacity_kwh, list(fleet.VEHICLES[vin].basic_data.get("chargingModes", []))
        )
        if self.mode is ChargeMode.DC and self.limits.dc_peak_kw is None:
            raise ValueError("this car has no DC charging inlet")
        self.start_soc = request.start_soc if request.start_soc is not None else _soc(car)
        self.target_soc = float(
            (request.target_soc if request.target_soc is not None else _number(car, SOC_TARGET))
            or 80.0
        )
        if not 0 <= self.start_soc < self.target_soc <= 100:
            raise ValueError("start_soc must be below target_soc, both within 0-100")
        self._power_kw = request.power_kw
        self._profile = request.profile or (
            DEFAULT_SOLAR_PROFILE if self.mode is ChargeMode.SOLAR else ()
        )
        self._losses = request.losses or losses_for(self.mode)
        self._car = car
        self._km_per_percent = _km_per_percent(car, self.capacity_kwh, self.start_soc)
        self.soc = self.start_soc
        self.energy = _Energy()
        self.started = start
        self.ended: datetime | None = None
        self.finish_reason: FinishReason | None = None
        self.phase = Phase.INITIALIZING
        self.grid_kw = 0.0
        self.history_entry: dict[str, Any] | None = None
        self._t = start
        self._charging_since: datetime | None = None
        self._blocks: list[_Block] = []
        self._sent = _Sent(whole_soc=math.floor(self.start_soc))
        self._pending: list[Emission] = []
        self._out: list[Emission] = [(start, self._plug_in_points(start))]

    # --- time -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Still plugged in and not ended (or a delayed final reading still to send)."""
        return self.ended is None or bool(self._pending)

    def advance(self, now: datetime) -> list[Emission]:
        """Integrate up to `now` (whole internal steps); return what the car sent meanwhile."""
        while self.ended is None and self._t + timedelta(seconds=STEP_SECONDS) <= now:
            self._step(self._t, STEP_SECONDS)
        due = [item for item in self._pending if item[0] <= now]
        self._pending = [item for item in self._pending if item[0] > now]
        out, self._out = [*self._out, *due], []
        return sorted(out, key=lambda item: item[0])

    def soc_at(self, now: datetime) -> float:
        """The true state of charge at `now`, between internal steps too (read-out only)."""
        if self.ended is not None or now <= self._t:
            return self.soc
        elapsed = min(STEP_SECONDS, (now - self._t).total_seconds())
        grid_kw = self._grid_kw(self._t)
        gained = self._losses.battery_kw(grid_kw) * elapsed / 3600 / self.capacity_kwh * 100
        return min(self.target_soc, self.soc + gained)

    def finish(self, now: datetime, reason: FinishReason) -> list[Emission]:
        """The driver stops the charge, pulls the cable, or starts a new session at `now`."""
        emitted = self.advance(now)
        was_ended = self.ended is not None
        if not was_ended and now > self._t:
            # The part of an internal step before the stop counts too.
            self._step(self._t, (now - self._t).total_seconds())
        if self.ended is None:
            self._end(now, reason)
        emitted.extend(self._out)
        self._out = []
        if self._pending and (was_ended or reason is FinishReason.UNPLUGGED):
            # The final reading was still to come: the car sends it as the session goes.
            self._pending = []
            emitted.append((now, self._soc_points(self._display(self.soc), now)))
        if reason is FinishReason.UNPLUGGED:
            emitted.append((now, unplug_points(now, self._car)))
        return sorted(emitted, key=lambda item: item[0])

    # --- physics --------------------------------------------------------------------

    def _grid_kw(self, moment: datetime) -> float:
        """What the car draws from the charger at `moment` (0 while initializing or paused)."""
        elapsed = (moment - self.started).total_seconds()
        if elapsed < INITIALIZATION_SECONDS:
            return 0.0
        charging_for = elapsed - INITIALIZATION_SECONDS
        if self.mode is ChargeMode.DC:
            assert self.limits.dc_peak_kw is not None
            return dc_power_kw(self.soc, self._power_kw or self.limits.dc_peak_kw)
        offered = (
            profile_power_kw(self._profile, charging_for)
            if self._profile
            else (self._power_kw or self.limits.ac_max_kw)
        )
        if offered < ac_min_kw():
            return 0.0
        wobble = 1 + AC_WOBBLE_SHARE * math.sin(
            2 * math.pi * charging_for / AC_WOBBLE_PERIOD_SECONDS
        )
        return min(offered, self.limits.ac_max_kw) * wobble

    def _step(self, t: datetime, seconds: float) -> None:
        grid_kw = self._grid_kw(t)
        self._follow_power(t, grid_kw)
        battery_kw = self._losses.battery_kw(grid_kw)
        gain = battery_kw * seconds / 3600 / self.capacity_kwh * 100
        share = 1.0
        if gain > 0 and self.soc + gain >= self.target_soc:
            share = (self.target_soc - self.soc) / gain
        before = self.soc
        self.soc = min(self.target_soc, self.soc + gain)
        self.energy.grid += grid_kw * seconds * share / 3600
        self.energy.battery += battery_kw * seconds * share / 3600
        if self._blocks and self.phase is Phase.CHARGING:
            self._blocks[-1].grid_kwh += grid_kw * seconds * share / 3600
        self._t = t + timedelta(seconds=seconds * share)
        if self.soc > before:
            self._whole_percents(t, seconds, before, gain)
        if self.soc >= self.target_soc:
            self._end(self._t, FinishReason.GOAL)

    def _whole_percents(self, t: datetime, seconds: float, before: float, gain: float) -> None:
        """Send the state of charge at each whole percent crossed, at the moment it was."""
        for whole in range(self._sent.whole_soc + 1, math.floor(self.soc + 1e-9) + 1):
            moment = t + timedelta(seconds=seconds * (whole - before) / gain)
            self._sent.whole_soc = whole
            if whole >= self.target_soc and self._quirks.early_charging_end:
                continue  # sent late, after the end (see _end)
            if not self._quirks.withhold_charging_soc:
                self._emit(moment, self._soc_points(float(whole), moment))

    def _follow_power(self, t: datetime, grid_kw: float) -> None:
        """Status and power messages when charging starts, pauses, resumes or changes speed."""
        power_w = round(grid_kw * 1000)
        if self.phase is Phase.INITIALIZING and grid_kw == 0:
            elapsed = (t - self.started).total_seconds()
            if elapsed < INITIALIZATION_SECONDS:
                return
        if grid_kw == 0:
            if self.phase is not Phase.PAUSED:
                self._close_block(t)
                self.phase = Phase.PAUSED
                self.grid_kw = 0.0
                self._emit(t, self._paused_points(t))
            return
        self.grid_kw = grid_kw
        if self.phase is not Phase.CHARGING:
            resumed = self.phase is Phase.PAUSED
            self.phase = Phase.CHARGING
            self._charging_since = self._charging_since or t
            self._blocks.append(_Block(start=t, end=t))
            self._emit(t, self._active_points(t, grid_kw, power_w, speed_change=resumed))
            return
        last = self._sent.power_w or 0
        if abs(power_w - last) >= max(POWER_THRESHOLD_W, POWER_THRESHOLD_SHARE * last):
            self._emit(t, self._power_points(t, grid_kw, power_w, speed_change=True))
        else:
            minutes = self._minutes_left(grid_kw)
            if abs(minutes - (self._sent.minutes_left or 0)) >= TIME_REMAINING_THRESHOLD_MIN:
                self._sent.minutes_left = minutes
                self._emit(t, {TIME_REMAINING: TelematicPoint(minutes, "min", t)})

    def _close_block(self, t: datetime) -> None:
        if self._blocks and self.phase is Phase.CHARGING:
            self._blocks[-1].end = t

    def _end(self, moment: datetime, reason: FinishReason) -> None:
        self._close_block(moment)
        self.phase = Phase.ENDED
        self.grid_kw = 0.0
        self.ended = moment
        self.finish_reason = reason
        self._emit(moment, self._ended_points(moment, reason))
        final_due = moment + timedelta(
            seconds=FINAL_SOC_DELAY_SECONDS if self._quirks.early_charging_end else 0
        )
        final = self._soc_points(self._display(self.soc), final_due)
        if final_due > moment:
            self._pending.append((final_due, final))
        elif reason is not FinishReason.GOAL or self._withheld():
            # At the goal the last whole percent went out already, unless withheld.
            self._emit(moment, final)
        self.history_entry = self._history_entry()

    def _minutes_left(self, grid_kw: float) -> int:
        battery_kw = self._losses.battery_kw(grid_kw)
        kwh = max(0.0, (self.target_soc - self.soc) / 100 * self.capacity_kwh)
        return math.ceil(kwh / battery_kw * 60) if battery_kw > 0 else 0

    @staticmethod
    def _display(soc: float) -> float:
        """The car's displayed state of charge: whole percent."""
        return float(round(soc))

    # --- what the car sends ----------------------------------------------------------

    def _emit(self, moment: datetime, points: dict[str, TelematicPoint]) -> None:
        if points:
            self._out.append((moment, points))

    def _soc_points(self, soc: float, moment: datetime) -> dict[str, TelematicPoint]:
        points = {
            SOC: TelematicPoint(soc, "percent", moment),
            SOC_DISPLAYED: TelematicPoint(soc, "percent", moment),
            ELECTRIC_RANGE: TelematicPoint(float(round(soc * self._km_per_percent)), "km", moment),
        }
        if CHARGING_LEVEL in self._car:
            points[CHARGING_LEVEL] = TelematicPoint(soc, "%", moment)
        return points

    def _plug_in_points(self, moment: datetime) -> dict[str, TelematicPoint]:
        points = {
            IS_PLUGGED: TelematicPoint(True, None, moment),
            PORT_STATUS: TelematicPoint("CONNECTED", None, moment),
            CHARGING_STATUS: TelematicPoint("INITIALIZATION", None, moment),
            HV_STATUS: TelematicPoint("WAITING_FOR_CHARGING", None, moment),
            SOC_TARGET: TelematicPoint(round(self.target_soc), "%", moment),
            MAX_ENERGY: TelematicPoint(round(self.capacity_kwh, 1), "kWh", moment),
            **self._soc_points(self._display(self.start_soc), moment),
        }
        if self.mode is not ChargeMode.DC:
            points[CHARGING_METHOD] = TelematicPoint("AC_TYPE2PLUG", None, moment)
        if PORT_COMBINED_STATUS in self._car:
            points[PORT_COMBINED_STATUS] = TelematicPoint("CONNECTED", None, moment)
        return points

    def _active_points(
        self, t: datetime, grid_kw: float, power_w: int, *, speed_change: bool
    ) -> dict[str, TelematicPoint]:
        return {
            CHARGING_STATUS: TelematicPoint("CHARGINGACTIVE", None, t),
            HV_STATUS: TelematicPoint("CHARGING", None, t),
            **self._power_points(t, grid_kw, power_w, speed_change=speed_change, force=True),
        }

    def _power_points(
        self,
        t: datetime,
        grid_kw: float,
        power_w: int,
        *,
        speed_change: bool,
        force: bool = False,
    ) -> dict[str, TelematicPoint]:
        self._sent.power_w = power_w
        minutes = self._minutes_left(grid_kw)
        self._sent.minutes_left = minutes
        points = {
            CHARGING_POWER: TelematicPoint(power_w, "W", t),
            TIME_REMAINING: TelematicPoint(minutes, "min", t),
        }
        if self.mode is ChargeMode.DC:
            if force:
                points[AC_VOLTAGE] = TelematicPoint(0.0, "V", t)
                points[AC_AMPERE] = TelematicPoint(0, "A", t)
        else:
            supply = ac_supply(grid_kw, self.limits.ac_phases)
            if force or supply != self._sent.supply:
                points[AC_VOLTAGE] = TelematicPoint(supply.volts, "V", t)
                points[AC_AMPERE] = TelematicPoint(supply.amps, "A", t)
                points[PHASE_NUMBER] = TelematicPoint(f"{supply.phases}-PHASES", None, t)
            self._sent.supply = supply
        if speed_change and self._quirks.resend_start_soc and not self._withheld():
            # Real cars re-send the session's first state of charge, freshly stamped.
            points.update(self._soc_points(self._display(self.start_soc), t))
        return points

    def _paused_points(self, t: datetime) -> dict[str, TelematicPoint]:
        self._sent.power_w = 0
        self._sent.supply = None
        return {
            CHARGING_STATUS: TelematicPoint("CHARGINGPAUSED", None, t),
            HV_STATUS: TelematicPoint("WAITING_FOR_CHARGING", None, t),
            CHARGING_POWER: TelematicPoint(0, "W", t),
            AC_AMPERE: TelematicPoint(0, "A", t),
        }

    def _ended_points(self, t: datetime, reason: FinishReason) -> dict[str, TelematicPoint]:
        full = self.soc >= 100
        return {
            CHARGING_STATUS: TelematicPoint("CHARGINGENDED", None, t),
            HV_STATUS: TelematicPoint(
                "FINISHED_FULLY_CHARGED" if full else "FINISHED_NOT_FULL", None, t
            ),
            FINISH_REASON: TelematicPoint(reason.value, None, t),
            CHARGING_POWER: TelematicPoint(0, "W", t),
            AC_VOLTAGE: TelematicPoint(0.0, "V", t),
            AC_AMPERE: TelematicPoint(0, "A", t),
            TIME_REMAINING: TelematicPoint(0, "min", t),
            # BMW resets the phase count at the end of a charge (spec §3.2).
            PHASE_NUMBER: TelematicPoint("1-PHASES", None, t),
        }

    def _withheld(self) -> bool:
        return self._quirks.withhold_charging_soc

    # --- history --------------------------------------------------------------------

    def _history_entry(self) -> dict[str, Any]:
        """The ChargingSessionDto BMW keeps for this session (spec §2.2)."""
        assert self.ended is not None
        vehicle = fleet.VEHICLES[self.vin]
        public = self.mode is ChargeMode.DC
        lat, lon = PUBLIC_DC_LOCATION if public else vehicle.home
        active = sum((block.end - block.start).total_seconds() for block in self._blocks)
        entry: dict[str, Any] = {
            "startTime": int(self.started.timestamp()),
            "endTime": int(self.ended.timestamp()),
            "timeZone": vehicle.time_zone,
            "displayedStartSoc": round(self.start_soc),
            "displayedSoc": round(self.soc),
            "totalChargingDurationSec": int(active),
            "energyConsumedFromPowerGridKwh": _float32(self.energy.grid),
            "isPreconditioningActivated": False,
            "mileage": int(_number(self._car, ODOMETER) or 0),
            "mileageUnits": "MileageUnits.KM",
            "chargingLocation": {
                "municipality": "Freising" if public else "München",
                "formattedAddress": "Nordallee 25, 85356 Freising"
                if public
                else "Am Olympiapark 1, 80809 München",
                "streetAddress": "Nordallee 25" if public else "Am Olympiapark 1",
                "mapMatchedLatitude": lat,
                "mapMatchedLongitude": lon,
            },
            "chargingBlocks": [_block_entry(block) for block in self._blocks],
            "businessErrors": [],
        }
        if public:
            entry["publicChargingPoint"] = {
                "potentialChargingPointMatches": [
                    {
                        "postalCode": "85356",
                        "streetAddress": "Nordallee 25",
                        "providerName": "HPC/DC IONITY GmbH",
                        "city": "Freising",
                    }
                ]
            }
        return entry

    # --- read-out -------------------------------------------------------------------

    def truth(self, now: datetime) -> dict[str, Any]:
        """What really happened, for tests and benches (never streamed)."""
        soc = self.soc_at(now)
        return {
            "vin": self.vin,
            "mode": self.mode.value,
            "phase": self.phase.value,
            "soc": soc,
            "start_soc": self.start_soc,
            "target_soc": self.target_soc,
            "capacity_kwh": self.capacity_kwh,
            "battery_kwh": soc / 100 * self.capacity_kwh,
            "grid_kwh": self.energy.grid,
            "battery_added_kwh": self.energy.battery,
            "loss_kwh": self.energy.losses,
            "grid_power_w": round(self.grid_kw * 1000),
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat() if self.ended else None,
            "finish_reason": self.finish_reason.value if self.finish_reason else None,
            "history_entry": self.history_entry,
        }


def _block_entry(block: _Block) -> dict[str, Any]:
    hours = (block.end - block.start).total_seconds() / 3600
    return {
        "startTime": int(block.start.timestamp()),
        "endTime": int(block.end.timestamp()),
        "averagePowerGridKw": _float32(block.grid_kwh / hours) if hours > 0 else 0.0,
    }


def unplug_points(moment: datetime, car: Mapping[str, TelematicPoint]) -> dict[str, TelematicPoint]:
    """What a car sends when its cable is pulled."""
    points = {
        IS_PLUGGED: TelematicPoint(False, None, moment),
        PORT_STATUS: TelematicPoint("DISCONNECTED", None, moment),
        CHARGING_STATUS: TelematicPoint("NOCHARGING", None, moment),
        HV_STATUS: TelematicPoint("NOT_CHARGING", None, moment),
        CHARGING_METHOD: TelematicPoint("NOCHARGING", None, moment),
    }
    if PORT_COMBINED_STATUS in car:
        points[PORT_COMBINED_STATUS] = TelematicPoint("DISCONNECTED", None, moment)
    return points


def _float32(value: float) -> float:
    """BMW's energies carry float32 noise (22.979991912841797)."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def _number(car: Mapping[str, TelematicPoint], descriptor: str) -> float | None:
    point = car.get(descriptor)
    if point is None or isinstance(point.value, bool):
        return None
    try:
        return float(point.value)
    except (TypeError, ValueError):
        return None


def _soc(car: Mapping[str, TelematicPoint]) -> float:
    soc = _number(car, SOC)
    return soc if soc is not None else 50.0


def _km_per_percent(car: Mapping[str, TelematicPoint], capacity: float, soc: float) -> float:
    electric_range = _number(car, ELECTRIC_RANGE)
    measured = _number(car, SOC)
    if electric_range and measured:
        return electric_range / measured
    # 17 kWh per 100 km when the car has not said better.
    return capacity / 100 / 0.17
