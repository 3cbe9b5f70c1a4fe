"""The account's stream: started after set-up, kept on fresh id tokens, watched for trouble.

The client library's `CarDataStream` keeps the MQTT connection; this module ties it to Home
Assistant: it hands every renewed id token to the stream, passes messages and status changes
to the coordinator, remembers recent status changes for diagnostics, and turns the two
situations only the user can fix (another client holds the account's one connection, the
client id lacks CarData Stream) into repair issues that clear themselves once connected.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.util import dt as dt_util

from . import issues
from .api.errors import CarDataConnectionError
from .api.stream import (
    CarDataStream,
    ReconnectPolicy,
    StreamRefusal,
    StreamState,
    StreamStatus,
)
from .const import CONF_GCID, LOGGER
from .endpoints import async_stream_ssl_context
from .listeners import Listeners
from .vehicle import redact_vin

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

    from .api.models import StreamMessage, TokenSet
    from .coordinator import CarDataCoordinator
    from .endpoints import Endpoints
    from .tokens import TokenManager

# How the stream reconnects and when it concludes another client owns the account.
RECONNECT_POLICY = ReconnectPolicy()
# Status changes kept for diagnostics.
RECENT_STATUSES = 20
# Messages about vehicles the entry does not read that are logged before they are only counted.
FOREIGN_VINS_LOGGED = 20


class StreamManager:
    """Runs the stream of one config entry for as long as the entry is loaded."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        endpoints: Endpoints,
        tokens: TokenManager,
        coordinator: CarDataCoordinator,
    ) -> None:
        """Prepare; nothing connects before `async_start`."""
        self._hass = hass
        self._entry = entry
        self._endpoints = endpoints
        self._tokens = tokens
        self._coordinator = coordinator
        self._stream: CarDataStream | None = None
        self._id_token: str | None = None
        self._status = StreamStatus(StreamState.STOPPED, None, dt_util.utcnow())
        self._recent: deque[StreamStatus] = deque(maxlen=RECENT_STATUSES)
        self._listeners: Listeners[()] = Listeners()
        self._unsub_tokens: CALLBACK_TYPE | None = None
        # A refused id token is answered with one forced refresh, until the next success.
        self._renewed_after_refusal = False
        # Messages for vehicles this entry does not read, dropped so far.
        self._foreign_vins = 0

    # --- Life cycle ---------------------------------------------------------------

    async def async_start(self) -> None:
        """Start connecting; returns at once, the connection follows.

        Uses the current id token: set-up has just made sure it is valid, and the token
        manager hands over every renewed one.
        """
        if self._stream is not None:
            return
        ssl_context = await async_stream_ssl_context(self._hass, self._endpoints)
        self._id_token = self._tokens.tokens.id_token
        self._stream = CarDataStream(
            host=self._endpoints.mqtt_host,
            port=self._endpoints.mqtt_port,
            gcid=self._entry.data[CONF_GCID],
            id_token=self._id_token,
            ssl_context=ssl_context,
            on_message=self._on_message,
            on_status=self._on_status,
            reconnect_policy=RECONNECT_POLICY,
        )
        self._unsub_tokens = self._tokens.async_add_listener(self._on_tokens_renewed)
        await self._stream.start()

    async def async_stop(self) -> None:
        """Close the connection and wait until nothing of it is left running."""
        if self._unsub_tokens is not None:
            self._unsub_tokens()
            self._unsub_tokens = None
        if (stream := self._stream) is not None:
            await stream.stop()

    # --- What entities and diagnostics read ------------------------------------------

    @property
    def status(self) -> StreamStatus:
        """Return the stream's current status."""
        return self._status

    @property
    def connected(self) -> bool:
        """Return True while the stream delivers messages."""
        return self._status.state is StreamState.CONNECTED

    @property
    def recent_statuses(self) -> tuple[StreamStatus, ...]:
        """Return the last status changes, oldest first."""
        return tuple(self._recent)

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener()` after every status change; returns the remover."""
        return self._listeners.add(listener)

    def as_diagnostics(self) -> dict[str, Any]:
        """Return the stream's state and history for the diagnostics download."""
        stream = self._stream
        return {
            "state": self._status.state.value,
            "reason": self._status.reason,
            "since": self._status.since.isoformat(),
            "mqtt_client_id": stream.client_id if stream else None,
            "connection_attempts": stream.connection_attempts if stream else 0,
            "messages_received": stream.messages_received if stream else 0,
            "malformed_messages": stream.malformed_messages if stream else 0,
            "last_message_at": (
                stream.last_message_at.isoformat() if stream and stream.last_message_at else None
            ),
            "recent_disconnects": [
                {"at": disconnect.at.isoformat(), "reason": disconnect.reason}
                for disconnect in (stream.recent_disconnects if stream else ())
            ],
            "recent_statuses": [
                {
                    "state": status.state.value,
                    "reason": status.reason,
                    "at": status.since.isoformat(),
                }
                for status in self._recent
            ],
        }

    # --- Stream callbacks (on the event loop) ------------------------------------------

    @callback
    def _on_message(self, message: StreamMessage) -> None:
        if message.vin not in self._coordinator.vehicles:
            # Not one of the account's cars this entry reads (a secondary user's car, one
            # removed from the account, or a wrong message): never applied.
            self._foreign_vins += 1
            if self._foreign_vins <= FOREIGN_VINS_LOGGED:
                LOGGER.debug(
                    "Dropping a stream message for vehicle %s: not a car read by this entry",
                    redact_vin(message.vin),
                )
            return
        self._coordinator.apply_stream_message(message)

    @callback
    def _on_status(self, status: StreamStatus) -> None:
        self._status = status
        self._recent.append(status)
        self._coordinator.set_stream_status(status)
        if status.state is StreamState.CONNECTED:
            self._renewed_after_refusal = False
            issues.async_clear(self._hass, self._entry, issues.STREAM_TAKEN_OVER)
            issues.async_clear(self._hass, self._entry, issues.STREAM_NOT_SUBSCRIBED)
        elif status.state is StreamState.TAKEN_OVER:
            issues.async_raise_stream_taken_over(self._hass, self._entry)
        elif status.state is StreamState.REFUSED:
            self._on_refused(status)
        self._listeners.notify()

    def _on_refused(self, status: StreamStatus) -> None:
        """Tell an id token BMW did not accept from a client id BMW does not let in."""
        if status.refusal is not StreamRefusal.BAD_CREDENTIALS:
            # CONNACK rc 5 or a refused subscription: only the user can fix the client's
            # CarData Stream subscription in BMW's portal.
            issues.async_raise_stream_not_subscribed(self._hass, self._entry)
            return
        if self._renewed_after_refusal:
            return
        # The token may have expired while GCDM was unreachable, or BMW dropped it:
        # renew it once; if that one is refused too, wait for the next scheduled renewal.
        self._renewed_after_refusal = True
        self._entry.async_create_background_task(
            self._hass, self._async_replace_refused_token(), "cardata stream credentials"
        )

    async def _async_replace_refused_token(self) -> None:
        try:
            tokens = await self._tokens.async_refresh(rejected=self._id_token)
        except ConfigEntryAuthFailed:
            return  # the token manager started the reauthentication
        except CarDataConnectionError as err:
            LOGGER.debug("Cannot renew the stream's id token yet: %s", err)
            return
        await self._async_use_id_token(tokens.id_token)

    # --- New tokens ---------------------------------------------------------------

    @callback
    def _on_tokens_renewed(self, tokens: TokenSet) -> None:
        if self._status.state is StreamState.TAKEN_OVER:
            # Reconnecting would evict the other client again; the user decides (repair
            # issue), and a reload starts afresh with the newest token.
            return
        self._entry.async_create_background_task(
            self._hass, self._async_use_id_token(tokens.id_token), "cardata stream credentials"
        )

    async def _async_use_id_token(self, id_token: str) -> None:
        """Reconnect with a new id token (the old connection closes with the old token)."""
        if (stream := self._stream) is None or id_token == self._id_token:
            return
        self._id_token = id_token
        await stream.update_credentials(id_token)
