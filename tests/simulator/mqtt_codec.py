"""MQTT 3.1.1 wire format: the packets a read-only broker and its subscribers exchange.

Both directions are here so the broker can parse what clients send and tests can speak raw
MQTT to the broker (to send what paho never would: a wrong protocol level, a PUBLISH, garbage).
Only what BMW's stream needs is implemented; QoS 2 flows and MQTT 5 properties are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterable

PROTOCOL_NAME = "MQTT"
PROTOCOL_LEVEL_311 = 4
MAX_REMAINING_LENGTH = 268_435_455  # four varint bytes, MQTT 3.1.1 §2.2.3
DEFAULT_MAX_PACKET = 1 << 20
SUBACK_FAILURE = 0x80


class PacketType(IntEnum):
    """Control packet types (high nibble of the fixed header)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(IntEnum):
    """MQTT 3.1.1 CONNACK return codes."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


# The low nibble every packet type except PUBLISH must carry (MQTT 3.1.1 §2.2.2).
_REQUIRED_FLAGS = {
    PacketType.PUBREL: 0b0010,
    PacketType.SUBSCRIBE: 0b0010,
    PacketType.UNSUBSCRIBE: 0b0010,
}


class MalformedPacketError(ValueError):
    """The bytes on the wire are not a valid MQTT 3.1.1 packet; the connection must close."""


class UnsupportedProtocolError(Exception):
    """A CONNECT for another protocol version (answered with CONNACK rc 1)."""

    def __init__(self, name: str, level: int) -> None:
        """Remember what the client asked for, for the log."""
        super().__init__(f"protocol {name!r} level {level}")
        self.name = name
        self.level = level


@dataclass(frozen=True, slots=True)
class Packet:
    """One control packet: type, the fixed header's flag nibble and the bytes after the header."""

    type: PacketType
    flags: int
    body: bytes


@dataclass(frozen=True, slots=True)
class ConnectPacket:
    """A parsed CONNECT."""

    client_id: str
    keepalive: int
    clean_session: bool
    username: str | None
    password: bytes | None
    will_topic: str | None = None
    will_message: bytes | None = None


@dataclass(frozen=True, slots=True)
class PublishPacket:
    """A parsed PUBLISH."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class SubscribePacket:
    """A parsed SUBSCRIBE: packet id and (topic filter, requested QoS) pairs."""

    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class UnsubscribePacket:
    """A parsed UNSUBSCRIBE."""

    packet_id: int
    topics: tuple[str, ...]


# --- reading -------------------------------------------------------------------------------


async def read_packet(
    reader: asyncio.StreamReader, *, max_length: int = DEFAULT_MAX_PACKET
) -> Packet:
    """Read one packet.

    Raises asyncio.IncompleteReadError when the peer closes the stream and
    MalformedPacketError for bytes that break the protocol.
    """
    first = (await reader.readexactly(1))[0]
    try:
        packet_type = PacketType(first >> 4)
    except ValueError:
        raise MalformedPacketError(f"reserved packet type {first >> 4}") from None
    flags = first & 0x0F
    if packet_type is not PacketType.PUBLISH and flags != _REQUIRED_FLAGS.get(packet_type, 0):
        raise MalformedPacketError(f"bad flags {flags:#06b} for {packet_type.name}")
    length = 0
    for position in range(4):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            break
    else:
        raise MalformedPacketError("remaining length longer than four bytes")
    if length > max_length:
        raise MalformedPacketError(f"packet of {length} bytes is over the {max_length} limit")
    body = await reader.readexactly(length) if length else b""
    return Packet(packet_type, flags, body)


class _Cursor:
    """Sequential reader over a packet body that turns every shortfall into MalformedPacketError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._position

    def take(self, count: int) -> bytes:
        if count > self.remaining:
            raise MalformedPacketError("packet ends early")
        chunk = self._data[self._position : self._position + count]
        self._position += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacketError("string is not UTF-8") from None
        if "\x00" in value:
            raise MalformedPacketError("string contains U+0000")
        return value

    def packet_id(self) -> int:
        value = self.u16()
        if value == 0:
            raise MalformedPacketError("packet identifier 0")
        return value

    def finish(self) -> None:
        if self.remaining:
            raise MalformedPacketError(f"{self.remaining} unexpected trailing bytes")


