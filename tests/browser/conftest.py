"""Fixtures for the browser test: scripts/develop in a scratch copy of config/, and Chromium.

The browser test is slow (a real Home Assistant starts) and needs Debian's Chromium and the
playwright package, so it runs only when its directory or file is named on the command line
(scripts/test does that once, with the latest environment). Anywhere else it is skipped with
the reason.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
import importlib.util
import json
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSER_TESTS = Path(__file__).resolve().parent
ARTIFACTS = REPO_ROOT / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A real Home Assistant on two shared cores: 5-60 s measured; first runs create the user too.
START_TIMEOUT = 300.0
# Home Assistant saves its state while stopping; scripts/develop waits up to 60 s per process.
STOP_TIMEOUT = 150.0
# The development instance's files in git (config/dashboards/ is copied whole).
CONFIG_FILES = ("configuration.yaml", "automations.yaml", "scripts.yaml", "scenes.yaml")
LOOPBACK = re.compile(r"^(https?|wss?)://127\.0\.0\.1(:\d+)?/")
# Which environment's Home Assistant scripts/develop runs (scripts/environments.sh names them):
# CARDATA_BROWSER_ENV, else the environment running this test (.venv-NAME), else
# scripts/develop's own choice. scripts/test runs the browser test on the newest release.
BROWSER_ENV_VARIABLE = "CARDATA_BROWSER_ENV"


def _develop_environment() -> str | None:
    if chosen := os.environ.get(BROWSER_ENV_VARIABLE):
        return chosen
    name = Path(sys.prefix).name
    return name.removeprefix(".venv-") if name.startswith(".venv-") else None


def _named_on_command_line(config: pytest.Config) -> bool:
    """Return True when a command-line argument points into tests/browser."""
    for arg in config.invocation_params.args:
        if arg.startswith("-"):
            continue
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if path == BROWSER_TESTS or BROWSER_TESTS in path.parents:
            return True
    return False


@pytest.fixture(autouse=True)
def _browser_test_prerequisites(request: pytest.FixtureRequest) -> None:
    """Skip, saying why, unless asked for and Chromium and playwright are there."""
    if not _named_on_command_line(request.config):
        pytest.skip(
            "the browser test runs only when named: scripts/test runs it, "
            "or `python -m pytest tests/browser`"
        )
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install it with `apt-get install -y chromium`")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed: `pip install -r requirements_browser.txt`")


class Screenshots:
    """Numbered screenshots of each step, kept under artifacts/browser/."""

    def __init__(self, directory: Path) -> None:
        """Start with an empty directory, so no picture of an earlier run misleads."""
        self.directory = directory
        self.taken: list[Path] = []
        for old in directory.glob("*.png"):
            old.unlink()
        directory.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> Path:
        """Save what the page shows now as NN-name.png."""
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path))
        self.taken.append(path)
        return path

    def take_tall(self, page: Page, name: str, height: int) -> Path:
        """Save the page in a window `height` pixels tall (Home Assistant's pages scroll
        inside their own panels, so a full-page screenshot would still cut them off)."""
        size = page.viewport_size
        assert size is not None
        page.set_viewport_size({"width": size["width"], "height": height})
        try:
            page.wait_for_function("(height) => window.innerHeight === height", arg=height)
            return self.take(page, name)
        finally:
            page.set_viewport_size(size)


def _children(pid: int) -> dict[int, str]:
    """Return the direct children of a process: pid -> command line."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the parent pid follows it.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return children


