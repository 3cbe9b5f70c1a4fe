"""The simulator's CarData stream broker: BMW's login, ACL and session rules, message shape, quirks.

The broker runs in-process on the test's loop with a stub account; clients are real paho-mqtt
2.x clients over TLS (as the integration uses) or raw TLS sockets speaking the codec, for what
paho would never send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
import json
from pathlib import Path
import re
import ssl
import time
from typing import Any
from unittest.mock import ANY

from hypothesis import given, strategies as st
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
import pytest

from tests.simulator.broker import Broker
from tests.simulator.clock import SimClock, iso_seconds
from tests.simulator.handle import SimulatorHandle
from tests.simulator.mqtt_codec import (
    SUBACK_FAILURE,
    MalformedPacketError,
    Packet,
    PacketType,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_puback,
    encode_publish,
    encode_remaining_length,
    encode_subscribe,
    encode_unsubscribe,
    parse_connack,
    parse_connect,
    parse_publish,
    parse_suback,
    read_packet,
)
from tests.simulator.points import TelematicPoint
from tests.simulator.quirks import StreamQuirks
from tests.simulator.state import StreamLogin
from tests.simulator.tls import TlsMaterial, make_tls

GCID = "5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70"
OTHER_GCID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
VIN = "WBA00000000000001"
VIN_2 = "WBA00000000000002"
SECONDARY_VIN = "WBA00000000000003"
OTHER_VIN = "WBA00000000000004"
TOKEN = "id-token-main"
OTHER_TOKEN = "id-token-other"
NO_STREAM_TOKEN = "id-token-without-streaming"
TOKEN_LIFETIME = 3600.0
WAIT = 5.0

SOC = "vehicle.drivetrain.batteryManagement.header"
ODOMETER = "vehicle.vehicle.travelledDistance"
RANGE = "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange"
PLUGGED = "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged"
STATUS = "vehicle.drivetrain.electricEngine.charging.status"
PRESSURE = "vehicle.chassis.axle.row1.wheel.left.tire.pressure"
LATITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
LONGITUDE = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
HEADING = "vehicle.cabin.infotainment.navigation.currentLocation.heading"

pytestmark = pytest.mark.usefixtures("socket_enabled")

MEASURED = datetime(2026, 8, 11, 10, 49, 0, 730_000, tzinfo=UTC)
ENVELOPE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def point(value: Any, unit: str | None = None, when: datetime = MEASURED) -> TelematicPoint:
    return TelematicPoint(value, unit, when)


# --- harness ---------------------------------------------------------------------------


class Accounts:
    """The stub account behind `login`: which id tokens exist, for whom, until when."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.logins: list[tuple[str, str]] = []
        self.expiry: dict[str, float] = {}
        self.issue(TOKEN)
        self.issue(OTHER_TOKEN)
        self.issue(NO_STREAM_TOKEN)

    def issue(self, token: str, lifetime: float = TOKEN_LIFETIME) -> str:
        self.expiry[token] = self.clock.timestamp() + lifetime
        return token

    def login(self, username: str, password: str) -> StreamLogin:
        self.logins.append((username, password))
        owner = {TOKEN: GCID, NO_STREAM_TOKEN: GCID, OTHER_TOKEN: OTHER_GCID}.get(password)
        if owner is None or owner != username:
            return StreamLogin(4, None, None)
        if password == NO_STREAM_TOKEN:
            return StreamLogin(5, owner, self.expiry[password])
        return StreamLogin(0, owner, self.expiry[password])

    @staticmethod
    def allowed_vins(gcid: str) -> set[str]:
        return {GCID: {VIN, VIN_2}, OTHER_GCID: {OTHER_VIN}}.get(gcid, set())


@dataclass
class RunningBroker:
    broker: Broker
    port: int
    clock: SimClock
    quirks: StreamQuirks
    accounts: Accounts
    ca_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def running(socket_enabled: None, tls: TlsMaterial) -> AsyncIterator[RunningBroker]:
    clock = SimClock()
    accounts = Accounts(clock)
    quirks = StreamQuirks()
    broker = Broker(
        host="127.0.0.1",
        port=0,
        ssl_context=tls.server_context,
        clock=clock,
        login=accounts.login,
        allowed_vins=accounts.allowed_vins,
        quirks=quirks,
    )
    port = await broker.start()
    yield RunningBroker(broker, port, clock, quirks, accounts, tls.ca_file)
    await broker.stop()


