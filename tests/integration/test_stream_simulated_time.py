"""Long simulated sessions: the stream stays connected while the test clock jumps."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
import math

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant

from custom_components.cardata.api.stream import StreamState
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel, async_add_entry, async_wait_for

SOC = "vehicle.drivetrain.batteryManagement.header"
CREDENTIALS_ROTATED = "reconnecting with new credentials"


async def test_stream_stays_connected_through_six_hours_of_one_minute_jumps(
    hass: HomeAssistant, sim: SimulatorHandle, freezer: FrozenDateTimeFactory
) -> None:
    """A charging session watched for six simulated hours: no keepalive drops, no gaps."""
    entry = await async_add_entry(hass, sim)
    stream = entry.runtime_data.stream
    coordinator = entry.runtime_data.coordinator
    await async_wait_for(hass, lambda: stream.connected, "the stream to connect")
    travel = TimeTravel(hass, sim, freezer)
    await sim.start_charging(fleet.VIN_BEV, "ac", start_soc=20, target_soc=100)

    received = [stream.as_diagnostics()["messages_received"]]
    for _hour in range(6):
        for _minute in range(60):
            await travel.async_advance(timedelta(minutes=1))
            assert coordinator.stream_status.state is not StreamState.DISCONNECTED
        received.append(stream.as_diagnostics()["messages_received"])

    reasons = [item["reason"] for item in stream.as_diagnostics()["recent_disconnects"]]
    assert set(reasons) <= {CREDENTIALS_ROTATED}, reasons
    # The charge streamed its whole percents hour by hour; the last one is the truth's.
    assert all(later > earlier for earlier, later in pairwise(received))
    truth = (await sim.charging_truth(fleet.VIN_BEV))["session"]
    assert truth["phase"] == "charging"
    soc = coordinator.state(fleet.VIN_BEV).get(SOC)
    assert soc is not None
    assert soc.source == "stream"
    assert soc.value == math.floor(truth["soc"])
    assert soc.value > 90
