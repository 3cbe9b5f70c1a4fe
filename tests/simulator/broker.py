"""BMW's CarData stream: a small MQTT 3.1.1 broker over TLS with BMW's rules (spec §3, §5).

A general-purpose broker cannot play BMW: the login is a GCID plus an id token that expires on the
simulator's clock, only ONE connection per GCID may exist (a new login evicts the old one),
subscriptions are limited to `<gcid>/+` and `<gcid>/<vin>` and a refused filter costs the whole
connection, and clients may only read. So this one is purpose-built. Publishing is synchronous
and must happen on the broker's event loop (the simulator's control API and scenarios run there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any, Protocol

from .clock import iso_millis
from .mqtt_codec import (
    SUBACK_FAILURE,
    ConnackCode,
    ConnectPacket,
    MalformedPacketError,
    Packet,
    PacketType,
    UnsupportedProtocolError,
    encode_connack,
    encode_pingresp,
    encode_publish,
    encode_suback,
    encode_unsuback,
    parse_connect,
    parse_packet_id,
    parse_subscribe,
    parse_unsubscribe,
    read_packet,
)
from .tls import screen_client_hello

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from .clock import SimClock
    from .points import TelematicPoint
    from .quirks import StreamQuirks

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds a new connection gets to send its CONNECT
EXPIRY_CHECK_INTERVAL = 0.5  # real seconds between id-token expiry checks
KEEPALIVE_GRACE = 1.5  # MQTT 3.1.1 §3.1.2.10: close after 1.5 x keepalive without a packet
SSL_SHUTDOWN_TIMEOUT = 2.0  # a peer that never answers close_notify is cut off after this
MAX_WRITE_BUFFER = 8 << 20  # a subscriber this far behind is dropped rather than buffered forever


class LoginResult(Protocol):
    """What the simulator's `login` returns (`state.StreamLogin`)."""

    return_code: int  # 0 accepted, 4 bad user name or password, 5 not authorized
    gcid: str | None
    expires_at: float | None  # id token expiry as a sim-clock timestamp


class _Connection:
    """One client connection, before and after its login."""

    def __init__(self, writer: asyncio.StreamWriter, task: asyncio.Task[Any] | None) -> None:
        self.writer = writer
        self.task = task
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.gcid: str | None = None
        self.client_id = ""
        self.keepalive = 0
        self.expires_at: float | None = None
        self.connected_since: datetime | None = None
        self.subscriptions: dict[str, int] = {}
        self.inflight: dict[int, bytes] = {}
        self.closing = False
        self._last_packet_id = 0

    def send(self, data: bytes) -> None:
        """Queue bytes for the client; drop a client that stopped reading."""
        if self.closing:
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close("client does not read its messages")

    def close(self, reason: str) -> None:
        """End the connection: flush what is queued, close TLS, stop the connection's task."""
        if self.closing:
            return
        self.closing = True
        _LOGGER.debug("Closing stream connection %s (%s): %s", self.peer, self.gcid, reason)
        # Closing the writer still sends what is queued (a CONNACK or SUBACK the client should
        # see before the connection goes) ahead of TLS close_notify.
        self.writer.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    def next_packet_id(self) -> int:
        """A packet id not awaiting a PUBACK."""
        if len(self.inflight) >= 0xFFFF:
            # Never acknowledged: forget the oldest rather than run out of identifiers.
            del self.inflight[next(iter(self.inflight))]
        while True:
            self._last_packet_id = self._last_packet_id % 0xFFFF + 1
            if self._last_packet_id not in self.inflight:
                return self._last_packet_id

    def delivery_qos(self, gcid: str, vin: str) -> int | None:
        """The QoS a message on `<gcid>/<vin>` goes out with, None when no filter matches."""
        granted = [
            qos
            for topic_filter, qos in self.subscriptions.items()
            if topic_filter in (f"{gcid}/+", f"{gcid}/{vin}")
        ]
        return max(granted) if granted else None


