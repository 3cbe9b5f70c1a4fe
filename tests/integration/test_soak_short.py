"""The soak (bench/soak.py) in short: a few simulated days of faults cost no login, no token,
no more than BMW's daily budget and no error line.

`bench/soak.py --days D` runs this same test for D days (environment variables
CARDATA_SOAK_DAYS, CARDATA_SOAK_SEED, CARDATA_SOAK_RESULT) and prints its counts.
"""

from __future__ import annotations

import logging
import os

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest

from bench.soak import ENV_DAYS, ENV_SEED, async_soak, write_result
from tests.simulator.handle import SimulatorHandle

# Two days: every kind of fault at least once (bench/soak.py's plan), in well under 60 s.
SHORT_RUN = 2


@pytest.mark.timeout(0)
async def test_soak(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Days of broker drops, BMW and Home Assistant restarts, outages, CU-429 and skew."""
    days = int(os.environ.get(ENV_DAYS, SHORT_RUN))
    if days > SHORT_RUN:
        # A month of debug lines would be kept in memory for the secret scan; the short
        # run scans them at debug level, the long one at info level.
        caplog.set_level(logging.INFO, logger="custom_components.cardata")
    result = await async_soak(hass, sim, freezer, days, int(os.environ.get(ENV_SEED, "1")))
    write_result(result)
    assert result.faults, "no fault was injected"
    assert result.recoveries, "the stream was never dropped"
    assert result.days_counts_differ == 0, "\n".join(result.examples)
    assert result.goals_met(), result.line() + "\n" + "\n".join(result.examples)