def _alive(pid: int, cmdline: str) -> bool:
    """Return True while the process runs (not a zombie) with the same command line."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        current = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    same = current.replace(b"\0", b" ").decode(errors="replace") == cmdline
    return same and stat.rpartition(")")[2].split()[0] != "Z"


class DevInstance:
    """scripts/develop running in a scratch configuration directory."""

    def __init__(
        self, config_dir: Path, port: int, log_path: Path, control_port: int | None = None
    ) -> None:
        """Start scripts/develop; it prints its banner once Home Assistant answers."""
        self.config_dir = config_dir
        self.port = port
        self.environment = _develop_environment()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        # A session of its own, so the test can press "Ctrl-C" on exactly this group.
        self.process = subprocess.Popen(  # noqa: S603
            [
                str(REPO_ROOT / "scripts" / "develop"),
                "--config",
                str(config_dir),
                "--port",
                str(port),
                # Not the fixed default: a developer's instance may be running beside the test.
                "--control-port",
                str(control_port or _free_port()),
                *(["--only", self.environment] if self.environment else []),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.ready: dict[str, Any] = {}
        self.banner = ""
        self.processes: dict[int, str] = {}

    def output(self) -> str:
        """What scripts/develop (and Home Assistant on its console) printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> None:
        """Wait for the banner; fail with the script's output when it does not come."""
        deadline = time.monotonic() + START_TIMEOUT
        while "  Stop:" not in (output := self.output()):
            if self.process.poll() is not None:
                pytest.fail(f"scripts/develop exited with {self.process.returncode}:\n{output}")
            if time.monotonic() > deadline:
                pytest.fail(f"scripts/develop not ready after {START_TIMEOUT:.0f} s:\n{output}")
            time.sleep(0.5)
        self.banner = output[output.index("BMW CarData development instance") :]
        ready_file = self.config_dir / ".simulator-ready.json"
        self.ready = json.loads(ready_file.read_text())
        # The simulator and Home Assistant; not a `cat` that may still be printing the banner.
        self.processes = {
            pid: cmdline
            for pid, cmdline in _children(self.process.pid).items()
            if "tests.simulator" in cmdline or "hass --config" in cmdline
        }

    def interrupt(self) -> int:
        """Press Ctrl-C as a terminal does (SIGINT to the foreground group); return the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts/develop did not stop within {STOP_TIMEOUT:.0f} s after Ctrl-C")

    def left_running(self) -> dict[int, str]:
        """The processes scripts/develop started that still run."""
        return {pid: cmd for pid, cmd in self.processes.items() if _alive(pid, cmd)}

    def kill_everything(self) -> None:
        """Last resort after a failure: nothing of this test may outlive it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in self.left_running():
            os.kill(pid, signal.SIGKILL)
        self._log.close()

    def keep_logs(self, directory: Path) -> None:
        """Copy Home Assistant's and the simulator's logs next to the screenshots."""
        for name in ("home-assistant.log", "simulator.log"):
            if (source := self.config_dir / name).exists():
                shutil.copyfile(source, directory / name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def artifacts() -> Path:
    """artifacts/browser/ (git-ignored): screenshots and logs of the last run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def screenshots(artifacts: Path) -> Screenshots:
    """Numbered screenshots of the steps of this run."""
    return Screenshots(artifacts)


@pytest.fixture
def dev_instance(socket_enabled: None, tmp_path: Path, artifacts: Path) -> Iterator[DevInstance]:
    """scripts/develop on a free port in a scratch copy of config/ (never the repository's)."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name in CONFIG_FILES:
        shutil.copyfile(REPO_ROOT / "config" / name, config_dir / name)
    shutil.copytree(REPO_ROOT / "config" / "dashboards", config_dir / "dashboards")
    instance = DevInstance(config_dir, _free_port(), artifacts / "develop.log")
    try:
        instance.wait_until_ready()
        yield instance
    finally:
        try:
            if instance.process.poll() is None:
                instance.interrupt()
        finally:
            instance.keep_logs(artifacts)
            instance.kill_everything()


def _only_loopback(route: Route) -> None:
    """Let the page reach this machine only (brand icons and the like would leave it)."""
    if LOOPBACK.match(route.request.url):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh profile (Playwright's launch makes one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so fixtures can tell that it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def context(
    browser: Browser, request: pytest.FixtureRequest, artifacts: Path
) -> Iterator[BrowserContext]:
    """A browser window of a laptop's size that reaches nothing beyond this machine.

    When the test fails, every page still open is saved as failure-N.png: what the
    browser showed when a wait gave up.
    """
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(30_000)
    # Assertions wait as long as actions: 5 s (Playwright's default) was too short for the
    # dashboard's map on two cores shared with other work.
    expect.set_options(timeout=30_000)
    context.route("**/*", _only_loopback)
    try:
        yield context
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for number, page in enumerate(context.pages, 1):
                page.screenshot(path=str(artifacts / f"failure-{number}.png"))
        context.close()
