"""The simulator's driving, charging, unlocking and parked scenarios, alone and on the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from itertools import pairwise
import json
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import pytest

from tests.simulator import fleet
from tests.simulator.broker import Broker
from tests.simulator.clock import SimClock
from tests.simulator.handle import SimulatorHandle
from tests.simulator.points import TelematicPoint
from tests.simulator.quirks import StreamQuirks
from tests.simulator.scenarios import (
    AC_AMPERE,
    AC_VOLTAGE,
    CHARGING_POWER,
    CHARGING_STATUS,
    ELECTRIC_RANGE,
    HEADING,
    HV_STATUS,
    IS_MOVING,
    IS_PLUGGED,
    LATITUDE,
    LOCK_STATUS,
    LONGITUDE,
    LOW_VOLTAGE_BATTERY,
    MUNICH_ROUTE,
    ODOMETER,
    PHASE_NUMBER,
    PORT_STATUS,
    SOC,
    SOC_TARGET,
    TIME_REMAINING,
    ScenarioRunner,
    haversine_km,
    route_from,
)
from tests.simulator.state import StreamLogin
from tests.simulator.tls import TlsMaterial, make_tls

WAIT = 5.0
Step = dict[str, TelematicPoint]


class Car:
    """Stands in for the simulator's `apply`: records steps and keeps the car's state."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, TelematicPoint]] = {
            vin: fleet.initial_telematics(vin) for vin in fleet.VEHICLES
        }
        self.steps: asyncio.Queue[tuple[str, Step]] = asyncio.Queue()
        self.listeners: list[Callable[[str, Step], None]] = []

    def apply(self, vin: str, points: Step) -> None:
        self.state[vin].update(points)
        self.steps.put_nowait((vin, points))
        for listener in self.listeners:
            listener(vin, points)

    def initial(self, vin: str) -> dict[str, TelematicPoint]:
        return dict(self.state[vin])

    async def next_step(self) -> tuple[str, Step]:
        async with asyncio.timeout(WAIT):
            return await self.steps.get()

    def recorded(self) -> list[Step]:
        steps: list[Step] = []
        while not self.steps.empty():
            steps.append(self.steps.get_nowait()[1])
        return steps


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def car() -> Car:
    return Car()


@pytest.fixture
async def runner(clock: SimClock, car: Car) -> AsyncIterator[ScenarioRunner]:
    scenarios = ScenarioRunner(clock, car.apply, car.initial)
    yield scenarios
    await scenarios.stop_all()


async def run_to_end(runner: ScenarioRunner, car: Car, vin: str, name: str) -> list[Step]:
    runner.start(vin, name, step_seconds=0)
    async with asyncio.timeout(WAIT):
        await runner.wait(vin)
    return car.recorded()


def values(steps: list[Step], descriptor: str) -> list[Any]:
    """The descriptor's values in the order the car reported them."""
    return [step[descriptor].value for step in steps if descriptor in step]


def path_km(points: list[tuple[float, float]]) -> float:
    return sum(haversine_km(a, b) for a, b in pairwise(points))


def deduplicated(items: list[Any]) -> list[Any]:
    return [item for index, item in enumerate(items) if index == 0 or items[index - 1] != item]


# --- the runner ------------------------------------------------------------------------


def test_names(clock: SimClock, car: Car) -> None:
    runner = ScenarioRunner(clock, car.apply, car.initial)
    assert set(runner.names) == {"parked", "driving", "charging", "unlocking"}


async def test_unknown_scenario_or_negative_step_is_refused(runner: ScenarioRunner) -> None:
    with pytest.raises(ValueError, match="unknown scenario 'flying'"):
        runner.start(fleet.VIN_BEV, "flying")
    with pytest.raises(ValueError, match="negative"):
        runner.start(fleet.VIN_BEV, "parked", step_seconds=-1)
    assert runner.running == {}


