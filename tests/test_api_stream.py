"""The CarData stream client against real MQTT brokers on loopback.

Most tests run the simulator's broker in-process (its clock and logins are under the test's
control); a few use a scripted TLS server to send what no well-behaved broker would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
import itertools
import json
import logging
import ssl
import threading
from typing import Any

import aiohttp
import pytest

from custom_components.cardata.api.auth import GcdmAuth
from custom_components.cardata.api.models import StreamMessage, TokenGranted, TokenSet
from custom_components.cardata.api.stream import (
    CarDataStream,
    MalformedMessageError,
    ReconnectPolicy,
    StreamRefusal,
    StreamState,
    StreamStatus,
    default_client_id,
    parse_stream_message,
)
from tests.simulator.broker import Broker
from tests.simulator.clock import SimClock
from tests.simulator.handle import SimulatorHandle
from tests.simulator.mqtt_codec import (
    PacketType,
    encode_connack,
    encode_pingresp,
    encode_publish,
    encode_suback,
    parse_subscribe,
    read_packet,
)
from tests.simulator.points import TelematicPoint
from tests.simulator.quirks import StreamQuirks
from tests.simulator.tls import TlsMaterial, make_tls

GCID = "5f3c1e2a-8b7d-4c6e-9a1f-2d3b4c5e6f70"
VIN = "WBA00000000000001"
SOC = "vehicle.drivetrain.batteryManagement.header"
CHARGING_STATUS = "vehicle.drivetrain.electricEngine.charging.status"
TOKEN_LIFETIME = 3600.0

# Fast but otherwise production-shaped reconnect rules.
# Loopback sockets (pytest-socket blocks all sockets unless enabled; hosts stay restricted).
pytestmark = pytest.mark.usefixtures("socket_enabled")

FAST = ReconnectPolicy(
    initial_delay=0.01, max_delay=0.05, jitter=0.2, short_session=2.0, takeover_sessions=3
)


# --- harness ---------------------------------------------------------------------------


class Recorder:
    """Collects what the stream reports and wakes tests waiting for a condition."""

    def __init__(self) -> None:
        self.statuses: list[StreamStatus] = []
        self.messages: list[StreamMessage] = []
        self.callback_threads: set[int] = set()
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Something happened: let waiting tests re-check their condition."""
        self._changed.set()

    def on_status(self, status: StreamStatus) -> None:
        self.callback_threads.add(threading.get_ident())
        self.statuses.append(status)
        self.notify()

    def on_message(self, message: StreamMessage) -> None:
        self.callback_threads.add(threading.get_ident())
        self.messages.append(message)
        self.notify()

    @property
    def states(self) -> list[StreamState]:
        return [status.state for status in self.statuses]

    def count(self, state: StreamState) -> int:
        return self.states.count(state)

    async def until(self, condition: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait until `condition()` holds; every callback and login re-checks it."""
        async with asyncio.timeout(limit):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def until_state(self, state: StreamState, count: int = 1) -> StreamStatus:
        """Wait until the stream has reported `state` `count` times; return the last."""
        await self.until(lambda: self.count(state) >= count)
        return [status for status in self.statuses if status.state is state][count - 1]


@dataclass(frozen=True, slots=True)
class Login:
    """The in-process broker's verdict on a CONNECT (what `state.stream_login` returns)."""

    return_code: int
    gcid: str | None
    expires_at: float | None


class Accounts:
    """Id tokens the in-process broker accepts, on the test's clock."""

    def __init__(self, clock: SimClock, recorder: Recorder) -> None:
        self.clock = clock
        self.recorder = recorder
        self.tokens: dict[str, float] = {}
        self.passwords: list[str] = []
        # Return codes to answer the next logins with, before judging the token.
        self.forced_codes: list[int] = []
        # The GCID a valid login is granted; another one than the user name makes the
        # broker refuse the subscription to `<user name>/+`.
        self.granted_gcid = GCID

    def issue(self, token: str) -> str:
        self.tokens[token] = self.clock.timestamp() + TOKEN_LIFETIME
        return token

    def login(self, username: str, password: str) -> Login:
        self.passwords.append(password)
        self.recorder.notify()
        if self.forced_codes:
            return Login(self.forced_codes.pop(0), username, None)
        expires_at = self.tokens.get(password)
        if username != GCID or expires_at is None:
            return Login(4, None, None)
        return Login(0, self.granted_gcid, expires_at)


@dataclass
class InProcessBroker:
    """The simulator's broker, served from the test's own loop."""

    broker: Broker
    port: int
    clock: SimClock
    accounts: Accounts

    def publish(self, points: dict[str, TelematicPoint], vin: str = VIN) -> None:
        self.broker.publish(GCID, vin, points)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def client_context(tls: TlsMaterial) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=tls.ca_file)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def broker(
    socket_enabled: None, tls: TlsMaterial, recorder: Recorder
) -> AsyncIterator[InProcessBroker]:
    clock = SimClock()
    accounts = Accounts(clock, recorder)
    quirks = StreamQuirks()
    server = Broker(
        host="127.0.0.1",
        port=0,
        ssl_context=tls.server_context,
        clock=clock,
        login=accounts.login,
        allowed_vins=lambda gcid: {VIN},
        quirks=quirks,
    )
    port = await server.start()
    yield InProcessBroker(server, port, clock, accounts)
    await server.stop()


