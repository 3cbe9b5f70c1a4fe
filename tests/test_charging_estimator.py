"""The state-of-charge estimator on its own: synthetic readings in, numbers a driver sees out.

No Home Assistant and no simulator: the estimator is pure logic, so a tiny feeder plays the
car. Where a test needs a "true" state of charge it comes from the feeder's own physics
(`TrueCar`), never from the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.cardata.charging_estimator import (
    AC_AMPERE,
    AC_VOLTAGE,
    FINISH_REASON,
    MAX_ENERGY,
    PHASES,
    PLUGGED,
    POWER,
    SOC_DISPLAYED,
    SOC_MEASURED,
    STATUS,
    TARGET,
    ChargingEstimator,
    SocEstimate,
)

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
KEYS = {
    "soc": SOC_MEASURED,
    "displayed": SOC_DISPLAYED,
    "power": POWER,
    "volts": AC_VOLTAGE,
    "amps": AC_AMPERE,
    "phases": PHASES,
    "status": STATUS,
    "reason": FINISH_REASON,
    "target": TARGET,
    "capacity": MAX_ENERGY,
    "plugged": PLUGGED,
}


@dataclass
class Feed:
    """Plays the car: sends readings stamped with its clock, reads the estimate."""

    estimator: ChargingEstimator = field(default_factory=ChargingEstimator)
    now: datetime = T0

    def send(self, *, at: datetime | None = None, **values: Any) -> None:
        stamp = at or self.now
        self.estimator.update(
            {KEYS[name]: (value, stamp) for name, value in values.items()}, self.now
        )

    def wait(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)

    def estimate(self) -> SocEstimate:
        result = self.estimator.estimate(self.now)
        assert result is not None
        return result

    @property
    def soc(self) -> float:
        return self.estimate().soc

    def start(self, soc: float, *, capacity: float | None = 80.0, power: float = 11_000) -> None:
        """Parked at `soc`, then plugged in and charging."""
        if capacity is not None:
            self.send(capacity=capacity)
        self.send(soc=soc)
        self.wait(5)
        self.send(plugged=True, status="CHARGINGACTIVE", power=power)


@dataclass
class TrueCar:
    """A car with losses of its own: battery power = efficiency x grid - overhead."""

    capacity: float = 80.0
    efficiency: float = 0.92
    overhead_kw: float = 0.0
    soc: float = 20.0

    def charge(self, power_w: float, minutes: float) -> None:
        stored = max(self.efficiency * power_w / 1000 - self.overhead_kw, 0.0) * minutes / 60
        self.soc = min(self.soc + stored / self.capacity * 100, 100.0)


def run_session(
    feed: Feed,
    car: TrueCar,
    *,
    power: float,
    until: float,
    stream_soc: bool = False,
    step: float = 10,
) -> float:
    """Charge `car` to `until` %, feeding what a car streams; return the worst error (pp)."""
    feed.send(capacity=car.capacity, soc=round(car.soc))
    feed.wait(30)
    feed.send(plugged=True, status="CHARGINGACTIVE", power=power)
    worst = 0.0
    while car.soc < until:
        feed.wait(step)
        car.charge(power, step)
        if stream_soc:
            feed.send(soc=math.floor(car.soc))
        worst = max(worst, abs(feed.soc - car.soc))
    feed.send(status="CHARGINGENDED", power=0, reason="CHARGING_GOAL_REACHED")
    feed.wait(1)
    feed.send(soc=math.floor(car.soc))
    assert feed.estimator.pop_finished(), "the session must be reported as finished"
    feed.wait(120)
    return worst


# --- input power ------------------------------------------------------------------------------


def test_charging_power_integrates_into_energy_and_soc() -> None:
    feed = Feed()
    feed.start(20)
    feed.wait(60)
    estimate = feed.estimate()
    assert estimate.charging
    assert estimate.estimated
    assert estimate.method == "ac"
    assert estimate.session_energy_kwh == pytest.approx(11.0)
    # 11 kWh from the grid into an 80 kWh battery: between 80 % and 100 % of it is stored.
    assert 20 + 11 * 0.80 / 80 * 100 < estimate.soc < 20 + 11 / 80 * 100
    assert estimate.measured_soc == 20
    assert estimate.measured_at == T0


@pytest.mark.parametrize(("phases", "kwh"), [("3-PHASES", 11.04), ("1-PHASES", 3.68), (None, 3.68)])
def test_ac_volts_amps_and_phases_when_no_power_is_sent(phases: str | None, kwh: float) -> None:
    feed = Feed()
    feed.send(capacity=80.0, soc=20)
    feed.send(status="CHARGINGACTIVE", volts=230.0, amps=16, phases=phases)
    feed.wait(60)
    assert feed.estimate().session_energy_kwh == pytest.approx(kwh)
    assert feed.estimate().method == "ac"


@pytest.mark.parametrize(
    ("power", "volts", "amps"),
    [(50_000, 0.0, 0), (15_000, 0.0, 0), (120_000, None, None)],
)
def test_dc_is_power_with_ac_voltage_and_current_at_zero(
    power: float, volts: float | None, amps: int | None
) -> None:
    feed = Feed()
    feed.start(10, power=power)
    feed.send(volts=volts, amps=amps)
    feed.wait(20)
    assert feed.estimate().method == "dc"
    assert feed.soc > 10


def test_a_dc_taper_below_ac_power_stays_dc() -> None:
    feed = Feed()
    feed.start(40, power=120_000)  # this car sends no AC voltage or current at all
    feed.wait(15)
    feed.send(power=15_000)
    feed.wait(45)
    assert feed.estimate().method == "dc"
    feed.send(status="CHARGINGENDED", power=0)
    feed.wait(1)
    feed.send(soc=80)
    [finished] = feed.estimator.pop_finished()
    assert finished.method == "dc"
    assert list(feed.estimator.efficiencies) == ["dc"]  # AC learned nothing from it


def test_untidy_values_never_raise_and_count_as_nothing() -> None:
    feed = Feed()
    feed.start(20, power=0)
    for value in (None, "abc", float("nan"), float("inf"), -7_000, True, [1, 2], {"a": 1}):
        feed.send(power=value, soc=value, capacity=value, target=value, phases=value)
        feed.wait(10)
    assert feed.soc == 20
    assert feed.estimate().session_energy_kwh == 0
    feed.send(power="11000")  # BMW quotes numbers in REST payloads
    feed.wait(60)
    assert feed.estimate().session_energy_kwh == pytest.approx(11.0)


# --- capacity ---------------------------------------------------------------------------------


def test_without_a_capacity_the_estimate_is_the_measured_value() -> None:
    feed = Feed()
    feed.start(20, capacity=None)
    feed.wait(60)
    estimate = feed.estimate()
    assert estimate.soc == 20
    assert not estimate.estimated
    assert estimate.session_energy_kwh == pytest.approx(11.0)  # energy is still counted


def test_fallback_capacity_and_capacity_read_per_session() -> None:
    fallback = Feed(ChargingEstimator(capacity_fallback_kwh=40.0))
    fallback.start(20, capacity=None)
    fallback.wait(60)
    from_car = Feed()
    from_car.start(20, capacity=80.0)
    from_car.wait(60)
    assert fallback.soc - 20 == pytest.approx(2 * (from_car.soc - 20), rel=0.01)

    # The same car later reports a smaller usable capacity: the next session uses it.
    reached = from_car.soc
    from_car.send(status="CHARGINGENDED", power=0)
    from_car.wait(1)
    from_car.send(soc=reached)  # as estimated: nothing to learn, the efficiency stays
    from_car.wait(60)
    from_car.send(capacity=40.0)
    from_car.wait(1)
    from_car.send(status="CHARGINGACTIVE", power=11_000)
    from_car.wait(60)
    assert from_car.soc - reached == pytest.approx(fallback.soc - 20, rel=0.01)


def test_plug_in_hybrid_uses_its_own_small_battery_and_power() -> None:
    feed = Feed()
    feed.start(30, capacity=20.0, power=3_700)
    feed.wait(60)
    gained = feed.soc - 30
    # 3.7 kWh into a 20 kWh battery: well over 10 points, not the 4 of a BEV-sized battery.
    assert 3.7 * 0.7 / 20 * 100 < gained < 3.7 / 20 * 100


# --- anchoring and bounds ---------------------------------------------------------------------


def test_anchors_to_every_newer_measurement_and_ignores_older_ones() -> None:
    feed = Feed()
    feed.start(20)
    feed.wait(30)
    feed.send(soc=30)
    assert feed.soc == 30
    assert not feed.estimate().estimated
    feed.send(soc=27, at=feed.now - timedelta(minutes=40))  # older than the anchor
    assert feed.soc == 30
    feed.wait(30)
    assert feed.soc > 30
    assert feed.estimate().measured_soc == 30


def test_never_passes_target_nor_100_and_never_goes_down_while_charging() -> None:
    feed = Feed()
    feed.send(target=80)
    feed.start(70)
    feed.wait(60)
    ahead = feed.soc
    feed.send(soc=74)  # the car measured less than estimated: the number shown holds
    assert feed.soc == ahead
    feed.wait(600)
    assert feed.soc == 80
    feed.send(target=100)
    feed.wait(600)
    assert feed.soc == 100


def test_stale_start_value_resent_with_a_fresh_time_does_not_pull_back() -> None:
    quiet, resending = Feed(), Feed()
    for feed in (quiet, resending):
        feed.start(20)
    for minute in range(1, 121):
        power = 7_400 if minute < 60 else 11_000
        for feed in (quiet, resending):
            feed.wait(1)
            feed.send(power=power)
            if minute == 40:
                feed.send(soc=35)
        if minute % 15 == 0:
            # Charging speed changes: this car re-sends the session's start value, or the
            # latest measured one, stamped now. Neither is news.
            resending.send(power=power + 100, soc=20 if minute < 40 or minute % 30 else 35)
            resending.send(power=power)
        if minute > 40:
            assert resending.soc == quiet.soc
    assert quiet.soc > 35


def test_keeps_advancing_through_an_hour_of_silence() -> None:
    feed = Feed()
    feed.start(20)
    assert feed.estimator.needs_timer
    values = []
    for _ in range(6):
        feed.wait(10)
        values.append(feed.soc)
    assert values == sorted(values)
    assert values[-1] - values[0] > 5 * 11 * 0.8 / 80 * 100 / 6


# --- end of a session ---------------------------------------------------------------------------


def test_holds_through_the_gap_between_ended_and_the_final_measurement() -> None:
    feed = Feed()
    feed.start(20)
    feed.wait(120)
    at_end = feed.soc
    feed.send(status="CHARGINGENDED", power=0, reason="CHARGING_GOAL_REACHED")
    feed.wait(1)
    assert feed.soc == at_end
    assert not feed.estimate().charging
    assert feed.estimator.pop_finished() == []  # not before the final measurement
    feed.send(soc=46)
    estimate = feed.estimate()
    assert (estimate.soc, estimate.estimated) == (46, False)
    [finished] = feed.estimator.pop_finished()
    assert (finished.soc_from, finished.soc_to) == (20, 46)
    assert finished.energy_kwh == pytest.approx(22.0)
    assert finished.method == "ac"
    assert finished.finish_reason == "CHARGING_GOAL_REACHED"
    assert finished.ended_at - finished.started_at == timedelta(minutes=120)
    assert not feed.estimator.needs_timer


def test_without_a_final_measurement_falls_back_to_the_measured_value() -> None:
    feed = Feed()
    feed.start(20)
    feed.wait(60)
    feed.send(plugged=False)
    feed.wait(30)
    assert feed.soc == 20
    assert not feed.estimate().estimated
    [finished] = feed.estimator.pop_finished()
    assert finished.soc_to == 20


def test_outside_charging_the_estimate_is_the_measured_value() -> None:
    feed = Feed()
    feed.send(capacity=80.0, soc=60)
    feed.wait(30)
    feed.send(soc=52)  # driving
    assert feed.estimate() == SocEstimate(52, False, 52, feed.now, False, None, 0.0)
    assert not feed.estimator.needs_timer
    assert ChargingEstimator().estimate(T0) is None


def test_a_pause_keeps_the_fraction() -> None:
    feed = Feed()
    feed.start(20, power=3_000)
    feed.wait(90)
    before = feed.soc
    assert not before.is_integer()
    feed.send(status="CHARGINGPAUSED", power=0)
    feed.wait(60)
    assert feed.soc == before
    feed.send(soc=math.floor(before))  # the car reports the rounded value while paused
    assert feed.soc == before
    feed.send(status="CHARGINGACTIVE", power=3_000)
    feed.wait(10)
    assert feed.soc > before


def test_measurements_arriving_late_together_do_not_push_the_estimate_ahead() -> None:
    """The same two readings, once as they happen and once together four minutes late."""
    on_time, late = Feed(), Feed()
    for feed in (on_time, late):
        feed.start(20)
    car = TrueCar(soc=20.0)
    car.charge(11_000, 5)
    measured: list[tuple[float, datetime]] = []
    for minutes in (30, 5):
        for feed in (on_time, late):
            feed.wait(minutes)
        car.charge(11_000, minutes)
        measured.append((math.floor(car.soc), on_time.now))
        on_time.send(soc=math.floor(car.soc))
    for feed in (on_time, late):
        feed.wait(4)
    for soc, at in measured:
        late.send(soc=soc, at=at)
    assert late.soc == pytest.approx(on_time.soc, abs=0.05)


def test_a_car_that_sends_tenths_is_taken_at_its_word() -> None:
    feed = Feed()
    feed.start(20.4)
    feed.wait(20)
    rate = feed.soc
    feed.wait(10)
    rate = feed.soc - rate  # points per 10 minutes
    assert 26 < feed.soc < 27
    feed.send(soc=26.0)  # a whole number from a car that sends tenths is exact
    feed.wait(10)
    assert feed.soc == pytest.approx(26.0 + rate, abs=0.02)


# --- learning -----------------------------------------------------------------------------------


def test_learns_the_cars_efficiency_from_finished_sessions() -> None:
    feed, car = Feed(), TrueCar(efficiency=0.80)  # far below what is assumed at first
    errors = []
    for _ in range(5):
        errors.append(run_session(feed, car, power=11_000, until=80))
        car.soc = 20.0
    assert errors[0] > 3.0
    assert errors[-1] < 1.0
    assert errors == sorted(errors, reverse=True)


def test_learning_at_high_power_does_not_make_slow_sessions_run_ahead() -> None:
    # Fixed overhead: 11 kW loses little, 1.4 kW solar charging proportionally much more,
    # and this car loses more than most at any power.
    feed, car = Feed(), TrueCar(efficiency=0.88, overhead_kw=0.3)
    for _ in range(4):
        run_session(feed, car, power=11_000, until=80)
        car.soc = 20.0
    feed.send(soc=20)
    feed.wait(30)
    feed.send(status="CHARGINGACTIVE", power=1_400)
    for _ in range(36):
        feed.wait(10)
        car.charge(1_400, 10)
        assert feed.soc <= car.soc + 0.3


def test_learned_efficiency_at_low_power_stays_in_its_band() -> None:
    feed, car = Feed(), TrueCar(efficiency=0.95, overhead_kw=0.3)
    for _ in range(3):
        run_session(feed, car, power=1_400, until=40)
        car.soc = 20.0
    worst_fast = run_session(feed, car, power=11_000, until=80)
    assert worst_fast < 1.0


@pytest.mark.parametrize(
    ("gain", "energy_minutes"),
    [(40, 1), (2, 60)],  # an implausible ratio; too small a gain to tell anything
)
def test_outliers_are_not_learned(gain: float, energy_minutes: float) -> None:
    learner = Feed()
    learner.start(20)
    learner.wait(energy_minutes)
    learner.send(status="CHARGINGENDED", power=0)
    learner.wait(1)
    learner.send(soc=20 + gain)
    assert learner.estimator.pop_finished()
    assert learner.estimator.efficiencies == {}


# --- restarts -----------------------------------------------------------------------------------


def test_learned_efficiency_and_running_session_survive_a_restart() -> None:
    feed, car = Feed(), TrueCar(efficiency=0.85)
    run_session(feed, car, power=11_000, until=80)
    car.soc = 20.0
    feed.start(20)
    feed.wait(45)
    before = feed.estimate()
    total = feed.estimator.total_energy_kwh

    stored = json.loads(json.dumps(feed.estimator.as_dict()))
    restarted = Feed(ChargingEstimator(stored=stored), now=feed.now)
    assert restarted.estimate() == before
    assert restarted.estimator.total_energy_kwh == total
    assert restarted.estimator.efficiencies == feed.estimator.efficiencies
    # The coordinator re-feeds its restored readings: nothing moves back.
    restarted.send(soc=20, at=T0, power=11_000, status="CHARGINGACTIVE")
    assert restarted.estimate() == before
    restarted.wait(15)
    assert restarted.soc > before.soc
    assert restarted.estimator.total_energy_kwh > total


def test_garbage_in_storage_starts_clean() -> None:
    for stored in (
        {"session": {"started_at": "x"}},
        {"efficiency": {"dc": {"efficiency": 7}}},
        {"readings": 3},
    ):
        estimator = ChargingEstimator(stored=stored)
        assert estimator.estimate(T0) is None
        assert estimator.efficiencies == {}


def test_total_energy_adds_up_sessions_and_never_decreases() -> None:
    feed = Feed()
    totals = []
    for _ in range(2):
        feed.start(20)
        for _ in range(6):
            feed.wait(10)
            feed.estimate()
            totals.append(feed.estimator.total_energy_kwh)
        feed.send(status="CHARGINGENDED", power=0)
        feed.wait(20)
        feed.estimate()
    assert totals == sorted(totals)
    assert feed.estimator.total_energy_kwh == pytest.approx(22.0)


# --- clocks -------------------------------------------------------------------------------------


def test_a_reading_stamped_in_the_future_freezes_nothing() -> None:
    feed = Feed()
    feed.send(capacity=80.0, soc=20)
    feed.send(status="CHARGINGACTIVE", power=11_000, at=feed.now + timedelta(hours=3))
    feed.wait(30)
    assert feed.estimate().session_energy_kwh == pytest.approx(5.5)
    feed.send(soc=28, at=feed.now + timedelta(hours=3))
    feed.wait(10)
    feed.send(soc=30)  # a real, later measurement still anchors
    assert feed.estimate().measured_soc == 30
    assert feed.estimate().measured_at == feed.now
    assert 30 <= feed.soc < 31


# --- property -----------------------------------------------------------------------------------

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-100_000, max_value=400_000),
    st.sampled_from(
        [
            "11000",
            "-NA-",
            "3-PHASES",
            "CHARGINGACTIVE",
            "CHARGINGPAUSED",
            "CHARGINGENDED",
            "NOCHARGING",
            "",
        ]
    ),
)
_STEPS = st.lists(
    st.tuples(
        st.sampled_from(sorted(KEYS)),
        _VALUES,
        # Measurement time against now, in seconds: mostly close, now and then a clock
        # that is years off either way.
        st.one_of(
            st.integers(min_value=-600, max_value=600),
            st.sampled_from([-20 * 365 * 86_400, -86_400, 86_400, 5 * 365 * 86_400]),
        ),
        st.integers(min_value=0, max_value=3_600),  # time passing, seconds
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS, target=st.integers(min_value=20, max_value=100))
def test_random_readings_never_raise_nor_break_the_bounds(
    steps: list[tuple[str, Any, int, int]], target: int
) -> None:
    estimator = ChargingEstimator(capacity_fallback_kwh=60.0)
    now = T0
    estimator.update({TARGET: (target, now)}, now)
    highest_measured = 0.0
    previous: SocEstimate | None = None
    for name, value, offset, passing in steps:
        key = KEYS[name]
        if key == TARGET:
            continue
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in (SOC_MEASURED, SOC_DISPLAYED) and numeric and 0 <= value <= 100:
            highest_measured = max(highest_measured, float(value))
        estimator.update({key: (value, now + timedelta(seconds=offset))}, now)
        now += timedelta(seconds=passing)
        estimate = estimator.estimate(now)
        finished = estimator.pop_finished()
        if estimate is None:
            continue
        assert 0 <= estimate.soc <= 100
        assert estimate.session_energy_kwh >= 0
        if estimate.charging:
            assert estimate.soc <= max(target, highest_measured) + 1e-6
            if previous is not None and previous.charging and not finished:
                assert estimate.soc >= previous.soc
        previous = estimate
    json.dumps(estimator.as_dict())


def test_a_batch_of_readings_opens_the_session_when_charging_was_reported() -> None:
    """A REST snapshot with a day-old capacity and a recent 'charging': energy from then on."""
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    estimator = ChargingEstimator()
    estimator.update(
        {
            "vehicle.drivetrain.batteryManagement.maxEnergy": (25.7, now - timedelta(days=1)),
            "vehicle.drivetrain.electricEngine.charging.status": (
                "CHARGINGACTIVE",
                now - timedelta(minutes=30),
            ),
            "vehicle.powertrain.electric.battery.charging.power": (
                3680,
                now - timedelta(minutes=4),
            ),
            "vehicle.drivetrain.batteryManagement.header": (45, now - timedelta(minutes=5)),
        },
        now,
    )
    # Four minutes at 3.68 kW, not the day since the capacity was measured.
    assert 0.2 < estimator.total_energy_kwh < 0.3