@dataclass
class Paho:
    """A paho-mqtt 2.x client on its own thread, its callbacks turned into awaitable queues."""

    client: mqtt.Client
    port: int
    connacks: asyncio.Queue[ReasonCode] = field(default_factory=asyncio.Queue)
    subacks: asyncio.Queue[list[ReasonCode]] = field(default_factory=asyncio.Queue)
    messages: asyncio.Queue[mqtt.MQTTMessage] = field(default_factory=asyncio.Queue)
    disconnects: asyncio.Queue[ReasonCode] = field(default_factory=asyncio.Queue)

    def wire(self, loop: asyncio.AbstractEventLoop) -> None:
        def put(queue: asyncio.Queue[Any], item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self.client.on_connect = lambda _c, _u, _f, rc, _p: put(self.connacks, rc)
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: put(self.subacks, codes)
        self.client.on_message = lambda _c, _u, message: put(self.messages, message)
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: put(self.disconnects, rc)

    async def connected(self) -> ReasonCode:
        async with asyncio.timeout(WAIT):
            return await self.connacks.get()

    async def subscribe(self, *topics: tuple[str, int]) -> list[ReasonCode]:
        self.client.subscribe(list(topics))
        async with asyncio.timeout(WAIT):
            return await self.subacks.get()

    async def message(self) -> mqtt.MQTTMessage:
        async with asyncio.timeout(WAIT):
            return await self.messages.get()

    async def payloads(self, count: int) -> list[dict[str, Any]]:
        return [json.loads((await self.message()).payload) for _ in range(count)]

    async def disconnected(self) -> ReasonCode:
        async with asyncio.timeout(WAIT):
            return await self.disconnects.get()


def start_paho(
    started: list[Paho],
    port: int,
    ca_file: str | Path,
    username: str = GCID,
    password: str = TOKEN,
    client_id: str = "probe",
    keepalive: int = 30,
) -> Paho:
    """Start a paho client on its own thread; `started` collects it for stop_paho()."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        reconnect_on_failure=False,  # a reconnect would evict the next client in the test
    )
    client.username_pw_set(username, password)
    client.tls_set_context(ssl.create_default_context(cafile=str(ca_file)))
    probe = Paho(client, port)
    probe.wire(asyncio.get_running_loop())
    started.append(probe)
    client.connect_async("127.0.0.1", port, keepalive)
    client.loop_start()
    return probe


@pytest.fixture
async def paho_clients() -> AsyncIterator[list[Paho]]:
    """Every paho client a test starts; all are stopped (threads joined) afterwards."""
    clients: list[Paho] = []
    yield clients
    for probe in clients:
        probe.client.disconnect()
        await asyncio.to_thread(probe.client.loop_stop)


@pytest.fixture
def paho_factory(running: RunningBroker, paho_clients: list[Paho]) -> Callable[..., Paho]:
    """Start paho clients against the in-process broker."""
    return partial(start_paho, paho_clients, running.port, running.ca_file)


async def connect_paho(start: Callable[..., Paho], **kwargs: Any) -> Paho:
    probe = start(**kwargs)
    assert (await probe.connected()) == ReasonCode(PacketTypes.CONNACK, "Success")
    return probe


class Raw:
    """A TLS socket speaking MQTT through the simulator's codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, running: RunningBroker, context: ssl.SSLContext | None = None) -> Raw:
        context = context or ssl.create_default_context(cafile=str(running.ca_file))
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port, ssl=context)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def packet(self) -> Packet:
        async with asyncio.timeout(WAIT):
            return await read_packet(self.reader)

    async def connect(self, password: str = TOKEN, keepalive: int = 30, **kwargs: Any) -> int:
        kwargs.setdefault("username", GCID)
        self.send(encode_connect("raw", password=password, keepalive=keepalive, **kwargs))
        connack = await self.packet()
        assert connack.type is PacketType.CONNACK
        return parse_connack(connack.body)[1]

    async def subscribe(self, *topics: tuple[str, int], packet_id: int = 1) -> tuple[int, ...]:
        self.send(encode_subscribe(packet_id, topics))
        suback = await self.packet()
        assert suback.type is PacketType.SUBACK
        found_id, codes = parse_suback(suback.body)
        assert found_id == packet_id
        return codes

    async def ping(self) -> Packet:
        """PINGREQ and the next packet: everything queued before it has arrived by then."""
        self.send(encode_pingreq())
        return await self.packet()

    async def assert_closed_by_server(self) -> None:
        try:
            packet = await self.packet()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return
        pytest.fail(f"expected the connection to close, got {packet.type.name}")

    async def close(self) -> None:
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def raw_factory(running: RunningBroker) -> AsyncIterator[Callable[..., Any]]:
    sockets: list[Raw] = []

    async def open_raw(context: ssl.SSLContext | None = None) -> Raw:
        raw = await Raw.open(running, context)
        sockets.append(raw)
        return raw

    yield open_raw
    for raw in sockets:
        await raw.close()


SUCCESS = ReasonCode(PacketTypes.CONNACK, "Success")


# --- TLS -------------------------------------------------------------------------------


async def test_tls_13_with_a_certificate_for_ip_and_localhost(running: RunningBroker) -> None:
    for server_name in ("127.0.0.1", "localhost"):
        context = ssl.create_default_context(cafile=str(running.ca_file))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", running.port, ssl=context, server_hostname=server_name
        )
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        raw = Raw(reader, writer)
        assert await raw.connect() == 0
        await raw.close()


