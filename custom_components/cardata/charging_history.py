"""BMW's charging history as long-term statistics, for the Energy dashboard.

Ten minutes after a charging session ends (at most once a day per car), and once a week
anyway, the sessions of the last 30 days are fetched: one request from the automatic share,
as a housekeeping task of the poller. Every session ever seen is kept in a
Store; the hourly series is rebuilt from all of them and written as external statistics
(`cardata:<vin>_charging_history`), each session's grid energy spread over the hours it
lasted. Writing the whole series again replaces the rows of the same hours, so importing a
session twice never counts it twice. Sessions at public chargers are included: BMW's
history has them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import async_add_external_statistics
from homeassistant.const import UnitOfEnergy
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .vehicle import Vehicle, redact_vin

if TYPE_CHECKING:
    from .api.client import CarDataClient
    from .api.models import ChargingSession

STORAGE_VERSION: Final = 1
# A finished charging session is fetched this long after its end (BMW files it meanwhile),
# at most once per car in IMPORT_INTERVAL; without sessions, a catch-up once a week (also
# for sessions the stream missed), the first two days after set-up.
AFTER_SESSION_DELAY: Final = timedelta(minutes=10)
IMPORT_INTERVAL: Final = timedelta(days=1)
CATCH_UP_INTERVAL: Final = timedelta(days=7)
FIRST_IMPORT_DELAY: Final = timedelta(days=2)
# BMW serves at most about 45 days at a time; a daily import needs far less.
LOOK_BACK: Final = timedelta(days=30)
_HOUR: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class _Session:
    start: datetime
    end: datetime
    energy_kwh: float

    @property
    def key(self) -> str:
        return self.start.isoformat()


def statistic_id(vin: str) -> str:
    """Return the id of a car's charging-history statistic."""
    return f"{DOMAIN}:{vin.lower()}_charging_history"


class ChargingHistoryImporter:
    """Fetches each car's charging history once a day and writes it as statistics."""

    def __init__(self, hass: HomeAssistant, account: str, client: CarDataClient) -> None:
        """Create the importer; `async_load` reads what was imported before."""
        self._hass = hass
        self._client = client
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.charging_history.{account}"
        )
        self._fetched_at: dict[str, datetime] = {}
        self._first_due = dt_util.utcnow() + FIRST_IMPORT_DELAY
        self._session_ended: dict[str, datetime] = {}
        self._sessions: dict[str, dict[str, _Session]] = {}

    async def async_load(self) -> None:
        """Read the sessions seen before and when each car's history was last fetched."""
        stored = await self._store.async_load() or {}
        self._first_due = dt_util.utcnow() + FIRST_IMPORT_DELAY
        for vin, data in stored.items():
            if not isinstance(data, Mapping):
                continue
            if (fetched := _moment(data.get("fetched_at"))) is not None:
                self._fetched_at[vin] = fetched
            sessions = data.get("sessions")
            if isinstance(sessions, Iterable):
                parsed = (_stored_session(raw) for raw in sessions)
                self._sessions[vin] = {s.key: s for s in parsed if s is not None}

    def due_at(self, vin: str, now: datetime) -> datetime:
        """Return when a car's history is next due."""
        fetched = self._fetched_at.get(vin)
        due = fetched + CATCH_UP_INTERVAL if fetched is not None else self._first_due
        if (ended := self._session_ended.get(vin)) is not None:
            after_session = ended + AFTER_SESSION_DELAY
            if fetched is not None:
                after_session = max(after_session, fetched + IMPORT_INTERVAL)
            due = min(due, after_session)
        return due

    def after_session_due_at(self, vins: Iterable[str]) -> datetime | None:
        """Return when the first history that follows a finished session is due, if any."""
        moments = [
            self.due_at(vin, ended) for vin in vins if (ended := self._session_ended.get(vin))
        ]
        return min(moments, default=None)

    def note_session_ended(self, vin: str, ended_at: datetime) -> None:
        """Fetch the car's history soon: BMW files the session that just ended."""
        self._session_ended[vin] = ended_at

    def due_vehicle(self, vins: Iterable[str], now: datetime) -> str | None:
        """Return a car whose history is due, if any."""
        return next((vin for vin in vins if self.due_at(vin, now) <= now), None)

    async def async_import(self, vehicle: Vehicle) -> None:
        """Fetch one page of a car's recent history and rewrite its statistics (one request)."""
        now = dt_util.utcnow()
        # Noted first: a failed request is not repeated before tomorrow either.
        self._fetched_at[vehicle.vin] = now
        self._session_ended.pop(vehicle.vin, None)
        try:
            history = await self._client.get_charging_history(vehicle.vin, now - LOOK_BACK, now)
        finally:
            await self._store.async_save(self._data_to_save())
        known = self._sessions.setdefault(vehicle.vin, {})
        new = 0
        for raw in history.sessions:
            if (session := _session(raw)) is not None and session.key not in known:
                known[session.key] = session
                new += 1
        await self._store.async_save(self._data_to_save())
        LOGGER.debug(
            "Charging history of %s: %d new of %d sessions",
            redact_vin(vehicle.vin),
            new,
            len(history.sessions),
        )
        if known and "recorder" in self._hass.config.components:
            self.write_statistics(vehicle, known.values())

    def write_statistics(self, vehicle: Vehicle, sessions: Iterable[_Session]) -> None:
        """Write the hourly series of all known sessions (replacing earlier rows)."""
        hourly = hourly_energy(sessions)
        total = 0.0
        rows: list[StatisticData] = []
        for hour in sorted(hourly):
            total += hourly[hour]
            rows.append(StatisticData(start=hour, state=hourly[hour], sum=total))
        async_add_external_statistics(self._hass, _metadata(vehicle), rows)

    def _data_to_save(self) -> dict[str, Any]:
        return {
            vin: {
                "fetched_at": fetched.isoformat(),
                "sessions": [
                    {
                        "start": session.start.isoformat(),
                        "end": session.end.isoformat(),
                        "energy_kwh": session.energy_kwh,
                    }
                    for session in self._sessions.get(vin, {}).values()
                ],
            }
            for vin, fetched in self._fetched_at.items()
        }