StreamFactory = Callable[..., CarDataStream]


@pytest.fixture
async def make_stream(
    client_context: ssl.SSLContext, recorder: Recorder
) -> AsyncIterator[StreamFactory]:
    """Build streams reporting to `recorder`; all of them are stopped after the test."""
    streams: list[CarDataStream] = []

    def factory(port: int, id_token: str, **kwargs: Any) -> CarDataStream:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "gcid": GCID,
            "id_token": id_token,
            "ssl_context": client_context,
            "on_message": recorder.on_message,
            "on_status": recorder.on_status,
            "reconnect_policy": FAST,
        }
        options.update(kwargs)
        stream = CarDataStream(**options)
        streams.append(stream)
        return stream

    yield factory
    for stream in streams:
        await stream.stop()


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def scripted_broker(tls: TlsMaterial, script: Script) -> AsyncIterator[int]:
    """A TLS server that runs `script` for each connection; yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.server_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        server.close_clients()
        await server.wait_closed()


async def accept_session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, suback: int = 1
) -> None:
    """Play the broker's side of CONNECT/CONNACK and SUBSCRIBE/SUBACK."""
    connect = await read_packet(reader)
    assert connect.type is PacketType.CONNECT
    writer.write(encode_connack(0))
    subscribe = await read_packet(reader)
    assert subscribe.type is PacketType.SUBSCRIBE
    writer.write(encode_suback(parse_subscribe(subscribe.body).packet_id, [suback]))
    await writer.drain()


async def serve_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer pings until the client goes away."""
    while (packet := await read_packet(reader)).type is not PacketType.DISCONNECT:
        if packet.type is PacketType.PINGREQ:
            writer.write(encode_pingresp())


@asynccontextmanager
async def gated_proxy(target_port: int, recorder: Recorder) -> AsyncIterator[GatedProxy]:
    """A TCP relay to `target_port` that holds every connection until its gate opens.

    While held, the client's TLS handshake (in the executor) cannot finish.
    """
    proxy = GatedProxy()
    relays: set[asyncio.Task[None]] = set()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy.held += 1
        recorder.notify()
        await proxy.gate.wait()
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        for relay in (pipe(reader, upstream_writer), pipe(upstream_reader, writer)):
            task = asyncio.create_task(relay)
            relays.add(task)
            task.add_done_callback(relays.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        proxy.gate.set()
        server.close()
        server.close_clients()
        for task in list(relays):
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await server.wait_closed()


@dataclass
class GatedProxy:
    """See gated_proxy()."""

    port: int = 0
    held: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)


def registered_fds(loop: asyncio.AbstractEventLoop) -> set[int]:
    """File descriptors the loop watches for reading or writing."""
    selector = loop._selector  # type: ignore[attr-defined]
    return set(selector.get_map())


def point(value: Any, unit: str | None = None) -> TelematicPoint:
    return TelematicPoint(value, unit, datetime(2026, 8, 11, 10, 49, tzinfo=UTC))


# --- connecting and receiving ----------------------------------------------------------


async def test_logs_in_subscribes_and_reports_connected(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """The stream logs in as GCID/id token with a stable client id and subscribes to all VINs."""
    token = broker.accounts.issue("id-token-1")
    stream = make_stream(broker.port, token)
    assert stream.status.state is StreamState.STOPPED

    await stream.start()
    connected = await recorder.until_state(StreamState.CONNECTED)

    assert recorder.states == [StreamState.CONNECTING, StreamState.CONNECTED]
    assert connected.reason is None
    assert connected.refusal is None
    assert stream.status == connected
    assert broker.accounts.passwords == [token]
    [session] = broker.broker.sessions()
    assert session["gcid"] == GCID
    assert session["client_id"] == default_client_id(GCID) == stream.client_id
    assert session["subscriptions"] == [f"{GCID}/+"]
    assert stream.connection_attempts == 1
    assert recorder.callback_threads == {threading.get_ident()}


async def test_client_id_is_stable_per_account_and_fits_mqtt_311() -> None:
    """Reconnects reuse one id per GCID (BMW then drops our own stale session)."""
    assert default_client_id(GCID) == default_client_id(GCID)
    assert default_client_id(GCID) != default_client_id("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
    assert len(default_client_id(GCID)) <= 23


async def test_messages_arrive_typed_on_the_loop_thread(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Pushed telematics reach on_message as parsed StreamMessages, on the loop's thread."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    broker.publish({SOC: point(81.5, "percent"), CHARGING_STATUS: point("CHARGINGACTIVE")})
    await recorder.until(lambda: len(recorder.messages) == 2)

    first, second = recorder.messages
    assert first.vin == VIN
    assert first.gcid == GCID
    assert first.timestamp is not None
    assert first.updates[SOC].value == 81.5
    assert first.updates[SOC].unit == "percent"
    assert first.updates[SOC].timestamp == datetime(2026, 8, 11, 10, 49, tzinfo=UTC)
    assert second.updates[CHARGING_STATUS].value == "CHARGINGACTIVE"
    assert second.updates[CHARGING_STATUS].unit is None
    assert recorder.callback_threads == {threading.get_ident()}
    assert stream.messages_received == 2
    assert stream.malformed_messages == 0
    assert stream.last_message_at is not None
    assert stream.last_message_at <= datetime.now(UTC)


async def test_several_descriptors_and_bmw_quirks_in_one_message(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Quoted numbers, ASN booleans and missing units are parsed; raw values are kept."""
    broker.broker._quirks.update(  # the quirks object the broker was built with
        {"multi_descriptor": True, "quoted_numbers": True, "asn_booleans": True}
    )
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    plugged = "vehicle.body.chargingPort.isPlugged"
    broker.publish({SOC: point(64, "%"), plugged: point(True), CHARGING_STATUS: point("-NA-")})
    await recorder.until(lambda: len(recorder.messages) == 1)

    updates = recorder.messages[0].updates
    assert set(updates) == {SOC, plugged, CHARGING_STATUS}
    assert updates[SOC].value == 64
    assert updates[SOC].raw_value == "64"
    assert updates[plugged].value is True
    assert updates[plugged].raw_value == "ASN_isTrue"
    assert updates[CHARGING_STATUS].value is None
    assert updates[CHARGING_STATUS].raw_value == "-NA-"