async def test_clock_jump_brings_the_next_step_at_once(
    runner: ScenarioRunner, car: Car, clock: SimClock
) -> None:
    runner.start(fleet.VIN_BEV, "driving", step_seconds=600)
    _, first = await car.next_step()
    assert first[IS_MOVING].value == "ASN_isTrue"
    clock.advance(60)
    _, second = await car.next_step()
    assert ODOMETER in second
    assert runner.running == {fleet.VIN_BEV: "driving"}


async def test_a_new_scenario_replaces_the_running_one(runner: ScenarioRunner, car: Car) -> None:
    runner.start(fleet.VIN_BEV, "parked", step_seconds=600)
    await car.next_step()
    runner.start(fleet.VIN_BEV, "charging", step_seconds=600)
    _, step = await car.next_step()
    assert step[CHARGING_STATUS].value == "INITIALIZATION"
    assert runner.running == {fleet.VIN_BEV: "charging"}
    assert len(scenario_tasks()) == 1


async def test_stop_all_ends_every_scenario_and_leaves_no_task(
    runner: ScenarioRunner, car: Car
) -> None:
    runner.start(fleet.VIN_BEV, "parked", step_seconds=0.001)
    runner.start(fleet.VIN_PHEV, "parked", step_seconds=0.001)
    await car.next_step()
    await car.next_step()
    await runner.stop_all()
    assert runner.running == {}
    assert scenario_tasks() == []


async def test_finished_scenarios_leave_the_running_list(runner: ScenarioRunner, car: Car) -> None:
    await run_to_end(runner, car, fleet.VIN_BEV, "unlocking")
    assert runner.running == {}
    assert scenario_tasks() == []


def scenario_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("cardata simulator:") and not task.done()
    ]


# --- parked ----------------------------------------------------------------------------


async def test_parked_reports_only_the_12v_battery_now_and_then(
    runner: ScenarioRunner, car: Car
) -> None:
    runner.start(fleet.VIN_BEV, "parked", step_seconds=0.001)
    reports = [(await car.next_step())[1] for _ in range(3)]
    await runner.stop_all()
    assert all(list(step) == [LOW_VOLTAGE_BATTERY] for step in reports)
    voltages = [step[LOW_VOLTAGE_BATTERY].value for step in reports]
    assert voltages == [12.62, 12.61, 12.6]
    assert all(step[LOW_VOLTAGE_BATTERY].unit == "V" for step in reports)


# --- driving ---------------------------------------------------------------------------


async def test_driving_through_munich(runner: ScenarioRunner, car: Car) -> None:
    before = car.initial(fleet.VIN_BEV)
    steps = await run_to_end(runner, car, fleet.VIN_BEV, "driving")
    assert_measurements_never_go_back(steps)

    assert steps[0][IS_MOVING].value == "ASN_isTrue"
    assert steps[0][LOCK_STATUS].value == "LOCKED"
    assert list(steps[-1]) == [IS_MOVING]
    assert steps[-1][IS_MOVING].value == "ASN_isFalse"
    assert deduplicated(values(steps, IS_MOVING)) == ["ASN_isTrue", "ASN_isFalse"]

    positions = list(zip(values(steps, LATITUDE), values(steps, LONGITUDE), strict=True))
    assert positions[0] == pytest.approx(fleet.VEHICLES[fleet.VIN_BEV].home)
    assert positions[-1] == pytest.approx(MUNICH_ROUTE[-1], abs=1e-4)  # Marienplatz
    assert all(48.0 < lat < 48.3 and 11.4 < lon < 11.7 for lat, lon in positions)
    trip_km = path_km(positions)
    assert 6 < trip_km < 12

    headings = values(steps, HEADING)
    assert all(0 <= heading < 360 for heading in headings)
    assert len(set(headings)) > 3  # the road turns
    assert 90 < headings[1] < 110  # east along Petuelring
    assert 160 < headings[-1] < 220  # south into the old town

    odometer = values(steps, ODOMETER)
    assert odometer == sorted(odometer)
    start_km = before[ODOMETER].value
    assert odometer[-1] - start_km == pytest.approx(trip_km, abs=1)

    soc = values(steps, SOC)
    electric_range = values(steps, ELECTRIC_RANGE)
    assert soc == sorted(soc, reverse=True)
    assert soc[-1] < before[SOC].value
    assert electric_range == sorted(electric_range, reverse=True)
    assert electric_range[-1] < before[ELECTRIC_RANGE].value


