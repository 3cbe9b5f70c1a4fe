"""Charging bench: how close the estimated state of charge stays to the car's true one.

Drives charging sessions in the simulator (tests/simulator: physics, stream, quirks) against
the real integration in a real Home Assistant (pytest-homeassistant-custom-component's
harness): simulator stream -> coordinator -> ChargingTracker -> the
`estimated_state_of_charge` sensor. Every simulated minute it reads that sensor's state and
the `state_of_charge` sensor's (the last measured value, the baseline a driver had before)
and compares both with the simulator's true state of charge (`charging_truth`).

Scenarios (BMW i4-like car of the simulator's fleet, 80.7 kWh usable):
- `ac`: 11 kW wallbox, 20 -> 80 %;
- `dc`: 150 kW fast charger, 10 -> 80 %, tapering above 60 %;
- `solar`: solar surplus between 1.6 and 4.6 kW with two pauses, 55 -> 65 %;
- `restart`: 11 kW, 30 -> 70 %, the config entry reloaded (a Home Assistant restart of the
  integration, storage kept) 90 minutes in;
- `learning`: five sessions of 40 -> 70 % at 11 kW in a car whose charger loses far more
  than the simulator's usual one (and than the estimator assumes before it learned);
- `short`: the test suite's regression check, 11 kW, 55 -> 80 %.

Each runs under quirk sets: `withheld` (the car streams no state of charge while charging,
re-sends the start value on speed changes, and sends "ended" before the final value: the
hard case) and `streamed` (whole percents streamed, with the other two quirks).

    .venv-3.14/bin/python -m bench.charging_soc [--scenarios ac,dc,...] [--quirks withheld,...]

Per session it prints the estimate's largest error and its error when the charge ended, next
to the same for the last measured value, in percentage points. Goal: at most 3.0 pp in a
car's first session, 2.0 once learned. The last line is `charging estimate: worst max error
X.X pp over N scenarios (last-measured baseline Y.Y pp)`, N counting every session measured.
The run itself is tests/integration/test_charging_bench.py (it needs the harness's
fixtures); this script starts it with the requested scenarios and prints its results.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from tests.integration.common import TimeTravel
    from tests.simulator.handle import SimulatorHandle

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
ENV_SCENARIOS: Final = "CARDATA_CHARGING_SCENARIOS"
ENV_QUIRKS: Final = "CARDATA_CHARGING_QUIRKS"
ENV_RESULT: Final = "CARDATA_CHARGING_RESULT"

FIRST_SESSION_GOAL_PP: Final = 3.0
LEARNED_GOAL_PP: Final = 2.0
# Sampled this long after the charge really ended: the final measurement may come late.
AFTER_END: Final = timedelta(minutes=15)
# No session of these scenarios takes longer; a session that does is a failure to end.
LONGEST_SESSION: Final = timedelta(hours=12)
STEP: Final = timedelta(minutes=1)
CHARGING_STATUS: Final = "vehicle.drivetrain.electricEngine.charging.status"
CHARGING_POWER: Final = "vehicle.powertrain.electric.battery.charging.power"
# The car re-sends its power only when it moved by 250 W or 5 % (the simulator's rule for
# real cars); a smaller difference from the true power is no message still on its way.
_POWER_UNSENT_W: Final = 250.0
_POWER_UNSENT_SHARE: Final = 0.05
_STATUS_OF_PHASE: Final = {
    "initializing": "INITIALIZATION",
    "charging": "CHARGINGACTIVE",
    "paused": "CHARGINGPAUSED",
    "ended": "CHARGINGENDED",
}

QUIRK_SETS: Final[dict[str, dict[str, bool]]] = {
    "withheld": {
        "withhold_charging_soc": True,
        "resend_start_soc": True,
        "early_charging_end": True,
    },
    "streamed": {
        "withhold_charging_soc": False,
        "resend_start_soc": True,
        "early_charging_end": True,
    },
}
# A charger losing 13 % plus 350 W of electronics: about 84 % kept at 11 kW, where the
# simulator's usual car keeps about 91 % and the unlearned estimator assumes about 91 %.
LOSSY_CHARGER: Final = (0.87, 0.35)
LEARNING_SESSIONS: Final = 5
RESTART_AFTER: Final = timedelta(minutes=90)


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One charging session to drive: what `start_charging` gets, and what happens during it."""

    label: str
    first_session: bool
    start: dict[str, Any]
    restart_after: timedelta | None = None


