"""Token upkeep: keep one BMW account's tokens valid for months without losing a rotation.

GCDM issues access and id tokens for one hour and a refresh token for two weeks, and it
rotates the refresh token on every refresh: the old one stops working at once. A rotated
token set that is used but not persisted therefore locks the user out after a restart.
So every rotation is written twice before anyone gets the new tokens: into the config entry
(which Home Assistant saves with a delay) and, immediately, into a small private store. At
start-up the newer of the two wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.event import async_call_later, async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .api.errors import CarDataConnectionError, ReauthRequiredError
from .api.models import TokenSet
from .const import CONF_TOKENS, DOMAIN, LOGGER
from .listeners import Listeners

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

    from .api.auth import GcdmAuth

STORAGE_VERSION = 1
# Tokens are renewed this long before the access or id token expires, so REST calls and
# the stream always hold a token with time to spare.
REFRESH_MARGIN = timedelta(minutes=10)
# Fresh tokens are not renewed again sooner than this, whatever their expiry says (a clock
# far ahead of BMW's makes the id token look nearly expired right after a renewal).
MIN_REFRESH_INTERVAL = timedelta(minutes=5)
# Retries after a network failure: 30 s, doubling, at most every 10 minutes.
RETRY_INITIAL = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=10)

type TokenListener = Callable[[TokenSet], None]


def token_store_key(entry_id: str) -> str:
    """Return the storage key of an entry's token store."""
    return f"{DOMAIN}.tokens.{entry_id}"


def _parse(raw: Any) -> TokenSet | None:
    """Return the token set stored in `raw`, or None when there is none or it is damaged."""
    if not isinstance(raw, Mapping):
        return None
    try:
        return TokenSet.from_dict(raw)
    except ValueError:
        return None


def retry_delay(failures: int) -> timedelta:
    """Return how long to wait after `failures` failed refreshes in a row."""
    delay: timedelta = RETRY_INITIAL * 2 ** max(failures - 1, 0)
    return min(delay, RETRY_MAX)


