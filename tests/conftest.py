"""Shared fixtures: Home Assistant's test harness and the BMW CarData simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
import logging
import os
from pathlib import Path
import select
import subprocess
import sys
import time

from homeassistant.helpers import frame
import pytest

from tests.simulator.clock import next_noon_utc, pinned_start_time
from tests.simulator.handle import SimulatorHandle

pytest_plugins = ["pytest_homeassistant_custom_component"]

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def _clocks_are_ours(node: pytest.Item | pytest.FixtureRequest) -> bool:
    """Whether every clock the test reads can be set: the simulator's, and Home Assistant's.

    True for tests of the simulator alone (they speak HTTP and MQTT to it and read no other
    clock) and for tests that freeze Home Assistant's clock. The others read wall time (Home
    Assistant's or the client library's), which the simulator's clock must then follow: BMW's
    clock is the real time, and a token's `exp` far from it reads as expired or everlasting.
    """
    fixtures = getattr(node, "fixturenames", ())
    if "sim" not in fixtures:
        return False
    module = getattr(node, "module", None)
    simulator_alone = (
        module is not None
        and module.__name__.startswith("tests.test_simulator_")
        and "hass" not in fixtures
    )
    return simulator_alone or "freezer" in fixtures


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With a pinned start (scripts/clock-check), run only the tests whose clocks all start there."""
    if pinned_start_time() is None:
        return
    deselected = [item for item in items if not _clocks_are_ours(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if _clocks_are_ours(item)]


@pytest.fixture(autouse=True)
def _clocks_at_a_chosen_start(request: pytest.FixtureRequest) -> None:
    """Start the simulator's clock, and Home Assistant's frozen one, at a chosen moment.

    In tests whose clocks are all ours (see `_clocks_are_ours`): the next noon UTC, twelve hours
    from BMW's midnight budget reset either way, so what they see does not depend on the time of
    day they run at; or the start CARDATA_SIM_START pins (scripts/clock-check). A test about
    midnight moves the clocks there itself. Home Assistant's clock is frozen at the simulator's,
    so TimeTravel moves both across midnight, a month end or a DST change together. Named to
    sort first among the autouse fixtures: Home Assistant must not start before its clock is set.
    """
    if not _clocks_are_ours(request):
        return
    sim: SimulatorHandle = request.getfixturevalue("sim")
    now = sim.advance_blocking(0)
    if pinned_start_time() is None:
        noon = next_noon_utc(now)
        now = sim.advance_blocking((noon - now).total_seconds())
    if "freezer" in request.fixturenames:
        request.getfixturevalue("freezer").move_to(now)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Let every test that uses `hass` load custom_components/cardata.

    Tests without `hass` (the simulator's and the client library's) are left alone, so they do
    not pay for a Home Assistant instance they never use.
    """
    if "hass" in request.fixturenames:
        request.getfixturevalue("enable_custom_integrations")


# --- Deprecation guard --------------------------------------------------------------------
#
# Home Assistant announces what it will stop supporting in two ways: `report_usage` in
# homeassistant.helpers.frame ("Detected that custom integration 'cardata' ... This will stop
# working in Home Assistant 2026.12.0"), and warnings of homeassistant.helpers.deprecation
# ("The deprecated constant ... was used from cardata"). Both only log; without this guard a
# test passes while the integration heads for a release that breaks it.

_DEPRECATION_MARKERS = (
    "Detected that custom integration 'cardata'",
    "Detected code that",
    "The deprecated ",
    "is deprecated",
    "will stop working in Home Assistant",
)


def is_deprecation_report(record: logging.LogRecord) -> bool:
    """Return True for a log record in which Home Assistant reports a deprecation."""
    if record.levelno < logging.WARNING:
        return False
    if record.name == frame.__name__:
        return True
    if not record.name.startswith(("homeassistant", "custom_components.cardata")):
        return False
    message = record.getMessage()
    return any(marker in message for marker in _DEPRECATION_MARKERS)


class DeprecationReports(logging.Handler):
    """Collects Home Assistant's deprecation reports during one test.

    A handler of its own (not caplog) so a test's `caplog.clear()` or level change cannot
    hide a report; `report_usage` calls are recorded too, also those that raise instead of
    logging or that its once-per-integration memory would not log again.
    """

    def __init__(self) -> None:
        """Start with nothing reported."""
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a record that reports a deprecation."""
        if is_deprecation_report(record):
            self.reports.append(f"{record.name}: {record.getMessage()}")

    def report_usage_called(self, what: str, kwargs: dict[str, object]) -> None:
        """Keep a call of Home Assistant's `report_usage`."""
        self.reports.append(f"report_usage: {what} {kwargs}")

    def take(self) -> list[str]:
        """Return the reports so far and forget them (for a test that provokes one)."""
        taken, self.reports = self.reports, []
        return taken


@pytest.fixture(autouse=True)
def deprecation_reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeprecationReports]:
    """Fail any test during which Home Assistant reports a deprecation, on every version."""
    collector = DeprecationReports()
    root = logging.getLogger()
    root.addHandler(collector)
    # `report_usage` is imported by name into its callers, but it hands the work to the
    # module-level `_report_usage`, which is looked up at each call: wrap that one.
    original: Callable[..., None] = frame._report_usage

    def recording(hass: object, what: str, **kwargs: object) -> None:
        collector.report_usage_called(what, kwargs)
        original(hass, what, **kwargs)

    monkeypatch.setattr(frame, "_report_usage", recording)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
    assert not collector.reports, "Home Assistant reported a deprecation:\n" + "\n".join(
        collector.reports
    )


