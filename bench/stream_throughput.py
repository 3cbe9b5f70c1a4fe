"""Benchmark: how fast and how cheaply the stream client turns BMW messages into typed updates.

Starts the simulator, logs in with a real device flow, connects `CarDataStream` over TLS and
pushes N single-descriptor messages through the simulator's control API. Prints wall time, messages per second, the client process's CPU time
per message, peak memory, and the pure parse cost per message.

    .venv-3.14/bin/python -m bench.stream_throughput [--messages 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import subprocess
import sys
import time

from custom_components.cardata.api.stream import (
    CarDataStream,
    StreamState,
    StreamStatus,
    parse_stream_message,
)
from tests.simulator.handle import SimulatorHandle

VIN = "WBA00000000000001"
DESCRIPTORS = (
    "vehicle.drivetrain.batteryManagement.header",
    "vehicle.powertrain.electric.battery.charging.power",
    "vehicle.drivetrain.electricEngine.charging.timeRemaining",
    "vehicle.vehicle.travelledDistance",
    "vehicle.cabin.door.row1.driver.isOpen",
)


def start_simulator() -> tuple[subprocess.Popen[str], SimulatorHandle]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.simulator"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, SimulatorHandle.from_ready_line(process.stdout.readline())


async def run(messages: int) -> dict[str, float]:
    process, sim = start_simulator()
    try:
        tokens = await sim.issue_tokens()
        context = ssl.create_default_context(cafile=str(sim.ca_file))
        received = 0
        done = asyncio.Event()
        connected = asyncio.Event()

        def on_message(message: object) -> None:
            nonlocal received
            received += 1
            if received >= messages:
                done.set()

        def on_status(status: StreamStatus) -> None:
            if status.state is StreamState.CONNECTED:
                connected.set()

        stream = CarDataStream(
            host=sim.mqtt_host,
            port=sim.mqtt_port,
            gcid=tokens["gcid"],
            id_token=tokens["id_token"],
            ssl_context=context,
            on_message=on_message,
            on_status=on_status,
        )
        await stream.start()
        await asyncio.wait_for(connected.wait(), 10)

        cpu_before = time.process_time()
        started = time.perf_counter()
        sent = 0
        while sent < messages:
            # One POST carries five descriptors; the simulator sends one message for each,
            # as BMW does during a car's unlocking burst.
            await sim.set_telematics(VIN, dict.fromkeys(DESCRIPTORS, sent))
            sent += len(DESCRIPTORS)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        await stream.stop()
    finally:
        process.terminate()
        process.wait()

    payload = json.dumps(
        {
            "vin": VIN,
            "entityId": "g",
            "topic": VIN,
            "timestamp": "2026-11-21T10:00:00.123Z",
            "data": {
                DESCRIPTORS[0]: {
                    "timestamp": "2026-11-21T10:00:00Z",
                    "value": "81",
                    "unit": "percent",
                }
            },
        }
    ).encode()
    rounds = 20000
    parse_started = time.perf_counter()
    for _ in range(rounds):
        parse_stream_message(f"g/{VIN}", payload)
    parse_us = (time.perf_counter() - parse_started) / rounds * 1e6

    return {
        "messages": received,
        "wall_s": elapsed,
        "messages_per_s": received / elapsed,
        "client_cpu_us_per_message": cpu / received * 1e6,
        "parse_us_per_message": parse_us,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.messages))
    print(f"python {sys.version.split()[0]}")
    for name, value in figures.items():
        print(f"{name:>28}: {value:,.2f}")
    print(
        "note: the client's CPU figure includes the control API's HTTP requests made from "
        "the same process; messages per second is bounded by the simulator, not the client."
    )


if __name__ == "__main__":
    main()