def hourly_energy(sessions: Iterable[_Session]) -> dict[datetime, float]:
    """Spread each session's energy over the hours it lasted, in proportion to the time."""
    hourly: dict[datetime, float] = {}
    for session in sessions:
        length = (session.end - session.start).total_seconds()
        hour = session.start.replace(minute=0, second=0, microsecond=0)
        if length <= 0:
            hourly[hour] = hourly.get(hour, 0.0) + session.energy_kwh
            continue
        while hour < session.end:
            overlap = min(hour + _HOUR, session.end) - max(hour, session.start)
            share = session.energy_kwh * overlap.total_seconds() / length
            hourly[hour] = hourly.get(hour, 0.0) + share
            hour += _HOUR
    return hourly


def _metadata(vehicle: Vehicle) -> StatisticMetaData:
    metadata: dict[str, Any] = {
        "has_sum": True,
        "name": f"{vehicle.name} charging history",
        "source": DOMAIN,
        "statistic_id": statistic_id(vehicle.vin),
        "unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
        "mean_type": StatisticMeanType.NONE,
    }
    if "unit_class" in StatisticMetaData.__annotations__:
        # Newer releases convert units by class and report a missing one; older ones
        # have no such column and refuse the key.
        metadata["unit_class"] = "energy"
    return cast(StatisticMetaData, metadata)


def _session(raw: ChargingSession) -> _Session | None:
    """Return a session with a start, an end and its grid energy; None when one is missing."""
    if raw.start_time is None or raw.energy_kwh is None or raw.energy_kwh < 0:
        return None
    end = raw.end_time or raw.start_time
    if raw.end_time is None and raw.duration_seconds:
        end = raw.start_time + timedelta(seconds=raw.duration_seconds)
    return _Session(dt_util.as_utc(raw.start_time), dt_util.as_utc(end), float(raw.energy_kwh))


def _stored_session(raw: object) -> _Session | None:
    if not isinstance(raw, Mapping):
        return None
    start, end = _moment(raw.get("start")), _moment(raw.get("end"))
    energy = raw.get("energy_kwh")
    if start is None or end is None or not isinstance(energy, int | float):
        return None
    return _Session(start, end, float(energy))


def _moment(raw: object) -> datetime | None:
    return dt_util.parse_datetime(raw) if isinstance(raw, str) else None
