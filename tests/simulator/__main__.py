"""Run the BMW CarData simulator: `python -m tests.simulator [flags]`.

Prints exactly one JSON line on stdout once everything listens (the "ready line", see
docs/contracts.md), logs to stderr, and runs until SIGINT or SIGTERM. With `--state-file`, what
BMW remembers is read at start and written back when a signal stops the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
import json
import logging
from pathlib import Path
import signal
import sys
from typing import Any

from .clock import parse_start_time
from .quirks import StreamQuirks
from .server import ServerOptions, SimulatorServer
from .state import SimConfig

_LOGGER = logging.getLogger("tests.simulator")


def _key_value(raw: str) -> tuple[str, str]:
    key, separator, value = raw.partition("=")
    if not key or not separator:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value


def _quirk(raw: str) -> tuple[str, object]:
    """`NAME` switches a quirk on; `NAME=VALUE` sets it (true/false or a string)."""
    name, separator, value = raw.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=VALUE, got {raw!r}")
    if not separator:
        return name, True
    lowered = value.lower()
    if lowered in ("true", "on", "yes", "1"):
        return name, True
    if lowered in ("false", "off", "no", "0"):
        return name, False
    return name, value


def _start_time(raw: str) -> datetime:
    try:
        return parse_start_time(raw)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulator",
        description="Local stand-in for BMW CarData: GCDM OAuth, REST API, MQTT stream.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    for name in ("gcdm", "api", "control", "mqtt"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help="0 = any free port")
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve a device code the first time it is polled",
    )
    parser.add_argument(
        "--quirk",
        action="append",
        type=_quirk,
        default=[],
        metavar="NAME[=VALUE]",
        help="switch a stream quirk on (repeatable)",
    )
    parser.add_argument("--budget-reset", choices=("utc_midnight", "rolling"))
    parser.add_argument(
        "--config",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="set a simulator switch (repeatable)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        metavar="PATH",
        help="keep tokens, containers, budgets, clock and car data in PATH across restarts "
        "(read at start, written on SIGINT/SIGTERM)",
    )
    parser.add_argument(
        "--start-time",
        type=_start_time,
        metavar="ISO8601",
        help="start the simulator's clock at this time, e.g. 2026-03-04T12:00:00Z, instead of "
        "wall time (the clock then runs at wall-clock speed; POST /reset returns to it)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> ServerOptions:
    config: dict[str, Any] = dict(args.config)
    if args.budget_reset:
        config["budget_reset"] = args.budget_reset
    if args.auto_approve:
        config["auto_approve"] = True
    return ServerOptions(
        host=args.host,
        gcdm_port=args.gcdm_port,
        api_port=args.api_port,
        control_port=args.control_port,
        mqtt_port=args.mqtt_port,
        config=config,
        quirks=dict(args.quirk),
        state_file=args.state_file,
        start_time=args.start_time,
    )


async def run(options: ServerOptions) -> None:
    """Start, announce readiness, wait for a signal, stop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    server = SimulatorServer(options)
    try:
        ready = await server.start()
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        _LOGGER.info("BMW CarData simulator ready: %s", ready["control_url"])
        await stopping.wait()
        _LOGGER.info("stopping")
    finally:
        await server.stop()
    # Only after a clean stop: nothing changes the state any more.
    server.save_state()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request drowns the interesting lines; show them only when debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if args.log_level == "DEBUG" else logging.WARNING
    )
    options = _options(args)
    try:
        # Refuse unknown switches before anything listens.
        SimConfig().update(options.config)
        StreamQuirks().update(options.quirks)
    except ValueError as err:
        _LOGGER.error("cannot start: %s", err)
        return 2
    asyncio.run(run(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