def parse_connect(body: bytes) -> ConnectPacket:
    """Parse a CONNECT body; UnsupportedProtocolError for anything but MQTT 3.1.1."""
    cursor = _Cursor(body)
    name = cursor.text()
    level = cursor.u8()
    if name != PROTOCOL_NAME or level != PROTOCOL_LEVEL_311:
        # Checked before the rest: an MQTT 5 CONNECT carries properties this parser would misread.
        raise UnsupportedProtocolError(name, level)
    flags = cursor.u8()
    if flags & 0x01:
        raise MalformedPacketError("reserved CONNECT flag set")
    clean_session = bool(flags & 0x02)
    will = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    has_password = bool(flags & 0x40)
    has_username = bool(flags & 0x80)
    if will_qos == 3 or (not will and (will_qos or will_retain)):
        raise MalformedPacketError("inconsistent will flags")
    if has_password and not has_username:
        raise MalformedPacketError("password without user name")
    keepalive = cursor.u16()
    client_id = cursor.text()
    will_topic = cursor.text() if will else None
    will_message = cursor.binary() if will else None
    username = cursor.text() if has_username else None
    password = cursor.binary() if has_password else None
    cursor.finish()
    return ConnectPacket(
        client_id=client_id,
        keepalive=keepalive,
        clean_session=clean_session,
        username=username,
        password=password,
        will_topic=will_topic,
        will_message=will_message,
    )


def parse_publish(flags: int, body: bytes) -> PublishPacket:
    """Parse a PUBLISH body with the flag nibble from its fixed header."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacketError("PUBLISH with QoS 3")
    cursor = _Cursor(body)
    topic = cursor.text()
    packet_id = cursor.packet_id() if qos else None
    return PublishPacket(
        topic=topic,
        payload=cursor.take(cursor.remaining),
        qos=qos,
        retain=bool(flags & 0x01),
        dup=bool(flags & 0x08),
        packet_id=packet_id,
    )


def parse_subscribe(body: bytes) -> SubscribePacket:
    """Parse a SUBSCRIBE body: at least one filter, each with a QoS of 0, 1 or 2."""
    cursor = _Cursor(body)
    packet_id = cursor.packet_id()
    topics: list[tuple[str, int]] = []
    while cursor.remaining:
        topic = cursor.text()
        options = cursor.u8()
        if options > 2:
            raise MalformedPacketError(f"requested QoS byte {options:#04x}")
        topics.append((topic, options))
    if not topics:
        raise MalformedPacketError("SUBSCRIBE without a topic filter")
    return SubscribePacket(packet_id, tuple(topics))


def parse_unsubscribe(body: bytes) -> UnsubscribePacket:
    """Parse an UNSUBSCRIBE body: at least one filter."""
    cursor = _Cursor(body)
    packet_id = cursor.packet_id()
    topics: list[str] = []
    while cursor.remaining:
        topics.append(cursor.text())
    if not topics:
        raise MalformedPacketError("UNSUBSCRIBE without a topic filter")
    return UnsubscribePacket(packet_id, tuple(topics))


def parse_packet_id(body: bytes) -> int:
    """Parse the body of PUBACK, UNSUBACK and their kin: just a packet identifier."""
    cursor = _Cursor(body)
    packet_id = cursor.packet_id()
    cursor.finish()
    return packet_id


def parse_connack(body: bytes) -> tuple[bool, int]:
    """Parse a CONNACK body into (session present, return code)."""
    cursor = _Cursor(body)
    acknowledge_flags = cursor.u8()
    return_code = cursor.u8()
    cursor.finish()
    return bool(acknowledge_flags & 0x01), return_code


def parse_suback(body: bytes) -> tuple[int, tuple[int, ...]]:
    """Parse a SUBACK body into (packet id, one return code per filter)."""
    cursor = _Cursor(body)
    packet_id = cursor.packet_id()
    return packet_id, tuple(cursor.take(cursor.remaining))


# --- writing -------------------------------------------------------------------------------


def encode_remaining_length(length: int) -> bytes:
    """The fixed header's variable-length integer."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} out of range")
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _string(value: str) -> bytes:
    return _binary(value.encode("utf-8"))


