"""The fuzz (bench/fuzz.py) in short: untidy payloads never escape, break entities or storage.

`bench/fuzz.py --payloads N` runs this same test with N payloads (environment variables
CARDATA_FUZZ_PAYLOADS, CARDATA_FUZZ_SEED, CARDATA_FUZZ_RESULT) and prints its counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import os

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.fuzz import ENV_PAYLOADS, ENV_SEED, async_fuzz, write_result
from custom_components.cardata.api.models import StreamMessage, TelematicValue
from custom_components.cardata.descriptor_names import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import async_add_entry
from .entities import async_enable_all, async_wait_for_stream

# A few thousand payloads: every kind of payload many times, in well under 20 s.
SHORT_RUN = 3000


@pytest.fixture
async def entry(hass: HomeAssistant, sim: SimulatorHandle) -> AsyncIterator[MockConfigEntry]:
    """Account "main" with an entity for every descriptor BMW names, all enabled."""
    entry = await async_add_entry(hass, sim)
    await async_wait_for_stream(hass, entry)
    now = dt_util.utcnow()
    entry.runtime_data.coordinator.apply_stream_message(
        StreamMessage(
            vin=fleet.VIN_BEV,
            gcid=sim.gcid,
            timestamp=now,
            updates={
                descriptor: TelematicValue(
                    value=1 if descriptor in DESCRIPTOR_UNITS else "A",
                    raw_value="1" if descriptor in DESCRIPTOR_UNITS else "A",
                    unit=DESCRIPTOR_UNITS.get(descriptor),
                    timestamp=now,
                )
                for descriptor in DESCRIPTOR_NAMES
            },
        )
    )
    await hass.async_block_till_done()
    await async_enable_all(hass, entry)
    await async_wait_for_stream(hass, entry)
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.mark.timeout(0)
async def test_fuzz(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Nothing escapes, no entity fails to write, all stays storable, no value freezes."""
    payloads = int(os.environ.get(ENV_PAYLOADS, SHORT_RUN))
    result = await async_fuzz(hass, entry, payloads, int(os.environ.get(ENV_SEED, "1")))
    write_result(result)
    assert result.payloads == payloads
    assert result.line() == (
        f"fuzz: {payloads} payloads, 0 escaped, 0 entity-write errors, 0 storage failures, 0 frozen"
    ), "\n".join(result.examples)
