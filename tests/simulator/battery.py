"""A traction battery and the charger in front of it: how much of the grid's energy it keeps.

Pure physics, no I/O and no clock: charging.py integrates these rates over simulated time.

- AC charging goes through the car's on-board charger; DC bypasses it but still cools the
  pack. Both lose a share of the power (converter efficiency) plus a fixed overhead while
  charging (control electronics, pumps, the 12 V system), so slow charging loses more in
  proportion: 2 kW of solar keeps about 81 %, 11 kW about 91 %, 150 kW DC about 95 %.
- A DC charge runs at its peak up to 60 % and then tapers, as cells near full accept less.
- Solar charging follows a power profile; below the car's minimum AC power it pauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import math

AC_VOLTS = 230.0
AC_AMPS = 16
# The smallest current an AC charge can run on (IEC 61851); below it the car pauses.
AC_MIN_AMPS = 6
DC_TAPER_FROM_SOC = 60.0
# At 100 % a DC charge still draws this share of its peak power.
DC_TAPER_FLOOR = 0.2
DC_DEFAULT_PEAK_KW = 150.0
SMALL_BATTERY_KWH = 40.0  # below this the car is a plug-in hybrid: one phase, no DC


class ChargeMode(StrEnum):
    """How the car is charged."""

    AC = "ac"
    DC = "dc"
    SOLAR = "solar"


@dataclass(frozen=True, slots=True)
class LossModel:
    """Battery power = efficiency x grid power - overhead (never below zero)."""

    efficiency: float
    overhead_kw: float

    def battery_kw(self, grid_kw: float) -> float:
        """What reaches the cells when the car draws `grid_kw` from the charger."""
        if grid_kw <= 0:
            return 0.0
        return max(0.0, self.efficiency * grid_kw - self.overhead_kw)


# On-board charger ~93 %, 250 W of electronics and pumps while charging.
AC_LOSSES = LossModel(efficiency=0.93, overhead_kw=0.25)
# No on-board conversion, but cable, contactors and pack cooling at high current.
DC_LOSSES = LossModel(efficiency=0.96, overhead_kw=0.6)


def losses_for(mode: ChargeMode) -> LossModel:
    """The loss model of a charging mode (solar is AC)."""
    return DC_LOSSES if mode is ChargeMode.DC else AC_LOSSES


@dataclass(frozen=True, slots=True)
class ChargerLimits:
    """What the car's charging hardware allows."""

    ac_phases: int
    dc_peak_kw: float | None  # None: the car has no DC inlet

    @property
    def ac_max_kw(self) -> float:
        """Full AC power: 16 A on every phase."""
        return self.ac_phases * AC_AMPS * AC_VOLTS / 1000

    @classmethod
    def for_car(cls, capacity_kwh: float, charging_modes: list[str]) -> ChargerLimits:
        """A plug-in hybrid charges on one phase; a car with a DC inlet gets a DC peak."""
        phases = 1 if capacity_kwh < SMALL_BATTERY_KWH else 3
        has_dc = "DC" in charging_modes and capacity_kwh >= SMALL_BATTERY_KWH
        # Smaller packs take less current: about 2 C, capped at a typical 150 kW.
        peak = min(DC_DEFAULT_PEAK_KW, round(capacity_kwh * 2)) if has_dc else None
        return cls(ac_phases=phases, dc_peak_kw=peak)


def dc_power_kw(soc: float, peak_kw: float) -> float:
    """DC charging power at a state of charge: the peak up to 60 %, then a linear taper."""
    if soc <= DC_TAPER_FROM_SOC:
        return peak_kw
    share = (soc - DC_TAPER_FROM_SOC) / (100.0 - DC_TAPER_FROM_SOC)
    return peak_kw * (1.0 - (1.0 - DC_TAPER_FLOOR) * min(1.0, share))


@dataclass(frozen=True, slots=True)
class AcSupply:
    """How an AC power is drawn: phases and current per phase at 230 V."""

    phases: int
    amps: int
    volts: float


def ac_supply(grid_kw: float, max_phases: int) -> AcSupply:
    """The phases and current a wallbox uses for `grid_kw` (one phase when enough)."""
    if grid_kw <= 0:
        return AcSupply(phases=max_phases, amps=0, volts=AC_VOLTS)
    one_phase_max = AC_AMPS * AC_VOLTS / 1000
    phases = 1 if grid_kw <= one_phase_max or max_phases == 1 else max_phases
    amps = min(AC_AMPS, math.ceil(grid_kw * 1000 / (phases * AC_VOLTS) - 1e-9))
    return AcSupply(phases=phases, amps=amps, volts=AC_VOLTS)


def ac_min_kw() -> float:
    """The least AC power a charge runs on: 6 A on one phase."""
    return AC_MIN_AMPS * AC_VOLTS / 1000


@dataclass(frozen=True, slots=True)
class ProfileSegment:
    """Offered power for a while; zero (or below the AC minimum) means a pause."""

    seconds: float
    power_kw: float


# A day with passing clouds on a 5 kWp roof: deterministic, with two pauses.
DEFAULT_SOLAR_PROFILE: tuple[ProfileSegment, ...] = (
    ProfileSegment(1200, 2.1),
    ProfileSegment(900, 3.4),
    ProfileSegment(600, 4.6),
    ProfileSegment(420, 0.0),
    ProfileSegment(900, 1.6),
    ProfileSegment(1200, 3.9),
    ProfileSegment(300, 0.0),
    ProfileSegment(1500, 2.7),
)


def profile_power_kw(profile: tuple[ProfileSegment, ...], elapsed: float) -> float:
    """The offered power `elapsed` seconds into a profile that repeats after its end."""
    period = sum(segment.seconds for segment in profile)
    if period <= 0:
        return 0.0
    moment = elapsed % period
    for segment in profile:
        if moment < segment.seconds:
            return segment.power_kw
        moment -= segment.seconds
    return profile[-1].power_kw
