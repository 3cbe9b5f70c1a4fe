"""Fixtures for tests that run the integration inside Home Assistant against the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.cardata.const import SIMULATOR_ENV

if TYPE_CHECKING:
    from tests.simulator.handle import SimulatorHandle


@pytest.fixture(autouse=True)
def _enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/cardata in every integration test."""


@pytest.fixture(autouse=True)
def point_integration_at_simulator(
    sim: SimulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the integration at the simulator through its one development switch.

    The same switch scripts/develop uses: the path of a file holding the simulator's
    ready line.
    """
    ready_file = tmp_path / "simulator-ready.json"
    ready_file.write_text(
        json.dumps(
            {
                "gcdm_url": sim.gcdm_url,
                "api_url": sim.api_url,
                "mqtt_host": sim.mqtt_host,
                "mqtt_port": sim.mqtt_port,
                "ca_file": str(sim.ca_file),
                "client_id": sim.client_id,
                "control_url": sim.control_url,
            }
        )
    )
    monkeypatch.setenv(SIMULATOR_ENV, str(ready_file))
    return ready_file


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in snapshots/, written by Home Assistant's extension."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)
