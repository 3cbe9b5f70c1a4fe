"""The charging bench (bench/charging_soc.py) in short: the estimate stays near the truth.

The real integration watches a session the simulator charges physically; every simulated
minute the estimated state of charge a driver sees is compared with the simulator's true
state of charge, never with numbers written here. In the test suite it runs one short AC
session with the state of charge withheld while charging (the hard case).
`bench/charging_soc.py` runs this same test with every scenario (environment variables
CARDATA_CHARGING_SCENARIOS, CARDATA_CHARGING_QUIRKS, CARDATA_CHARGING_RESULT) and prints
the results.
"""

from __future__ import annotations

from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.charging_soc import QUIRK_SETS, SessionProbe, scenarios_to_run, write_results
from tests.simulator import fleet
from tests.simulator.handle import SimulatorHandle

from .common import TimeTravel
from .entities import async_platforms_set_up, async_wait_for_stream, entity_id

# The stream reconnects on purpose when its id token is renewed; that is no drop.
CREDENTIALS_ROTATED = "reconnecting with new credentials"


class _Integration:
    """The running integration as the probe sees it: readings, stream drops, restarts."""

    def __init__(self, hass: HomeAssistant, entry: MockConfigEntry) -> None:
        self._hass = hass
        self._entry = entry

    def value(self, descriptor: str) -> Any:
        reading = self._entry.runtime_data.coordinator.state(fleet.VIN_BEV).get(descriptor)
        return reading.value if reading is not None else None

    def drops(self) -> int:
        diagnostics = self._entry.runtime_data.stream.as_diagnostics()
        return sum(
            item["reason"] != CREDENTIALS_ROTATED for item in diagnostics["recent_disconnects"]
        )

    async def restart(self) -> None:
        assert await self._hass.config_entries.async_reload(self._entry.entry_id)
        await self._hass.async_block_till_done()
        await async_wait_for_stream(self._hass, self._entry)


@pytest.mark.timeout(0)
@pytest.mark.parametrize(("scenario", "quirks"), scenarios_to_run())
async def test_estimate_stays_within_goal_of_the_true_state_of_charge(
    hass: HomeAssistant,
    sim: SimulatorHandle,
    freezer: FrozenDateTimeFactory,
    scenario: str,
    quirks: str,
) -> None:
    """Every minute of the session the estimate is within the goal of the car's true charge."""
    # Both clocks move only together: the run's real time must not open a gap between them.
    freezer.move_to(await sim.freeze_clock())
    async with async_platforms_set_up(hass, sim, [Platform.SENSOR]) as entry:
        probe = SessionProbe(
            hass,
            sim,
            TimeTravel(hass, sim, freezer, readings_after_their_time=True),
            fleet.VIN_BEV,
            (
                entity_id(hass, "sensor", fleet.VIN_BEV, "estimated_state_of_charge"),
                entity_id(hass, "sensor", fleet.VIN_BEV, "state_of_charge"),
            ),
            _Integration(hass, entry),
        )
        results = await probe.async_run(scenario, quirks)
    write_results(results)
    for result in results:
        assert not result.notes, result.notes
        assert result.stream_drops == 0, result.line()
        assert result.within_goal, result.line()
        if QUIRK_SETS[quirks]["withhold_charging_soc"]:
            # Without the car's own percents while charging, the estimate is what a driver
            # has: it beats showing the last measured value.
            assert result.estimate_max < result.measured_max, result.line()
