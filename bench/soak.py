"""Soak: D simulated days of the real integration against the simulator, with BMW's faults.

Runs a real Home Assistant (pytest-homeassistant-custom-component's harness) with the
integration set up against the simulator over loopback, and moves Home Assistant's frozen
clock and the simulator's clock together (tests/integration/common.py `TimeTravel`) through
D days, in 9-minute jumps (5-second jumps while the stream is down, so its recovery time is
measured to 5 s, and while a failed token renewal waits for its retry). Each day, at seeded
random moments:

- tokens expire every hour by themselves (the integration renews them);
- the broker drops every stream connection (4 times), and restarts once: it drops them,
  takes the reconnect and drops it again 10 s later;
- REST answers 500 or 503 (twice) and the token endpoint does (once), 1 to 3 calls in a row;
- the clocks drift apart and agree again (twice): BMW's clock runs 2 minutes ahead of Home
  Assistant's, then they agree, then Home Assistant's runs 2 minutes ahead, and so on;
- Home Assistant restarts once: the entry is unloaded and set up again, on the storage the
  harness kept (the entry, the token store, the budget and the state store);
- the car reports a new state of charge every hour, so the stream carries traffic;
- every 2nd day BMW's budget check answers CU-429 once;
- every 3rd day BMW restarts: every stream connection drops and the token endpoint and
  the REST API answer 503 for their next calls (the simulator runs on; a restart of its
  process would give its broker a new certificate authority, which BMW's publicly trusted
  certificate never does);
- every 5th day a REST call hangs until the client gives up, and so does a token request;
- each of these at least once in the first two days.

Counts:
- reauths: reauthentication flows started;
- tokens lost: Home Assistant restarts after which the entry did not come back because BMW
  refused its persisted tokens, plus 1 if, after a last restart, a forced refresh from the
  persisted refresh token is refused;
- requests: every request the integration's own budget counted, the most in any 24 hours;
  checked against the simulator's own count (per UTC day, BMW's budget window);
- error lines: log records at ERROR or above, from anything in Home Assistant's process;
- stream back: simulated time from a fault taking the stream down to it being connected
  again (planned reconnects with renewed tokens are counted apart, and not as down).

    .venv-3.14/bin/python -m bench.soak --days 30 [--seed 1]

The last line is `soak: D days, R reauths, T tokens lost, max Q requests/24h, L error lines,
stream back median Xs max Ys`. The run itself is tests/integration/test_soak_short.py (it needs
the harness's fixtures); this script starts it with the requested length and prints its result.
"""

from __future__ import annotations

import argparse
import asyncio
from bisect import bisect_right
from collections.abc import Awaitable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
import json
import logging
import os
from pathlib import Path
import random
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from tests.simulator.handle import SimulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_DAYS = "CARDATA_SOAK_DAYS"
ENV_SEED = "CARDATA_SOAK_SEED"
ENV_RESULT = "CARDATA_SOAK_RESULT"

DAY = timedelta(days=1)
# Shorter than the integration's token renewal margin (10 minutes): a longer jump would let
# the simulator expire the id token, and close the stream, before Home Assistant's renewal
# timer gets its turn, which no real clock does.
STEP = timedelta(minutes=9)
# While the stream is down: the resolution of its measured recovery time.
FINE_STEP = timedelta(seconds=5)
SKEW = timedelta(minutes=2)
# A request hanging at an injected timeout: the jump that lets the client's 30 s timeout
# fire, and how long (real time) the run waits before it concludes a request hangs.
PAST_CLIENT_TIMEOUT = timedelta(seconds=31)
HANG_NOTICED_AFTER = 3.0
_WAIT_STEP = 0.01
SOC = "vehicle.drivetrain.batteryManagement.header"
CU_429_BODY = {
    "exveErrorId": "CU-429",
    "exveErrorMsg": "API rate limit reached",
    "exveNote": "The daily limit of API requests has been reached.",
}
GOAL_REQUESTS = 50

_T = TypeVar("_T")