async def test_tls_12_is_refused(running: RunningBroker) -> None:
    context = ssl.create_default_context(cafile=str(running.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
        await asyncio.open_connection("127.0.0.1", running.port, ssl=context)
    assert running.accounts.logins == []


async def test_plain_tcp_gets_no_mqtt(running: RunningBroker) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(encode_connect("plain", username=GCID, password=TOKEN))
    with suppress(ConnectionError):
        data = await asyncio.wait_for(reader.read(4096), WAIT)
        assert not data.startswith(b"\x20")  # no CONNACK for a client without TLS
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()
    assert running.accounts.logins == []


# --- login -----------------------------------------------------------------------------


async def test_login_accepted_and_listed(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    await connect_paho(paho_factory, client_id="ha-cardata")
    assert running.accounts.logins == [(GCID, TOKEN)]
    [session] = running.broker.sessions()
    assert session["gcid"] == GCID
    assert session["client_id"] == "ha-cardata"
    assert session["subscriptions"] == []
    since = datetime.fromisoformat(session["connected_since"])
    assert abs(since - running.clock.now()) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        (GCID, "forged-token", "Bad user name or password"),
        (OTHER_GCID, TOKEN, "Bad user name or password"),
        (GCID, NO_STREAM_TOKEN, "Not authorized"),
    ],
)
async def test_login_refused(
    running: RunningBroker,
    paho_factory: Callable[..., Paho],
    username: str,
    password: str,
    reason: str,
) -> None:
    probe = paho_factory(username=username, password=password)
    assert await probe.connected() == ReasonCode(PacketTypes.CONNACK, reason)
    await probe.disconnected()
    assert running.broker.sessions() == []


async def test_token_expired_at_login_is_a_bad_password(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    running.accounts.issue(TOKEN, lifetime=10)
    running.clock.advance(10)
    raw = await raw_factory()
    assert await raw.connect() == 4
    await raw.assert_closed_by_server()


@pytest.mark.parametrize(
    "connect",
    [
        encode_connect("raw"),
        encode_connect("raw", username=GCID),
        encode_connect("raw", username=GCID, password=b""),
        encode_connect("raw", username=GCID, password=b"\xff\xfe"),
    ],
    ids=["no-credentials", "no-password", "empty-password", "password-not-utf8"],
)
async def test_incomplete_credentials_get_rc_4_without_asking_the_account(
    running: RunningBroker, raw_factory: Callable[..., Any], connect: bytes
) -> None:
    raw = await raw_factory()
    raw.send(connect)
    connack = await raw.packet()
    assert parse_connack(connack.body) == (False, 4)
    await raw.assert_closed_by_server()
    assert running.accounts.logins == []


async def test_empty_client_id_needs_a_clean_session(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    raw.send(encode_connect("", username=GCID, password=TOKEN, clean_session=False))
    assert parse_connack((await raw.packet()).body) == (False, 2)
    await raw.assert_closed_by_server()

    raw = await raw_factory()
    raw.send(encode_connect("", username=GCID, password=TOKEN, clean_session=True))
    assert parse_connack((await raw.packet()).body) == (False, 0)


@pytest.mark.parametrize(("name", "level"), [("MQIsdp", 3), ("MQTT", 5), ("MQTT", 3)])
async def test_other_protocol_versions_get_rc_1(
    running: RunningBroker, raw_factory: Callable[..., Any], name: str, level: int
) -> None:
    raw = await raw_factory()
    raw.send(
        encode_connect(
            "raw", username=GCID, password=TOKEN, protocol_name=name, protocol_level=level
        )
    )
    assert parse_connack((await raw.packet()).body) == (False, 1)
    await raw.assert_closed_by_server()
    assert running.accounts.logins == []


# --- subscriptions ---------------------------------------------------------------------


async def test_allowed_subscriptions_are_granted_at_the_requested_qos(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    probe = await connect_paho(paho_factory)
    codes = await probe.subscribe((f"{GCID}/+", 1), (f"{GCID}/{VIN}", 0), (f"{GCID}/{VIN_2}", 2))
    assert [code.value for code in codes] == [1, 0, 1]  # QoS 2 is granted as 1
    [session] = running.broker.sessions()
    assert session["subscriptions"] == sorted([f"{GCID}/+", f"{GCID}/{VIN}", f"{GCID}/{VIN_2}"])


@pytest.mark.parametrize(
    "topic",
    [
        f"{OTHER_GCID}/+",
        f"{OTHER_GCID}/{OTHER_VIN}",
        VIN,
        "#",
        f"{GCID}/#",
        f"{GCID}/{SECONDARY_VIN}",
        f"{GCID}/{OTHER_VIN}",
        GCID,
        f"+/{VIN}",
    ],
)
async def test_forbidden_subscription_is_refused_and_the_connection_dropped(
    running: RunningBroker, raw_factory: Callable[..., Any], topic: str
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    assert await raw.subscribe((f"{GCID}/+", 1), (topic, 0)) == (1, SUBACK_FAILURE)
    await raw.assert_closed_by_server()
    assert running.broker.sessions() == []


async def test_paho_sees_the_refusal_then_the_disconnect(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    probe = await connect_paho(paho_factory)
    [code] = await probe.subscribe((VIN, 1))  # the portal's "Topic" field, a classic mistake
    assert code.is_failure
    await probe.disconnected()


async def test_unsubscribe_stops_delivery(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    assert await raw.subscribe((f"{GCID}/+", 0)) == (0,)
    raw.send(encode_unsubscribe(2, [f"{GCID}/+"]))
    unsuback = await raw.packet()
    assert unsuback.type is PacketType.UNSUBACK
    running.broker.publish(GCID, VIN, {SOC: point(50.0, "percent")})
    assert (await raw.ping()).type is PacketType.PINGRESP


@pytest.mark.parametrize(
    ("topic", "gcid", "vin"),
    [
        (f"{GCID}/{VIN}", GCID, VIN_2),  # another of the account's cars
        (f"{GCID}/+", GCID, SECONDARY_VIN),  # a car the account may not stream
        (f"{GCID}/+", OTHER_GCID, OTHER_VIN),  # another account
    ],
)
async def test_messages_go_only_where_subscribed_and_allowed(
    running: RunningBroker, raw_factory: Callable[..., Any], topic: str, gcid: str, vin: str
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    await raw.subscribe((topic, 0))
    running.broker.publish(gcid, vin, {SOC: point(50.0, "percent")})
    assert (await raw.ping()).type is PacketType.PINGRESP


# --- one connection per GCID -----------------------------------------------------------


async def test_second_login_of_a_gcid_evicts_the_first(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    first = await connect_paho(paho_factory, client_id="first")
    await first.subscribe((f"{GCID}/+", 0))
    second = await connect_paho(paho_factory, client_id="second")
    await first.disconnected()
    [session] = running.broker.sessions()
    assert session["client_id"] == "second"

    await second.subscribe((f"{GCID}/+", 0))
    running.broker.publish(GCID, VIN, {SOC: point(61.0, "percent")})
    [payload] = await second.payloads(1)
    assert payload["data"][SOC]["value"] == 61.0
    assert first.messages.empty()


async def test_other_accounts_do_not_evict_each_other(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    await connect_paho(paho_factory, client_id="main")
    await connect_paho(paho_factory, username=OTHER_GCID, password=OTHER_TOKEN, client_id="other")
    assert sorted(s["gcid"] for s in running.broker.sessions()) == sorted([GCID, OTHER_GCID])


async def test_evict_closes_the_gcid_connection(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    main = await connect_paho(paho_factory, client_id="main")
    await connect_paho(paho_factory, username=OTHER_GCID, password=OTHER_TOKEN, client_id="other")
    running.broker.evict(GCID)
    await main.disconnected()
    assert [s["gcid"] for s in running.broker.sessions()] == [OTHER_GCID]


async def test_drop_all_closes_everything_and_new_logins_still_work(
    running: RunningBroker, paho_factory: Callable[..., Paho], raw_factory: Callable[..., Any]
) -> None:
    main = await connect_paho(paho_factory, client_id="main")
    other = await connect_paho(
        paho_factory, username=OTHER_GCID, password=OTHER_TOKEN, client_id="other"
    )
    not_logged_in = await raw_factory()
    await running.broker.drop_all()
    assert running.broker.sessions() == []
    await main.disconnected()
    await other.disconnected()
    await not_logged_in.assert_closed_by_server()

    raw = await raw_factory()
    assert await raw.connect() == 0


async def test_stop_closes_clients_and_the_port(running: RunningBroker) -> None:
    raw = await Raw.open(running)
    assert await raw.connect() == 0
    await running.broker.stop()
    await raw.assert_closed_by_server()
    await raw.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", running.port)


# --- id token expiry and keepalive -----------------------------------------------------


async def test_connection_closes_when_the_id_token_expires_on_the_clock(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    running.clock.advance(TOKEN_LIFETIME - 5)
    assert (await raw.ping()).type is PacketType.PINGRESP
    running.clock.advance(5)
    await raw.assert_closed_by_server()
    assert running.broker.sessions() == []


async def test_connection_closes_at_expiry_without_a_clock_jump(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    running.accounts.issue(TOKEN, lifetime=0.3)
    probe = await connect_paho(paho_factory)
    started = time.monotonic()
    await probe.disconnected()
    assert time.monotonic() - started < 2.0


async def test_keepalive_is_enforced(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    assert await raw.connect(keepalive=1) == 0
    assert (await raw.ping()).type is PacketType.PINGRESP
    quiet_since = time.monotonic()
    await raw.assert_closed_by_server()
    assert 1.3 <= time.monotonic() - quiet_since < 3.0


# --- misbehaving clients ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        encode_publish(f"{GCID}/{VIN}", b"{}"),
        encode_publish(f"{GCID}/{VIN}", b"{}", qos=1, packet_id=7),
        b"\x30\xff\xff\xff\xff\x01",  # remaining length of five bytes
        b"\x82\x05\x00\x01\x00\x01\x41",  # SUBSCRIBE with reserved flags 0000
        bytes([PacketType.SUBSCRIBE << 4 | 2, 2, 0, 1]),  # SUBSCRIBE without a filter
        encode_connect("again", username=GCID, password=TOKEN),
        b"\x00\x00",  # reserved packet type 0
    ],
    ids=[
        "publish",
        "publish-qos1",
        "bad-length",
        "bad-flags",
        "no-filter",
        "second-connect",
        "type-0",
    ],
)
async def test_protocol_violations_close_the_connection(
    running: RunningBroker, raw_factory: Callable[..., Any], data: bytes
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    raw.send(data)
    await raw.assert_closed_by_server()


@pytest.mark.parametrize(
    "data",
    [encode_subscribe(1, [(f"{GCID}/+", 0)]), encode_pingreq(), b"\xf0\x00"],
    ids=["subscribe", "pingreq", "type-15"],
)
async def test_anything_but_connect_first_closes_the_connection(
    running: RunningBroker, raw_factory: Callable[..., Any], data: bytes
) -> None:
    raw = await raw_factory()
    raw.send(data)
    await raw.assert_closed_by_server()
    assert running.accounts.logins == []


async def test_client_disconnect_ends_the_session(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    raw.send(encode_disconnect())
    await raw.assert_closed_by_server()
    assert running.broker.sessions() == []


# --- messages --------------------------------------------------------------------------


@pytest.fixture
async def subscriber(paho_factory: Callable[..., Paho]) -> Paho:
    probe = await connect_paho(paho_factory)
    await probe.subscribe((f"{GCID}/+", 0))
    return probe


async def test_message_has_bmw_shape(running: RunningBroker, subscriber: Paho) -> None:
    running.broker.publish(GCID, VIN, {SOC: point(78.5, "percent")})
    message = await subscriber.message()
    assert message.topic == f"{GCID}/{VIN}"
    assert message.qos == 0
    assert not message.retain
    payload = json.loads(message.payload)
    assert set(payload) == {"vin", "entityId", "topic", "timestamp", "data"}
    assert payload["vin"] == VIN
    assert payload["entityId"] == GCID
    assert payload["topic"] == VIN
    assert ENVELOPE_TIMESTAMP.match(payload["timestamp"])
    sent = datetime.fromisoformat(payload["timestamp"])
    assert abs(sent - running.clock.now()) < timedelta(seconds=5)
    assert payload["data"] == {
        SOC: {"timestamp": "2026-08-11T10:49:00Z", "value": 78.5, "unit": "percent"}
    }


async def test_envelope_timestamp_follows_the_simulator_clock(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    running.accounts.issue(TOKEN, lifetime=10 * 86400)
    probe = await connect_paho(paho_factory)
    await probe.subscribe((f"{GCID}/+", 0))
    running.clock.advance(3 * 86400)
    running.broker.publish(GCID, VIN, {SOC: point(1.0)})
    [payload] = await probe.payloads(1)
    sent = datetime.fromisoformat(payload["timestamp"])
    assert sent - datetime.now(UTC) > timedelta(days=2, hours=23)


async def test_one_descriptor_per_message_in_order(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.broker.publish(
        GCID,
        VIN,
        {SOC: point(64.0, "percent"), STATUS: point("CHARGINGACTIVE"), PLUGGED: point(True)},
    )
    payloads = await subscriber.payloads(3)
    assert [list(p["data"]) for p in payloads] == [[SOC], [STATUS], [PLUGGED]]
    # No unit key when there is no unit; booleans are JSON booleans unless a quirk says otherwise.
    assert payloads[1]["data"][STATUS] == {
        "timestamp": "2026-08-11T10:49:00Z",
        "value": "CHARGINGACTIVE",
    }
    assert payloads[2]["data"][PLUGGED]["value"] is True


async def test_point_without_timestamp_is_stamped_now(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.broker.publish(GCID, VIN, {SOC: TelematicPoint(50, "percent", None)})
    [payload] = await subscriber.payloads(1)
    assert payload["data"][SOC]["timestamp"] == iso_seconds(
        datetime.fromisoformat(payload["timestamp"])
    )


async def test_latitude_and_longitude_never_share_a_message(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.quirks.update({"multi_descriptor": True})
    running.broker.publish(
        GCID,
        VIN,
        {
            LATITUDE: point(48.177, "degrees"),
            LONGITUDE: point(11.556, "degrees", MEASURED + timedelta(seconds=2)),
            HEADING: point(271, "degrees"),
            SOC: point(50.0, "percent"),
        },
    )
    first, second = await subscriber.payloads(2)
    assert list(first["data"]) == [LATITUDE, HEADING, SOC]
    assert list(second["data"]) == [LONGITUDE]
    assert second["data"][LONGITUDE]["timestamp"] == "2026-08-11T10:49:02Z"


async def test_qos_1_delivery_with_packet_ids_and_pubacks(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    assert await raw.subscribe((f"{GCID}/{VIN}", 1)) == (1,)
    running.broker.publish(GCID, VIN, {SOC: point(1.0), STATUS: point("NOCHARGING")})
    received = [await raw.packet(), await raw.packet()]
    publishes = [parse_publish(p.flags, p.body) for p in received]
    assert [p.qos for p in publishes] == [1, 1]
    assert [p.packet_id for p in publishes] == [1, 2]
    for publish in publishes:
        assert publish.packet_id is not None
        raw.send(encode_puback(publish.packet_id))
    assert (await raw.ping()).type is PacketType.PINGRESP
    [connection] = running.broker._sessions.values()
    assert connection.inflight == {}


async def test_paho_receives_qos_1(
    running: RunningBroker, paho_factory: Callable[..., Paho]
) -> None:
    probe = await connect_paho(paho_factory)
    await probe.subscribe((f"{GCID}/+", 1))
    running.broker.publish(GCID, VIN_2, {SOC: point(33.0, "percent")})
    message = await probe.message()
    assert message.qos == 1
    assert message.topic == f"{GCID}/{VIN_2}"


async def test_overlapping_subscriptions_deliver_once_at_the_higher_qos(
    running: RunningBroker, raw_factory: Callable[..., Any]
) -> None:
    raw = await raw_factory()
    assert await raw.connect() == 0
    await raw.subscribe((f"{GCID}/+", 0), (f"{GCID}/{VIN}", 1))
    running.broker.publish(GCID, VIN, {SOC: point(1.0)})
    packet = await raw.packet()
    assert parse_publish(packet.flags, packet.body).qos == 1
    assert (await raw.ping()).type is PacketType.PINGRESP


# --- quirks through the broker ---------------------------------------------------------


@pytest.mark.parametrize(
    ("quirks", "points", "expected"),
    [
        (
            {"quoted_numbers": True},
            {SOC: point(78.5, "percent"), PRESSURE: point(250, "kPa"), PLUGGED: point(True)},
            [{SOC: "78.5"}, {PRESSURE: "250"}, {PLUGGED: True}],
        ),
        (
            {"asn_booleans": True},
            {PLUGGED: point(True), "vehicle.body.trunk.isLocked": point(False), SOC: point(5)},
            [{PLUGGED: "ASN_isTrue"}, {"vehicle.body.trunk.isLocked": "ASN_isFalse"}, {SOC: 5}],
        ),
        (
            {"not_available": PRESSURE},
            {PRESSURE: point(250, "kPa"), SOC: point(5)},
            [{PRESSURE: "-NA-"}, {SOC: 5}],
        ),
        (
            {"miles": True},
            {ODOMETER: point(16093.44, "km"), RANGE: point(100, "km"), SOC: point(5, "percent")},
            [{ODOMETER: 10000.0}, {RANGE: 62.1}, {SOC: 5}],
        ),
    ],
    ids=["quoted_numbers", "asn_booleans", "not_available", "miles"],
)
async def test_value_quirks(
    running: RunningBroker,
    subscriber: Paho,
    quirks: dict[str, Any],
    points: dict[str, TelematicPoint],
    expected: list[dict[str, Any]],
) -> None:
    running.quirks.update(quirks)
    running.broker.publish(GCID, VIN, points)
    payloads = await subscriber.payloads(len(expected))
    assert [{d: e["value"] for d, e in p["data"].items()} for p in payloads] == expected


async def test_miles_quirk_tags_only_distances(running: RunningBroker, subscriber: Paho) -> None:
    running.quirks.update({"miles": True})
    running.broker.publish(
        GCID, VIN, {ODOMETER: point(1609, "km"), "vehicle.vehicle.avgSpeed": point(50, "km/h")}
    )
    odometer, speed = await subscriber.payloads(2)
    assert odometer["data"][ODOMETER]["unit"] == "miles"
    assert speed["data"]["vehicle.vehicle.avgSpeed"] == {
        "timestamp": "2026-08-11T10:49:00Z",
        "value": 50,
        "unit": "km/h",
    }


async def test_mile_flips_alternate_between_messages(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.quirks.update({"mile_flips": True})
    for odometer in (1000, 1001, 1002, 1003):
        running.broker.publish(GCID, VIN, {ODOMETER: point(odometer, "km")})
    payloads = await subscriber.payloads(4)
    entries = [p["data"][ODOMETER] for p in payloads]
    assert [e["unit"] for e in entries] == ["km", "miles", "km", "miles"]
    assert [e["value"] for e in entries] == [1000, 622.0, 1002, 623.2]


async def test_missing_units_quirk(running: RunningBroker, subscriber: Paho) -> None:
    running.quirks.update({"missing_units": True})
    running.broker.publish(GCID, VIN, {SOC: point(78.5, "percent")})
    [payload] = await subscriber.payloads(1)
    assert payload["data"] == {SOC: {"timestamp": "2026-08-11T10:49:00Z", "value": 78.5}}


async def test_duplicates_quirk_sends_each_message_twice(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.quirks.update({"duplicates": True})
    running.broker.publish(GCID, VIN, {SOC: point(1.0), STATUS: point("CHARGINGACTIVE")})
    payloads = await subscriber.payloads(4)
    assert [list(p["data"]) for p in payloads] == [[SOC], [SOC], [STATUS], [STATUS]]
    assert payloads[0] == payloads[1]


async def test_rest_only_quirk_keeps_what_bmw_does_not_stream_off_the_stream(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.quirks.update({"rest_only": True})
    running.broker.publish(
        GCID,
        VIN,
        {
            "vehicle.drivetrain.electricEngine.charging.level": point(80.0, "%"),
            "vehicle.drivetrain.electricEngine.charging.hvStatus": point("CHARGING"),
            "vehicle.cabin.door.lock.status": point("SECURED"),
            STATUS: point("CHARGINGACTIVE"),
        },
    )
    [payload] = await subscriber.payloads(1)
    assert list(payload["data"]) == [STATUS]


async def test_multi_descriptor_quirk_batches(running: RunningBroker, subscriber: Paho) -> None:
    running.quirks.update({"multi_descriptor": True, "quoted_numbers": True})
    running.broker.publish(
        GCID, VIN, {SOC: point(64, "%"), PLUGGED: point(True), STATUS: point("CHARGINGACTIVE")}
    )
    [payload] = await subscriber.payloads(1)
    assert payload["data"] == {
        SOC: {"timestamp": "2026-08-11T10:49:00Z", "value": "64", "unit": "%"},
        PLUGGED: {"timestamp": "2026-08-11T10:49:00Z", "value": True},
        STATUS: {"timestamp": "2026-08-11T10:49:00Z", "value": "CHARGINGACTIVE"},
    }


async def test_quirk_changes_apply_to_the_next_message(
    running: RunningBroker, subscriber: Paho
) -> None:
    running.quirks.update({"quoted_numbers": True})
    running.broker.publish(GCID, VIN, {SOC: point(1.5)})
    running.quirks.reset()
    running.broker.publish(GCID, VIN, {SOC: point(1.5)})
    first, second = await subscriber.payloads(2)
    assert first["data"][SOC]["value"] == "1.5"
    assert second["data"][SOC]["value"] == 1.5


# --- StreamQuirks on its own -----------------------------------------------------------


def test_quirks_update_rejects_unknown_names_and_bad_values_atomically() -> None:
    quirks = StreamQuirks()
    with pytest.raises(ValueError, match="unknown stream quirk 'loud'"):
        quirks.update({"duplicates": True, "loud": True})
    with pytest.raises(ValueError, match="true or false"):
        quirks.update({"duplicates": True, "miles": 3})
    with pytest.raises(ValueError, match="descriptor name"):
        quirks.update({"not_available": True})
    assert quirks == StreamQuirks()


def test_quirks_accept_command_line_spellings_and_reset() -> None:
    quirks = StreamQuirks()
    quirks.update({"duplicates": "on", "miles": "true", "not_available": PRESSURE})
    assert quirks.as_dict() == {
        "quoted_numbers": False,
        "missing_units": False,
        "duplicates": True,
        "miles": True,
        "mile_flips": False,
        "asn_booleans": False,
        "not_available": PRESSURE,
        "multi_descriptor": False,
        "rest_only": False,
        # Charging sessions: what every reported car does is on by default.
        "withhold_charging_soc": False,
        "resend_start_soc": True,
        "early_charging_end": True,
    }
    quirks.update({"duplicates": "off", "not_available": "false"})
    assert not quirks.duplicates
    assert quirks.not_available is None
    quirks.reset()
    assert quirks == StreamQuirks()


def test_miles_keep_numeric_strings_as_strings_and_leave_non_numbers_alone() -> None:
    quirks = StreamQuirks(miles=True)
    now = MEASURED
    [converted] = quirks.messages({ODOMETER: point("16093.44", "km")}, now)
    assert converted[ODOMETER]["value"] == "10000.0"
    [untouched] = quirks.messages({ODOMETER: point("INVALID", "km")}, now)
    assert untouched[ODOMETER] == {
        "timestamp": "2026-08-11T10:49:00Z",
        "value": "INVALID",
        "unit": "km",
    }


def test_null_values_pass_through() -> None:
    quirks = StreamQuirks(quoted_numbers=True, asn_booleans=True)
    [message] = quirks.messages({SOC: point(None, "percent")}, MEASURED)
    assert message[SOC]["value"] is None


# --- the codec -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_boundaries(length: int, encoded: bytes) -> None:
    assert encode_remaining_length(length) == encoded


def test_remaining_length_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_remaining_length(268_435_456)


async def feed(data: bytes) -> Packet:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_packet(reader)


def split_fixed_header(data: bytes) -> tuple[int, bytes]:
    """Flags and body of one encoded packet (a synchronous stand-in for read_packet)."""
    length, multiplier, position = 0, 1, 1
    while True:
        byte = data[position]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        position += 1
        if not byte & 0x80:
            break
    assert len(data) == position + length
    return data[0] & 0x0F, data[position:]


@given(
    topic=st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=300
    ),
    payload=st.binary(max_size=70_000),
    qos=st.sampled_from([0, 1]),
)
def test_publish_round_trip(topic: str, payload: bytes, qos: int) -> None:
    data = encode_publish(topic, payload, qos=qos, packet_id=9 if qos else None)
    flags, body = split_fixed_header(data)
    parsed = parse_publish(flags, body)
    assert (parsed.topic, parsed.payload, parsed.qos) == (topic, payload, qos)
    assert parsed.packet_id == (9 if qos else None)


def test_connect_round_trip_and_validation() -> None:
    body = encode_connect("id", username=GCID, password=TOKEN, keepalive=45)[2:]
    connect = parse_connect(body)
    assert (connect.client_id, connect.username, connect.password, connect.keepalive) == (
        "id",
        GCID,
        TOKEN.encode(),
        45,
    )
    password_only = bytearray(body)
    password_only[7] = 0x42  # password flag without the user name flag
    with pytest.raises(MalformedPacketError, match="password without user name"):
        parse_connect(bytes(password_only))


async def test_truncated_packet_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await feed(encode_publish("a/b", b"payload")[:-2])


async def test_oversized_packet_is_malformed() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x30" + encode_remaining_length(5_000_000))
    with pytest.raises(MalformedPacketError, match="limit"):
        await read_packet(reader)


# --- end to end through the simulator process ------------------------------------------


async def test_simulator_process_streams_posted_telematics(
    sim: SimulatorHandle, paho_clients: list[Paho]
) -> None:
    tokens = await sim.issue_tokens()
    assert tokens["gcid"] == sim.gcid
    probe = start_paho(
        paho_clients,
        sim.mqtt_port,
        sim.ca_file,
        username=tokens["gcid"],
        password=tokens["id_token"],
        client_id="e2e",
    )
    assert await probe.connected() == SUCCESS
    [granted] = await probe.subscribe((f"{sim.gcid}/+", 1))
    assert granted.value == 1
    [session] = await sim.stream_sessions()
    assert (session["gcid"], session["client_id"]) == (sim.gcid, "e2e")
    assert session["subscriptions"] == [f"{sim.gcid}/+"]

    await sim.set_telematics(VIN, {SOC: {"value": 55.5, "unit": "percent"}, STATUS: "NOCHARGING"})
    messages = [await probe.message(), await probe.message()]
    assert {m.topic for m in messages} == {f"{sim.gcid}/{VIN}"}
    payloads = [json.loads(m.payload) for m in messages]
    assert payloads[0]["data"][SOC]["value"] == 55.5
    assert payloads[0]["data"][SOC]["unit"] == "percent"
    assert payloads[1]["data"] == {STATUS: {"timestamp": ANY, "value": "NOCHARGING"}}

    await sim.set_quirks(quoted_numbers=True, duplicates=True)
    await sim.set_telematics(VIN, {SOC: 56})
    first, second = await probe.payloads(2)
    assert first == second
    assert first["data"][SOC]["value"] == "56"

    await sim.drop_stream()
    await probe.disconnected()
    assert await sim.stream_sessions() == []


async def test_simulator_process_closes_the_stream_at_id_token_expiry(
    sim: SimulatorHandle, paho_clients: list[Paho]
) -> None:
    tokens = await sim.issue_tokens()
    probe = start_paho(
        paho_clients, sim.mqtt_port, sim.ca_file, username=sim.gcid, password=tokens["id_token"]
    )
    assert await probe.connected() == SUCCESS
    await sim.advance(tokens["expires_in"] + 1)
    await probe.disconnected()

    again = start_paho(
        paho_clients, sim.mqtt_port, sim.ca_file, username=sim.gcid, password=tokens["id_token"]
    )
    assert await again.connected() == ReasonCode(PacketTypes.CONNACK, "Bad user name or password")
