"""How much of the grid energy a car's battery keeps, learned per car and per power band.

Charging losses depend on power: the car's electronics draw a roughly fixed overhead while
it charges, so slow solar charging loses proportionally more than 11 kW. Efficiency is
therefore learned per AC power band (and once for DC), and a band that has not learned
anything yet falls back on a loss model with a fixed overhead, never above what the car
showed at other powers once scaled by that model. A low-power session thus errs on the
slow side rather than running ahead. Home Assistant free; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

DC: Final = "dc"
# AC bands by grid power: (name, lower edge in W, typical power in W).
_AC_BANDS: Final = (
    ("ac_slow", 0.0, 1_600.0),  # solar surplus, 6-10 A on one phase
    ("ac_low", 2_300.0, 3_500.0),  # 10-16 A on one phase
    ("ac_medium", 4_600.0, 6_500.0),  # two phases, reduced current, 7.4 kW wallboxes
    ("ac_fast", 8_000.0, 11_000.0),  # 11 kW and more
)
AC_BANDS: Final = tuple(name for name, _, _ in _AC_BANDS)

# Loss model for AC bands nothing was learned for: nominal efficiency minus a fixed
# overhead drawn while charging (cooling, control units, the 12 V system).
_AC_NOMINAL: Final = 0.94
_AC_OVERHEAD_W: Final = 300.0
_DC_DEFAULT: Final = 0.94
# Plausible efficiencies; anything learned stays inside.
_BOUNDS: Final = {DC: (0.75, 0.99), "ac": (0.55, 0.98)}
# Sessions worth learning from, and how fast to follow them.
MIN_GAIN_PP: Final = 5.0
MIN_ENERGY_KWH: Final = 1.0
_PLAUSIBLE_RATIO: Final = (0.5, 1.0)  # stored / grid energy of a whole session
_FULL_TRUST_GAIN_PP: Final = 20.0  # below this, rounding of the SoC weighs in
_MIN_RATE: Final = 0.3
_MIN_SHARE: Final = 0.2


def band_for(power_w: float) -> str:
    """Return the AC band a grid power belongs to."""
    name = _AC_BANDS[0][0]
    for band, lower, _ in _AC_BANDS:
        if power_w >= lower:
            name = band
    return name


def _bounds(kind: str) -> tuple[float, float]:
    return _BOUNDS[DC] if kind == DC else _BOUNDS["ac"]


def _clip(kind: str, value: float) -> float:
    low, high = _bounds(kind)
    return min(max(value, low), high)


def _model(power_w: float) -> float:
    """Unlearned AC efficiency at a grid power: nominal minus the fixed overhead."""
    return _clip("ac", _AC_NOMINAL * (1.0 - _AC_OVERHEAD_W / max(power_w, 1.0)))


_TYPICAL: Final = {name: typical for name, _, typical in _AC_BANDS}


@dataclass(frozen=True, slots=True)
class LearningSample:
    """One finished session, between its first and last measured state of charge."""

    grid_kwh: Mapping[str, float]  # grid energy per kind (AC band or DC)
    assumed_kwh: Mapping[str, float]  # energy stored per kind with the efficiency used
    stored_kwh: float  # energy stored by the measurements: SoC gained x capacity
    gain_pp: float


@dataclass(slots=True)
class _Learned:
    efficiency: float
    sessions: int


class EfficiencyModel:
    """Learned efficiencies of one car."""

    def __init__(self) -> None:
        """Start with nothing learned."""
        self._learned: dict[str, _Learned] = {}

    def efficiency(self, kind: str, power_w: float) -> float:
        """Return the efficiency to assume for charging of this kind at this grid power."""
        if kind == DC:
            learned = self._learned.get(DC)
            return learned.efficiency if learned else _DC_DEFAULT
        candidates = [_model(power_w)]
        own = self._learned.get(kind)
        if own is not None:
            candidates = [own.efficiency]
        # What the car showed at higher powers caps this band: losses only grow as power
        # falls. An unlearned band also takes each learned higher band scaled down by the
        # loss model, the lowest of all, so a band without experience errs on the slow
        # side. Lower bands say nothing about higher ones (their extra losses may be the
        # overhead, which weighs little at high power), so they are not carried upwards.
        order = AC_BANDS.index(kind) if kind in AC_BANDS else 0
        for band in AC_BANDS[order + 1 :]:
            learned = self._learned.get(band)
            if learned is None:
                continue
            candidates.append(learned.efficiency)
            if own is None:
                scaled = learned.efficiency * _model(power_w) / _model(_TYPICAL[band])
                candidates.append(scaled)
        return _clip(kind, min(candidates))

    def learn(self, sample: LearningSample) -> bool:
        """Follow a finished session; False when it is rejected as an outlier."""
        grid = sum(max(value, 0.0) for value in sample.grid_kwh.values())
        assumed = sum(max(value, 0.0) for value in sample.assumed_kwh.values())
        if sample.gain_pp < MIN_GAIN_PP or grid < MIN_ENERGY_KWH or assumed <= 0:
            return False
        ratio = sample.stored_kwh / grid
        if not _PLAUSIBLE_RATIO[0] <= ratio <= _PLAUSIBLE_RATIO[1]:
            return False
        correction = sample.stored_kwh / assumed
        trust = min(sample.gain_pp / _FULL_TRUST_GAIN_PP, 1.0)
        for kind, assumed_kind in sample.assumed_kwh.items():
            grid_kind = sample.grid_kwh.get(kind, 0.0)
            share = assumed_kind / assumed
            if grid_kind <= 0 or assumed_kind <= 0 or share < _MIN_SHARE:
                continue
            # The efficiency this kind ran at, corrected by how far the session was off.
            observed = _clip(kind, assumed_kind / grid_kind * correction)
            previous = self._learned.get(kind)
            if previous is None:
                rate = trust * share
                start = assumed_kind / grid_kind
                self._learned[kind] = _Learned(_clip(kind, start + rate * (observed - start)), 1)
                continue
            rate = max(1.0 / (previous.sessions + 1), _MIN_RATE) * trust * share
            previous.efficiency = _clip(
                kind, previous.efficiency + rate * (observed - previous.efficiency)
            )
            previous.sessions += 1
        return True

    def learned(self) -> dict[str, float]:
        """Learned efficiency per kind."""
        return {kind: round(item.efficiency, 4) for kind, item in self._learned.items()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            kind: {"efficiency": item.efficiency, "sessions": item.sessions}
            for kind, item in self._learned.items()
        }

    @classmethod
    def from_dict(cls, data: Any) -> EfficiencyModel:
        """Restore from as_dict(); anything malformed or out of bounds is left out."""
        model = cls()
        if not isinstance(data, Mapping):
            return model
        for kind, item in data.items():
            if kind not in (*AC_BANDS, DC) or not isinstance(item, Mapping):
                continue
            efficiency, sessions = item.get("efficiency"), item.get("sessions")
            if (
                isinstance(efficiency, (int, float))
                and not isinstance(efficiency, bool)
                and _bounds(kind)[0] <= efficiency <= _bounds(kind)[1]
                and isinstance(sessions, int)
                and sessions > 0
            ):
                model._learned[kind] = _Learned(float(efficiency), sessions)
        return model