SCENARIOS: Final[dict[str, tuple[SessionPlan, ...]]] = {
    "ac": (SessionPlan("AC 20->80 %", True, {"mode": "ac", "start_soc": 20, "target_soc": 80}),),
    "dc": (SessionPlan("DC 10->80 %", True, {"mode": "dc", "start_soc": 10, "target_soc": 80}),),
    "solar": (
        SessionPlan(
            "solar 55->65 % with pauses",
            True,
            {"mode": "solar", "start_soc": 55, "target_soc": 65},
        ),
    ),
    "restart": (
        SessionPlan(
            "AC 30->70 %, restart",
            True,
            {"mode": "ac", "start_soc": 30, "target_soc": 70},
            restart_after=RESTART_AFTER,
        ),
    ),
    "learning": tuple(
        SessionPlan(
            f"lossy charger {number}/{LEARNING_SESSIONS}",
            number == 1,
            {"mode": "ac", "start_soc": 40, "target_soc": 70, "losses": LOSSY_CHARGER},
        )
        for number in range(1, LEARNING_SESSIONS + 1)
    ),
    "short": (SessionPlan("AC 55->80 %", True, {"mode": "ac", "start_soc": 55, "target_soc": 80}),),
}
FULL_RUN: Final = ("ac", "dc", "solar", "restart", "learning")


@dataclass(slots=True)
class SessionResult:
    """Errors of one session against the true state of charge, in percentage points."""

    scenario: str
    quirks: str
    label: str
    first_session: bool
    minutes: int = 0
    estimate_max: float = 0.0
    estimate_at_end: float = 0.0
    measured_max: float = 0.0
    measured_at_end: float = 0.0
    missing: int = 0  # samples where a sensor showed no number
    stream_drops: int = 0  # stream disconnects other than credential rotation
    notes: list[str] = field(default_factory=list)

    @property
    def goal(self) -> float:
        """The largest error allowed: a first session has learned nothing yet."""
        return FIRST_SESSION_GOAL_PP if self.first_session else LEARNED_GOAL_PP

    @property
    def within_goal(self) -> bool:
        """Whether the estimate stayed within the goal the whole session."""
        return self.missing == 0 and self.estimate_max <= self.goal

    def line(self) -> str:
        """One row of the table."""
        verdict = "ok" if self.within_goal else "MISSED"
        return (
            f"{self.label:<28} {self.quirks:<9} {self.minutes:>5} min  "
            f"estimate max {self.estimate_max:4.1f} end {self.estimate_at_end:4.1f}  "
            f"last-measured max {self.measured_max:4.1f} end {self.measured_at_end:4.1f}  "
            f"goal {self.goal:.1f} {verdict}"
            + (f"  ({self.missing} samples without a number)" if self.missing else "")
            + (f"  ({self.stream_drops} stream drops)" if self.stream_drops else "")
        )


class StreamView(Protocol):
    """What the probe needs of the running integration (the entry changes on a restart)."""

    def value(self, descriptor: str) -> Any:
        """The coordinator's current value of a descriptor of the car."""

    def drops(self) -> int:
        """Stream disconnects so far, other than reconnecting with new credentials."""

    async def restart(self) -> None:
        """Restart the integration (reload its config entry; storage is kept)."""


