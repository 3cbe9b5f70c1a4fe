"""Set-up requests: one token retry, errors Home Assistant understands, and a backoff.

A set-up request whose token BMW calls invalid is sent once more after a forced refresh;
what still fails becomes ConfigEntryAuthFailed (the user must log in again) or
ConfigEntryNotReady (Home Assistant retries), with a translated message.

Home Assistant retries a set-up that raised ConfigEntryNotReady within seconds at first and
about every 80 seconds later. Each try that reaches BMW costs a request of the account's 50 a
day, so during an outage the tries that come too soon are answered without a request: the
wait doubles from two minutes to half an hour, and one success resets it. The state lives
in `hass.data` for the life of the process (a restart is rare, and starts over at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
import math
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .api.errors import (
    CarDataError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestRefusedError,
    ScopeError,
    TokenInvalidError,
)
from .const import DOMAIN

if TYPE_CHECKING:
    from .polling import TokenRefresher
    from .quota import Budget

FIRST_WAIT: Final = timedelta(minutes=2)
LONGEST_WAIT: Final = timedelta(minutes=30)

_BACKOFFS: HassKey[dict[str, SetupBackoff]] = HassKey("cardata_setup_backoff")


class SetupBackoff:
    """The set-up backoff of one BMW account."""

    def __init__(self) -> None:
        """Start with nothing to wait for."""
        self._wait = FIRST_WAIT
        self._not_before: datetime | None = None

    @classmethod
    def for_account(cls, hass: HomeAssistant, account: str) -> SetupBackoff:
        """Return the backoff of an account, shared by every set-up try of this process."""
        return hass.data.setdefault(_BACKOFFS, {}).setdefault(account, cls())

    def wait_left(self, now: datetime | None = None) -> int | None:
        """Return the whole minutes to wait before the next request, or None to go ahead."""
        now = now or dt_util.utcnow()
        if self._not_before is None or now >= self._not_before:
            return None
        return max(1, math.ceil((self._not_before - now).total_seconds() / 60))

    def failed(self, now: datetime | None = None) -> None:
        """Note a request that failed in a way that may pass; the next one waits."""
        now = now or dt_util.utcnow()
        self._not_before = now + self._wait
        self._wait = min(self._wait * 2, LONGEST_WAIT)

    def succeeded(self) -> None:
        """Note a request BMW answered; the next failure waits the shortest time again."""
        self._wait = FIRST_WAIT
        self._not_before = None


async def async_setup_request[T](
    call: Callable[[], Awaitable[T]],
    *,
    tokens: TokenRefresher,
    budget: Budget,
    backoff: SetupBackoff,
    account: str,
) -> T:
    """Run a set-up request: refresh the token once if BMW calls it invalid.

    Raises ConfigEntryAuthFailed when the token stays invalid (or lacks the CarData API
    scope) and ConfigEntryNotReady for failures that may pass; other API errors (not found,
    permission denied) propagate. After a failure that may pass, nothing is sent until the
    backoff allows it.
    """
    placeholders = {"account": account}
    if (wait := backoff.wait_left()) is not None:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="setup_backing_off",
            translation_placeholders={**placeholders, "minutes": str(wait)},
        )
    try:
        try:
            result = await call()
        except TokenInvalidError:
            await tokens.async_refresh(force=True)
            result = await call()
    except TokenInvalidError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="setup_token_refused",
            translation_placeholders=placeholders,
        ) from err
    except ScopeError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="setup_api_not_subscribed",
            translation_placeholders=placeholders,
        ) from err
    except RateLimitError as err:
        budget.note_rate_limited()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="setup_rate_limited",
            translation_placeholders=placeholders,
        ) from err
    except RequestRefusedError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="setup_budget_spent",
            translation_placeholders=placeholders,
        ) from err
    except (NotFoundError, PermissionDeniedError):
        backoff.succeeded()
        raise
    except CarDataError as err:
        backoff.failed()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="setup_unavailable",
            translation_placeholders={**placeholders, "error": str(err)},
        ) from err
    backoff.succeeded()
    return result