class TokenManager:
    """The tokens of one config entry: valid on demand, renewed ahead of time, persisted first.

    One refresh runs at a time: callers that need a refresh while one is running wait for
    it and share its result. The refresh and its persistence run in a task of the config
    entry that callers only await through `asyncio.shield`, so a cancelled caller (or an
    unload) never interrupts a rotation between BMW's answer and the write to disk.
    """

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any], auth: GcdmAuth) -> None:
        """Prepare; call `async_load` before anything else."""
        self._hass = hass
        self._entry = entry
        self._auth = auth
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, token_store_key(entry.entry_id), private=True
        )
        self._tokens: TokenSet | None = None
        self._refresh_task: asyncio.Task[TokenSet] | None = None
        self._listeners: Listeners[TokenSet] = Listeners()
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._failures = 0
        self._retry_at: datetime | None = None
        self._warned_expired = False
        self._reauth_required = False
        self._closed = False
        self._last_refresh_at: datetime | None = None
        self._last_error: str | None = None
        self._refresh_count = 0

    # --- Loading ------------------------------------------------------------------

    async def async_load(self) -> None:
        """Take the newer of the entry's and the store's token set.

        The store is written at once, the entry with a delay: after a restart between
        the two, only the store knows the rotated refresh token. A reauthentication, on
        the other hand, writes only the entry. Whichever expires later was issued later.

        Raises ConfigEntryAuthFailed when neither holds a usable token set.
        """
        from_entry = _parse(self._entry.data.get(CONF_TOKENS))
        from_store = _parse(await self._store.async_load())
        candidates = [tokens for tokens in (from_entry, from_store) if tokens is not None]
        if not candidates:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="tokens_unreadable",
                translation_placeholders={"account": self._entry.title},
            )
        newest = max(candidates, key=lambda tokens: tokens.access_token_expires_at)
        self._tokens = newest
        if from_entry != newest or from_store != newest:
            # Bring the stale copy up to date, so both agree from here on.
            LOGGER.debug(
                "The %s holds the newer BMW CarData tokens of %s",
                "config entry" if newest is from_entry else "token store",
                self._entry.title,
            )
            await self._async_persist(newest)

    # --- Public API ---------------------------------------------------------------

    @property
    def tokens(self) -> TokenSet:
        """Return the current token set (possibly about to expire)."""
        if self._tokens is None:
            raise RuntimeError("tokens are not loaded")
        return self._tokens

    @property
    def reauth_required(self) -> bool:
        """Return True once BMW refused the refresh token."""
        return self._reauth_required

    async def async_get_access_token(self) -> str:
        """Return a valid access token, refreshing first when it expires soon."""
        return (await self.async_ensure_valid()).access_token

    async def async_get_id_token(self) -> str:
        """Return a valid id token (the stream's password), refreshing first if needed."""
        return (await self.async_ensure_valid()).id_token

    async def async_ensure_valid(self) -> TokenSet:
        """Return a token set that is valid for at least a while.

        When the refresh fails for a network reason but the current tokens have not
        expired yet, those are returned: they still work. Raises ConfigEntryAuthFailed
        when BMW refused the refresh token (reauthentication started) and
        CarDataConnectionError when no valid token can be had right now.
        """
        tokens = self.tokens
        now = dt_util.utcnow()
        if not tokens.needs_refresh(now, REFRESH_MARGIN) or self._renewed_recently(now):
            return tokens
        still_valid = not tokens.needs_refresh(now)
        if still_valid and self._retry_at is not None and now < self._retry_at:
            # A refresh failed a moment ago and is retried on a timer; meanwhile the
            # current tokens still work, so do not hammer GCDM on every request.
            return tokens
        try:
            return await self._async_refresh()
        except CarDataConnectionError:
            if still_valid:
                return tokens
            raise

    async def async_refresh(self, *, force: bool = True, rejected: str | None = None) -> TokenSet:
        """Refresh now, e.g. because BMW rejected a token that should still be valid.

        With `rejected` (the access or id token BMW refused), the refresh is skipped when
        the current tokens no longer contain it: they were renewed in the meantime. With
        `force=False` this is `async_ensure_valid`.
        """
        tokens = self.tokens
        if not force or (
            rejected is not None and rejected not in (tokens.access_token, tokens.id_token)
        ):
            return await self.async_ensure_valid()
        return await self._async_refresh()

    @callback
    def async_add_listener(self, listener: TokenListener) -> CALLBACK_TYPE:
        """Call `listener(tokens)` after every successful refresh; returns the remover."""
        return self._listeners.add(listener)

    @callback
    def async_start(self) -> None:
        """Start renewing the tokens ahead of their expiry, even when nobody asks."""
        self._schedule_next()

    async def async_shutdown(self) -> None:
        """Stop the timers and let a running refresh finish persisting its result."""
        self._closed = True
        self._cancel_timer()
        self._listeners.clear()
        if (task := self._refresh_task) is not None and not task.done():
            # The rotation must reach the disk; the outcome itself no longer matters.
            await asyncio.wait([task])

    def as_diagnostics(self) -> dict[str, Any]:
        """Return when the tokens expire and how refreshing goes, without any secret."""
        tokens = self._tokens
        return {
            "access_token_expires_at": _iso(tokens.access_token_expires_at if tokens else None),
            "id_token_expires_at": _iso(tokens.id_token_expires_at if tokens else None),
            "refresh_token_expires_at": _iso(tokens.refresh_token_expires_at if tokens else None),
            "scope": list(tokens.scope) if tokens else [],
            "last_refresh_at": _iso(self._last_refresh_at),
            "refreshes_since_start": self._refresh_count,
            "failed_refreshes_in_a_row": self._failures,
            "last_error": self._last_error,
            "reauth_required": self._reauth_required,
        }

    # --- Refreshing ---------------------------------------------------------------

    async def _async_refresh(self) -> TokenSet:
        """Refresh, or join the refresh that is already running."""
        if self._reauth_required:
            raise self._auth_failed()
        if self._closed:
            raise CarDataConnectionError("token upkeep has stopped (entry unloaded)")
        task = self._refresh_task
        if task is None or task.done():
            # No await between the check and the assignment: two callers cannot both
            # start a refresh with the same (single-use) refresh token.
            task = self._entry.async_create_task(
                self._hass, self._async_refresh_and_persist(self.tokens), "token refresh"
            )
            self._refresh_task = task
        return await asyncio.shield(task)

    async def _async_refresh_and_persist(self, tokens: TokenSet) -> TokenSet:
        """Ask GCDM for a new token set and persist it before anybody may use it."""
        try:
            refreshed = await self._auth.refresh(tokens)
        except ReauthRequiredError as err:
            self._on_refused(err)
            raise self._auth_failed() from None
        except CarDataConnectionError as err:
            self._on_failed(err)
            raise
        # Persist before use: from here on only `refreshed` holds a working refresh token.
        # Callers that ask meanwhile still see the old tokens and wait for this task.
        await self._async_persist(refreshed)
        self._tokens = refreshed
        self._failures = 0
        self._retry_at = None
        if self._warned_expired:
            self._warned_expired = False
            LOGGER.info("Renewed the BMW CarData tokens of %s again", self._entry.title)
        self._last_error = None
        self._last_refresh_at = dt_util.utcnow()
        self._refresh_count += 1
        LOGGER.debug(
            "Renewed the BMW CarData tokens of %s; the access token is valid until %s",
            self._entry.title,
            refreshed.access_token_expires_at.isoformat(timespec="seconds"),
        )
        self._schedule_next()
        self._listeners.notify(refreshed)
        return refreshed

    async def _async_persist(self, tokens: TokenSet) -> None:
        """Write the token set into the config entry and, immediately, into the store."""
        stored = tokens.as_dict()
        if self._entry.data.get(CONF_TOKENS) != stored:
            self._hass.config_entries.async_update_entry(
                self._entry, data={**self._entry.data, CONF_TOKENS: stored}
            )
        try:
            await self._store.async_save(stored)
        except (OSError, HomeAssistantError) as err:
            # The entry still has the tokens and saves them within a second or so.
            LOGGER.warning(
                "Could not store the BMW CarData tokens of %s: %s", self._entry.title, err
            )

    def _on_refused(self, err: ReauthRequiredError) -> None:
        """BMW refused the refresh token: ask the user to sign in again, keep everything else."""
        self._reauth_required = True
        self._last_error = err.error
        self._cancel_timer()
        LOGGER.warning(
            "BMW refused to renew the login of %s (%s); please re-authenticate the integration",
            self._entry.title,
            err.error,
        )
        self._entry.async_start_reauth(self._hass)

    def _on_failed(self, err: CarDataConnectionError) -> None:
        """Retry a refresh that failed for a network reason, with a growing delay."""
        self._failures += 1
        self._last_error = str(err)
        delay = retry_delay(self._failures)
        now = dt_util.utcnow()
        self._retry_at = now + delay
        if self.tokens.needs_refresh(now) and not self._warned_expired:
            # Only now is anything impaired: REST and the stream lack a valid token.
            self._warned_expired = True
            LOGGER.warning(
                "Cannot renew the expired BMW CarData tokens of %s (%s); retrying in %s",
                self._entry.title,
                err,
                delay,
            )
        else:
            LOGGER.debug(
                "Token refresh for %s failed (%s); retrying in %s", self._entry.title, err, delay
            )
        if not self._closed:
            self._cancel_timer()
            self._unsub_timer = async_call_later(self._hass, delay, self._on_timer)

    def _auth_failed(self) -> ConfigEntryAuthFailed:
        return ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="token_refresh_refused",
            translation_placeholders={"account": self._entry.title},
        )

    # --- Timer --------------------------------------------------------------------

    def _renewed_recently(self, now: datetime) -> bool:
        """Return True when the tokens were renewed less than MIN_REFRESH_INTERVAL ago."""
        return self._last_refresh_at is not None and now < (
            self._last_refresh_at + MIN_REFRESH_INTERVAL
        )

    def _schedule_next(self) -> None:
        """Plan the next refresh ahead of the access or id token's expiry."""
        if self._closed or self._reauth_required:
            return
        self._cancel_timer()
        tokens = self.tokens
        due = min(tokens.access_token_expires_at, tokens.id_token_expires_at) - REFRESH_MARGIN
        if self._last_refresh_at is not None:
            due = max(due, self._last_refresh_at + MIN_REFRESH_INTERVAL)
        self._unsub_timer = async_track_point_in_utc_time(self._hass, self._on_timer, due)

    def _cancel_timer(self) -> None:
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    @callback
    def _on_timer(self, _now: datetime) -> None:
        """Renew the tokens because they expire soon; the stream needs a fresh id token."""
        self._unsub_timer = None
        if self._closed or self._reauth_required:
            return
        self._entry.async_create_task(
            self._hass, self._async_refresh_on_timer(), "scheduled token refresh"
        )

    async def _async_refresh_on_timer(self) -> None:
        """Run a scheduled refresh; failures are handled (retry or reauth) where they occur."""
        with contextlib.suppress(CarDataConnectionError, ConfigEntryAuthFailed):
            await self._async_refresh()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def async_remove_token_store(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an entry's token store (the entry was removed)."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, token_store_key(entry_id)).async_remove()