class SessionProbe:
    """Drives sessions minute by minute and compares the sensors with the simulator's truth."""

    def __init__(
        self,
        hass: HomeAssistant,
        sim: SimulatorHandle,
        travel: TimeTravel,
        vin: str,
        entity_ids: tuple[str, str],
        stream: StreamView,
    ) -> None:
        """Probe `vin`'s estimate and measured sensors (entity ids, in that order)."""
        self._hass = hass
        self._sim = sim
        self._travel = travel
        self._vin = vin
        self._estimate_id, self._measured_id = entity_ids
        self._stream = stream

    async def async_run(self, scenario: str, quirks: str) -> list[SessionResult]:
        """Drive every session of a scenario under a quirk set."""
        await self._sim.set_quirks(QUIRK_SETS[quirks])
        return [await self._async_session(scenario, quirks, plan) for plan in SCENARIOS[scenario]]

    async def _async_session(self, scenario: str, quirks: str, plan: SessionPlan) -> SessionResult:
        result = SessionResult(scenario, quirks, plan.label, plan.first_session)
        await self._sim.start_charging(self._vin, **plan.start)
        elapsed = timedelta(0)
        after_end: timedelta | None = None
        while after_end is None or after_end < AFTER_END:
            if elapsed > LONGEST_SESSION:
                result.notes.append("the simulated session did not end")
                break
            await self._travel.async_advance(STEP)
            elapsed += STEP
            if plan.restart_after is not None and elapsed == plan.restart_after:
                await self._stream.restart()
            truth = (await self._sim.charging_truth(self._vin))["session"]
            await self._async_delivered(truth)
            ended = truth["phase"] == "ended"
            self._sample(result, float(truth["soc"]), at_end=ended and after_end is None)
            if ended:
                after_end = (after_end or timedelta(0)) + STEP
        result.minutes = int(elapsed / STEP)
        result.stream_drops = self._stream.drops()
        return result

    async def _async_delivered(self, truth: Mapping[str, Any]) -> None:
        """Wait until the stream has brought what the car sent during the jump.

        A jump makes the simulator send a minute's messages at once, and they reach Home
        Assistant over a real socket, maybe after the jump returned. A real car's arrive
        as they happen, so the bench samples once they are in: it measures the estimate,
        not the delivery of a burst. Caught up: the car's charging status matches the
        session's phase and its power is within what the car would not re-send.
        """
        from tests.integration.common import async_wait_for  # noqa: PLC0415

        status = _STATUS_OF_PHASE[truth["phase"]]
        true_power = float(truth["grid_power_w"])

        def caught_up() -> bool:
            if self._stream.value(CHARGING_STATUS) != status:
                return False
            if status != "CHARGINGACTIVE":
                return True
            power = self._stream.value(CHARGING_POWER)
            if not isinstance(power, int | float):
                return False
            return abs(power - true_power) < max(_POWER_UNSENT_W, _POWER_UNSENT_SHARE * abs(power))

        await async_wait_for(self._hass, caught_up, "the stream to bring the jump's readings")

    def _sample(self, result: SessionResult, true_soc: float, *, at_end: bool) -> None:
        estimate = self._number(self._estimate_id)
        measured = self._number(self._measured_id)
        if estimate is None or measured is None:
            result.missing += 1
            return
        estimate_error, measured_error = abs(estimate - true_soc), abs(measured - true_soc)
        result.estimate_max = max(result.estimate_max, estimate_error)
        result.measured_max = max(result.measured_max, measured_error)
        if at_end:
            result.estimate_at_end, result.measured_at_end = estimate_error, measured_error

    def _number(self, entity_id: str) -> float | None:
        state = self._hass.states.get(entity_id)
        try:
            return float(state.state) if state is not None else None
        except ValueError:
            return None


def scenarios_to_run() -> list[tuple[str, str]]:
    """(scenario, quirk set) pairs the test runs: from the environment, else the short one."""
    scenarios = _names(os.environ.get(ENV_SCENARIOS), SCENARIOS, ("short",))
    quirks = _names(os.environ.get(ENV_QUIRKS), QUIRK_SETS, ("withheld",))
    return [(scenario, quirk) for scenario in scenarios for quirk in quirks]


def _names(raw: str | None, known: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if not raw:
        return default
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown names {unknown}; known: {sorted(known)}")
    return names


def write_results(results: list[SessionResult]) -> None:
    """Hand a scenario's results to main() when it started the run (one JSON line each)."""
    if target := os.environ.get(ENV_RESULT):
        with Path(target).open("a", encoding="utf-8") as out:
            for result in results:
                out.write(json.dumps(asdict(result)) + "\n")


def summary(results: list[SessionResult]) -> str:
    """The last line."""
    worst = max((result.estimate_max for result in results), default=0.0)
    baseline = max((result.measured_max for result in results), default=0.0)
    return (
        f"charging estimate: worst max error {worst:.1f} pp over {len(results)} scenarios "
        f"(last-measured baseline {baseline:.1f} pp)"
    )


def main() -> int:
    """Run tests/integration/test_charging_bench.py with the chosen scenarios; print results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--scenarios", default=",".join(FULL_RUN))
    parser.add_argument("--quirks", default=",".join(QUIRK_SETS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "charging.jsonl"
        env = {
            **os.environ,
            ENV_SCENARIOS: args.scenarios,
            ENV_QUIRKS: args.quirks,
            ENV_RESULT: str(result_file),
        }
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "-n0",
                "--timeout=0",
                "tests/integration/test_charging_bench.py",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if not result_file.exists():
            print(completed.stdout[-5000:], completed.stderr[-5000:], sep="\n")
            return 2
        results = [
            SessionResult(**json.loads(line))
            for line in result_file.read_text(encoding="utf-8").splitlines()
        ]
    for result in results:
        print(result.line())
        for note in result.notes:
            print(f"  {note}")
    if completed.returncode != 0:
        print("the run failed or missed a goal; pytest said:")
        print(completed.stdout[-3000:])
    print(summary(results))
    return 0 if completed.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
