"""BMW CarData's MQTT stream, read with paho-mqtt on the asyncio event loop.

BMW pushes telematics over MQTT 3.1.1 with TLS: user name the GCID, password the id
token (valid one hour), topic `<gcid>/<vin>`. The broker allows one connection per GCID
and closes the session when the id token expires.

paho's socket is driven by the event loop (`add_reader`/`add_writer` and a one-second
`loop_misc` timer); only the blocking connect (TCP and TLS handshake) runs in the default
executor. Every paho callback that fires in the executor hops to the loop, so the
caller's `on_message` and `on_status` always run on the loop's thread.

Each connection attempt uses a fresh paho client bound to a `_Session`, so callbacks of
an old connection can never act on a new one, and a supervisor task decides what to do
when a session ends: reconnect with backoff, wait for new credentials, or give up because
another client keeps taking the account's only connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
import hashlib
import logging
import random
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .models import StreamMessage
from .values import as_str, decode_json

_LOGGER = logging.getLogger(__name__)

DEFAULT_KEEPALIVE = 30
SUBSCRIPTION_QOS = 1
RECENT_DISCONNECTS = 10
# paho's keepalive bookkeeping (PINGREQ, dead-connection detection) runs this often.
MISC_INTERVAL = 1.0
# Bound on packets read per readiness event, so a flood cannot starve the loop.
MAX_READS_PER_EVENT = 100
# How long the connect step (TCP connect) may take before paho gives up.
CONNECT_TIMEOUT = 10.0
# Messages for other topics or vehicles logged (at debug level) before they are only counted.
FOREIGN_MESSAGES_LOGGED = 20


class StreamState(StrEnum):
    """What the stream is doing."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    REFUSED = "refused"
    TAKEN_OVER = "taken_over"
    STOPPED = "stopped"


class StreamRefusal(StrEnum):
    """Why the broker refused us (set with StreamState.REFUSED)."""

    # CONNACK rc 4: the id token is expired, revoked or not BMW's.
    BAD_CREDENTIALS = "bad_credentials"
    # CONNACK rc 5: valid token, but the client id lacks CarData Stream (or BMW is busy).
    NOT_AUTHORIZED = "not_authorized"
    # SUBACK 0x80: the account may not read `<gcid>/+`.
    SUBSCRIPTION_REFUSED = "subscription_refused"


# CONNACK answers that mean "these credentials will not work" (MQTT 3.1.1 rc 4 and 5),
# with what they mean at BMW.
_REFUSED_CREDENTIALS = {
    "Bad user name or password": (
        StreamRefusal.BAD_CREDENTIALS,
        "broker refused the login: bad user name or password (id token expired or invalid)",
    ),
    "Not authorized": (
        StreamRefusal.NOT_AUTHORIZED,
        "broker refused the login: not authorized (client id not subscribed to "
        "CarData Stream, or the account's connection is busy)",
    ),
}


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """The stream's state, why it is in it (text for people), and since when.

    `refusal` says in machine terms why the state is REFUSED (None otherwise).
    """

    state: StreamState
    reason: str | None
    since: datetime
    refusal: StreamRefusal | None = None


