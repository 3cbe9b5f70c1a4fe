"""The simulator's charging physics: energy, taper, pauses, streaming on change, quirks, history.

These test the simulator itself (battery.py, charging.py) with its own clock values; the
control API test at the end drives a session through a running simulator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import aiohttp
import pytest

from tests.simulator import fleet
from tests.simulator.battery import (
    AC_LOSSES,
    DC_LOSSES,
    ChargeMode,
    LossModel,
    ProfileSegment,
    dc_power_kw,
)
from tests.simulator.charging import (
    FINAL_SOC_DELAY_SECONDS,
    ChargingSession,
    Emission,
    FinishReason,
    SessionRequest,
)
from tests.simulator.handle import SimulatorControlError, SimulatorHandle
from tests.simulator.quirks import StreamQuirks
from tests.simulator.scenarios import (
    AC_AMPERE,
    AC_VOLTAGE,
    CHARGING_METHOD,
    CHARGING_POWER,
    CHARGING_STATUS,
    FINISH_REASON,
    MAX_ENERGY,
    PHASE_NUMBER,
    SOC,
    SOC_DISPLAYED,
)

START = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


def _session(
    vin: str = fleet.VIN_BEV, quirks: StreamQuirks | None = None, **request: Any
) -> ChargingSession:
    request.setdefault("mode", ChargeMode.AC)
    car = fleet.initial_telematics(vin, START)
    return ChargingSession(vin, SessionRequest(**request), car, quirks or StreamQuirks(), START)


def _run(
    session: ChargingSession, step: timedelta = timedelta(minutes=1), limit: int = 24 * 60
) -> list[Emission]:
    """Advance in jumps of `step` until the session is over; everything it sent."""
    emitted: list[Emission] = []
    now = START
    for _ in range(limit):
        emitted.extend(session.advance(now))
        if not session.running:
            return emitted
        now += step
    raise AssertionError("the session did not end")


def _values(emitted: list[Emission], descriptor: str) -> list[tuple[datetime, Any]]:
    return [
        (points[descriptor].timestamp or moment, points[descriptor].value)
        for moment, points in emitted
        if descriptor in points
    ]


def _clean() -> StreamQuirks:
    quirks = StreamQuirks()
    quirks.update({"resend_start_soc": False, "early_charging_end": False})
    return quirks


def test_ac_charges_at_11_kw_on_three_phases_and_keeps_energy() -> None:
    session = _session(start_soc=20, target_soc=80, quirks=_clean())
    emitted = _run(session)

    assert _values(emitted, CHARGING_METHOD) == [(START, "AC_TYPE2PLUG")]
    assert _values(emitted, PHASE_NUMBER)[0][1] == "3-PHASES"
    assert _values(emitted, AC_AMPERE)[0][1] == 16
    assert _values(emitted, AC_VOLTAGE)[0][1] == 230.0
    power = [value for _, value in _values(emitted, CHARGING_POWER)]
    # Once at the start (about 11 kW) and 0 at the end: a steady charge sends nothing else.
    assert len(power) == 2
    assert power[0] == pytest.approx(11_040, abs=50)
    assert power[-1] == 0
    assert session.soc == 80.0
    assert session.finish_reason is FinishReason.GOAL
    stored = 60 / 100 * session.capacity_kwh
    assert session.energy.battery == pytest.approx(stored)
    assert session.energy.grid == pytest.approx(session.energy.battery + session.energy.losses)
    assert session.energy.battery / session.energy.grid == pytest.approx(0.907, abs=0.005)


def test_the_outcome_does_not_depend_on_how_the_clock_jumps() -> None:
    by_minute = _session(start_soc=20, target_soc=80)
    by_hour = _session(start_soc=20, target_soc=80)
    _run(by_minute, timedelta(minutes=1))
    _run(by_hour, timedelta(hours=1))

    assert by_hour.ended == by_minute.ended
    assert by_hour.energy.grid == pytest.approx(by_minute.energy.grid)


def test_soc_is_streamed_at_whole_percents_stamped_when_it_happened() -> None:
    session = _session(start_soc=20, target_soc=30, quirks=_clean())
    emitted = _run(session, timedelta(hours=1))

    soc = _values(emitted, SOC)
    assert [value for _, value in soc] == [float(v) for v in range(20, 31)]
    assert _values(emitted, SOC_DISPLAYED) == soc
    stamps = [moment for moment, _ in soc]
    assert stamps == sorted(stamps)
    # Whole percents at ~10 kW into 80.7 kWh come about 4.9 minutes apart, not all at once.
    gaps = [later - earlier for earlier, later in pairwise(stamps[1:])]
    assert all(timedelta(minutes=4) < gap < timedelta(minutes=6) for gap in gaps)


def test_dc_tapers_above_60_percent_with_ac_values_at_zero_and_no_method() -> None:
    session = _session(mode=ChargeMode.DC, start_soc=10, target_soc=80, quirks=_clean())
    emitted = _run(session)

    assert dc_power_kw(50, 150) == 150
    assert dc_power_kw(80, 150) == pytest.approx(90)
    assert _values(emitted, CHARGING_METHOD) == []
    assert {value for _, value in _values(emitted, AC_VOLTAGE)} == {0.0}
    assert {value for _, value in _values(emitted, AC_AMPERE)} == {0}
    power = [value for _, value in _values(emitted, CHARGING_POWER)][:-1]
    assert power[0] == 150_000
    assert power == sorted(power, reverse=True)
    assert power[-1] < 100_000
    assert session.ended is not None
    assert session.ended - START < timedelta(minutes=35)
    history = session.history_entry
    assert history is not None
    assert "publicChargingPoint" in history


def test_losses_depend_on_power_and_differ_between_ac_and_dc() -> None:
    solar_share = AC_LOSSES.battery_kw(2.0) / 2.0
    wallbox_share = AC_LOSSES.battery_kw(11.0) / 11.0
    dc_share = DC_LOSSES.battery_kw(150.0) / 150.0
    assert solar_share < wallbox_share - 0.05
    assert wallbox_share < dc_share
    assert AC_LOSSES.battery_kw(0.2) == 0.0


def test_a_car_with_a_lossier_charger_needs_more_grid_energy_for_the_same_charge() -> None:
    usual = _session(start_soc=40, target_soc=60)
    lossy = _session(start_soc=40, target_soc=60, losses=LossModel(0.85, 0.4))
    _run(usual)
    _run(lossy)
    assert usual.soc == lossy.soc == 60
    assert lossy.energy.battery == pytest.approx(usual.energy.battery)
    assert lossy.energy.grid > usual.energy.grid * 1.05


def test_solar_pauses_and_resumes_and_keeps_what_it_charged() -> None:
    profile = (ProfileSegment(1800, 2.0), ProfileSegment(600, 0.0), ProfileSegment(1800, 4.0))
    session = _session(
        mode=ChargeMode.SOLAR, start_soc=50, target_soc=60, profile=profile, quirks=_clean()
    )
    emitted = _run(session)

    statuses = [value for _, value in _values(emitted, CHARGING_STATUS)]
    assert statuses[:4] == ["INITIALIZATION", "CHARGINGACTIVE", "CHARGINGPAUSED", "CHARGINGACTIVE"]
    assert statuses[-1] == "CHARGINGENDED"
    paused_at = next(
        t for t, value in _values(emitted, CHARGING_STATUS) if value == "CHARGINGPAUSED"
    )
    assert (START, 0) not in _values(emitted, CHARGING_POWER)
    assert (paused_at, 0) in _values(emitted, CHARGING_POWER)
    # 2 kW runs on one phase, 4 kW on three.
    assert [value for _, value in _values(emitted, PHASE_NUMBER)][:2] == ["1-PHASES", "3-PHASES"]
    history = session.history_entry
    assert history is not None
    assert len(history["chargingBlocks"]) >= 2
    # Slow solar loses proportionally more than the wallbox.
    assert session.energy.battery / session.energy.grid < 0.85
    assert history["energyConsumedFromPowerGridKwh"] == pytest.approx(session.energy.grid)


def test_plug_in_hybrid_charges_on_one_phase_and_has_no_dc() -> None:
    session = _session(vin=fleet.VIN_PHEV, start_soc=10, target_soc=100, quirks=_clean())
    emitted = _run(session)

    assert _values(emitted, MAX_ENERGY)[0][1] == 25.7
    assert _values(emitted, PHASE_NUMBER)[0][1] == "1-PHASES"
    assert _values(emitted, CHARGING_POWER)[0][1] == pytest.approx(3_680, abs=20)
    assert session.ended is not None
    assert timedelta(hours=6) < session.ended - START < timedelta(hours=8)
    with pytest.raises(ValueError, match="DC"):
        _session(vin=fleet.VIN_PHEV, mode=ChargeMode.DC)


def test_capacity_can_change_between_sessions() -> None:
    session = _session(start_soc=20, target_soc=30, capacity_kwh=76.0)
    emitted = _run(session)

    assert _values(emitted, MAX_ENERGY) == [(START, 76.0)]
    assert session.energy.battery == pytest.approx(7.6)


def test_history_entry_matches_the_session() -> None:
    session = _session(start_soc=35.4, target_soc=80)
    _run(session)

    entry = session.history_entry
    assert entry is not None
    assert session.ended is not None
    assert entry["startTime"] == int(START.timestamp())
    assert entry["endTime"] == int(session.ended.timestamp())
    assert (entry["displayedStartSoc"], entry["displayedSoc"]) == (35, 80)
    assert entry["energyConsumedFromPowerGridKwh"] == pytest.approx(session.energy.grid, rel=1e-6)
    assert entry["totalChargingDurationSec"] == pytest.approx(
        (session.ended - START).total_seconds() - 30, abs=1
    )


def test_quirk_withhold_soc_sends_it_only_at_plug_in_and_after_the_end() -> None:
    quirks = StreamQuirks()
    quirks.update({"withhold_charging_soc": True, "early_charging_end": False})
    session = _session(start_soc=20, target_soc=40, quirks=quirks)
    emitted = _run(session)

    assert _values(emitted, SOC) == [(START, 20.0), (session.ended, 40.0)]


def test_quirk_resend_start_soc_on_speed_change() -> None:
    profile = (ProfileSegment(1200, 3.0), ProfileSegment(1200, 7.0))
    resending = StreamQuirks()
    resending.update({"early_charging_end": False})
    session = _session(
        mode=ChargeMode.SOLAR, start_soc=20, target_soc=40, profile=profile, quirks=resending
    )
    emitted = _run(session)

    changed_at = _values(emitted, CHARGING_POWER)[1][0]
    assert (changed_at, 20.0) in _values(emitted, SOC)

    quiet = _session(
        mode=ChargeMode.SOLAR, start_soc=20, target_soc=40, profile=profile, quirks=_clean()
    )
    readings = [value for _, value in _values(_run(quiet), SOC)]
    assert readings == sorted(readings)


def test_quirk_early_end_sends_the_final_soc_after_charging_ended() -> None:
    session = _session(start_soc=70, target_soc=80)
    emitted = _run(session, timedelta(seconds=30))

    ended_at = _values(emitted, FINISH_REASON)[0][0]
    final_at, final = _values(emitted, SOC)[-1]
    assert final == 80.0
    assert final_at - ended_at == timedelta(seconds=FINAL_SOC_DELAY_SECONDS)
    assert _values(emitted, SOC)[-2][1] == 79.0

    on_time = _session(start_soc=70, target_soc=80, quirks=_clean())
    emitted = _run(on_time)
    assert _values(emitted, SOC)[-1][0] == _values(emitted, FINISH_REASON)[0][0]


def test_driver_stop_and_unplug() -> None:
    session = _session(start_soc=20, target_soc=80)
    session.advance(START + timedelta(minutes=30))
    emitted = session.finish(START + timedelta(minutes=31), FinishReason.UNPLUGGED)

    assert session.finish_reason is FinishReason.UNPLUGGED
    assert (START + timedelta(minutes=31), "CONNECTOR_REMOVED") in _values(emitted, FINISH_REASON)
    assert not session.running
    assert session.history_entry is not None
    assert session.history_entry["energyConsumedFromPowerGridKwh"] == pytest.approx(
        11.04 * 30.5 / 60, rel=0.01
    )


def test_a_stop_between_steps_counts_and_a_final_soc_still_due_is_sent() -> None:
    session = _session(start_soc=20, target_soc=80, quirks=_clean())
    session.advance(START + timedelta(minutes=10))
    stopped = START + timedelta(minutes=10, seconds=5)
    session.finish(stopped, FinishReason.DRIVER)
    assert session.ended == stopped
    assert session.energy.grid == pytest.approx(11.04 * (9.5 + 5 / 60) / 60, rel=0.005)

    ending = _session(start_soc=79.5, target_soc=80)
    now = START
    while ending.ended is None:
        now += timedelta(seconds=30)
        ending.advance(now)
    # The final SoC is held back 75 s; a new session starting now sends it at once.
    replaced = ending.finish(now, FinishReason.DRIVER)
    assert _values(replaced, SOC) == [(now, 80.0)]
    assert not ending.running


async def test_control_api_runs_a_session_into_the_charging_history(sim: SimulatorHandle) -> None:
    vin = fleet.VIN_BEV
    started = await sim.start_charging(vin, "ac", start_soc=20, target_soc=30)
    assert started["session"]["phase"] == "initializing"
    assert started["session"]["soc"] == 20.0

    await sim.advance(1800)
    halfway = (await sim.charging_truth(vin))["session"]
    assert halfway["phase"] == "charging"
    assert 25 < halfway["soc"] < 27
    assert halfway["grid_kwh"] == pytest.approx(halfway["battery_added_kwh"] + halfway["loss_kwh"])

    await sim.advance(1800)
    truth = await sim.charging_truth(vin)
    ended = truth["last_session"]
    assert ended["phase"] == "ended"
    assert ended["finish_reason"] == "CHARGING_GOAL_REACHED"
    assert ended["soc"] == 30.0
    assert ended["history_entry"]["energyConsumedFromPowerGridKwh"] == pytest.approx(
        ended["grid_kwh"]
    )

    tokens = await sim.issue_tokens()
    newest = (await _rest_history(sim, tokens["access_token"], vin))[0]
    assert newest == ended["history_entry"]
    assert newest["startTime"] == int(datetime.fromisoformat(ended["started"]).timestamp())

    with pytest.raises(SimulatorControlError) as refused:
        await sim.start_charging(fleet.VIN_PHEV, "dc")
    assert refused.value.status == 400
    with pytest.raises(SimulatorControlError) as refused:
        await sim.start_charging(fleet.VIN_PHEV, "ac", losses=(1.5, 0.2))
    assert refused.value.status == 400
    stopped = await sim.stop_charging(vin, unplug=True)
    assert stopped["session"]["phase"] == "ended"


async def _rest_history(sim: SimulatorHandle, access_token: str, vin: str) -> list[dict[str, Any]]:
    """BMW's chargingHistory of the last day, as a client reads it."""
    now = await sim.now()
    params = {
        "from": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "to": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    headers = {"Authorization": f"Bearer {access_token}", "x-version": "v1"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{sim.api_url}/customers/vehicles/{vin}/chargingHistory",
            params=params,
            headers=headers,
        ) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
    sessions: list[dict[str, Any]] = body["data"]
    return sessions


async def test_a_frozen_clock_moves_only_when_advanced(sim: SimulatorHandle) -> None:
    """A bench moving Home Assistant's frozen clock can keep the simulator's exactly in step."""
    frozen_at = await sim.freeze_clock()
    await sim.start_charging(fleet.VIN_BEV, "ac", start_soc=20, target_soc=80)
    assert await sim.now() == frozen_at

    assert await sim.advance(600) == frozen_at + timedelta(seconds=600)
    truth = (await sim.charging_truth(fleet.VIN_BEV))["session"]
    # 9.5 minutes of charging after 30 s of initialisation, at about 10 kW into 80.7 kWh.
    assert truth["soc"] == pytest.approx(20 + 10.02 * 9.5 / 60 / 80.7 * 100, abs=0.05)

    assert await sim.freeze_clock(frozen=False) == frozen_at + timedelta(seconds=600)
    assert await sim.now() >= frozen_at + timedelta(seconds=600)
