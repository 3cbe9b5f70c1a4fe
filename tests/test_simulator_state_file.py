"""The simulator's `--state-file`: what BMW remembers survives a restart of the simulator.

The first tests start real simulator processes (stopped with SIGINT, as Ctrl-C in
scripts/develop does); the rest check the file's reading and writing in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
import json
import logging
import os
from pathlib import Path
import select
import signal
import stat
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest

from tests.simulator import fleet
from tests.simulator.clock import SimClock, next_noon_utc, pinned_start_time
from tests.simulator.handle import SimulatorHandle
from tests.simulator.persistence import (
    FORGET_EXPIRED_AFTER,
    load_state_file,
    save_state_file,
    snapshot,
)
from tests.simulator.points import TelematicPoint
from tests.simulator.state import SimState, TokenGrant

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# These tests are about memory, not BMW's midnight: their clock starts at noon UTC, so the budget
# they count is never reset under them, whenever they run (or from a pinned start's day).
START = next_noon_utc((pinned_start_time() or datetime.now(UTC)) - timedelta(hours=12))
SOC = "vehicle.drivetrain.batteryManagement.header"
ODOMETER = "vehicle.vehicle.travelledDistance"
API_ONLY_SCOPE = f"authenticate_user openid {fleet.SCOPE_API}"


class StatefulSimulator:
    """A simulator process with a state file, stopped by SIGINT like Ctrl-C."""

    def __init__(self, state_file: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        # A fixed argument list: this interpreter running the repository's simulator.
        self.process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "tests.simulator",
                "--state-file",
                str(state_file),
                "--start-time",
                START.isoformat(),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.handle = SimulatorHandle.from_ready_line(self._ready_line())

    def log(self) -> str:
        """What the simulator wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def _ready_line(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            readable = select.select([self.process.stdout], [], [], max(remaining, 0))[0]
            chunk = os.read(self.process.stdout.fileno(), 65536) if readable else b""
            if not chunk:
                self.kill()
                pytest.fail(f"simulator not ready:\n{self.log()}")
            line += chunk
        return line.decode()

    def interrupt(self) -> int:
        """SIGINT, as Ctrl-C; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        finally:
            self.kill()
        return status

    def kill(self) -> None:
        """Make sure the process is gone (after a failure) and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Any]:
    """Start simulator processes on a state file; any still running at the end are killed."""
    started: list[StatefulSimulator] = []

    def start(state_file: Path) -> StatefulSimulator:
        simulator = StatefulSimulator(state_file, tmp_path / f"simulator-{len(started)}.log")
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.kill()


async def refresh(
    session: aiohttp.ClientSession, sim: SimulatorHandle, refresh_token: str
) -> tuple[int, dict[str, Any]]:
    async with session.post(
        sim.gcdm_url + "/gcdm/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": sim.client_id,
        },
    ) as response:
        return response.status, await response.json()


async def rest(
    session: aiohttp.ClientSession,
    sim: SimulatorHandle,
    access_token: str,
    method: str,
    path: str,
    **kwargs: Any,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {access_token}", "x-version": "v1"}
    async with session.request(method, sim.api_url + path, headers=headers, **kwargs) as response:
        return response.status, await response.json()


async def clock_offset(sim: SimulatorHandle) -> float:
    """Seconds the simulator's clock runs ahead of where it started."""
    return ((await sim.now()) - START).total_seconds()


# --- real restarts -------------------------------------------------------------------------


async def test_bmws_memory_survives_a_restart(
    socket_enabled: None, tmp_path: Path, start_simulator: Any
) -> None:
    state_file = tmp_path / ".simulator-state.json"

    first = start_simulator(state_file)
    sim = first.handle
    assert "WARNING" not in first.log()
    assert (await sim.calls())[fleet.GCID_MAIN]["used"] == 0
    issued = await sim.issue_tokens()
    async with aiohttp.ClientSession() as session:
        status, rotated = await refresh(session, sim, issued["refresh_token"])
        assert status == 200, rotated
        access = rotated["access_token"]
        status, created = await rest(
            session,
            sim,
            access,
            "POST",
            "/customers/containers",
            json={"name": "HA", "purpose": "dashboard", "technicalDescriptors": [SOC, ODOMETER]},
        )
        assert status == 201, created
        container_id = created["containerId"]
        status, _ = await rest(session, sim, access, "GET", "/customers/vehicles/mappings")
        assert status == 200
    await sim.set_telematics(fleet.VIN_BEV, {SOC: 42.5})
    await sim.advance(600)
    await sim.set_subscriptions(fleet.CLIENT_NONE, api=True)
    spent = (await sim.calls())[fleet.GCID_MAIN]
    assert spent["used"] == 2
    assert first.interrupt() == 0
    assert "simulator state saved" in first.log()

    # Written atomically and for its owner only: no temporary file is left beside it.
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix != ".log") == [
        state_file.name
    ]

    second = start_simulator(state_file)
    sim = second.handle
    assert "WARNING" not in second.log()
    restored = (await sim.calls())[fleet.GCID_MAIN]
    assert (restored["used"], restored["by_endpoint"]) == (spent["used"], spent["by_endpoint"])
    assert 595 < await clock_offset(sim) < 615
    async with aiohttp.ClientSession() as session:
        # The refresh token rotated away before the restart stays refused.
        status, answer = await refresh(session, sim, issued["refresh_token"])
        assert (status, answer["error"]) == (400, "invalid_request")
        status, data = await rest(
            session,
            sim,
            access,
            "GET",
            f"/customers/vehicles/{fleet.VIN_BEV}/telematicData",
            params={"containerId": container_id},
        )
        assert status == 200, data
        assert data["telematicData"][SOC]["value"] == "42.5"
        status, renewed = await refresh(session, sim, rotated["refresh_token"])
        assert status == 200, renewed
        # The access token lives its hour from its issue, restart or not.
        await sim.advance(rotated["expires_in"] - 600 + 2)
        status, refused = await rest(session, sim, access, "GET", "/customers/containers")
        assert (status, refused["exveErrorId"]) == (403, "CU-127")
    # A client subscribed before the restart still is.
    await sim.issue_tokens(fleet.CLIENT_NONE, API_ONLY_SCOPE)
    assert second.interrupt() == 0

    logs = first.log() + second.log()
    for tokens in (issued, rotated, renewed):
        for kind in ("access_token", "id_token", "refresh_token"):
            assert tokens[kind] not in logs


