"""Repair issues: problems the user must act on, raised and cleared by their cause.

Each issue is per config entry (one BMW account) and clears itself when the cause is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .api.models import Container
from .const import DOMAIN

BUDGET_EXHAUSTED = "budget_exhausted"
STREAM_TAKEN_OVER = "stream_taken_over"
STREAM_NOT_SUBSCRIBED = "stream_not_subscribed"
CONTAINER_LIMIT = "container_limit"
ISSUES = (BUDGET_EXHAUSTED, STREAM_TAKEN_OVER, STREAM_NOT_SUBSCRIBED, CONTAINER_LIMIT)


def issue_id(kind: str, entry: ConfigEntry) -> str:
    """Return the registry id of one kind of issue for one account."""
    return f"{kind}_{entry.entry_id}"


@callback
def _raise(
    hass: HomeAssistant,
    entry: ConfigEntry,
    kind: str,
    placeholders: dict[str, str],
    severity: ir.IssueSeverity = ir.IssueSeverity.ERROR,
) -> None:
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(kind, entry),
        is_fixable=False,
        is_persistent=False,
        severity=severity,
        translation_key=kind,
        translation_placeholders={"account": entry.title, **placeholders},
    )


@callback
def async_clear(hass: HomeAssistant, entry: ConfigEntry, kind: str) -> None:
    """Remove one kind of issue of this account, if it is raised."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry))


@callback
def async_clear_all(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Remove every issue of this account (the entry is being removed)."""
    for kind in ISSUES:
        async_clear(hass, entry, kind)


@callback
def async_raise_budget_exhausted(hass: HomeAssistant, entry: ConfigEntry, until: datetime) -> None:
    """Tell the user BMW's daily request budget is spent and REST pauses until `until`."""
    _raise(
        hass,
        entry,
        BUDGET_EXHAUSTED,
        {"until": dt_util.as_local(until).strftime("%Y-%m-%d %H:%M")},
        ir.IssueSeverity.WARNING,
    )


@callback
def async_raise_stream_taken_over(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Tell the user another client keeps taking the account's one stream connection."""
    _raise(hass, entry, STREAM_TAKEN_OVER, {})


@callback
def async_raise_stream_not_subscribed(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Tell the user the client id lacks the CarData Stream subscription."""
    _raise(hass, entry, STREAM_NOT_SUBSCRIBED, {})


@callback
def async_raise_container_limit(
    hass: HomeAssistant, entry: ConfigEntry, containers: Iterable[Container]
) -> None:
    """Tell the user all 10 containers are used, listing them so one can be freed."""
    listing = "\n".join(
        f"- {container.name or '(no name)'} ({container.purpose or 'no purpose'}), "
        f"id {container.container_id}, {container.state or 'unknown state'}"
        for container in containers
    )
    _raise(hass, entry, CONTAINER_LIMIT, {"containers": listing})