@dataclass
class SoakResult:
    """What the soak counted."""

    days: int = 0
    reauths: int = 0
    tokens_lost: int = 0
    max_requests_24h: int = 0
    error_lines: int = 0
    recoveries: list[float] = field(default_factory=list)
    # The longest outages: seconds, when, why, and the faults of the hour before.
    longest_outages: list[str] = field(default_factory=list)
    planned_reconnects: int = 0
    requests: int = 0
    bmw_max_per_day: int = 0
    ours_max_per_day: int = 0
    days_counts_differ: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The summary line."""
        median = statistics.median(self.recoveries) if self.recoveries else 0.0
        longest = max(self.recoveries, default=0.0)
        return (
            f"soak: {self.days} days, {self.reauths} reauths, {self.tokens_lost} tokens lost, "
            f"max {self.max_requests_24h} requests/24h, {self.error_lines} error lines, "
            f"stream back median {median:g}s max {longest:g}s"
        )

    def goals_met(self) -> bool:
        """0 reauths, 0 tokens lost, at most 50 requests in any 24 h, 0 error lines."""
        return (
            self.reauths == 0
            and self.tokens_lost == 0
            and self.max_requests_24h <= GOAL_REQUESTS
            and self.error_lines == 0
        )

    def note(self, text: str) -> None:
        """Keep a few examples of what went wrong, for whoever looks into it."""
        if len(self.examples) < 20:
            self.examples.append(text[:2000])


class _ErrorLines(logging.Handler):
    """Collects every log record at ERROR or above while the soak runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# --- the fault plan -----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Event:
    """Something that happens at `at` simulated seconds into the soak."""

    at: float
    kind: str


# Per day: how many of each fault; for the rarer ones, every how many days and on which
# day first (all of them within the first two days, so that a short soak meets each).
DAILY_FAULTS: dict[str, int] = {
    "broker_drop": 4,
    "broker_restart": 1,
    "rest_5xx": 2,
    "token_5xx": 1,
    "ha_restart": 1,
}
RARE_FAULTS: dict[str, tuple[int, int]] = {
    "cu_429": (2, 1),
    "bmw_restart": (3, 1),
    "rest_timeout": (5, 0),
    "token_timeout": (5, 1),
}
# Twice a day the clocks drift apart or agree again: BMW's clock 2 minutes ahead, both
# agree, Home Assistant's 2 minutes ahead, both agree.
SKEW_CYCLE = ("bmw_ahead", "clocks_agree", "ha_ahead", "clocks_agree")


def fault_plan(days: int, seed: int) -> list[Event]:
    """Every fault of the soak, at seeded random moments, in order."""
    rng = random.Random(seed)
    events: list[Event] = []
    for day in range(days):
        start = day * DAY.total_seconds()

        def moment(start: float = start) -> float:
            # An hour free at either end of the day, so days do not run into each other.
            return start + rng.uniform(3600, 23 * 3600)

        for kind, per_day in DAILY_FAULTS.items():
            events.extend(Event(moment(), kind) for _ in range(per_day))
        for kind, (every, first) in RARE_FAULTS.items():
            if day % every == first:
                events.append(Event(moment(), kind))
        skews = sorted(moment() for _ in range(2))
        events.extend(
            Event(at, SKEW_CYCLE[(2 * day + number) % len(SKEW_CYCLE)])
            for number, at in enumerate(skews)
        )
        events.extend(Event(start + hour * 3600 + 1800, "car_reports") for hour in range(24))
    return sorted(events)


# --- counting requests ----------------------------------------------------------------------------