async def test_a_damaged_state_file_means_a_fresh_start(
    socket_enabled: None, tmp_path: Path, start_simulator: Any
) -> None:
    state_file = tmp_path / ".simulator-state.json"
    state_file.write_text('{"format": "cardata-simulator-state", "version": 1, "tokens": {')

    simulator = start_simulator(state_file)
    sim = simulator.handle
    warnings = [line for line in simulator.log().splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert str(state_file) in warnings[0]
    assert "starting fresh" in warnings[0]
    assert (await sim.calls())[fleet.GCID_MAIN]["used"] == 0
    assert abs(await clock_offset(sim)) < 5
    tokens = await sim.issue_tokens()
    assert simulator.interrupt() == 0

    # The damaged file was replaced by the state of this run.
    state = SimState(SimClock())
    assert load_state_file(state, state_file)
    assert tokens["refresh_token"] in state.refresh_tokens


# --- reading and writing in-process --------------------------------------------------------


def grant(client_id: str = fleet.CLIENT_FULL, *, expires_in: float = 3600) -> TokenGrant:
    return TokenGrant(
        client_id,
        fleet.GCID_MAIN,
        ("authenticate_user", "openid", fleet.SCOPE_API, fleet.SCOPE_STREAM),
        time.time() + expires_in,
    )


def remembering_state() -> SimState:
    """A state with something of everything BMW remembers."""
    state = SimState(SimClock())
    state.clock.advance(1234.5)
    state.access_tokens["access-token"] = grant()
    state.id_tokens["id-token"] = grant(expires_in=2 * 3600)
    state.refresh_tokens["superseded-refresh"] = grant()
    state.refresh_tokens["superseded-refresh"].revoked = True
    state.refresh_tokens["live-refresh"] = grant()
    container = state.add_container(fleet.GCID_MAIN, "HA", "dashboard", [SOC])
    deleted = state.add_container(fleet.GCID_MAIN, "old", "dashboard", [ODOMETER])
    deleted.state = "DELETED"
    deleted.deleted_at = state.clock.timestamp()
    assert container.container_id != deleted.container_id
    state.count_call(fleet.GCID_MAIN, "containers")
    state.count_call(fleet.GCID_MAIN, "telematic_data")
    state.count_refused(fleet.GCID_MAIN)
    state.set_subscriptions(fleet.CLIENT_STREAM_ONLY, api=True, stream=None)
    state.store_points(
        fleet.VIN_BEV,
        {
            SOC: TelematicPoint(61.5, "%", state.clock.now()),
            "vehicle.cabin.hvac.preconditioning.status.comfortState": TelematicPoint(
                None, None, None
            ),
        },
    )
    state.history[fleet.VIN_BEV] = state.history[fleet.VIN_BEV][:3]
    return state


def test_everything_remembered_is_restored(tmp_path: Path) -> None:
    original = remembering_state()
    path = tmp_path / "state.json"
    assert save_state_file(original, path)

    restored = SimState(SimClock())
    assert load_state_file(restored, path)

    assert restored.access_tokens == original.access_tokens
    assert restored.id_tokens == original.id_tokens
    assert restored.refresh_tokens == original.refresh_tokens
    assert restored.containers == original.containers
    assert restored.call_logs == original.call_logs
    assert restored.subscriptions == original.subscriptions
    assert restored.telematics == original.telematics
    assert restored.history == original.history
    assert restored.charging_settings == original.charging_settings
    assert abs(restored.clock.timestamp() - original.clock.timestamp()) < 1
    assert restored.stream_login(fleet.GCID_MAIN, "id-token").return_code == 0
    assert restored.budget_report()[fleet.GCID_MAIN]["used"] == 2


def test_pending_device_codes_and_faults_are_not_kept(tmp_path: Path) -> None:
    original = remembering_state()
    original.verifiers.append("a-verifier")
    path = tmp_path / "state.json"
    assert save_state_file(original, path)
    text = path.read_text()
    assert "a-verifier" not in text

    restored = SimState(SimClock())
    assert load_state_file(restored, path)
    assert restored.device_grants == {}
    assert restored.faults == {}
    assert restored.verifiers == []


def test_a_reset_state_is_what_gets_written(tmp_path: Path) -> None:
    state = remembering_state()
    state.clock.reset()
    state.reset()
    path = tmp_path / "state.json"
    assert save_state_file(state, path)

    restored = SimState(SimClock())
    assert load_state_file(restored, path)
    assert restored.refresh_tokens == {}
    assert restored.containers == {}
    assert restored.budget_report()[fleet.GCID_MAIN]["used"] == 0
    assert abs(restored.clock.timestamp() - time.time()) < 1


def test_long_expired_grants_are_forgotten() -> None:
    state = SimState(SimClock())
    state.refresh_tokens["ancient"] = grant(expires_in=-FORGET_EXPIRED_AFTER - 60)
    state.refresh_tokens["lately-expired"] = grant(expires_in=-60)
    assert set(snapshot(state)["tokens"]["refresh"]) == {"lately-expired"}


def test_a_missing_file_is_a_quiet_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = SimState(SimClock())
    assert not load_state_file(state, tmp_path / "absent.json")
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert state.refresh_tokens == {}


def _damage(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A saved state with one part made invalid."""
    if where == "version":
        data["version"] = 99
    elif where == "grant":
        data["tokens"]["refresh"]["live-refresh"]["expires_at"] = "tomorrow"
    elif where == "container":
        data["containers"][0]["state"] = "ARCHIVED"
    elif where == "budget":
        data["budgets"][fleet.GCID_MAIN]["calls"] = [[1.0]]
    elif where == "clock":
        data["clock_offset"] = -5
    elif where == "telematics":
        data["telematics"][fleet.VIN_BEV][SOC]["timestamp"] = "soon"
    elif where == "history":
        data["charging_history"][fleet.VIN_BEV][0]["startTime"] = None
    elif where == "settings":
        data["charging_settings"][fleet.VIN_BEV] = {"not": "a list"}
    return data


@pytest.mark.parametrize(
    "where",
    ["version", "grant", "container", "budget", "clock", "telematics", "history", "settings"],
)
def test_a_damaged_file_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(_damage(snapshot(remembering_state()), where)))

    state = SimState(SimClock())
    assert not load_state_file(state, path)

    # All or nothing: even parts before the damaged one were not applied.
    assert state.refresh_tokens == {}
    assert state.containers == {}
    assert state.budget_report()[fleet.GCID_MAIN]["used"] == 0
    assert abs(state.clock.timestamp() - time.time()) < 1
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    # The file holds tokens; the warning names the place, never the content.
    assert "live-refresh" not in warnings[0].getMessage()


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"\xff\xfe\x00binary", b"[]", b'{"format": "something else"}'],
    ids=["empty", "not-json", "binary", "list", "foreign"],
)
def test_an_unreadable_file_is_a_fresh_start_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    state = SimState(SimClock())
    assert not load_state_file(state, path)
    assert len([record for record in caplog.records if record.levelno >= logging.WARNING]) == 1
    assert state.refresh_tokens == {}


def test_a_directory_in_place_of_the_file_is_a_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = SimState(SimClock())
    assert not load_state_file(state, tmp_path)
    assert len([record for record in caplog.records if record.levelno >= logging.WARNING]) == 1


def test_a_failed_write_keeps_the_old_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    assert save_state_file(remembering_state(), path)
    before = path.read_bytes()
    fresh = SimState(SimClock())
    fresh.telematics[fleet.VIN_BEV][SOC] = TelematicPoint(object(), None, None)

    assert not save_state_file(fresh, path)
    assert path.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["state.json"]
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_a_missing_directory_is_an_error_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not save_state_file(SimState(SimClock()), tmp_path / "gone" / "state.json")
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_restored_clock_keeps_token_lifetimes_consistent(tmp_path: Path) -> None:
    """A token issued at simulated time T still expires at T + lifetime after a restart."""
    original = SimState(SimClock())
    original.clock.advance(timedelta(days=3).total_seconds())
    original.access_tokens["access-token"] = TokenGrant(
        fleet.CLIENT_FULL, fleet.GCID_MAIN, (fleet.SCOPE_API,), original.clock.timestamp() + 60
    )
    path = tmp_path / "state.json"
    assert save_state_file(original, path)

    restored = SimState(SimClock())
    assert load_state_file(restored, path)
    token = restored.access_tokens["access-token"]
    assert not restored.token_expired(token)
    restored.clock.advance(61)
    assert restored.token_expired(token)
