"""The suite-wide guard: a credential in any log line fails the test that logged it."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import _assert_no_secret_logged
from tests.simulator.handle import SimulatorHandle

_LOGGER = logging.getLogger("custom_components.cardata.leak_demo")


async def test_scan_names_the_logger_that_leaked(
    sim: SimulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """Every token, device code and verifier the simulator handed out is looked for."""
    tokens = await sim.issue_tokens()
    issued = sim.secrets_blocking()
    assert {tokens["access_token"], tokens["id_token"], tokens["refresh_token"]} <= set(issued)
    assert len(issued) == 5  # three tokens, the device code and the PKCE verifier

    _LOGGER.debug("harmless line about account %s", tokens["gcid"])
    _assert_no_secret_logged(issued, caplog)

    _LOGGER.debug("refreshed with %s", tokens["refresh_token"][-12:])  # a fragment is no leak
    _assert_no_secret_logged(issued, caplog)

    _LOGGER.debug("oops %s", tokens["refresh_token"])
    with pytest.raises(AssertionError, match=r"custom_components\.cardata\.leak_demo") as failure:
        _assert_no_secret_logged(issued, caplog)
    assert tokens["refresh_token"] not in str(failure.value)
    caplog.clear()  # the planted leak must not fail this test's own teardown scan