def _binary(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("field longer than 65535 bytes")
    return struct.pack("!H", len(value)) + value


def _packet(packet_type: PacketType, body: bytes = b"", flags: int | None = None) -> bytes:
    nibble = _REQUIRED_FLAGS.get(packet_type, 0) if flags is None else flags
    return bytes([packet_type << 4 | nibble]) + encode_remaining_length(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    username: str | None = None,
    password: bytes | str | None = None,
    keepalive: int = 30,
    clean_session: bool = True,
    protocol_name: str = PROTOCOL_NAME,
    protocol_level: int = PROTOCOL_LEVEL_311,
) -> bytes:
    """A CONNECT (the protocol fields are parameters so tests can send wrong ones)."""
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _binary(password.encode("utf-8") if isinstance(password, str) else password)
    header = _string(protocol_name) + bytes([protocol_level, flags]) + struct.pack("!H", keepalive)
    return _packet(PacketType.CONNECT, header + payload)


def encode_connack(return_code: int, *, session_present: bool = False) -> bytes:
    """A CONNACK."""
    return _packet(PacketType.CONNACK, bytes([int(session_present), return_code]))


def encode_publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    packet_id: int | None = None,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    """A PUBLISH; QoS 1 and 2 need a packet id."""
    if qos and not packet_id:
        raise ValueError("QoS > 0 needs a packet id")
    flags = (0x08 if dup else 0) | qos << 1 | (0x01 if retain else 0)
    body = _string(topic) + (struct.pack("!H", packet_id) if qos and packet_id else b"")
    return _packet(PacketType.PUBLISH, body + payload, flags)


def encode_puback(packet_id: int) -> bytes:
    """A PUBACK."""
    return _packet(PacketType.PUBACK, struct.pack("!H", packet_id))


def encode_subscribe(packet_id: int, topics: Iterable[tuple[str, int]]) -> bytes:
    """A SUBSCRIBE for (topic filter, requested QoS) pairs."""
    body = struct.pack("!H", packet_id)
    for topic, qos in topics:
        body += _string(topic) + bytes([qos])
    return _packet(PacketType.SUBSCRIBE, body)


def encode_suback(packet_id: int, return_codes: Iterable[int]) -> bytes:
    """A SUBACK: granted QoS or SUBACK_FAILURE per filter."""
    return _packet(PacketType.SUBACK, struct.pack("!H", packet_id) + bytes(return_codes))


def encode_unsubscribe(packet_id: int, topics: Iterable[str]) -> bytes:
    """An UNSUBSCRIBE."""
    body = struct.pack("!H", packet_id) + b"".join(_string(topic) for topic in topics)
    return _packet(PacketType.UNSUBSCRIBE, body)


def encode_unsuback(packet_id: int) -> bytes:
    """An UNSUBACK."""
    return _packet(PacketType.UNSUBACK, struct.pack("!H", packet_id))


def encode_pingreq() -> bytes:
    """A PINGREQ."""
    return _packet(PacketType.PINGREQ)


def encode_pingresp() -> bytes:
    """A PINGRESP."""
    return _packet(PacketType.PINGRESP)


def encode_disconnect() -> bytes:
    """A DISCONNECT."""
    return _packet(PacketType.DISCONNECT)