class RequestLog:
    """Every request the integration's budget counted, from samples of its 24-hour list.

    The list is ordered and only pruned at its old end, also across restarts (it is stored),
    so what is newer than the last sample is new; requests sent at the same frozen instant
    are told apart by their number. Each is also kept at BMW's time (Home Assistant's plus
    the skew of the moment), by which BMW books it into a day.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.bmw_times: list[float] = []

    def sample(self, spent: list[Any], skew: timedelta) -> None:
        last = self.times[-1] if self.times else None
        seen_at_last = self.times.count(last) if last is not None else 0
        at_last = 0
        for request in spent:
            moment = request.at.timestamp()
            if last is not None and moment < last:
                continue
            if last is not None and moment == last:
                at_last += 1
                if at_last <= seen_at_last:
                    continue
            self.times.append(moment)
            self.bmw_times.append(moment + skew.total_seconds())

    def max_in_window(self, window: timedelta = DAY) -> int:
        span = window.total_seconds()
        best = 0
        for index, moment in enumerate(self.times):
            best = max(best, bisect_right(self.times, moment + span - 1e-6) - index)
        return best

    def per_utc_day(self) -> dict[str, int]:
        days: dict[str, int] = {}
        for moment in self.bmw_times:
            key = datetime.fromtimestamp(moment, UTC).date().isoformat()
            days[key] = days.get(key, 0) + 1
        return days


# --- watching the stream --------------------------------------------------------------------------


class StreamWatch:
    """Outages of the stream in simulated time, from the stream manager's status changes.

    An outage that passed through DISCONNECTED (or any state but CONNECTING) was caused by a
    fault; one that only passed through CONNECTING is a planned reconnect with renewed tokens.
    """

    def __init__(self, result: SoakResult) -> None:
        self._result = result
        self._down_since: datetime | None = None
        self._faulted = False
        self._reasons: list[str] = []
        self._unsub: Any = None
        self._outages: list[tuple[float, str]] = []
        # Faults injected (Home Assistant's time, kind), to tell why an outage was long.
        self.injected: list[tuple[datetime, str]] = []

    def _remember(self, lasted: float) -> None:
        assert self._down_since is not None
        since = self._down_since
        before = [
            f"{kind} at -{(since - at).total_seconds():.0f}s"
            for at, kind in self.injected
            if since - timedelta(hours=1) <= at <= since + timedelta(seconds=lasted)
        ]
        self._outages.append(
            (
                lasted,
                f"{lasted:g}s from {since.isoformat()}: {'; '.join(self._reasons)}"
                f" | faults: {', '.join(before)}",
            )
        )
        self._outages.sort(key=lambda item: -item[0])
        del self._outages[5:]
        self._result.longest_outages = [text for _, text in self._outages]

    def attach(self, entry: MockConfigEntry) -> None:
        from custom_components.cardata.api.stream import StreamState  # noqa: PLC0415

        manager = entry.runtime_data.stream

        def changed() -> None:
            status = manager.status
            if status.state is StreamState.CONNECTED:
                if self._down_since is not None:
                    lasted = (status.since - self._down_since).total_seconds()
                    if self._faulted:
                        self._result.recoveries.append(max(lasted, 0.0))
                        self._remember(max(lasted, 0.0))
                    else:
                        self._result.planned_reconnects += 1
                self._down_since = None
                self._faulted = False
                self._reasons = []
                return
            if self._down_since is None:
                self._down_since = status.since
            if status.state is not StreamState.CONNECTING:
                self._faulted = True
                if len(self._reasons) < 6:
                    self._reasons.append(f"{status.state.value}: {status.reason}")

        self._unsub = manager.async_add_listener(changed)

    def detach(self) -> None:
        """Before Home Assistant stops: its stopping is not an outage."""
        if self._unsub is not None:
            self._unsub()
        self._unsub = None
        self._down_since = None
        self._faulted = False
        self._reasons = []

    @property
    def down(self) -> bool:
        return self._down_since is not None


# --- the run -------------------------------------------------------------------------------------


class Soak:
    """One soak: the entry, the clocks, the fault plan and the counts."""

    def __init__(
        self,
        hass: HomeAssistant,
        sim: SimulatorHandle,
        freezer: FrozenDateTimeFactory,
        days: int,
        seed: int,
    ) -> None:
        from tests.integration.common import TimeTravel  # noqa: PLC0415

        self.hass = hass
        self.sim = sim
        self.freezer = freezer
        self.days = days
        self.seed = seed
        self.rng = random.Random(seed + 1)
        self.result = SoakResult(days=days)
        self.travel = TimeTravel(hass, sim, freezer)
        self.requests = RequestLog()
        self.watch = StreamWatch(self.result)
        self.reauth_flows: set[str] = set()
        self.bmw_used: dict[str, int] = {}
        # How far BMW's clock runs ahead of Home Assistant's (negative: behind).
        self.skew = timedelta(0)
        self.entry: MockConfigEntry | None = None
        self.soc = 50
        # Timeout faults injected and not yet seen hanging.
        self.hangs_armed = 0

    async def async_start(self) -> datetime:
        """Both clocks frozen at the next 00:00:30 UTC; the entry set up and streaming."""
        from tests.integration.common import async_add_entry, async_wait_for  # noqa: PLC0415

        now = await self.sim.freeze_clock(True)
        midnight = datetime.combine(now.date() + DAY, datetime.min.time(), UTC)
        start = await self.sim.advance((midnight - now).total_seconds() + 30)
        self.freezer.move_to(start)
        self.entry = await async_add_entry(self.hass, self.sim)
        entry = self.entry
        await async_wait_for(
            self.hass, lambda: entry.runtime_data.stream.connected, "the stream to connect"
        )
        self.watch.attach(entry)
        return start

    async def async_run(self) -> SoakResult:
        from homeassistant.util import dt as dt_util  # noqa: PLC0415

        errors = _ErrorLines()
        root = logging.getLogger()
        root.addHandler(errors)
        try:
            start = await self.async_start()
            end = start + DAY * self.days
            plan = fault_plan(self.days, self.seed)
            index = 0
            while (now := dt_util.utcnow()) < end:
                while index < len(plan) and start + timedelta(seconds=plan[index].at) <= now:
                    await self.async_inject(plan[index].kind)
                    index += 1
                step = FINE_STEP if self.watch.down or self.renewal_failing() else STEP
                target = min(now + step, end)
                # BMW's budget window ends at midnight on BMW's clock: read its count just before.
                bmw_day_end = (
                    datetime.combine((now + self.skew).date() + DAY, datetime.min.time(), UTC)
                    - self.skew
                    - timedelta(seconds=1)
                )
                at_day_end = now < bmw_day_end <= target
                if at_day_end:
                    target = bmw_day_end
                await self.async_unstuck(self.travel.async_advance(target - now))
                await self.async_sample(read_bmw=at_day_end)
            await self.async_final_check()
        finally:
            root.removeHandler(errors)
        self.result.error_lines = len(errors.records)
        for record in errors.records[:10]:
            self.result.note(f"log {record.levelname} {record.name}: {record.getMessage()}")
        self.tally_requests()
        return self.result

    def renewal_failing(self) -> bool:
        """Whether the token renewal is retrying after a failure (in 30 s, 1, 2... minutes).

        Its retry timer needs clock time: a 9-minute jump would hold it back for 9 minutes,
        long enough for the id token to run out, which no real clock does.
        """
        runtime = getattr(self.entry, "runtime_data", None)
        if runtime is None:
            return False
        failures: int = runtime.tokens.as_diagnostics()["failed_refreshes_in_a_row"]
        return failures > 0

    # --- sampling

    async def async_sample(self, *, read_bmw: bool = False) -> None:
        from homeassistant.config_entries import SOURCE_REAUTH  # noqa: PLC0415
        from homeassistant.util import dt as dt_util  # noqa: PLC0415

        from custom_components.cardata.const import DOMAIN  # noqa: PLC0415

        assert self.entry is not None
        for flow in self.hass.config_entries.flow.async_progress_by_handler(DOMAIN):
            if flow["context"].get("source") == SOURCE_REAUTH:
                if flow["flow_id"] not in self.reauth_flows:
                    self.result.note(f"reauth at {dt_util.utcnow().isoformat()}")
                self.reauth_flows.add(flow["flow_id"])
        self.result.reauths = len(self.reauth_flows)
        runtime = getattr(self.entry, "runtime_data", None)
        if runtime is not None:
            self.requests.sample(runtime.budget.spent(), self.skew)
        if read_bmw:
            calls = await self.sim.calls()
            day = (dt_util.utcnow() + self.skew).date().isoformat()
            used = int(calls[self.sim.gcid]["used"])
            self.bmw_used[day] = max(self.bmw_used.get(day, 0), used)

    def tally_requests(self) -> None:
        result = self.result
        result.requests = len(self.requests.times)
        result.max_requests_24h = self.requests.max_in_window()
        ours = self.requests.per_utc_day()
        result.ours_max_per_day = max(ours.values(), default=0)
        result.bmw_max_per_day = max(self.bmw_used.values(), default=0)
        for day, used in sorted(self.bmw_used.items()):
            if ours.get(day, 0) != used:
                result.days_counts_differ += 1
                result.note(f"budget {day}: ours {ours.get(day, 0)}, BMW's {used}")

    # --- requests that hang

    async def async_unstuck(self, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable`; when a request hangs at an injected timeout, let it time out.

        Under the frozen clock the client's 30 s timeout never fires by itself, and
        waiting for Home Assistant to be idle would wait for the simulator to give up
        (5 minutes of real time). So once a request has hung for a few real seconds, both
        clocks jump past the client's timeout, as the 30 s would pass at home.
        """
        from homeassistant.util import dt as dt_util  # noqa: PLC0415
        from pytest_homeassistant_custom_component.common import (  # noqa: PLC0415
            async_fire_time_changed,
        )

        task = asyncio.ensure_future(awaitable)
        waited = 0.0
        while not task.done():
            await self.hass.async_add_executor_job(time.sleep, _WAIT_STEP)
            waited += _WAIT_STEP
            if self.hangs_armed and waited >= HANG_NOTICED_AFTER:
                self.hangs_armed -= 1
                self.result.faults["timeouts_hit"] = self.result.faults.get("timeouts_hit", 0) + 1
                self.watch.injected.append((dt_util.utcnow(), "timeout_hit"))
                await self.sim.advance(PAST_CLIENT_TIMEOUT.total_seconds())
                self.freezer.tick(PAST_CLIENT_TIMEOUT)
                async_fire_time_changed(self.hass)
                waited = 0.0
        return task.result()

    # --- faults

    async def async_inject(self, kind: str) -> None:
        from homeassistant.util import dt as dt_util  # noqa: PLC0415

        sim = self.sim
        rng = self.rng
        if kind != "car_reports":
            self.result.faults[kind] = self.result.faults.get(kind, 0) + 1
            self.watch.injected.append((dt_util.utcnow(), kind))
        if kind == "car_reports":
            self.soc = 20 + (self.soc + rng.randrange(-5, 6) - 20) % 80
            from tests.simulator import fleet  # noqa: PLC0415

            await sim.set_telematics(fleet.VIN_BEV, {SOC: self.soc})
        elif kind == "broker_drop":
            await sim.drop_stream()
        elif kind == "broker_restart":
            await sim.drop_stream()
            await self.async_unstuck(self.travel.async_advance(timedelta(seconds=10)))
            await sim.drop_stream()
        elif kind == "rest_5xx":
            await sim.fault(
                "telematic_data", count=rng.randint(1, 3), status=rng.choice([500, 503])
            )
        elif kind == "token_5xx":
            await sim.fault("token", count=rng.randint(1, 3), status=rng.choice([500, 503]))
        elif kind == "cu_429":
            await sim.fault("telematic_data", status=403, body=CU_429_BODY)
        elif kind == "bmw_restart":
            await sim.fault("token", count=2, status=503)
            await sim.fault("telematic_data", count=2, status=503)
            await sim.fault("basic_data", count=1, status=503)
            await sim.drop_stream()
        elif kind == "rest_timeout":
            await sim.fault("telematic_data", timeout=True)
            self.hangs_armed += 1
        elif kind == "token_timeout":
            await sim.fault("token", timeout=True)
            self.hangs_armed += 1
        elif kind == "ha_restart":
            await self.async_restart_home_assistant()
        elif kind in SKEW_CYCLE:
            await self.async_skew(kind)
        else:
            raise AssertionError(kind)

    async def async_skew(self, kind: str) -> None:
        """Let one clock run ahead of the other (clocks only move forward)."""
        from homeassistant.util import dt as dt_util  # noqa: PLC0415
        from pytest_homeassistant_custom_component.common import (  # noqa: PLC0415
            async_fire_time_changed,
        )

        wanted = {"bmw_ahead": SKEW, "clocks_agree": timedelta(0), "ha_ahead": -SKEW}[kind]
        change = wanted - self.skew
        if change > timedelta(0):
            await self.sim.advance(change.total_seconds())
        elif change < timedelta(0):
            self.freezer.tick(-change)
            async_fire_time_changed(self.hass, dt_util.utcnow())
            await self.hass.async_block_till_done()
        self.skew = wanted

    async def async_restart_home_assistant(self) -> None:
        """Unload the entry and set it up again on the storage the harness kept."""
        from homeassistant.config_entries import ConfigEntryState  # noqa: PLC0415

        from tests.integration.common import async_wait_for  # noqa: PLC0415

        entry = self.entry
        assert entry is not None
        await self.async_sample()
        self.watch.detach()
        assert await self.async_unstuck(self.hass.config_entries.async_unload(entry.entry_id))
        await self.async_unstuck(self.hass.async_block_till_done())
        await self.async_unstuck(self.hass.config_entries.async_setup(entry.entry_id))
        await self.async_unstuck(self.hass.async_block_till_done())
        if entry.state is not ConfigEntryState.LOADED:
            self.result.note(f"after a restart the entry is {entry.state}: {entry.reason}")
            if entry.state is ConfigEntryState.SETUP_ERROR:
                self.result.tokens_lost += 1
            return
        await async_wait_for(
            self.hass, lambda: entry.runtime_data.stream.connected, "the stream after a restart"
        )
        self.watch.attach(entry)

    async def async_final_check(self) -> None:
        """Restart once more and renew the tokens from what was persisted."""
        from homeassistant.config_entries import ConfigEntryState  # noqa: PLC0415
        from homeassistant.exceptions import ConfigEntryAuthFailed  # noqa: PLC0415

        await self.async_restart_home_assistant()
        entry = self.entry
        assert entry is not None
        if entry.state is ConfigEntryState.LOADED:
            try:
                await self.async_unstuck(entry.runtime_data.tokens.async_refresh(force=True))
            except ConfigEntryAuthFailed:
                self.result.tokens_lost += 1
                self.result.note("BMW refused the persisted refresh token")
        await self.async_sample(read_bmw=True)