class _SimulatorProcess:
    """The simulator subprocess and where its log goes.

    Its clock shows wall time, or starts where CARDATA_SIM_START pins it; every reset returns
    there (`_clocks_at_a_chosen_start` moves it on for the tests whose clocks are all ours).
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.start = pinned_start_time()
        pinned = ["--start-time", self.start.isoformat()] if self.start else []
        # A fixed argument list: this interpreter running the repository's simulator.
        self.process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "tests.simulator",
                "--log-level",
                "INFO",
                *pinned,
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def log(self) -> str:
        """Everything the simulator wrote to stderr so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def read_ready_line(self) -> str:
        """Wait for the ready line; fail with the simulator's stderr if it does not come."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(f"simulator not ready after {READY_TIMEOUT:.0f} s:\n{self.log()}")
            readable, _, _ = select.select([self.process.stdout], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                self.stop()
                pytest.fail(f"simulator exited before it was ready:\n{self.log()}")
            line += chunk
        return line.decode()

    def fail_if_dead(self) -> None:
        """Fail the current test clearly when the simulator has died."""
        if self.process.poll() is not None:
            pytest.fail(f"simulator died (exit status {self.process.returncode}):\n{self.log()}")

    def stop(self) -> None:
        """Terminate the simulator and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@pytest.fixture(scope="session")
def _simulator_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[_SimulatorProcess, SimulatorHandle]]:
    process = _SimulatorProcess(tmp_path_factory.mktemp("simulator") / "simulator.log")
    try:
        handle = SimulatorHandle.from_ready_line(process.read_ready_line())
        yield process, handle
    finally:
        process.stop()


@pytest.fixture(scope="session")
def simulator(_simulator_process: tuple[_SimulatorProcess, SimulatorHandle]) -> SimulatorHandle:
    """The BMW CarData simulator, started once per test session (state NOT reset)."""
    return _simulator_process[1]


@pytest.fixture
def sim_start(_simulator_process: tuple[_SimulatorProcess, SimulatorHandle]) -> datetime:
    """Where the simulator's clock returns at a reset: its pinned start, or wall time."""
    return _simulator_process[0].start or datetime.now(UTC)


@pytest.fixture
def sim(
    socket_enabled: None,
    _simulator_process: tuple[_SimulatorProcess, SimulatorHandle],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[SimulatorHandle]:
    """The simulator, reset to its start state for this test.

    Enables sockets for the test (pytest-socket still limits them to 127.0.0.1). Every test
    that talks to the simulator also has its captured log scanned, at DEBUG for the
    integration, for any token, device code or PKCE verifier issued or received during
    the test: no credential may ever reach a log line.
    """
    process, handle = _simulator_process
    process.fail_if_dead()
    handle.reset_blocking()
    caplog.set_level(logging.DEBUG, logger="custom_components.cardata")
    yield handle
    process.fail_if_dead()
    _assert_no_secret_logged(handle.secrets_blocking(), caplog)


# The harness's mock storage logs what tests store, tokens included, by design.
_LOGGERS_ALLOWED_SECRETS = ("pytest_homeassistant_custom_component",)


def _assert_no_secret_logged(secrets: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """Fail naming the logger (never the secret) when a credential appears in a log record."""
    if not secrets:
        return
    leaks: set[str] = set()
    for phase in ("setup", "call"):
        for record in caplog.get_records(phase):
            if record.name.startswith(_LOGGERS_ALLOWED_SECRETS):
                continue
            text = record.getMessage() + (record.exc_text or "")
            if any(secret in text for secret in secrets):
                leaks.add(f"{record.name} ({record.levelname}, {record.pathname}:{record.lineno})")
    assert not leaks, f"credentials reached log records of: {sorted(leaks)}"
