"""The simulator's control API, its reset, and the wiring of REST, state and stream broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from datetime import datetime
import json
import ssl
import struct
from typing import Any

import aiohttp
import pytest

from tests.simulator import fleet
from tests.simulator.handle import SimulatorControlError, SimulatorHandle

SOC = "vehicle.drivetrain.batteryManagement.header"
API_SCOPE = "authenticate_user openid cardata:api:read"


# --- a minimal MQTT 3.1.1 client over TLS, enough to watch the broker's decisions ----------


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes([first_byte]) + bytes(encoded) + body


class RawMqtt:
    """One TLS connection to the simulator's broker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sim: SimulatorHandle) -> RawMqtt:
        # Loading the CA file is blocking I/O: keep it off the event loop.
        context = await asyncio.get_running_loop().run_in_executor(
            None, lambda: ssl.create_default_context(cafile=sim.ca_file)
        )
        reader, writer = await asyncio.open_connection(sim.mqtt_host, sim.mqtt_port, ssl=context)
        return cls(reader, writer)

    async def read_packet(self) -> tuple[int, bytes]:
        header = (await self.reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            digit = (await self.reader.readexactly(1))[0]
            length |= (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        return header, await self.reader.readexactly(length)

    async def connect(self, username: str, password: str) -> int:
        """Send CONNECT; returns CONNACK's return code."""
        body = _string("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 30)
        body += _string("cardata-test") + _string(username) + _string(password)
        self.writer.write(_packet(0x10, body))
        header, connack = await asyncio.wait_for(self.read_packet(), 5)
        assert header == 0x20
        return connack[1]

    async def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 0; returns the SUBACK's code."""
        self.writer.write(_packet(0x82, struct.pack(">H", 1) + _string(topic) + b"\x00"))
        header, suback = await asyncio.wait_for(self.read_packet(), 5)
        assert header == 0x90
        return suback[2]

    async def next_message(self) -> tuple[str, dict[str, Any]]:
        """The next PUBLISH: topic and decoded JSON payload."""
        while True:
            header, body = await asyncio.wait_for(self.read_packet(), 5)
            if header >> 4 != 3:
                continue
            topic_length = struct.unpack(">H", body[:2])[0]
            topic = body[2 : 2 + topic_length].decode()
            offset = 2 + topic_length + (2 if header & 0x06 else 0)
            return topic, json.loads(body[offset:])

    async def closed_by_server(self) -> bool:
        """Whether the server ends the connection (EOF) within five seconds."""
        try:
            data = await asyncio.wait_for(self.reader.read(), 5)
        except (ConnectionError, ssl.SSLError):
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@pytest.fixture
async def mqtt(sim: SimulatorHandle) -> AsyncIterator[RawMqtt]:
    connection = await RawMqtt.open(sim)
    yield connection
    await connection.close()


# --- control API ---------------------------------------------------------------------------


async def test_ready_line_fields(sim: SimulatorHandle) -> None:
    assert sim.client_id == fleet.CLIENT_FULL
    assert sim.clients["api_only"] == fleet.CLIENT_API_ONLY
    assert sim.accounts["main"]["gcid"] == fleet.GCID_MAIN
    assert sim.accounts["other"]["vehicles"] == {fleet.VIN_OTHER: "PRIMARY"}
    for url in (sim.gcdm_url, sim.api_url, sim.control_url):
        assert url.startswith("http://127.0.0.1:")
    assert sim.ca_file.endswith(".pem")


async def test_clock_moves_only_forward(sim: SimulatorHandle) -> None:
    before = await sim.now()

    after = await sim.advance(86400)

    assert 86400 <= (after - before).total_seconds() < 86460
    with pytest.raises(SimulatorControlError) as refused:
        await sim.advance(-1)
    assert refused.value.status == 400


async def test_reset_returns_to_the_start_state(sim: SimulatorHandle, sim_start: datetime) -> None:
    tokens = await sim.issue_tokens()
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "x-version": "v1"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(
            sim.api_url + "/customers/containers",
            json={"name": "n", "purpose": "p", "technicalDescriptors": [SOC]},
        ) as response:
            assert response.status == 201
        await sim.set_telematics(fleet.VIN_BEV, {SOC: 3.0})
        await sim.set_config(budget_reset="rolling", expired_token_mode="documented")
        await sim.set_quirks(quoted_numbers=True)
        await sim.fault("containers", status=500)
        await sim.set_subscriptions(fleet.CLIENT_FULL, api=False)
        await sim.advance(7 * 86400)

        await sim.reset()

        fresh = await sim.issue_tokens()
        session.headers["Authorization"] = f"Bearer {fresh['access_token']}"
        async with session.get(sim.api_url + "/customers/containers") as response:
            containers = (response.status, await response.json())
        stale = await sim.set_config()
        quirks = await sim.set_quirks()
        calls = await sim.calls()
        now = await sim.now()

    assert containers == (200, {"containers": []})  # no fault, API subscription back
    assert stale["budget_reset"] == "utc_midnight"
    assert stale["expired_token_mode"] == "observed"
    assert quirks["quoted_numbers"] is False
    assert calls[fleet.GCID_MAIN]["used"] == 1
    # The clock is back where the suite started it, a week of advances undone.
    assert abs((now - sim_start).total_seconds()) < 60


async def test_control_api_refuses_bad_requests(sim: SimulatorHandle) -> None:
    attempts = [
        (sim.approve(), 404),  # nothing pending
        (sim.deny("NoSuchCo"), 404),
        (sim.set_telematics("WBA99999999999999", {SOC: 1}), 404),
        (sim.start_scenario(fleet.VIN_BEV, "flying"), 400),
        (sim.fault("no_such_endpoint"), 400),
        (sim.fault("image", count=0), 400),
        (sim.set_config(no_such_switch=True), 400),
        (sim.set_config(budget_reset="weekly"), 400),
        (sim.set_quirks(no_such_quirk=True), 400),
        (sim.set_subscriptions("00000000-0000-4000-8000-000000000000", api=True), 404),
        (sim.add_foreign_containers("00000000-0000-4000-8000-000000000000", 1), 404),
        (sim.add_foreign_containers(fleet.GCID_MAIN, 11), 400),
    ]
    for attempt, status in attempts:
        with pytest.raises(SimulatorControlError) as refused:
            await attempt
        assert refused.value.status == status, refused.value.body


async def test_calls_report_every_account(sim: SimulatorHandle) -> None:
    calls = await sim.calls()

    assert set(calls) == {fleet.GCID_MAIN, fleet.GCID_OTHER}
    assert calls[fleet.GCID_OTHER] == {
        "used": 0,
        "remaining": 50,
        "limit": 50,
        "by_endpoint": {},
        "refused": 0,
        "reset_mode": "utc_midnight",
    }


async def test_foreign_containers_are_listed_for_the_account(sim: SimulatorHandle) -> None:
    created = await sim.add_foreign_containers(fleet.GCID_MAIN, 2)
    tokens = await sim.issue_tokens()

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            sim.api_url + "/customers/containers",
            headers={"Authorization": f"Bearer {tokens['access_token']}", "x-version": "v1"},
        ) as response,
    ):
        listed = [item["containerId"] for item in (await response.json())["containers"]]

    assert listed == created
    assert (await sim.calls())[fleet.GCID_MAIN]["used"] == 1  # the two creations were free


# --- the stream broker's wiring ------------------------------------------------------------


async def test_stream_login_and_telematics_reach_the_subscriber(
    sim: SimulatorHandle, mqtt: RawMqtt
) -> None:
    tokens = await sim.issue_tokens()

    code = await mqtt.connect(fleet.GCID_MAIN, tokens["id_token"])
    granted = await mqtt.subscribe(f"{fleet.GCID_MAIN}/+")
    sessions = await sim.stream_sessions()
    await sim.set_telematics(fleet.VIN_BEV, {SOC: 55.5})
    topic, message = await mqtt.next_message()

    assert (code, granted) == (0, 0)
    assert [session["gcid"] for session in sessions] == [fleet.GCID_MAIN]
    assert topic == f"{fleet.GCID_MAIN}/{fleet.VIN_BEV}"
    assert message["vin"] == fleet.VIN_BEV
    assert message["data"][SOC]["value"] == 55.5


@pytest.mark.parametrize(
    ("client_id", "scope", "username", "expected"),
    [
        (fleet.CLIENT_API_ONLY, API_SCOPE, fleet.GCID_MAIN, 5),  # no streaming service
        (fleet.CLIENT_FULL, None, fleet.GCID_OTHER, 4),  # user name is not the token's GCID
    ],
)
async def test_stream_login_refusals(
    sim: SimulatorHandle,
    mqtt: RawMqtt,
    client_id: str,
    scope: str | None,
    username: str,
    expected: int,
) -> None:
    tokens = await (sim.issue_tokens(client_id, scope) if scope else sim.issue_tokens(client_id))

    assert await mqtt.connect(username, tokens["id_token"]) == expected


async def test_expired_id_token_cannot_log_in(sim: SimulatorHandle, mqtt: RawMqtt) -> None:
    tokens = await sim.issue_tokens()
    await sim.advance(3600)

    assert await mqtt.connect(fleet.GCID_MAIN, tokens["id_token"]) == 4


async def test_drop_stream_closes_connections(sim: SimulatorHandle, mqtt: RawMqtt) -> None:
    tokens = await sim.issue_tokens()
    assert await mqtt.connect(fleet.GCID_MAIN, tokens["id_token"]) == 0

    await sim.drop_stream()

    assert await mqtt.closed_by_server()
    assert await sim.stream_sessions() == []


async def test_reset_drops_stream_connections(sim: SimulatorHandle, mqtt: RawMqtt) -> None:
    tokens = await sim.issue_tokens()
    assert await mqtt.connect(fleet.GCID_MAIN, tokens["id_token"]) == 0

    await sim.reset()

    assert await mqtt.closed_by_server()


async def test_scenario_publishes_and_updates_rest(sim: SimulatorHandle, mqtt: RawMqtt) -> None:
    tokens = await sim.issue_tokens()
    assert await mqtt.connect(fleet.GCID_MAIN, tokens["id_token"]) == 0
    assert await mqtt.subscribe(f"{fleet.GCID_MAIN}/{fleet.VIN_BEV}") == 0

    await sim.start_scenario(fleet.VIN_BEV, "unlocking", step_seconds=0.01)
    topic, message = await mqtt.next_message()

    assert topic == f"{fleet.GCID_MAIN}/{fleet.VIN_BEV}"
    assert message["data"]