async def async_soak(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    days: int,
    seed: int = 1,
) -> SoakResult:
    """Live `days` simulated days with faults and return the counts; leaves the entry loaded."""
    return await Soak(hass, sim, freezer, days, seed).async_run()


# --- command line -------------------------------------------------------------------------------


def _iter_lines(result: SoakResult) -> Iterator[str]:
    yield f"faults: {json.dumps(result.faults, sort_keys=True)}"
    yield (
        f"requests: {result.requests} in {result.days} days; ours max {result.max_requests_24h} "
        f"in any 24 h, {result.ours_max_per_day} in a UTC day; BMW's count max "
        f"{result.bmw_max_per_day} in a UTC day; {result.days_counts_differ} days differ"
    )
    yield (
        f"stream: {len(result.recoveries)} outages after faults, "
        f"{result.planned_reconnects} planned reconnects with renewed tokens"
    )
    for outage in result.longest_outages:
        yield f"long outage: {outage}"
    yield f"wall time: {result.seconds:.0f} s (Home Assistant start included)"
    for example in result.examples:
        yield f"example: {example}"
    yield result.line()


def main() -> int:
    """Run tests/integration/test_soak_short.py for D days and print its counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "soak.json"
        env = {
            **os.environ,
            ENV_DAYS: str(args.days),
            ENV_SEED: str(args.seed),
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
                "tests/integration/test_soak_short.py::test_soak",
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
        result = SoakResult(**json.loads(result_file.read_text()))
    # Measured here: inside the run, freezegun holds even the monotonic clock.
    result.seconds = time.monotonic() - started
    for line in _iter_lines(result):
        print(line)
    return 0


def write_result(result: SoakResult) -> None:
    """Hand the counts to main() when it started the run."""
    if target := os.environ.get(ENV_RESULT):
        Path(target).write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    sys.exit(main())