async def test_latitude_and_longitude_sometimes_carry_different_timestamps(
    runner: ScenarioRunner, car: Car, clock: SimClock
) -> None:
    runner.start(fleet.VIN_BEV, "driving", step_seconds=600)
    steps: list[Step] = []
    while True:
        _, step = await car.next_step()
        steps.append(step)
        if IS_MOVING in step and step[IS_MOVING].value == "ASN_isFalse":
            break
        clock.advance(20)  # the next fix 20 s later in the car's time
    pairs = [(s[LATITUDE].timestamp, s[LONGITUDE].timestamp) for s in steps if LATITUDE in s]
    apart = [lat != lon for lat, lon in pairs]
    assert any(apart)
    assert not all(apart)
    for latitude_time, longitude_time in pairs:
        assert latitude_time is not None
        assert longitude_time is not None
        assert timedelta(0) <= longitude_time - latitude_time <= timedelta(seconds=1)
    assert_measurements_never_go_back(steps)


def assert_measurements_never_go_back(steps: list[Step]) -> None:
    """REST keeps the newest measurement: a later step must never carry an older timestamp."""
    latest: dict[str, Any] = {}
    for step in steps:
        for descriptor, point in step.items():
            assert point.timestamp is not None
            if descriptor in latest:
                assert point.timestamp >= latest[descriptor], descriptor
            latest[descriptor] = point.timestamp


async def test_second_trip_drives_back(runner: ScenarioRunner, car: Car) -> None:
    await run_to_end(runner, car, fleet.VIN_BEV, "driving")
    back = await run_to_end(runner, car, fleet.VIN_BEV, "driving")
    positions = list(zip(values(back, LATITUDE), values(back, LONGITUDE), strict=True))
    assert positions[-1] == pytest.approx(fleet.VEHICLES[fleet.VIN_BEV].home, abs=1e-4)


def test_route_starts_where_the_car_is() -> None:
    augsburg = fleet.VEHICLES[fleet.VIN_OTHER].home
    route = route_from(augsburg)
    assert route[0] == pytest.approx(augsburg)
    length = path_km(route)
    munich = path_km(list(MUNICH_ROUTE))
    assert length == pytest.approx(munich, rel=0.01)


# --- charging --------------------------------------------------------------------------