class Broker:
    """The CarData streaming endpoint."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        clock: SimClock,
        login: Callable[[str, str], LoginResult],
        allowed_vins: Callable[[str], set[str]],
        quirks: StreamQuirks,
    ) -> None:
        """Configure; nothing listens until start()."""
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._clock = clock
        self._login = login
        self._allowed_vins = allowed_vins
        self._quirks = quirks
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Every accepted socket's task, with its connection once TLS is up.
        self._tasks: dict[asyncio.Task[None], _Connection | None] = {}
        self._handshaking: set[asyncio.Task[None]] = set()
        # Handshakes to close as soon as they complete (dropped while in progress).
        self._doomed: set[asyncio.Task[None]] = set()
        self._sessions: dict[str, _Connection] = {}  # logged in, by GCID: one each
        self._expiry_task: asyncio.Task[None] | None = None
        self._remove_clock_listener: Callable[[], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen; returns the bound port (a free one when configured with 0)."""
        self._loop = loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        family, kind, proto, _, address = (
            await loop.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        )[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(100)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._accept_task = loop.create_task(
            self._accept_loop(listener), name="cardata simulator: stream accept"
        )
        self._remove_clock_listener = self._clock.add_listener(self._on_clock_jump)
        self._expiry_task = loop.create_task(
            self._watch_expiry(), name="cardata simulator: stream token expiry"
        )
        port: int = listener.getsockname()[1]
        _LOGGER.debug("Stream broker listening on %s:%s", self._host, port)
        return port

    async def stop(self) -> None:
        """Stop listening and end every connection; returns when all of them are gone."""
        if self._listener is None:
            return
        listener, self._listener = self._listener, None
        for task in (self._accept_task, self._expiry_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._accept_task = self._expiry_task = None
        listener.close()
        if self._remove_clock_listener is not None:
            self._remove_clock_listener()
            self._remove_clock_listener = None
        await self.drop_all()

    async def drop_all(self) -> None:
        """Close every connection, as a broker restart at BMW would; wait until they are gone."""
        tasks = list(self._tasks.items())
        for task, connection in tasks:
            if connection is not None:
                connection.close("dropped by the simulator")
            elif task in self._handshaking:
                # Cancelling mid-handshake would leave asyncio's TLS transport to time out on
                # its own; let the handshake finish and close the connection properly.
                self._doomed.add(task)
            else:
                task.cancel()  # still waiting for a ClientHello
        if tasks:
            await asyncio.wait([task for task, _ in tasks])

    def evict(self, gcid: str) -> None:
        """Close the GCID's connection, as when another client logs in with the same account."""
        if (connection := self._sessions.get(gcid)) is not None:
            connection.close("evicted")

    def sessions(self) -> list[dict[str, Any]]:
        """The logged-in connections (JSON-ready, for the control API)."""
        return [
            {
                "gcid": gcid,
                "client_id": connection.client_id,
                "subscriptions": sorted(connection.subscriptions),
                "connected_since": iso_millis(connection.connected_since),
            }
            for gcid, connection in self._sessions.items()
            if not connection.closing and connection.connected_since is not None
        ]

    # --- publishing --------------------------------------------------------------------------

    def publish(self, gcid: str, vin: str, points: Mapping[str, TelematicPoint]) -> None:
        """Send telematics of `vin` to the GCID's subscriber, shaped and bent as BMW does."""
        connection = self._sessions.get(gcid)
        if not points or connection is None or connection.closing:
            return
        qos = connection.delivery_qos(gcid, vin)
        if qos is None or vin not in self._allowed_vins(gcid):
            return
        now = self._clock.now()
        topic = f"{gcid}/{vin}"
        for data in self._quirks.messages(points, now):
            envelope = {
                "vin": vin,
                "entityId": gcid,
                "topic": vin,
                "timestamp": iso_millis(now),
                "data": data,
            }
            payload = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
            self._deliver(connection, topic, payload, qos)

    def _deliver(self, connection: _Connection, topic: str, payload: bytes, qos: int) -> None:
        if qos == 0:
            connection.send(encode_publish(topic, payload))
            return
        packet_id = connection.next_packet_id()
        connection.inflight[packet_id] = payload
        connection.send(encode_publish(topic, payload, qos=1, packet_id=packet_id))

    # --- token expiry ------------------------------------------------------------------------

    def _on_clock_jump(self) -> None:
        """Clock listener: a jump past a token's expiry closes the connection at once."""
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._close_expired()
        else:
            self._loop.call_soon_threadsafe(self._close_expired)

    async def _watch_expiry(self) -> None:
        """Expiry also comes by itself as real time passes."""
        while True:
            await asyncio.sleep(EXPIRY_CHECK_INTERVAL)
            self._close_expired()

    def _close_expired(self) -> None:
        now = self._clock.timestamp()
        for connection in list(self._sessions.values()):
            if connection.expires_at is not None and connection.expires_at <= now:
                connection.close("id token expired")

    # --- one connection ----------------------------------------------------------------------

    async def _accept_loop(self, listener: socket.socket) -> None:
        assert self._loop is not None
        while True:
            try:
                client, _ = await self._loop.sock_accept(listener)
            except OSError as err:
                # Out of file descriptors and the like: keep serving who is connected.
                _LOGGER.warning("Stream broker cannot accept a connection: %s", err)
                await asyncio.sleep(0.1)
                continue
            task = self._loop.create_task(
                self._serve_socket(client), name="cardata simulator: stream connection"
            )
            self._tasks[task] = None
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._doomed.discard(task)

    async def _serve_socket(self, client: socket.socket) -> None:
        """Screen the ClientHello, do the TLS handshake and serve MQTT."""
        assert self._loop is not None
        handed_over = False
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if not await screen_client_hello(client):
                    return
                reader = asyncio.StreamReader()
                protocol = asyncio.StreamReaderProtocol(reader)
                # From here on the socket belongs to asyncio's transport, even if this fails.
                handed_over = True
                task = asyncio.current_task()
                assert task is not None
                self._handshaking.add(task)
                try:
                    transport, _ = await self._loop.connect_accepted_socket(
                        lambda: protocol,
                        client,
                        ssl=self._ssl_context,
                        ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT,
                    )
                finally:
                    self._handshaking.discard(task)
        except (OSError, TimeoutError) as err:
            # Failed handshakes are the client's business (wrong CA, gave up); BMW stays quiet.
            _LOGGER.debug("Stream TLS handshake failed: %r", err)
            return
        finally:
            if not handed_over:
                client.close()
        writer = asyncio.StreamWriter(transport, protocol, reader, self._loop)
        await self._handle_connection(reader, writer)

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        connection = _Connection(writer, task)
        if task is not None:
            self._tasks[task] = connection
            if task in self._doomed:
                connection.close("dropped by the simulator")
        try:
            await self._serve(connection, reader)
        except asyncio.CancelledError:
            # close() cancels the task of a connection it ends from outside (eviction, expiry,
            # drop); anything else cancelling us must propagate.
            if not connection.closing:
                raise
            if task is not None:
                task.uncancel()
        except (OSError, asyncio.IncompleteReadError) as err:
            _LOGGER.debug("Stream connection %s lost: %r", connection.peer, err)
        except MalformedPacketError as err:
            _LOGGER.debug("Malformed packet from %s: %s", connection.peer, err)
        except TimeoutError:
            _LOGGER.debug("Stream connection %s timed out", connection.peer)
        finally:
            self._forget(connection)
            connection.close("connection ended")
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(SSL_SHUTDOWN_TIMEOUT + 1):
                    await writer.wait_closed()

    def _forget(self, connection: _Connection) -> None:
        if connection.gcid is not None and self._sessions.get(connection.gcid) is connection:
            del self._sessions[connection.gcid]

    async def _serve(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        if connection.closing:
            return
        async with asyncio.timeout(CONNECT_TIMEOUT):
            first = await read_packet(reader)
        if first.type is not PacketType.CONNECT:
            connection.close(f"{first.type.name} before CONNECT")
            return
        try:
            connect = parse_connect(first.body)
        except UnsupportedProtocolError as err:
            connection.send(encode_connack(ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION))
            connection.close(f"unsupported {err}")
            return
        if not self._accept_login(connection, connect):
            return

        while not connection.closing:
            timeout = connection.keepalive * KEEPALIVE_GRACE if connection.keepalive else None
            try:
                async with asyncio.timeout(timeout):
                    packet = await read_packet(reader)
            except TimeoutError:
                connection.close("keepalive timeout")
                return
            self._dispatch(connection, packet)

    def _accept_login(self, connection: _Connection, connect: ConnectPacket) -> bool:
        """Check the credentials, evict the GCID's older connection and send the CONNACK."""
        code = self._check_credentials(connect)
        result: LoginResult | None = None
        if code is ConnackCode.ACCEPTED:
            result = self._login(connect.username or "", _password_text(connect.password))
            code = self._login_code(result)
        if code is not ConnackCode.ACCEPTED or result is None or result.gcid is None:
            connection.send(encode_connack(code))
            connection.close(f"login refused ({code.name})")
            return False

        gcid = result.gcid
        if (older := self._sessions.get(gcid)) is not None:
            # BMW: one connection per GCID; the newest login wins (spec §3.1).
            older.close(f"evicted by a new login from {connection.peer}")
        connection.gcid = gcid
        connection.client_id = connect.client_id
        connection.keepalive = connect.keepalive
        connection.expires_at = result.expires_at
        connection.connected_since = self._clock.now()
        self._sessions[gcid] = connection
        connection.send(encode_connack(ConnackCode.ACCEPTED))
        _LOGGER.debug(
            "Stream login of %s as %s from %s",
            connect.client_id or "(no id)",
            gcid,
            connection.peer,
        )
        return True

    @staticmethod
    def _check_credentials(connect: ConnectPacket) -> ConnackCode:
        """What MQTT itself decides before the account is asked."""
        if not connect.client_id and not connect.clean_session:
            return ConnackCode.IDENTIFIER_REJECTED
        if not connect.username or not connect.password:
            return ConnackCode.BAD_USERNAME_OR_PASSWORD
        if _password_text(connect.password) == "":
            return ConnackCode.BAD_USERNAME_OR_PASSWORD
        return ConnackCode.ACCEPTED

    def _login_code(self, result: LoginResult) -> ConnackCode:
        """Map the account's verdict; a token already past its expiry is a bad password."""
        try:
            code = ConnackCode(result.return_code)
        except ValueError:
            return ConnackCode.NOT_AUTHORIZED
        if code is ConnackCode.ACCEPTED and result.gcid is None:
            return ConnackCode.NOT_AUTHORIZED
        if (
            code is ConnackCode.ACCEPTED
            and result.expires_at is not None
            and result.expires_at <= self._clock.timestamp()
        ):
            return ConnackCode.BAD_USERNAME_OR_PASSWORD
        return code

    def _dispatch(self, connection: _Connection, packet: Packet) -> None:
        packet_type, body = packet.type, packet.body
        if packet_type is PacketType.SUBSCRIBE:
            self._subscribe(connection, body)
        elif packet_type is PacketType.UNSUBSCRIBE:
            request = parse_unsubscribe(body)
            for topic_filter in request.topics:
                connection.subscriptions.pop(topic_filter, None)
            connection.send(encode_unsuback(request.packet_id))
        elif packet_type is PacketType.PUBACK:
            connection.inflight.pop(parse_packet_id(body), None)
        elif packet_type is PacketType.PINGREQ:
            connection.send(encode_pingresp())
        elif packet_type is PacketType.DISCONNECT:
            connection.close("client disconnected")
        elif packet_type is PacketType.PUBLISH:
            # The stream is read-only for customers.
            connection.close("client tried to publish")
        else:
            connection.close(f"unexpected {packet_type.name}")

    def _subscribe(self, connection: _Connection, body: bytes) -> None:
        request = parse_subscribe(body)
        assert connection.gcid is not None
        allowed = self._allowed_vins(connection.gcid)
        codes: list[int] = []
        for topic_filter, requested in request.topics:
            if _filter_allowed(topic_filter, connection.gcid, allowed):
                granted = min(requested, 1)
                connection.subscriptions[topic_filter] = granted
                codes.append(granted)
            else:
                codes.append(SUBACK_FAILURE)
        connection.send(encode_suback(request.packet_id, codes))
        if SUBACK_FAILURE in codes:
            # BMW answers a forbidden filter and then drops the whole connection (spec §3.1).
            refused = [
                topic
                for (topic, _), code in zip(request.topics, codes, strict=True)
                if code == SUBACK_FAILURE
            ]
            connection.close(f"subscription refused: {refused}")


def _filter_allowed(topic_filter: str, gcid: str, allowed_vins: set[str]) -> bool:
    """Only `<gcid>/+` and `<gcid>/<vin>` of the account's own streamable VINs."""
    prefix, separator, rest = topic_filter.partition("/")
    if prefix != gcid or not separator:
        return False
    return rest == "+" or rest in allowed_vins


def _password_text(password: bytes | None) -> str:
    """The id token as text; an undecodable password cannot be a token."""
    if password is None:
        return ""
    try:
        return password.decode("utf-8")
    except UnicodeDecodeError:
        return ""
