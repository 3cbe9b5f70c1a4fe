"""Constants of BMW's CarData service: hosts, paths, scopes and protocol values."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# GCDM, BMW's customer identity service (OAuth 2.0 device authorization grant).
GCDM_BASE_URL: Final = "https://customer.bmwgroup.com"
DEVICE_CODE_PATH: Final = "/gcdm/oauth/device/code"
TOKEN_PATH: Final = "/gcdm/oauth/token"
DEVICE_CODE_GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN_GRANT_TYPE: Final = "refresh_token"

SCOPE_AUTHENTICATE_USER: Final = "authenticate_user"
SCOPE_OPENID: Final = "openid"
SCOPE_API: Final = "cardata:api:read"
SCOPE_STREAMING: Final = "cardata:streaming:read"
BASE_SCOPES: Final = (SCOPE_AUTHENTICATE_USER, SCOPE_OPENID)
# The CarData services a client id must be subscribed to in BMW's portal, one scope each.
SERVICE_SCOPES: Final = (SCOPE_API, SCOPE_STREAMING)
DEFAULT_SCOPES: Final = (*BASE_SCOPES, *SERVICE_SCOPES)

# GCDM issues refresh tokens for two weeks but does not say so in the token response.
REFRESH_TOKEN_LIFETIME: Final = timedelta(days=14)
# RFC 8628 section 3.5: a slow_down answer adds five seconds to the polling interval.
SLOW_DOWN_INCREMENT: Final = 5
DEFAULT_POLL_INTERVAL: Final = 5
DEFAULT_ACCESS_TOKEN_LIFETIME: Final = 3600

# CarData REST API.
API_BASE_URL: Final = "https://api-cardata.bmwgroup.com"
API_VERSION_HEADER: Final = "x-version"
API_VERSION: Final = "v1"
DAILY_REQUEST_LIMIT: Final = 50
# BMW refuses charging-history ranges longer than about 45 days (CU-401).
CHARGING_HISTORY_MAX_RANGE: Final = timedelta(days=45)
# Safety net for paged endpoints: the largest share of the daily limit an action can have,
# 50 less the smallest automatic share the integration's options allow (5).
MAX_PAGES: Final = 45

PATH_VEHICLE_MAPPINGS: Final = "/customers/vehicles/mappings"
PATH_CONTAINERS: Final = "/customers/containers"
PATH_CONTAINER: Final = "/customers/containers/{container_id}"
PATH_BASIC_DATA: Final = "/customers/vehicles/{vin}/basicData"
PATH_TELEMATIC_DATA: Final = "/customers/vehicles/{vin}/telematicData"
PATH_CHARGING_HISTORY: Final = "/customers/vehicles/{vin}/chargingHistory"
PATH_TYRE_DIAGNOSIS: Final = "/customers/vehicles/{vin}/smartMaintenanceTyreDiagnosis"
PATH_IMAGE: Final = "/customers/vehicles/{vin}/image"
PATH_CHARGING_SETTINGS: Final = "/customers/vehicles/{vin}/locationBasedChargingSettings"

# Endpoint names shared with the request hook, the budget and the simulator.
ENDPOINT_DEVICE_CODE: Final = "device_code"
ENDPOINT_TOKEN: Final = "token"
ENDPOINT_VEHICLE_MAPPINGS: Final = "vehicle_mappings"
ENDPOINT_BASIC_DATA: Final = "basic_data"
ENDPOINT_CONTAINERS: Final = "containers"
ENDPOINT_CONTAINER_CREATE: Final = "container_create"
ENDPOINT_CONTAINER: Final = "container"
ENDPOINT_CONTAINER_DELETE: Final = "container_delete"
ENDPOINT_TELEMATIC_DATA: Final = "telematic_data"
ENDPOINT_CHARGING_HISTORY: Final = "charging_history"
ENDPOINT_TYRE_DIAGNOSIS: Final = "tyre_diagnosis"
ENDPOINT_IMAGE: Final = "image"
ENDPOINT_CHARGING_SETTINGS: Final = "location_based_charging_settings"
REST_ENDPOINTS: Final = (
    ENDPOINT_VEHICLE_MAPPINGS,
    ENDPOINT_BASIC_DATA,
    ENDPOINT_CONTAINERS,
    ENDPOINT_CONTAINER_CREATE,
    ENDPOINT_CONTAINER,
    ENDPOINT_CONTAINER_DELETE,
    ENDPOINT_TELEMATIC_DATA,
    ENDPOINT_CHARGING_HISTORY,
    ENDPOINT_TYRE_DIAGNOSIS,
    ENDPOINT_IMAGE,
    ENDPOINT_CHARGING_SETTINGS,
)

# MQTT streaming.
STREAM_HOST: Final = "customer.streaming-cardata.bmwgroup.com"
STREAM_PORT: Final = 9000

# Seconds allowed for one HTTP exchange with GCDM or the REST API.
DEFAULT_TIMEOUT: Final = 30.0