async def test_charging_a_bev_at_11_kw(runner: ScenarioRunner, car: Car) -> None:
    before = car.initial(fleet.VIN_BEV)
    assert before[SOC].value == 78.0  # fleet state: target 80 %, so the owner asks for 100 %
    steps = await run_to_end(runner, car, fleet.VIN_BEV, "charging")
    assert_measurements_never_go_back(steps)

    plug_in = steps[0]
    assert plug_in[IS_PLUGGED].value is True
    assert plug_in[PORT_STATUS].value == "CONNECTED"
    assert plug_in[SOC_TARGET].value == 100
    assert deduplicated(values(steps, CHARGING_STATUS)) == [
        "INITIALIZATION",
        "CHARGINGACTIVE",
        "CHARGINGENDED",
    ]
    assert deduplicated(values(steps, HV_STATUS)) == [
        "WAITING_FOR_CHARGING",
        "CHARGING",
        "FINISHED_FULLY_CHARGED",
    ]
    assert values(steps, PHASE_NUMBER) == ["3-PHASES", "1-PHASES"]

    charging_steps = steps[1:-1]
    assert len(charging_steps) >= 5
    assert all(10_900 <= s[CHARGING_POWER].value <= 11_100 for s in charging_steps)
    assert all(s[CHARGING_POWER].unit == "W" for s in charging_steps)
    assert all(225 <= s[AC_VOLTAGE].value <= 235 for s in charging_steps)
    assert all(s[AC_AMPERE].value == 16 for s in charging_steps)

    soc = values(steps, SOC)
    assert soc == sorted(soc)
    assert soc[0] == 78.0
    assert soc[-1] == 100.0
    remaining = values(steps, TIME_REMAINING)
    assert remaining == sorted(remaining, reverse=True)
    assert len(set(remaining)) == len(remaining)
    assert remaining[-1] == 0
    assert 100 <= remaining[0] <= 130  # 17.8 kWh at ~10 kW into the battery
    electric_range = values(steps, ELECTRIC_RANGE)
    assert electric_range == sorted(electric_range)
    assert electric_range[-1] > before[ELECTRIC_RANGE].value

    ended = steps[-1]
    assert ended[CHARGING_POWER].value == 0
    assert ended[TIME_REMAINING].value == 0
    assert car.state[fleet.VIN_BEV][IS_PLUGGED].value is True  # the cable stays in


async def test_charging_stops_at_the_target(runner: ScenarioRunner, car: Car) -> None:
    car.state[fleet.VIN_BEV][SOC] = TelematicPoint(50.0, "percent", None)
    car.state[fleet.VIN_BEV][ELECTRIC_RANGE] = TelematicPoint(250.0, "km", None)
    steps = await run_to_end(runner, car, fleet.VIN_BEV, "charging")
    assert SOC_TARGET not in steps[0]
    assert values(steps, SOC)[-1] == 80.0
    assert values(steps, HV_STATUS)[-1] == "FINISHED_NOT_FULL"
    assert values(steps, ELECTRIC_RANGE)[-1] == 400.0  # 5 km per percent, as before


async def test_charging_a_phev_on_one_phase(runner: ScenarioRunner, car: Car) -> None:
    steps = await run_to_end(runner, car, fleet.VIN_PHEV, "charging")
    assert values(steps, PHASE_NUMBER)[0] == "1-PHASES"
    powers = values(steps, CHARGING_POWER)
    assert all(3_600 <= power <= 3_720 for power in powers[:-1])
    assert values(steps, SOC)[-1] == 100.0


# --- unlocking -------------------------------------------------------------------------


async def test_unlocking_is_one_burst_of_everything(runner: ScenarioRunner, car: Car) -> None:
    before = car.initial(fleet.VIN_BEV)
    [burst] = await run_to_end(runner, car, fleet.VIN_BEV, "unlocking")
    assert burst[LOCK_STATUS].value == "UNLOCKED"
    assert before[LOCK_STATUS].value == "SECURED"
    for descriptor in (
        "vehicle.cabin.door.row1.driver.isOpen",
        "vehicle.cabin.window.row1.driver.status",
        "vehicle.body.trunk.isOpen",
    ):
        assert burst[descriptor].value == "CLOSED"
    with_values = {d for d, p in before.items() if p.value is not None}
    assert with_values <= set(burst)
    assert burst[SOC].value == before[SOC].value
    stamps = {p.timestamp for p in burst.values()}
    assert len(stamps) == 1


# --- scenarios on the stream -----------------------------------------------------------