@dataclass(frozen=True, slots=True)
class StreamDisconnect:
    """One ended connection, kept for diagnostics."""

    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """When to reconnect, and when to conclude that another client owns the account.

    Delays grow from `initial_delay`, doubling per consecutive failure up to
    `max_delay`, each spread by +/- `jitter` (a fraction) so that many installations
    do not reconnect in step. BMW allows one connection per GCID: when
    `takeover_sessions` sessions in a row are closed by the broker within
    `short_session` seconds of being accepted, someone else is using the account.
    A CONNACK "not authorized" within `short_session` seconds of losing a session is
    retried once, because BMW has been seen refusing a valid token right after a drop.
    """

    initial_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.2
    short_session: float = 10.0
    takeover_sessions: int = 3

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next attempt after `failures` failures in a row."""
        base = min(self.initial_delay * 2.0 ** max(failures - 1, 0), self.max_delay)
        # Jitter only spreads reconnects in time; it needs no cryptographic randomness.
        spread = random.uniform(-self.jitter, self.jitter)  # noqa: S311
        return max(base * (1 + spread), 0.0)


class _EndKind(StrEnum):
    """How a session (or a connection attempt) ended."""

    LOCAL = "local"  # we closed it (stop, new credentials)
    LOST = "lost"  # connect failed, or the broker/network closed it
    REFUSED = "refused"  # the broker refused the credentials or the subscription


@dataclass(frozen=True, slots=True)
class _SessionEnd:
    """The outcome the supervisor acts on."""

    kind: _EndKind
    reason: str
    # Seconds between CONNACK and the end, None if never accepted.
    lasted: float | None = None
    refusal: StreamRefusal | None = None


@dataclass(eq=False, slots=True)
class _Session:
    """One connection attempt: its paho client and the loop resources it holds."""

    client: mqtt.Client
    ended: asyncio.Future[_SessionEnd]
    # True once the executor's connect returned; before that only the executor may
    # touch the client.
    handed_over: bool = False
    reader_fd: int | None = None
    writer_fd: int | None = None
    misc_timer: asyncio.TimerHandle | None = None
    accepted_at: float | None = None
    local_reason: str | None = None
    refusal: StreamRefusal | None = None
    refusal_reason: str | None = None
    connack_failure: str | None = None


class MalformedMessageError(ValueError):
    """A stream payload that is not a CarData message."""


class ForeignMessageError(MalformedMessageError):
    """A message that is not about this account's vehicle on its own topic.

    Its topic is not `<our gcid>/<vin>`, or its payload names another VIN than its topic.
    """


@dataclass(slots=True)
class _Counters:
    """Message statistics for diagnostics."""

    connection_attempts: int = 0
    messages_received: int = 0
    malformed_messages: int = 0
    foreign_messages: int = 0
    last_message_at: datetime | None = None
    recent_disconnects: deque[StreamDisconnect] = field(
        default_factory=lambda: deque(maxlen=RECENT_DISCONNECTS)
    )


def default_client_id(gcid: str) -> str:
    """Return an MQTT client id that is stable per GCID.

    Reusing the id makes the broker drop our own stale session when we reconnect,
    instead of counting it as a second client. 23 characters: the MQTT 3.1.1 limit.
    """
    digest = hashlib.sha256(gcid.encode()).hexdigest()[:12]
    return f"ha-cardata-{digest}"


def redact_vin(vin: str) -> str:
    """Return a VIN shortened to its last four characters, for log lines."""
    return f"…{vin[-4:]}"


def parse_stream_message(topic: str, payload: bytes, *, gcid: str | None = None) -> StreamMessage:
    """Parse one stream payload; raise MalformedMessageError when it is not one.

    The topic must be `<gcid>/<vin>` (with `gcid` the account's, when given), and a VIN
    in the payload (`vin`, `topic`) must be the topic's: otherwise ForeignMessageError.
    The topic fills in a VIN or GCID missing from the payload.
    """
    topic_gcid, _, topic_vin = topic.partition("/")
    if not topic_gcid or not topic_vin or "/" in topic_vin:
        raise ForeignMessageError(f"topic is not <gcid>/<vin> ({len(topic)} characters)")
    if gcid is not None and topic_gcid != gcid:
        raise ForeignMessageError(f"topic of another account (vehicle {redact_vin(topic_vin)})")
    try:
        raw = decode_json(payload, context="a stream message")
    except ValueError as err:
        # json.JSONDecodeError, UnicodeDecodeError and too deep nesting.
        raise MalformedMessageError(str(err)) from err
    if isinstance(raw, Mapping):
        for field_name in ("vin", "topic"):
            named = as_str(raw.get(field_name))
            if named is not None and named != topic_vin:
                raise ForeignMessageError(
                    f"payload names vehicle {redact_vin(named)}, "
                    f"topic vehicle {redact_vin(topic_vin)}"
                )
    try:
        message = StreamMessage.from_json(raw, topic_vin=topic_vin)
    except ValueError as err:
        # StreamMessage's refusals are ValueErrors.
        raise MalformedMessageError(str(err)) from err
    if not message.updates:
        raise MalformedMessageError("stream payload has no data points")
    if message.gcid is None:
        message = replace(message, gcid=topic_gcid)
    return message


class CarDataStream:
    """Keeps one MQTT connection to BMW's stream and delivers its messages.

    `on_message(StreamMessage)` and `on_status(StreamStatus)` are called on the event
    loop's thread. The caller refreshes the id token and hands it over with
    `update_credentials` before the old one expires.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        gcid: str,
        id_token: str,
        ssl_context: ssl.SSLContext,
        on_message: Callable[[StreamMessage], None],
        on_status: Callable[[StreamStatus], None],
        client_id: str | None = None,
        keepalive: int = DEFAULT_KEEPALIVE,
        loop: asyncio.AbstractEventLoop | None = None,
        reconnect_policy: ReconnectPolicy | None = None,
    ) -> None:
        """Prepare the stream; nothing connects before `start()`."""
        self._host = host
        self._port = port
        self._gcid = gcid
        self._id_token = id_token
        self._ssl_context = ssl_context
        self._on_message = on_message
        self._on_status = on_status
        self._client_id = client_id or default_client_id(gcid)
        self._keepalive = keepalive
        self._loop = loop
        self._policy = reconnect_policy or ReconnectPolicy()
        self._topic = f"{gcid}/+"

        self._status = StreamStatus(StreamState.STOPPED, None, datetime.now(UTC))
        self._counters = _Counters()
        self._malformed_logged = False

        self._task: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        # Set while waiting for new credentials or an explicit start().
        self._paused = False
        self._failures = 0
        self._short_sessions = 0
        self._last_loss_at: float | None = None
        self._retried_not_authorized = False
        # Bumped by every resume request, so one that lands while a session is ending
        # is not lost to the pause that session's end would cause.
        self._resumes = 0

    # --- public API -------------------------------------------------------------

    @property
    def status(self) -> StreamStatus:
        """The current status."""
        return self._status

    @property
    def connection_attempts(self) -> int:
        """Connection attempts since the stream was created."""
        return self._counters.connection_attempts

    @property
    def messages_received(self) -> int:
        """Messages received since the stream was created, malformed ones included."""
        return self._counters.messages_received

    @property
    def malformed_messages(self) -> int:
        """Messages that could not be parsed and were dropped."""
        return self._counters.malformed_messages

    @property
    def foreign_messages(self) -> int:
        """Messages dropped because they were not for this account's topic or vehicle."""
        return self._counters.foreign_messages

    @property
    def last_message_at(self) -> datetime | None:
        """When the last message arrived (UTC), None before the first."""
        return self._counters.last_message_at

    @property
    def recent_disconnects(self) -> tuple[StreamDisconnect, ...]:
        """The last few ended connections, oldest first."""
        return tuple(self._counters.recent_disconnects)

    @property
    def client_id(self) -> str:
        """The MQTT client id in use."""
        return self._client_id

    @property
    def awaiting_ping_response(self) -> bool:
        """Whether the broker has yet to answer our keepalive ping.

        In real time the answer comes within milliseconds. Tests that move the clock in
        jumps wait for it before the next jump, as no real minute would pass without it.
        """
        session = self._session
        if session is None or session.ended.done():
            return False
        # paho keeps no public record of an outstanding PINGREQ; `_ping_t` is its own.
        ping_sent_at: float = session.client._ping_t  # noqa: SLF001
        return ping_sent_at > 0

    async def start(self) -> None:
        """Start connecting, or resume after REFUSED / TAKEN_OVER; returns at once."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._stopping = False
        if self._task is not None and not self._task.done():
            if self._paused:
                self._resume()
            return
        self._paused = False
        self._failures = 0
        self._short_sessions = 0
        self._wake.clear()
        self._task = self._loop.create_task(self._supervise(), name="cardata stream")

    async def stop(self) -> None:
        """Close the connection and wait until nothing is left running."""
        self._stopping = True
        self._wake.set()
        if (session := self._session) is not None:
            self._close(session, "stopped")
        if (task := self._task) is not None:
            self._task = None
            # The task may be waiting for the executor's connect: let it finish so
            # that no socket or executor job outlives stop().
            await task
        self._set_status(StreamState.STOPPED, None)

    async def update_credentials(self, id_token: str) -> None:
        """Use a new id token: reconnect with it now (or resume when refused)."""
        if id_token == self._id_token and not self._paused:
            return
        self._id_token = id_token
        if self._task is None or self._task.done() or self._stopping:
            return
        _LOGGER.debug("Reconnecting the stream with new credentials")
        self._resume()

    # --- supervisor ---------------------------------------------------------------

    def _resume(self) -> None:
        """Leave a pause or backoff and (re)connect with the current credentials."""
        self._paused = False
        self._failures = 0
        self._short_sessions = 0
        self._retried_not_authorized = False
        self._resumes += 1
        self._wake.set()
        if (session := self._session) is not None:
            self._close(session, "reconnecting with new credentials")

    async def _supervise(self) -> None:
        """Connect, wait for the session to end, decide what comes next; repeat."""
        while not self._should_stop():
            if self._paused:
                await self._wake.wait()
                self._wake.clear()
                continue
            self._wake.clear()
            resumes = self._resumes
            end = await self._run_session()
            self._counters.recent_disconnects.append(
                StreamDisconnect(datetime.now(UTC), end.reason)
            )
            if self._should_stop():
                break
            if end.kind is _EndKind.LOCAL or self._resumes != resumes:
                # Closed on purpose, or new credentials / start() came meanwhile.
                continue
            if end.kind is _EndKind.REFUSED and not self._retry_refusal(end):
                self._pause(StreamState.REFUSED, end.reason, end.refusal)
                continue
            if self._count_short_session(end):
                self._pause(
                    StreamState.TAKEN_OVER,
                    f"another client is using this account's stream connection "
                    f"({self._short_sessions} sessions closed right after connecting)",
                )
                continue
            self._failures += 1
            delay = self._policy.delay(self._failures)
            _LOGGER.debug("Stream disconnected (%s); retrying in %.1f s", end.reason, delay)
            self._set_status(StreamState.DISCONNECTED, end.reason)
            await self._sleep(delay)
        self._session = None

    def _retry_refusal(self, end: _SessionEnd) -> bool:
        """Whether a refused connect is worth one more try (BMW's transient rc 5)."""
        loop = self._running_loop()
        recently_lost = (
            self._last_loss_at is not None
            and loop.time() - self._last_loss_at < self._policy.short_session
        )
        if (
            end.refusal is StreamRefusal.NOT_AUTHORIZED
            and recently_lost
            and not self._retried_not_authorized
        ):
            self._retried_not_authorized = True
            return True
        return False

    def _count_short_session(self, end: _SessionEnd) -> bool:
        """Track sessions the broker closes right after accepting them.

        Returns True when enough came in a row to conclude another client is
        connected with this account.
        """
        if end.lasted is None:
            return False
        self._last_loss_at = self._running_loop().time()
        if end.lasted >= self._policy.short_session:
            # A session that lived: the next failure starts the backoff afresh.
            self._short_sessions = 0
            self._failures = 0
            self._retried_not_authorized = False
            return False
        self._short_sessions += 1
        return self._short_sessions >= self._policy.takeover_sessions

    def _pause(self, state: StreamState, reason: str, refusal: StreamRefusal | None = None) -> None:
        """Stop reconnecting until update_credentials() or start()."""
        _LOGGER.warning("BMW CarData stream %s: %s", state.value.replace("_", " "), reason)
        self._paused = True
        self._set_status(state, reason, refusal)

    async def _sleep(self, delay: float) -> None:
        """Wait `delay` seconds, or less if stop() or update_credentials() wakes us."""
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _run_session(self) -> _SessionEnd:
        """Connect once and wait until that connection ends."""
        loop = self._running_loop()
        session = self._new_session(loop)
        self._session = session
        self._counters.connection_attempts += 1
        self._set_status(StreamState.CONNECTING, None)
        try:
            result = await loop.run_in_executor(None, self._connect_blocking, session.client)
        except (OSError, ValueError) as err:
            # ssl.SSLError and socket timeouts are OSErrors; ssl.CertificateError
            # (host name mismatch) is a ValueError.
            session.handed_over = True
            self._abort(session, f"cannot connect: {err}")
        else:
            session.handed_over = True
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._abort(session, f"cannot connect: {mqtt.error_string(result)}")
            elif session.local_reason is not None or session.refusal_reason is not None:
                # stop(), new credentials or a refused subscription arrived while
                # the executor was connecting.
                self._close(session, session.local_reason or session.refusal_reason or "")
        try:
            return await session.ended
        finally:
            self._session = None

    def _connect_blocking(self, client: mqtt.Client) -> MQTTErrorCode:
        """Open the TCP connection, run the TLS handshake and send CONNECT (executor)."""
        return client.connect(self._host, self._port, keepalive=self._keepalive)

    def _new_session(self, loop: asyncio.AbstractEventLoop) -> _Session:
        """Create a paho client wired to a new session."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        session = _Session(client=client, ended=loop.create_future())
        client.user_data_set(session)
        client.username_pw_set(self._gcid, self._id_token)
        client.tls_set_context(self._ssl_context)
        client.connect_timeout = CONNECT_TIMEOUT
        if _LOGGER.isEnabledFor(logging.DEBUG):
            # paho's own log (never the password) only when debugging: it reports
            # every connection reset at error level.
            client.enable_logger(_LOGGER.getChild("paho"))
        client.on_socket_open = self._threadsafe(self._on_socket_open)
        client.on_socket_close = self._threadsafe(self._on_socket_close)
        client.on_socket_register_write = self._threadsafe(self._on_socket_register_write)
        client.on_socket_unregister_write = self._threadsafe(self._on_socket_unregister_write)
        client.on_connect = self._threadsafe(self._on_connect)
        client.on_subscribe = self._threadsafe(self._on_subscribe)
        client.on_message = self._threadsafe(self._on_mqtt_message)
        client.on_disconnect = self._threadsafe(self._on_disconnect)
        return session

    # --- closing ------------------------------------------------------------------

    def _close(self, session: _Session, reason: str) -> None:
        """Close a session on purpose (never from inside a paho callback).

        Before the executor hands the connection over, only record the wish: the
        supervisor closes the session when the connect returns.
        """
        if session.local_reason is None:
            session.local_reason = reason
        if not session.handed_over or session.ended.done():
            return
        client = session.client
        client.disconnect()
        # Send the DISCONNECT now: paho then closes the socket and reports the end
        # through our callbacks, all before this returns.
        client.loop_write()
        if not session.ended.done():
            self._abort(session, reason)

    def _abort(self, session: _Session, reason: str) -> None:
        """Drop a connection without the MQTT goodbye and release what it holds."""
        self._release(session)
        if (sock := session.client.socket()) is not None:
            sock.close()
        kind = _EndKind.LOCAL if session.local_reason is not None else _EndKind.LOST
        self._finish(session, _SessionEnd(kind, session.local_reason or reason))

    def _release(self, session: _Session) -> None:
        """Remove the session's reader, writer and timer from the loop."""
        loop = self._running_loop()
        if session.reader_fd is not None:
            loop.remove_reader(session.reader_fd)
            session.reader_fd = None
        if session.writer_fd is not None:
            loop.remove_writer(session.writer_fd)
            session.writer_fd = None
        if session.misc_timer is not None:
            session.misc_timer.cancel()
            session.misc_timer = None

    @staticmethod
    def _finish(session: _Session, end: _SessionEnd) -> None:
        """Report the session's end to the supervisor (first report wins)."""
        if not session.ended.done():
            session.ended.set_result(end)

    # --- paho callbacks (always run on the loop) ---------------------------------

    def _threadsafe[**P](self, handler: Callable[P, None]) -> Callable[P, None]:
        """Wrap a paho callback so it always runs on the event loop's thread."""
        loop = self._running_loop()

        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                handler(*args, **kwargs)
            except Exception:
                # A bug here must neither unwind paho's packet handling half-way nor
                # vanish: log it and let the connection go on.
                _LOGGER.exception("Unexpected error in the CarData stream")

        def call(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                run(*args, **kwargs)
            else:
                loop.call_soon_threadsafe(lambda: run(*args, **kwargs))

        return call

    def _on_socket_open(self, client: mqtt.Client, session: _Session, sock: Any) -> None:
        """Watch the new socket for reading and start paho's housekeeping timer."""
        if session.ended.done() or (fd := sock.fileno()) < 0:
            return
        loop = self._running_loop()
        session.reader_fd = fd
        loop.add_reader(fd, self._on_readable, session)
        session.misc_timer = loop.call_later(MISC_INTERVAL, self._on_misc, session)

    def _on_socket_close(self, client: mqtt.Client, session: _Session, sock: Any) -> None:
        """Stop watching a socket paho is about to close."""
        self._release(session)

    def _on_socket_register_write(self, client: mqtt.Client, session: _Session, sock: Any) -> None:
        """Watch the socket for writability while paho has data to send."""
        if session.ended.done() or session.writer_fd is not None or (fd := sock.fileno()) < 0:
            return
        session.writer_fd = fd
        self._running_loop().add_writer(fd, self._on_writable, session)

    def _on_socket_unregister_write(
        self, client: mqtt.Client, session: _Session, sock: Any
    ) -> None:
        """Stop watching for writability once paho's queue is empty."""
        if session.writer_fd is not None:
            self._running_loop().remove_writer(session.writer_fd)
            session.writer_fd = None

    def _on_readable(self, session: _Session) -> None:
        """Let paho read; drain what TLS already decrypted, which select() cannot see."""
        client = session.client
        for _ in range(MAX_READS_PER_EVENT):
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            sock = client.socket()
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return
        # More is buffered: continue on the next loop iteration.
        self._running_loop().call_soon(self._on_readable, session)

    def _on_writable(self, session: _Session) -> None:
        """Let paho write its queued packets."""
        session.client.loop_write()

    def _on_misc(self, session: _Session) -> None:
        """Run paho's keepalive bookkeeping every second while connected."""
        session.misc_timer = None
        if session.client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            session.misc_timer = self._running_loop().call_later(
                MISC_INTERVAL, self._on_misc, session
            )

    def _on_connect(
        self,
        client: mqtt.Client,
        session: _Session,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        """Subscribe once accepted; remember why the broker refused otherwise."""
        if reason_code.is_failure:
            name = str(reason_code)
            if name in _REFUSED_CREDENTIALS:
                session.refusal, session.refusal_reason = _REFUSED_CREDENTIALS[name]
            else:
                # Not about the credentials (e.g. server unavailable): retry later.
                session.connack_failure = name
            _LOGGER.debug("Stream connection refused: %s", name)
            return
        session.accepted_at = self._running_loop().time()
        client.subscribe(self._topic, qos=SUBSCRIPTION_QOS)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        session: _Session,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        """Report CONNECTED once the subscription is granted; give up if refused."""
        if session.local_reason is not None:
            return  # being closed already
        if any(code.is_failure for code in reason_codes):
            session.refusal = StreamRefusal.SUBSCRIPTION_REFUSED
            session.refusal_reason = f"not authorized to subscribe to {self._topic}"
            # Closing from inside paho's packet handling would deadlock paho.
            self._running_loop().call_soon(self._close_refused, session)
            return
        self._retried_not_authorized = False
        self._set_status(StreamState.CONNECTED, None)

    def _close_refused(self, session: _Session) -> None:
        """Close a session whose subscription the broker refused."""
        self._close(session, session.refusal_reason or "subscription refused")

    def _on_disconnect(
        self,
        client: mqtt.Client,
        session: _Session,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        """Turn paho's disconnect into the session's outcome."""
        self._release(session)
        lasted = (
            None
            if session.accepted_at is None
            else self._running_loop().time() - session.accepted_at
        )
        if session.refusal_reason is not None:
            end = _SessionEnd(
                _EndKind.REFUSED, session.refusal_reason, lasted, refusal=session.refusal
            )
        elif session.local_reason is not None:
            end = _SessionEnd(_EndKind.LOCAL, session.local_reason, lasted)
        else:
            end = _SessionEnd(_EndKind.LOST, _describe_loss(reason_code, session), lasted)
        self._finish(session, end)

    def _on_mqtt_message(
        self, client: mqtt.Client, session: _Session, message: mqtt.MQTTMessage
    ) -> None:
        """Parse a message and hand it to the caller."""
        counters = self._counters
        counters.messages_received += 1
        counters.last_message_at = datetime.now(UTC)
        try:
            parsed = parse_stream_message(_topic_of(message), message.payload, gcid=self._gcid)
        except ForeignMessageError as err:
            counters.foreign_messages += 1
            if counters.foreign_messages <= FOREIGN_MESSAGES_LOGGED:
                _LOGGER.debug("Dropping a stream message: %s", err)
            return
        except MalformedMessageError as err:
            counters.malformed_messages += 1
            if not self._malformed_logged:
                # Once only: a broken sender would otherwise flood the log.
                self._malformed_logged = True
                _LOGGER.debug(
                    "Dropping a malformed stream message (%s); further ones are only counted",
                    err,
                )
            return
        try:
            self._on_message(parsed)
        except Exception:
            # The caller's bug must not break paho's packet handling or the stream.
            _LOGGER.exception("Error handling a CarData stream message")

    # --- helpers ------------------------------------------------------------------

    def _set_status(
        self, state: StreamState, reason: str | None, refusal: StreamRefusal | None = None
    ) -> None:
        """Record and report a status change."""
        if self._status.state is state and self._status.reason == reason:
            return
        self._status = StreamStatus(state, reason, datetime.now(UTC), refusal)
        try:
            self._on_status(self._status)
        except Exception:
            # The caller's bug must not stop the supervisor.
            _LOGGER.exception("Error handling a CarData stream status change")

    def _should_stop(self) -> bool:
        """Whether stop() was called (a method, so type checkers re-read it after awaits)."""
        return self._stopping

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """Return the loop the stream runs on (set by start())."""
        if self._loop is None:
            raise RuntimeError("the stream has not been started")
        return self._loop


def _topic_of(message: mqtt.MQTTMessage) -> str:
    """Return the message's topic; one that is not UTF-8 gives "" (refused as foreign)."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return ""


def _describe_loss(reason_code: ReasonCode, session: _Session) -> str:
    """Say why a connection we did not close ended."""
    name = str(reason_code)
    if session.connack_failure is not None:
        return f"broker refused the connection: {session.connack_failure.lower()}"
    if session.accepted_at is None:
        return f"connection closed before the broker accepted it ({name})"
    if name == "Keep alive timeout":
        return "no answer from the broker within the keepalive"
    # MQTT 3.1.1 brokers just close the socket: paho has nothing more specific to say.
    return "connection closed by the broker"
