"""The integration's telematics container at BMW: which descriptors REST reads, and where.

BMW's `telematicData` endpoint only answers for a container: a named set of descriptors
the account created beforehand. An account may hold ten, and other apps use them too, so
the integration keeps exactly one of its own. It is recognised by name, purpose and
descriptor set; the purpose carries a short signature of the descriptor set because BMW's
container list does not show the descriptors. Its id is cached, so a restart costs no
request; when BMW forgets it (CU-105) it is found or created again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
import hashlib
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from . import issues
from .api.client import CarDataClient
from .api.errors import ContainerLimitError
from .api.models import Container
from .cache import AccountCache
from .const import LOGGER

CONTAINER_NAME: Final = "Home Assistant"
CONTAINER_PURPOSE: Final = "BMW CarData for Home Assistant"
# After BMW refused a container (all ten in use), look again this much later; the user
# frees one and reloads, or the retry finds the free slot.
CONTAINER_LIMIT_RETRY: Final = timedelta(hours=6)

# What a REST poll reads. Chosen for what the stream does not deliver (charging level,
# hvStatus, combined plug status, door lock status, service data) and for the values a
# dashboard needs after a restart or while the stream is down. Every key is in BMW's
# Telematics Data Catalogue; none is a basic-data key or bound to a dedicated endpoint
# (BMW refuses unknown keys with CU-402 and leaves dedicated ones out of telematicData).
REST_DESCRIPTORS: Final[tuple[str, ...]] = (
    # High-voltage battery and charging
    "vehicle.drivetrain.batteryManagement.header",
    "vehicle.powertrain.electric.battery.stateOfCharge.displayed",
    "vehicle.drivetrain.electricEngine.charging.level",
    "vehicle.powertrain.electric.battery.stateOfCharge.target",
    "vehicle.drivetrain.electricEngine.charging.status",
    "vehicle.drivetrain.electricEngine.charging.hvStatus",
    "vehicle.powertrain.electric.battery.charging.power",
    "vehicle.drivetrain.electricEngine.charging.acVoltage",
    "vehicle.drivetrain.electricEngine.charging.acAmpere",
    "vehicle.drivetrain.electricEngine.charging.phaseNumber",
    "vehicle.drivetrain.electricEngine.charging.timeRemaining",
    "vehicle.drivetrain.electricEngine.charging.timeToFullyCharged",
    "vehicle.drivetrain.electricEngine.charging.method",
    "vehicle.drivetrain.electricEngine.charging.lastChargingResult",
    "vehicle.drivetrain.electricEngine.charging.reasonChargingEnd",
    "vehicle.body.chargingPort.status",
    "vehicle.body.chargingPort.combinedStatus",
    "vehicle.body.chargingPort.lockedStatus",
    "vehicle.powertrain.tractionBattery.charging.port.anyPosition.isPlugged",
    "vehicle.drivetrain.batteryManagement.maxEnergy",
    "vehicle.powertrain.electric.battery.preconditioning.state",
    # Range and fuel
    "vehicle.drivetrain.electricEngine.kombiRemainingElectricRange",
    "vehicle.drivetrain.lastRemainingRange",
    "vehicle.drivetrain.totalRemainingRange",
    "vehicle.drivetrain.fuelSystem.level",
    "vehicle.drivetrain.fuelSystem.remainingFuel",
    # Odometer, position, motion
    "vehicle.vehicle.travelledDistance",
    "vehicle.cabin.infotainment.navigation.currentLocation.latitude",
    "vehicle.cabin.infotainment.navigation.currentLocation.longitude",
    "vehicle.cabin.infotainment.navigation.currentLocation.heading",
    "vehicle.cabin.infotainment.navigation.currentLocation.altitude",
    "vehicle.isMoving",
    # Locks, doors, lids, windows
    "vehicle.cabin.door.lock.status",
    "vehicle.cabin.door.status",
    "vehicle.cabin.door.row1.driver.isOpen",
    "vehicle.cabin.door.row1.passenger.isOpen",
    "vehicle.cabin.door.row2.driver.isOpen",
    "vehicle.cabin.door.row2.passenger.isOpen",
    "vehicle.body.trunk.isOpen",
    "vehicle.body.hood.isOpen",
    "vehicle.cabin.window.row1.driver.status",
    "vehicle.cabin.window.row1.passenger.status",
    "vehicle.cabin.window.row2.driver.status",
    "vehicle.cabin.window.row2.passenger.status",
    "vehicle.cabin.sunroof.status",
    # Tyres
    "vehicle.chassis.axle.row1.wheel.left.tire.pressure",
    "vehicle.chassis.axle.row1.wheel.right.tire.pressure",
    "vehicle.chassis.axle.row2.wheel.left.tire.pressure",
    "vehicle.chassis.axle.row2.wheel.right.tire.pressure",
    "vehicle.chassis.axle.row1.wheel.left.tire.pressureTarget",
    "vehicle.chassis.axle.row1.wheel.right.tire.pressureTarget",
    "vehicle.chassis.axle.row2.wheel.left.tire.pressureTarget",
    "vehicle.chassis.axle.row2.wheel.right.tire.pressureTarget",
    # 12 V battery, climate, service
    "vehicle.electricalSystem.battery.voltage",
    "vehicle.electricalSystem.battery.stateOfCharge",
    "vehicle.vehicle.preConditioning.activity",
    "vehicle.cabin.hvac.preconditioning.status.comfortState",
    "vehicle.status.conditionBasedServices",
    "vehicle.status.checkControlMessages",
    "vehicle.status.serviceTime.inspectionDateLegal",
)


def descriptor_signature(descriptors: Iterable[str]) -> str:
    """Return a short, order-independent fingerprint of a descriptor set."""
    text = "\n".join(sorted(set(descriptors)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def container_purpose(signature: str) -> str:
    """Return the purpose our container is created with, naming its descriptor set."""
    return f"{CONTAINER_PURPOSE} (set {signature[:8]})"


def is_own_container(container: Container, descriptors: Sequence[str]) -> bool:
    """Return True for an active container of ours holding exactly `descriptors`."""
    signature = descriptor_signature(descriptors)
    if (
        not container.is_active
        or container.name != CONTAINER_NAME
        or container.purpose != container_purpose(signature)
    ):
        return False
    # The list BMW returns has no descriptors; when a container carries them, they decide.
    return not container.technical_descriptors or set(container.technical_descriptors) == set(
        descriptors
    )


def is_outdated_own_container(container: Container, descriptors: Sequence[str]) -> bool:
    """Return True for an active container an earlier version of the integration made."""
    return (
        container.is_active
        and container.name == CONTAINER_NAME
        and (container.purpose or "").startswith(CONTAINER_PURPOSE)
        and not is_own_container(container, descriptors)
    )


class ContainerKeeper:
    """Finds, creates and remembers the integration's container of one account.

    Calls BMW only when the cached id is missing or was made for another descriptor set:
    one request to list the containers, one more to create ours when none fits. Errors of
    those requests propagate, except BMW's container limit, which raises a repair issue
    listing the account's containers; REST telematics then pause (the stream goes on)
    until a retry finds a free slot.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: CarDataClient,
        cache: AccountCache,
        descriptors: Sequence[str] = REST_DESCRIPTORS,
    ) -> None:
        """Keep the container of the account `cache` belongs to."""
        self._hass = hass
        self._entry = entry
        self._client = client
        self._cache = cache
        self.descriptors = tuple(descriptors)
        self.signature = descriptor_signature(self.descriptors)
        self._limit_reached_at: datetime | None = None

    @property
    def container_id(self) -> str | None:
        """Return the id of our container, if known."""
        if self._cache.container_signature != self.signature:
            return None
        return self._cache.container_id

    @property
    def retry_at(self) -> datetime | None:
        """Return when to ask BMW again after it refused a container (limit reached)."""
        if self._limit_reached_at is None:
            return None
        return self._limit_reached_at + CONTAINER_LIMIT_RETRY

    def needs_work(self, now: datetime | None = None) -> bool:
        """Return True when the container is unknown and looking for it is due."""
        if self.container_id is not None:
            return False
        retry_at = self.retry_at
        return retry_at is None or (now or dt_util.utcnow()) >= retry_at

    async def async_ensure(self) -> str | None:
        """Return our container's id, finding or creating the container if needed.

        None means BMW's limit of ten containers is reached (a repair issue says so).
        """
        if (container_id := self.container_id) is not None:
            return container_id
        containers = await self._client.list_containers()
        own = [item for item in containers if is_own_container(item, self.descriptors)]
        if own:
            newest = max(own, key=lambda item: item.created or datetime.min.replace(tzinfo=UTC))
            LOGGER.debug("Reusing the telematics container made earlier")
            return await self._async_remember(newest.container_id)
        created = await self._async_create(containers)
        if created is None:
            return None
        LOGGER.info("Created the telematics container %r at BMW", CONTAINER_NAME)
        return await self._async_remember(created.container_id)

    async def async_forget(self) -> None:
        """Forget the container id (BMW answered CU-105: it no longer knows it)."""
        self._cache.clear_container()
        await self._cache.async_save()

    async def _async_create(self, containers: list[Container]) -> Container | None:
        """Create our container; on BMW's limit free an outdated one of ours, else report."""
        try:
            return await self._client.create_container(
                CONTAINER_NAME, container_purpose(self.signature), self.descriptors
            )
        except ContainerLimitError:
            outdated = [
                item for item in containers if is_outdated_own_container(item, self.descriptors)
            ]
            if not outdated:
                self._report_limit(containers)
                return None
        # A container an earlier version of the integration left behind takes the slot.
        await self._client.delete_container(outdated[0].container_id)
        try:
            return await self._client.create_container(
                CONTAINER_NAME, container_purpose(self.signature), self.descriptors
            )
        except ContainerLimitError:
            self._report_limit(containers)
            return None

    def _report_limit(self, containers: list[Container]) -> None:
        """Raise the repair issue that lists the account's containers."""
        if self._limit_reached_at is None:
            LOGGER.warning(
                "BMW refuses a new telematics container: the account already has %s "
                "containers; values come from the stream only until one is freed",
                sum(1 for item in containers if item.is_active),
            )
        self._limit_reached_at = dt_util.utcnow()
        issues.async_raise_container_limit(self._hass, self._entry, containers)

    async def _async_remember(self, container_id: str) -> str:
        """Cache the container id and clear a container-limit issue."""
        self._cache.set_container(container_id, self.signature)
        await self._cache.async_save()
        self._limit_reached_at = None
        issues.async_clear(self._hass, self._entry, issues.CONTAINER_LIMIT)
        return container_id