class Subscriber:
    """A paho client subscribed to one topic filter, its messages' JSON in a queue."""

    def __init__(self, username: str, password: str, ca_file: str, topic: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._topic = topic
        self._subscribed: asyncio.Future[None] = self._loop.create_future()
        self.payloads: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, reconnect_on_failure=False)
        self.client.username_pw_set(username, password)
        self.client.tls_set_context(ssl.create_default_context(cafile=ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    async def start(self, host: str, port: int) -> None:
        self.client.connect_async(host, port, 30)
        self.client.loop_start()
        async with asyncio.timeout(WAIT):
            await self._subscribed

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def take(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(WAIT):
            return [await self.payloads.get() for _ in range(count)]

    # paho's thread
    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self._topic, 1)

    def _on_subscribe(self, *_: Any) -> None:
        self._loop.call_soon_threadsafe(self._subscribed.set_result, None)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        self._loop.call_soon_threadsafe(self.payloads.put_nowait, payload)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def streamed(
    socket_enabled: None, tls: TlsMaterial, clock: SimClock, car: Car
) -> AsyncIterator[tuple[StreamQuirks, Subscriber]]:
    """The car's steps published on a broker, and a paho client subscribed to `<gcid>/+`."""
    gcid = fleet.GCID_MAIN
    quirks = StreamQuirks()
    broker = Broker(
        host="127.0.0.1",
        port=0,
        ssl_context=tls.server_context,
        clock=clock,
        login=lambda user, password: StreamLogin(0, gcid, clock.timestamp() + 3600),
        allowed_vins=lambda _: {fleet.VIN_BEV},
        quirks=quirks,
    )
    port = await broker.start()
    car.listeners.append(lambda vin, points: broker.publish(gcid, vin, points))

    subscriber = Subscriber(gcid, "token", str(tls.ca_file), f"{gcid}/+")
    try:
        await subscriber.start("127.0.0.1", port)
        yield quirks, subscriber
    finally:
        await subscriber.stop()
        await broker.stop()


async def test_driving_on_the_stream_one_descriptor_per_message(
    runner: ScenarioRunner, car: Car, streamed: tuple[StreamQuirks, Subscriber]
) -> None:
    _, subscriber = streamed
    steps = await run_to_end(runner, car, fleet.VIN_BEV, "driving")
    expected = sum(len(step) for step in steps)
    payloads = await subscriber.take(expected)
    assert all(len(p["data"]) == 1 for p in payloads)
    streamed_sequence = [next(iter(p["data"])) for p in payloads]
    assert streamed_sequence == [descriptor for step in steps for descriptor in step]
    moving = [p["data"][IS_MOVING]["value"] for p in payloads if IS_MOVING in p["data"]]
    assert moving == ["ASN_isTrue", "ASN_isFalse"]


async def test_unlock_burst_batched_keeps_latitude_and_longitude_apart(
    runner: ScenarioRunner, car: Car, streamed: tuple[StreamQuirks, Subscriber]
) -> None:
    quirks, subscriber = streamed
    quirks.update({"multi_descriptor": True})
    [burst] = await run_to_end(runner, car, fleet.VIN_BEV, "unlocking")
    batch, longitude = await subscriber.take(2)
    assert LATITUDE in batch["data"]
    assert LONGITUDE not in batch["data"]
    assert list(longitude["data"]) == [LONGITUDE]
    assert len(batch["data"]) == len(burst) - 1
    assert batch["data"][LOCK_STATUS]["value"] == "UNLOCKED"


async def test_scenario_started_through_the_simulator_process(sim: SimulatorHandle) -> None:
    tokens = await sim.issue_tokens()
    subscriber = Subscriber(
        sim.gcid, tokens["id_token"], sim.ca_file, f"{sim.gcid}/{fleet.VIN_BEV}"
    )
    try:
        await subscriber.start(sim.mqtt_host, sim.mqtt_port)
        await sim.start_scenario(fleet.VIN_BEV, "charging", step_seconds=0.01)
        statuses: list[str] = []
        async with asyncio.timeout(WAIT):
            while "CHARGINGENDED" not in statuses:
                data = (await subscriber.payloads.get())["data"]
                if CHARGING_STATUS in data:
                    statuses.append(data[CHARGING_STATUS]["value"])
        assert statuses == ["INITIALIZATION", "CHARGINGACTIVE", "CHARGINGENDED"]
    finally:
        await subscriber.stop()
