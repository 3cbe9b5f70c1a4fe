"""Constants of the BMW CarData integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "cardata"
LOGGER = logging.getLogger(__package__)

# Config entry data. The entry's unique id is the account's GCID.
CONF_CLIENT_ID: Final = "client_id"
CONF_GCID: Final = "gcid"
CONF_TOKENS: Final = "tokens"

# Options: how much of BMW's daily budget the integration may spend by itself; the rest is
# kept for the user's actions.
CONF_AUTOMATIC_BUDGET: Final = "automatic_budget"
DAILY_BUDGET: Final = 50
DEFAULT_AUTOMATIC_BUDGET: Final = 40
MIN_AUTOMATIC_BUDGET: Final = 5
BUDGET_WINDOW: Final = timedelta(hours=24)

# The switch that points a development instance at the local BMW simulator: the path of the
# simulator's ready-line file. Production installs never set it.
SIMULATOR_ENV: Final = "CARDATA_SIMULATOR"