async def test_malformed_payloads_are_counted_and_logged_once(
    tls: TlsMaterial,
    make_stream: StreamFactory,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Broken payloads are dropped and counted; only the first one reaches the log."""
    good = {"vin": VIN, "timestamp": "2026-08-11T10:49:03.123Z", "data": {SOC: {"value": 50}}}
    payloads = [
        b"\xff\xfe not even text",
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"vin": VIN, "timestamp": "2026-08-11T10:49:03Z"}).encode(),
        json.dumps({"vin": VIN, "data": [SOC, 50]}).encode(),
        json.dumps({"vin": VIN, "data": {}}).encode(),
        json.dumps(good).encode(),
    ]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_session(reader, writer)
        for packet_id, payload in enumerate(payloads, start=1):
            writer.write(encode_publish(f"{GCID}/{VIN}", payload, qos=1, packet_id=packet_id))
        await serve_until_closed(reader, writer)

    caplog.set_level(logging.DEBUG, logger="custom_components.cardata.api.stream")
    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token")
        await stream.start()
        await recorder.until(lambda: len(recorder.messages) == 1)
        await stream.stop()

    assert recorder.messages[0].updates[SOC].value == 50
    assert stream.messages_received == len(payloads)
    assert stream.malformed_messages == len(payloads) - 1
    malformed_logs = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed_logs) == 1
    assert malformed_logs[0].levelno == logging.DEBUG
    assert StreamState.CONNECTED in recorder.states
    assert StreamState.DISCONNECTED not in recorder.states


async def test_a_failing_message_handler_does_not_break_the_stream(
    broker: InProcessBroker,
    make_stream: StreamFactory,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception in on_message is logged; later messages are still delivered."""
    delivered: list[StreamMessage] = []

    def explode_once(message: StreamMessage) -> None:
        delivered.append(message)
        recorder.notify()
        if len(delivered) == 1:
            raise RuntimeError("handler bug")

    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"), on_message=explode_once)
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    broker.publish({SOC: point(10)})
    broker.publish({SOC: point(11)})
    await recorder.until(lambda: len(delivered) == 2)

    assert delivered[1].updates[SOC].value == 11
    assert "Error handling a CarData stream message" in caplog.text
    assert stream.status.state is StreamState.CONNECTED


# --- credentials -----------------------------------------------------------------------


async def test_update_credentials_replaces_the_live_session(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A new id token before expiry: the old session closes cleanly, a new one logs in."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    await stream.update_credentials(broker.accounts.issue("id-token-2"))
    await recorder.until_state(StreamState.CONNECTED, count=2)

    assert recorder.states == [
        StreamState.CONNECTING,
        StreamState.CONNECTED,
        StreamState.CONNECTING,
        StreamState.CONNECTED,
    ]
    assert broker.accounts.passwords == ["id-token-1", "id-token-2"]
    assert [d.reason for d in stream.recent_disconnects] == ["reconnecting with new credentials"]
    assert len(broker.broker.sessions()) == 1

    # The same token again changes nothing.
    await stream.update_credentials("id-token-2")
    assert stream.connection_attempts == 2


async def test_update_credentials_before_start_is_used_by_start(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Credentials handed over before start() are the ones the first login uses."""
    stream = make_stream(broker.port, "stale-token")
    await stream.update_credentials(broker.accounts.issue("fresh-token"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)
    assert broker.accounts.passwords == ["fresh-token"]


async def test_refused_credentials_wait_for_new_ones(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A garbage token is refused once; no reconnect storm until new credentials arrive."""
    stream = make_stream(broker.port, "garbage")
    await stream.start()
    refused = await recorder.until_state(StreamState.REFUSED)

    assert refused.reason is not None
    assert "bad user name or password" in refused.reason
    assert refused.refusal is StreamRefusal.BAD_CREDENTIALS
    # Twenty times the initial backoff: a retrying client would have tried again by now.
    await asyncio.sleep(FAST.initial_delay * 20)
    assert stream.connection_attempts == 1
    assert broker.accounts.passwords == ["garbage"]

    await stream.start()  # start() of a refused stream retries the same credentials
    await recorder.until_state(StreamState.REFUSED, count=2)
    assert stream.connection_attempts == 2

    await stream.update_credentials(broker.accounts.issue("id-token-1"))
    await recorder.until_state(StreamState.CONNECTED)
    assert stream.connection_attempts == 3


async def test_not_authorized_right_after_a_drop_is_retried_once(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """BMW may answer rc 5 just after a drop with a valid token: one retry, then REFUSED."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    broker.accounts.forced_codes = [5, 5]
    await broker.broker.drop_all()
    refused = await recorder.until_state(StreamState.REFUSED)

    assert refused.reason is not None
    assert "not authorized" in refused.reason
    assert refused.refusal is StreamRefusal.NOT_AUTHORIZED
    assert stream.connection_attempts == 3
    assert recorder.states[-3:] == [
        StreamState.DISCONNECTED,
        StreamState.CONNECTING,
        StreamState.REFUSED,
    ]


async def test_not_authorized_on_first_login_is_refused_at_once(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Without a recent drop, rc 5 means the client id lacks CarData Stream: no retry."""
    broker.accounts.forced_codes = [5]
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    refused = await recorder.until_state(StreamState.REFUSED)
    assert refused.reason is not None
    assert "not subscribed to CarData Stream" in refused.reason
    assert refused.refusal is StreamRefusal.NOT_AUTHORIZED
    assert stream.connection_attempts == 1


async def test_server_unavailable_is_retried(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A CONNACK refusal that is not about the credentials is retried with backoff."""
    broker.accounts.forced_codes = [3]
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    assert recorder.states == [
        StreamState.CONNECTING,
        StreamState.DISCONNECTED,
        StreamState.CONNECTING,
        StreamState.CONNECTED,
    ]
    assert recorder.statuses[1].reason == "broker refused the connection: server unavailable"


async def test_refused_subscription_stops_until_new_credentials(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """SUBACK 0x80: REFUSED with the reason; no retry with the same credentials."""
    broker.accounts.granted_gcid = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    refused = await recorder.until_state(StreamState.REFUSED)

    assert refused.reason == f"not authorized to subscribe to {GCID}/+"
    assert refused.refusal is StreamRefusal.SUBSCRIPTION_REFUSED
    assert StreamState.CONNECTED not in recorder.states
    await asyncio.sleep(FAST.initial_delay * 20)
    assert stream.connection_attempts == 1

    broker.accounts.granted_gcid = GCID
    await stream.update_credentials(broker.accounts.issue("id-token-2"))
    await recorder.until_state(StreamState.CONNECTED)


async def test_refused_subscription_while_the_broker_keeps_the_connection(
    tls: TlsMaterial, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A broker that refuses the filter but stays connected is left by the client."""
    client_left = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_session(reader, writer, suback=0x80)
        await serve_until_closed(reader, writer)
        client_left.set()

    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token")
        await stream.start()
        refused = await recorder.until_state(StreamState.REFUSED)
        async with asyncio.timeout(5):
            await client_left.wait()

    assert refused.reason == f"not authorized to subscribe to {GCID}/+"
    assert refused.refusal is StreamRefusal.SUBSCRIPTION_REFUSED
    assert stream.connection_attempts == 1


# --- connection loss, backoff and take-over ----------------------------------------------


async def test_broker_drop_reconnects(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A dropped connection is reported and re-established with the same token."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    await broker.broker.drop_all()
    await recorder.until_state(StreamState.CONNECTED, count=2)

    assert recorder.states == [
        StreamState.CONNECTING,
        StreamState.CONNECTED,
        StreamState.DISCONNECTED,
        StreamState.CONNECTING,
        StreamState.CONNECTED,
    ]
    assert recorder.statuses[2].reason == "connection closed by the broker"
    [disconnect] = stream.recent_disconnects
    assert disconnect.reason == "connection closed by the broker"
    assert disconnect.at <= datetime.now(UTC)

    broker.publish({SOC: point(70)})
    await recorder.until(lambda: len(recorder.messages) == 1)


async def test_broker_restart_is_survived(
    broker: InProcessBroker,
    make_stream: StreamFactory,
    recorder: Recorder,
    tls: TlsMaterial,
) -> None:
    """BMW's broker goes away for a while and comes back on the same port: the client retries
    until it answers, logs in and subscribes again, and messages flow once more."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    await broker.broker.stop()
    # Retries meet a closed port for a while: several disconnects before the broker is back.
    await recorder.until_state(StreamState.DISCONNECTED, count=3)
    restarted = Broker(
        host="127.0.0.1",
        port=broker.port,
        ssl_context=tls.server_context,
        clock=broker.clock,
        login=broker.accounts.login,
        allowed_vins=lambda gcid: {VIN},
        quirks=StreamQuirks(),
    )
    assert await restarted.start() == broker.port
    try:
        await recorder.until_state(StreamState.CONNECTED, count=2)
        restarted.publish(GCID, VIN, {SOC: point(71)})
        await recorder.until(lambda: len(recorder.messages) == 1)
        assert recorder.messages[0].updates[SOC].value == 71
    finally:
        await stream.stop()
        await restarted.stop()


async def test_unreachable_broker_is_retried_with_growing_delays(
    make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Connection errors are reported and retried with exponential backoff."""
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()

    policy = ReconnectPolicy(initial_delay=0.02, max_delay=0.08, jitter=0.0)
    stream = make_stream(port, "id-token", reconnect_policy=policy)
    await stream.start()
    await recorder.until_state(StreamState.DISCONNECTED, count=5)
    await stream.stop()

    reasons = {s.reason for s in recorder.statuses if s.state is StreamState.DISCONNECTED}
    assert len(reasons) == 1
    assert reasons.pop().startswith("cannot connect: ")
    connecting = [s.since for s in recorder.statuses if s.state is StreamState.CONNECTING]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(connecting)]
    # 0.02, 0.04, 0.08, 0.08: doubling up to the cap.
    assert gaps[0] >= 0.02
    assert gaps[1] >= 0.04
    assert gaps[2] >= 0.08
    assert gaps[3] >= 0.08
    assert recorder.states[-1] is StreamState.STOPPED


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    """1 s doubling to 5 min, spread by +/- 20 %."""
    policy = ReconnectPolicy()
    for failures, base in ((1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (50, 300.0)):
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(base * 0.8 <= delay <= base * 1.2 for delay in delays)
        assert len(set(delays)) > 1
    assert ReconnectPolicy(jitter=0.0).delay(0) == 1.0


async def test_untrusted_certificate_is_a_connection_error(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """The caller's SSL context decides trust; a failed handshake is retried, not fatal."""
    stream = make_stream(
        broker.port, broker.accounts.issue("id-token-1"), ssl_context=ssl.create_default_context()
    )
    await stream.start()
    disconnected = await recorder.until_state(StreamState.DISCONNECTED)
    assert disconnected.reason is not None
    assert "certificate verify failed" in disconnected.reason
    assert broker.accounts.passwords == []


async def test_another_client_taking_the_connection_is_reported(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Sessions evicted right after login, again and again: TAKEN_OVER, no more fighting."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    rival_recorder = Recorder()
    rival = make_stream(
        broker.port,
        broker.accounts.issue("rival-token"),
        client_id="another-bmw-tool",
        on_status=rival_recorder.on_status,
        on_message=rival_recorder.on_message,
        reconnect_policy=ReconnectPolicy(initial_delay=0.01, max_delay=0.01, takeover_sessions=99),
    )
    await rival.start()
    taken_over = await recorder.until_state(StreamState.TAKEN_OVER)

    assert taken_over.reason is not None
    assert "another client" in taken_over.reason
    attempts = stream.connection_attempts
    # Our first session counts too: it was evicted within `short_session` of its login.
    assert attempts == FAST.takeover_sessions
    # The rival keeps its connection; ours stays down.
    await rival_recorder.until(
        lambda: rival.status.state is StreamState.CONNECTED and len(broker.broker.sessions()) == 1
    )
    assert broker.broker.sessions()[0]["client_id"] == "another-bmw-tool"
    assert stream.connection_attempts == attempts

    await rival.stop()
    await stream.start()  # the user asked to try again
    await recorder.until(lambda: stream.status.state is StreamState.CONNECTED)
    assert broker.broker.sessions()[0]["client_id"] == stream.client_id


async def test_a_long_session_resets_the_take_over_count(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Only short sessions in a row count; one that lived starts the count again."""
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.01, short_session=0.3)
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"), reconnect_policy=policy)
    await stream.start()
    for drop in range(1, 3):
        await recorder.until_state(StreamState.CONNECTED, count=drop)
        await broker.broker.drop_all()
    await recorder.until_state(StreamState.CONNECTED, count=3)
    # The third session outlives `short_session`; the next two drops are not a take-over.
    await asyncio.sleep(policy.short_session)
    for drop in range(3, 5):
        await broker.broker.drop_all()
        await recorder.until_state(StreamState.CONNECTED, count=drop + 1)
    assert StreamState.TAKEN_OVER not in recorder.states


async def test_new_credentials_during_the_handshake_are_used(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """update_credentials() while the executor connects: that session is replaced."""
    async with gated_proxy(broker.port, recorder) as proxy:
        stream = make_stream(proxy.port, broker.accounts.issue("id-token-1"))
        await stream.start()
        await recorder.until(lambda: proxy.held == 1)

        await stream.update_credentials(broker.accounts.issue("id-token-2"))
        proxy.gate.set()
        await recorder.until_state(StreamState.CONNECTED)

        assert broker.accounts.passwords[-1] == "id-token-2"
        assert stream.connection_attempts == 2
        assert [d.reason for d in stream.recent_disconnects] == [
            "reconnecting with new credentials"
        ]
        assert len(broker.broker.sessions()) == 1


async def test_stop_during_a_handshake_that_succeeds(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """stop() while connecting: once the connect returns, the session is closed at once."""
    async with gated_proxy(broker.port, recorder) as proxy:
        stream = make_stream(proxy.port, broker.accounts.issue("id-token-1"))
        await stream.start()
        await recorder.until(lambda: proxy.held == 1)
        session = stream._session
        assert session is not None

        stopping = asyncio.create_task(stream.stop())
        await asyncio.sleep(0)
        assert not stopping.done()
        proxy.gate.set()
        await stopping

        assert session.handed_over
        assert session.reader_fd is None
        assert session.writer_fd is None
        assert session.misc_timer is None
        sock = session.client.socket()
        assert sock is None or sock.fileno() == -1
        assert StreamState.CONNECTED not in recorder.states
        assert stream.status.state is StreamState.STOPPED
        assert stream.connection_attempts == 1


async def test_new_credentials_cut_a_backoff_short(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Waiting out a long backoff: update_credentials() reconnects at once."""
    policy = ReconnectPolicy(initial_delay=60.0, jitter=0.0)
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"), reconnect_policy=policy)
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)
    await broker.broker.drop_all()
    await recorder.until_state(StreamState.DISCONNECTED)

    await stream.update_credentials(broker.accounts.issue("id-token-2"))
    await recorder.until_state(StreamState.CONNECTED, count=2)
    assert broker.accounts.passwords == ["id-token-1", "id-token-2"]


async def test_a_burst_of_messages_is_read_completely(
    tls: TlsMaterial, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Messages TLS has already decrypted are read too, not left until the next packet.

    Hundreds of messages in a few TLS records: the socket turns readable once per record,
    but each record holds many messages.
    """
    burst = 400

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_session(reader, writer)
        writer.write(
            b"".join(
                encode_publish(
                    f"{GCID}/{VIN}",
                    json.dumps({"vin": VIN, "data": {SOC: {"value": value}}}).encode(),
                    qos=1,
                    packet_id=value + 1,
                )
                for value in range(burst)
            )
        )
        await serve_until_closed(reader, writer)

    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token")
        await stream.start()
        await recorder.until(lambda: len(recorder.messages) == burst)
        await stream.stop()

    assert [m.updates[SOC].value for m in recorder.messages] == list(range(burst))
    assert stream.messages_received == burst


async def test_a_failing_status_handler_does_not_stop_the_stream(
    broker: InProcessBroker,
    make_stream: StreamFactory,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception in on_status is logged; the stream still connects."""

    def explode(status: StreamStatus) -> None:
        recorder.on_status(status)
        raise RuntimeError("handler bug")

    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"), on_status=explode)
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)
    assert "Error handling a CarData stream status change" in caplog.text


async def test_connection_closed_before_connack_is_retried(
    tls: TlsMaterial, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A broker hanging up on the CONNECT: DISCONNECTED with the reason, then a retry."""
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        recorder.notify()
        await read_packet(reader)
        if connections > 1:
            writer.write(encode_connack(0))
            await serve_until_closed(reader, writer)

    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token")
        await stream.start()
        lost = await recorder.until_state(StreamState.DISCONNECTED)
        await recorder.until(lambda: connections == 2)
        await stream.stop()

    assert lost.reason is not None
    assert lost.reason.startswith("connection closed before the broker accepted it")


# --- stopping --------------------------------------------------------------------------


async def test_stop_leaves_nothing_behind(
    tls: TlsMaterial, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """stop(): MQTT DISCONNECT sent, socket closed, reader/writer/timer removed, no task."""
    loop = asyncio.get_running_loop()
    said_goodbye = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_session(reader, writer)
        await serve_until_closed(reader, writer)
        said_goodbye.set()

    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token")
        await stream.start()
        await recorder.until_state(StreamState.CONNECTED)
        session = stream._session
        assert session is not None
        sock = session.client.socket()
        assert sock is not None
        fd = sock.fileno()
        assert fd in registered_fds(loop)

        await stream.stop()

        async with asyncio.timeout(5):
            await said_goodbye.wait()
    assert sock.fileno() == -1
    assert fd not in registered_fds(loop)
    assert session.misc_timer is None
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "cardata stream"]
    assert stream.status.state is StreamState.STOPPED
    assert [d.reason for d in stream.recent_disconnects] == ["stopped"]

    await stream.stop()  # idempotent
    assert recorder.states.count(StreamState.STOPPED) == 1


async def test_stop_while_connecting_waits_for_the_connect(
    make_stream: StreamFactory, recorder: Recorder
) -> None:
    """stop() during the TLS handshake waits for the executor job and leaves no socket."""
    loop = asyncio.get_running_loop()
    peers: list[asyncio.StreamWriter] = []

    def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)  # never answers the TLS ClientHello
        recorder.notify()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    before = registered_fds(loop)
    stream = make_stream(silent.sockets[0].getsockname()[1], "id-token")
    await stream.start()
    await recorder.until(lambda: bool(peers))

    stopping = asyncio.create_task(stream.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # still waiting for the handshake in the executor
    peers[0].close()  # the handshake fails, the executor job returns
    await stopping

    assert stream.status.state is StreamState.STOPPED
    assert registered_fds(loop) <= before | {s.fileno() for s in silent.sockets}
    assert StreamState.CONNECTED not in recorder.states
    silent.close()
    await silent.wait_closed()


async def test_restart_after_stop(
    broker: InProcessBroker, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """A stopped stream can be started again."""
    stream = make_stream(broker.port, broker.accounts.issue("id-token-1"))
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)
    await stream.start()  # already running: nothing happens
    await stream.stop()
    await stream.update_credentials(broker.accounts.issue("id-token-2"))  # stored only
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED, count=2)
    assert broker.accounts.passwords == ["id-token-1", "id-token-2"]


async def test_keepalive_pings_and_a_silent_broker_is_detected(
    tls: TlsMaterial, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """PINGREQ every keepalive; no answer within another keepalive ends the session."""
    pings = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pings
        await accept_session(reader, writer)
        while (await read_packet(reader)).type is PacketType.PINGREQ:
            pings += 1
            recorder.notify()

    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token", keepalive=1)
        await stream.start()
        lost = await recorder.until_state(StreamState.DISCONNECTED)
        await stream.stop()

    assert pings == 1
    assert lost.reason == "no answer from the broker within the keepalive"


async def test_an_unanswered_ping_is_visible_until_the_broker_answers(
    tls: TlsMaterial, make_stream: StreamFactory, recorder: Recorder
) -> None:
    """Time-travelling tests wait on this before a jump, so an answer is never left unread."""
    pings = 0
    answer = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pings
        await accept_session(reader, writer)
        while (await read_packet(reader)).type is PacketType.PINGREQ:
            pings += 1
            recorder.notify()
            await answer.wait()
            writer.write(encode_pingresp())
            await writer.drain()

    async with scripted_broker(tls, script) as port:
        stream = make_stream(port, "id-token", keepalive=1)
        assert not stream.awaiting_ping_response
        await stream.start()
        await recorder.until_state(StreamState.CONNECTED)
        await recorder.until(lambda: pings == 1)
        assert stream.awaiting_ping_response
        answer.set()
        async with asyncio.timeout(5):
            # Reading a PINGRESP calls back nothing, so there is no event to wait on.
            while stream.awaiting_ping_response:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert stream.status.state is StreamState.CONNECTED
        await stream.stop()

    assert not stream.awaiting_ping_response


# --- against the BMW simulator (its own process, OAuth included) ---------------------------


@dataclass
class SimAccount:
    """Tokens for account "main" from the simulator's device flow."""

    auth: GcdmAuth
    tokens: TokenSet
    ssl_context: ssl.SSLContext


@pytest.fixture
async def sim_account(socket_enabled: None, sim: SimulatorHandle) -> AsyncIterator[SimAccount]:
    """Log in through GCDM's device flow the way the integration does."""
    async with aiohttp.ClientSession() as session:
        auth = GcdmAuth(session, sim.client_id, base_url=sim.gcdm_url)
        device = await auth.request_device_code()
        await sim.approve(device.user_code)
        outcome = await auth.poll_token(device)
        assert isinstance(outcome, TokenGranted)
        yield SimAccount(auth, outcome.tokens, ssl.create_default_context(cafile=sim.ca_file))


@pytest.fixture
def sim_stream(
    sim: SimulatorHandle, sim_account: SimAccount, make_stream: StreamFactory
) -> Callable[..., CarDataStream]:
    """A stream to the simulator's broker with account "main"'s id token."""

    def factory(id_token: str | None = None, **kwargs: Any) -> CarDataStream:
        options: dict[str, Any] = {
            "host": sim.mqtt_host,
            "gcid": sim_account.tokens.gcid,
            "ssl_context": sim_account.ssl_context,
        }
        options.update(kwargs)
        return make_stream(sim.mqtt_port, id_token or sim_account.tokens.id_token, **options)

    return factory


async def test_sim_login_and_live_messages(
    sim: SimulatorHandle, sim_stream: Callable[..., CarDataStream], recorder: Recorder
) -> None:
    """Logged in with the device flow's id token, the car's values arrive as they change."""
    stream = sim_stream()
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)
    [session] = await sim.stream_sessions()
    assert session["client_id"] == stream.client_id
    assert session["subscriptions"] == [f"{sim.gcid}/+"]

    await sim.set_telematics(
        VIN, {SOC: {"value": 77.5, "unit": "percent"}, CHARGING_STATUS: "CHARGINGACTIVE"}
    )
    await recorder.until(lambda: len(recorder.messages) == 2)

    by_descriptor = {d: m for m in recorder.messages for d in m.updates}
    assert by_descriptor[SOC].vin == VIN
    assert by_descriptor[SOC].gcid == sim.gcid
    assert by_descriptor[SOC].updates[SOC].value == 77.5
    assert by_descriptor[SOC].updates[SOC].unit == "percent"
    assert by_descriptor[CHARGING_STATUS].updates[CHARGING_STATUS].value == "CHARGINGACTIVE"
    assert recorder.callback_threads == {threading.get_ident()}


async def test_sim_token_expiry_then_refreshed_token_reconnects(
    sim: SimulatorHandle,
    sim_account: SimAccount,
    sim_stream: Callable[..., CarDataStream],
    recorder: Recorder,
) -> None:
    """An hour on: BMW closes the stream, the old token is refused; a refreshed one works."""
    stream = sim_stream()
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    await sim.advance(TOKEN_LIFETIME)
    disconnected = await recorder.until_state(StreamState.DISCONNECTED)
    refused = await recorder.until_state(StreamState.REFUSED)
    assert disconnected.reason == "connection closed by the broker"
    assert refused.reason is not None
    assert "bad user name or password" in refused.reason
    assert refused.refusal is StreamRefusal.BAD_CREDENTIALS
    assert stream.connection_attempts == 2

    refreshed = await sim_account.auth.refresh(sim_account.tokens)
    await stream.update_credentials(refreshed.id_token)
    await recorder.until_state(StreamState.CONNECTED, count=2)
    assert stream.connection_attempts == 3

    await sim.set_telematics(VIN, {SOC: 42})
    await recorder.until(lambda: len(recorder.messages) == 1)


async def test_sim_dropped_stream_comes_back(
    sim: SimulatorHandle, sim_stream: Callable[..., CarDataStream], recorder: Recorder
) -> None:
    """A broker restart at BMW: DISCONNECTED, then back after the backoff, same token."""
    stream = sim_stream()
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    await sim.drop_stream()
    await recorder.until_state(StreamState.CONNECTED, count=2)

    assert recorder.states[2:] == [
        StreamState.DISCONNECTED,
        StreamState.CONNECTING,
        StreamState.CONNECTED,
    ]
    assert [d.reason for d in stream.recent_disconnects] == ["connection closed by the broker"]
    await sim.set_telematics(VIN, {SOC: 43})
    await recorder.until(lambda: len(recorder.messages) == 1)


async def test_sim_second_client_on_the_account_means_taken_over(
    sim: SimulatorHandle,
    sim_stream: Callable[..., CarDataStream],
    recorder: Recorder,
) -> None:
    """Another tool logging in with the same account again and again: TAKEN_OVER."""
    stream = sim_stream()
    await stream.start()
    await recorder.until_state(StreamState.CONNECTED)

    rival_recorder = Recorder()
    rival = sim_stream(
        client_id="other-bmw-bridge",
        on_status=rival_recorder.on_status,
        on_message=rival_recorder.on_message,
        reconnect_policy=ReconnectPolicy(initial_delay=0.01, max_delay=0.01, takeover_sessions=99),
    )
    await rival.start()
    taken_over = await recorder.until_state(StreamState.TAKEN_OVER)

    assert taken_over.reason is not None
    assert "another client" in taken_over.reason
    await rival_recorder.until(lambda: rival.status.state is StreamState.CONNECTED)
    [session] = await sim.stream_sessions()
    assert session["client_id"] == "other-bmw-bridge"


async def test_sim_garbage_token_is_refused_without_retries(
    sim: SimulatorHandle, sim_stream: Callable[..., CarDataStream], recorder: Recorder
) -> None:
    """A token BMW never issued: REFUSED after one attempt, nothing connected."""
    stream = sim_stream(id_token="not-a-token")
    await stream.start()
    refused = await recorder.until_state(StreamState.REFUSED)
    assert refused.reason is not None
    assert "bad user name or password" in refused.reason
    assert refused.refusal is StreamRefusal.BAD_CREDENTIALS
    await asyncio.sleep(FAST.initial_delay * 20)
    assert stream.connection_attempts == 1
    assert await sim.stream_sessions() == []


async def test_sim_client_without_stream_subscription_is_refused(
    sim: SimulatorHandle, sim_stream: Callable[..., CarDataStream], recorder: Recorder
) -> None:
    """The client id lost its CarData Stream subscription: rc 5, REFUSED with a hint."""
    await sim.set_subscriptions(sim.client_id, stream=False)
    stream = sim_stream()
    await stream.start()
    refused = await recorder.until_state(StreamState.REFUSED)
    assert refused.reason is not None
    assert "not subscribed to CarData Stream" in refused.reason
    assert refused.refusal is StreamRefusal.NOT_AUTHORIZED
    assert stream.connection_attempts == 1


# --- parsing ---------------------------------------------------------------------------


def test_parse_uses_the_topic_when_the_payload_lacks_vin_and_gcid() -> None:
    """`<gcid>/<vin>` fills in what the payload leaves out."""
    message = parse_stream_message(
        f"{GCID}/{VIN}", json.dumps({"data": {SOC: {"value": "55.5", "unit": "%"}}}).encode()
    )
    assert message.vin == VIN
    assert message.gcid == GCID
    assert message.timestamp is None
    assert message.updates[SOC].value == 55.5
    assert message.updates[SOC].raw_value == "55.5"


@pytest.mark.parametrize(
    "payload",
    [b"", b"null", b'"text"', b'{"vin": "X", "data": "nope"}', b'{"data": {}}'],
)
def test_parse_rejects_what_is_not_a_message(payload: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        parse_stream_message(f"{GCID}/{VIN}", payload)


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    """Streams must not start threads of their own (the executor's are the loop's)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    strays = [
        t
        for t in threading.enumerate()
        if t.ident not in before
        and not t.name.startswith(("asyncio_", "ThreadPoolExecutor", "SyncWorker"))
    ]
    assert not strays
