"""Property tests: the client library's parsers survive anything BMW might send."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
import hashlib
import json
import re
import string
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.cardata.api.auth import decode_jwt_expiry, decode_jwt_lifetime, generate_pkce
from custom_components.cardata.api.client import error_from_response
from custom_components.cardata.api.errors import (
    ApiError,
    BadRequestError,
    ClientNotSubscribedError,
    DeviceFlowError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReauthRequiredError,
    ServerError,
    TokenInvalidError,
    UnexpectedResponseError,
)
from custom_components.cardata.api.models import (
    BasicData,
    ChargingHistory,
    ChargingSettings,
    Container,
    DeviceAuthorization,
    StreamMessage,
    TelematicData,
    TelematicValue,
    TokenSet,
    TyreDiagnosis,
    VehicleMapping,
)
from custom_components.cardata.api.values import (
    as_bool,
    as_float,
    as_int,
    as_str,
    parse_epoch,
    parse_timestamp,
    parse_value,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["-NA-", "INVALID", "ASN_isTrue", "ASN_isFalse", "ASN_isUnknown", "true"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=15,
)
# Objects whose keys are the field names BMW uses, so the parsers reach their inner branches.
BMW_KEYS = [
    "vin", "mappedSince", "mappingType", "mappings", "containers", "containerId", "name",
    "state", "created", "technicalDescriptors", "telematicData", "value", "unit", "timestamp",
    "data", "next_token", "nextToken", "startTime", "endTime", "displayedSoc", "mileage",
    "mileageUnits", "chargingLocation", "passengerCar", "mountedTyres", "unmountedTyres",
    "frontLeft", "rearRight", "tyreWear", "dueMileage", "errors", "entityId", "topic",
    "chargingModes", "numberOfDoors", "hasNavi", "countryCode", "countryCodeISO",
    "constructionDate", "hvsMaxEnergyAbsolute", "latitude", "visits", "lastVisit",
]  # fmt: skip
bmw_like = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(BMW_KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)
PARSED_TYPES = (str, int, float, bool, type(None))


# --- values ---------------------------------------------------------------------------


@given(json_values)
def test_parse_value_never_raises_and_returns_a_scalar(raw: Any) -> None:
    assert isinstance(parse_value(raw), PARSED_TYPES)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from(["", " ", "\t"]))
def test_quoted_and_bare_integers_parse_equal(number: int, padding: str) -> None:
    assert parse_value(f"{padding}{number}{padding}") == parse_value(number) == number


@given(st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1)))
def test_integers_beyond_64_bits_become_storable_floats(number: int) -> None:
    """Home Assistant's JSON writer refuses such integers; the nearest float is kept."""
    for parsed in (parse_value(number), parse_value(str(number))):
        assert isinstance(parsed, float)
        assert parsed == float(number)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_quoted_and_bare_floats_parse_equal(number: float) -> None:
    parsed = parse_value(repr(number))
    assert parsed == parse_value(number) == number
    assert not isinstance(parsed, bool)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-NA-", None),
        ("INVALID", None),
        ("ASN_isUnknown", None),
        ("", None),
        ("ASN_isTrue", True),
        ("ASN_isFalse", False),
        ("true", True),
        ("FALSE", False),
        (True, True),
        ("14.39", 14.39),
        ("48260", 48260),
        ("0.0", 0.0),
        ("NOCHARGING", "NOCHARGING"),
        ("17.01.2027 00:00:00 UTC", "17.01.2027 00:00:00 UTC"),
        ("NaN", "NaN"),
        ("1e999", "1e999"),
        (float("inf"), None),
        ([1, "a"], '[1,"a"]'),
        ({"b": 1, "a": None}, '{"a":null,"b":1}'),
    ],
)
def test_parse_value_markers_and_types(raw: Any, expected: Any) -> None:
    parsed = parse_value(raw)
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_parse_value_of_unserialisable_structures() -> None:
    # Mixed key types cannot be sorted into JSON text; a readable form is kept.
    assert parse_value({1: "a", "b": 2}) == "{1: 'a', 'b': 2}"


@pytest.mark.parametrize(
    ("raw", "text", "integer", "number", "flag"),
    [
        (5, "5", 5, 5.0, None),
        ("5.0", "5.0", 5, 5.0, None),
        (2.5, "2.5", None, 2.5, None),
        ("ASN_isTrue", "ASN_isTrue", None, None, True),
        (" ", None, None, None, None),
        # Beyond 64 bits and beyond a float: nothing JSON could store.
        (10**400, str(10**400), None, None, None),
        (True, None, None, None, True),
        ([1], None, None, None, None),
    ],
)
def test_field_helpers(raw: Any, text: Any, integer: Any, number: Any, flag: Any) -> None:
    assert as_str(raw) == text
    assert as_int(raw) == integer
    assert as_float(raw) == number
    assert as_bool(raw) is flag


@given(json_values)
def test_parse_timestamp_never_raises_and_is_utc(raw: Any) -> None:
    parsed = parse_timestamp(raw)
    assert parsed is None or parsed.tzinfo is UTC


@given(st.text(alphabet=string.digits + "-:T.Z+ ", max_size=32))
def test_parse_timestamp_survives_timestamp_like_text(raw: str) -> None:
    parsed = parse_timestamp(raw)
    assert parsed is None or parsed.tzinfo is UTC


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        timezones=st.just(UTC),
    )
)
def test_parse_timestamp_reads_every_bmw_format(moment: datetime) -> None:
    millis = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    seconds = moment.replace(microsecond=0)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    ms = f"{moment.microsecond // 1000:03d}"
    assert parse_timestamp(f"{base}.{ms}Z") == millis
    assert parse_timestamp(f"{base}.{ms}+0000") == millis
    assert parse_timestamp(f"{base}Z") == seconds
    assert parse_timestamp(f"{base}+00:00") == seconds
    assert parse_timestamp(base) == seconds
    assert parse_epoch(int(seconds.timestamp())) == seconds
    assert parse_epoch(str(int(seconds.timestamp()))) == seconds


def test_parse_timestamp_converts_offsets_and_rejects_garbage() -> None:
    assert parse_timestamp("2026-09-07T22:40:07.000+0200") == datetime(
        2026, 9, 7, 20, 40, 7, tzinfo=UTC
    )
    assert parse_timestamp(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert parse_timestamp(1_700_000_000_000) == datetime.fromtimestamp(1_700_000_000, UTC)
    edge_of_time = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    for raw in (
        edge_of_time,
        None,
        "",
        "yesterday",
        True,
        "\uff12\uff10\uff12\uff16-01-01",
        10**30,
        [],
        {},
    ):
        assert parse_timestamp(raw) is None


# --- models ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(bmw_like)
def test_result_parsers_never_raise(raw: Any) -> None:
    for mapping in VehicleMapping.list_from_json(raw):
        assert mapping.vin
    for container in Container.list_from_json(raw):
        assert container.container_id
    assert BasicData.from_json(raw, vin="WBA00000000000001").raw is raw
    telematic = TelematicData.from_json(raw, vin="WBA00000000000001", container_id="c")
    assert all(isinstance(v.value, PARSED_TYPES) for v in telematic.values.values())
    assert ChargingHistory.from_json(raw).raw is raw
    assert ChargingSettings.from_json(raw).raw is raw
    assert TyreDiagnosis.from_json(raw).raw is raw
    try:
        message = StreamMessage.from_json(raw)
    except ValueError:
        pass
    else:
        assert message.vin


@given(st.lists(st.sampled_from(["PRIMARY", "SECONDARY", None]), min_size=1, max_size=4))
def test_mappings_accept_array_single_object_and_wrapped(types: list[str | None]) -> None:
    items = [
        {"vin": f"WBA0000000000000{i}", "mappedSince": "2024-03-11T09:15:00Z", "mappingType": t}
        for i, t in enumerate(types)
    ]
    as_array = VehicleMapping.list_from_json(items)
    assert VehicleMapping.list_from_json({"mappings": items}) == as_array
    assert VehicleMapping.list_from_json(items[0]) == as_array[:1]
    assert VehicleMapping.list_from_json({"mappings": items[0]}) == as_array[:1]
    assert [m.is_primary for m in as_array] == [t == "PRIMARY" for t in types]
    assert as_array[0].mapped_since == datetime(2024, 3, 11, 9, 15, tzinfo=UTC)


@given(
    st.dictionaries(
        st.text(alphabet=string.ascii_letters + ".", min_size=1, max_size=20),
        st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False),
        max_size=5,
    )
)
def test_telematic_numbers_quoted_or_not_parse_equal(points: dict[str, int | float]) -> None:
    bare = {k: {"value": v, "unit": "km", "timestamp": None} for k, v in points.items()}
    quoted = {k: {"value": repr(v), "unit": "km", "timestamp": None} for k, v in points.items()}
    parsed_bare = TelematicData.from_json({"telematicData": bare}, vin="V", container_id="c")
    parsed_quoted = TelematicData.from_json({"telematicData": quoted}, vin="V", container_id="c")
    assert {k: v.value for k, v in parsed_bare.values.items()} == points
    assert {k: v.value for k, v in parsed_quoted.values.items()} == points


def test_telematic_value_keeps_raw_value_unit_and_time() -> None:
    value = TelematicValue.from_json(
        {"value": "-NA-", "unit": "kPa", "timestamp": "2026-09-07T20:40:07.000Z"}
    )
    assert value.value is None
    assert value.raw_value == "-NA-"
    assert value.unit == "kPa"
    assert value.timestamp == datetime(2026, 9, 7, 20, 40, 7, tzinfo=UTC)
    null_unit = TelematicValue.from_json({"value": None, "unit": None, "timestamp": None})
    assert (null_unit.value, null_unit.unit, null_unit.timestamp) == (None, None, None)
    assert TelematicValue.from_json(11260) == TelematicValue(value=11260, raw_value=11260)


def test_basic_data_tolerates_both_country_fields_and_extras() -> None:
    real = {
        "bodyType": "Sports Activity Vehicle",
        "brand": "BMW",
        "colourCodeRaw": "300",
        "colourDescription": "ALPINWEISS  III",
        "constructionDate": "2022-10-17T00:00:00.000+0000",
        "countryCode": "ES",
        "driveTrain": "CONV",
        "hasNavi": "false",
        "numberOfDoors": "5",
        "seriesDevt": "U11",
        "unknownField": {"nested": True},
    }
    data = BasicData.from_json(real, vin="WBA00000000000001")
    assert data.vin == "WBA00000000000001"
    assert data.country_code == "ES"
    assert data.colour == "ALPINWEISS  III"
    assert data.colour_code == "300"
    assert data.construction_date == datetime(2022, 10, 17, tzinfo=UTC)
    assert data.has_navi is False
    assert data.number_of_doors == 5
    assert data.series_development == "U11"
    assert data.raw is real
    documented = BasicData.from_json({"countryCodeISO": "DE", "vin": "X", "chargingModes": "AC"})
    assert (documented.country_code, documented.vin, documented.charging_modes) == (
        "DE",
        "X",
        ("AC",),
    )


def test_charging_session_and_settings_fields() -> None:
    history = ChargingHistory.from_json(
        {
            "data": [
                {
                    "startTime": 1668895916,
                    "endTime": "1668896458",
                    "displayedStartSoc": 70,
                    "displayedSoc": "86",
                    "energyConsumedFromPowerGridKwh": 22.979991912841797,
                    "mileageUnits": "MileageUnits.KM",
                    "chargingLocation": {
                        "municipality": "Chippenham",
                        "mapMatchedLatitude": "51.5",
                    },
                }
            ],
            "next_token": "abc",
        }
    )
    session = history.sessions[0]
    assert session.start_time == datetime.fromtimestamp(1668895916, UTC)
    assert session.end_time == datetime.fromtimestamp(1668896458, UTC)
    assert (session.start_soc, session.end_soc, session.mileage_unit) == (70, 86, "KM")
    assert session.energy_kwh == pytest.approx(22.98)
    assert (session.municipality, session.latitude) == ("Chippenham", 51.5)
    assert history.next_token == "abc"
    settings_page = ChargingSettings.from_json(
        {"data": [{"id": "1", "visits": "3"}], "nextToken": "n"}
    )
    assert settings_page.next_token == "n"
    assert settings_page.entries[0].visits == 3


def test_stream_message_parsing() -> None:
    message = StreamMessage.from_json(
        {
            "vin": "WBY11HH",
            "entityId": "gcid",
            "topic": "WBY11HH",
            "timestamp": "2025-10-01T10:12:40.809Z",
            "data": {"a.b": {"timestamp": "2025-10-01T10:12:39Z", "value": "ASN_isTrue"}},
        }
    )
    assert message.vin == "WBY11HH"
    assert message.gcid == "gcid"
    assert message.timestamp == datetime(2025, 10, 1, 10, 12, 40, 809000, tzinfo=UTC)
    assert message.updates["a.b"].value is True
    assert message.updates["a.b"].unit is None
    assert StreamMessage.from_json({"data": {}}, topic_vin="V").vin == "V"
    for bad in ([], {"data": {}}, {"vin": "V", "data": []}):
        with pytest.raises(ValueError):
            StreamMessage.from_json(bad)


# --- tokens ---------------------------------------------------------------------------

aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)
token_sets = st.builds(
    TokenSet,
    access_token=st.text(min_size=1),
    id_token=st.text(),
    refresh_token=st.text(min_size=1),
    access_token_expires_at=aware_datetimes,
    id_token_expires_at=aware_datetimes,
    refresh_token_expires_at=aware_datetimes,
    scope=st.lists(st.text(alphabet=string.ascii_letters + ":_", min_size=1)).map(tuple),
    gcid=st.uuids().map(str),
)


@given(token_sets)
def test_token_set_round_trips_through_json(tokens: TokenSet) -> None:
    stored = json.loads(json.dumps(tokens.as_dict()))
    assert TokenSet.from_dict(stored) == tokens


def test_token_set_from_dict_rejects_damaged_data() -> None:
    now = datetime.now(UTC)
    good = TokenSet(
        access_token="a",
        id_token="i",
        refresh_token="r",
        access_token_expires_at=now,
        id_token_expires_at=now,
        refresh_token_expires_at=now,
        scope=("openid",),
        gcid="g",
    ).as_dict()
    assert TokenSet.from_dict({**good, "scope": "openid cardata:api:read"}).scope == (
        "openid",
        "cardata:api:read",
    )
    for damage in ({"access_token": None}, {"refresh_token_expires_at": "soon"}, {"scope": 5}):
        with pytest.raises(ValueError):
            TokenSet.from_dict({**good, **damage})


def test_secrets_stay_out_of_reprs() -> None:
    now = datetime.now(UTC)
    tokens = TokenSet(
        access_token="ACCESS-SECRET",
        id_token="ID-SECRET",
        refresh_token="REFRESH-SECRET",
        access_token_expires_at=now,
        id_token_expires_at=now,
        refresh_token_expires_at=now,
        scope=(),
        gcid="g",
    )
    device = DeviceAuthorization(
        device_code="DEVICE-SECRET",
        user_code="ABCD1234",
        verification_uri="https://x/oneid/link",
        verification_uri_complete="https://x/oneid/link?user_code=ABCD1234",
        interval=5,
        expires_at=now,
        code_verifier="VERIFIER-SECRET",
    )
    text = repr(tokens) + str(tokens) + repr(device) + str(device)
    assert "SECRET" not in text
    assert "ABCD1234" in text


def test_needs_refresh_looks_at_the_earlier_expiry() -> None:
    now = datetime.now(UTC)
    tokens = TokenSet(
        access_token="a",
        id_token="i",
        refresh_token="r",
        access_token_expires_at=now + timedelta(hours=1),
        id_token_expires_at=now + timedelta(minutes=10),
        refresh_token_expires_at=now + timedelta(days=14),
        scope=(),
        gcid="g",
    )
    assert not tokens.needs_refresh(now)
    assert tokens.needs_refresh(now, margin=timedelta(minutes=10))


# --- auth helpers ---------------------------------------------------------------------


def _jwt(claims: Any) -> str:
    segment = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{segment}.c2ln"


@given(st.integers(min_value=0, max_value=2**33))
def test_decode_jwt_expiry_reads_exp(expiry: int) -> None:
    assert decode_jwt_expiry(_jwt({"exp": expiry, "sub": "x"})) == datetime.fromtimestamp(
        expiry, UTC
    )


@given(st.text() | json_values.map(_jwt))
def test_decode_jwt_expiry_never_raises(token: str) -> None:
    result = decode_jwt_expiry(token)
    assert result is None or result.tzinfo is UTC


@pytest.mark.parametrize(
    "token",
    ["", "opaque", "a.!!!.c", "a.bm90IGpzb24.c", _jwt({"exp": "soon"}), _jwt({"exp": 1e300})],
)
def test_decode_jwt_expiry_gives_none_for_undecodable(token: str) -> None:
    assert decode_jwt_expiry(token) is None


def test_generate_pkce_follows_rfc_7636() -> None:
    verifier, challenge = generate_pkce()
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert challenge == expected.rstrip(b"=").decode()
    assert generate_pkce()[0] != verifier


# --- error mapping --------------------------------------------------------------------


@given(st.integers(min_value=100, max_value=599), st.binary(max_size=300))
def test_error_mapping_never_raises_on_arbitrary_bodies(status: int, body: bytes) -> None:
    error = error_from_response("basic_data", status, body)
    assert isinstance(error, ApiError)
    assert error.status == status
    assert str(error).startswith("basic_data: HTTP")


@given(st.integers(min_value=400, max_value=599), json_values)
def test_error_mapping_never_raises_on_arbitrary_json(status: int, body: Any) -> None:
    assert isinstance(error_from_response("x", status, json.dumps(body).encode()), ApiError)


def _bmw_error(error_id: str, message: str = "m") -> bytes:
    return json.dumps(
        {"exveErrorId": error_id, "exveErrorMsg": message, "exveErrorRef": "r", "exveNote": "n"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, _bmw_error("CU-429", "API rate limit reached"), RateLimitError),
        (429, b"", RateLimitError),
        (403, _bmw_error("CU-127", "invalid_token"), TokenInvalidError),
        (404, _bmw_error("CU-127", "No LBCS data found"), NotFoundError),
        (403, _bmw_error("TP-403", "Bad Request. Forbidden"), TokenInvalidError),
        (404, b"<html>not here</html>", NotFoundError),
        (400, b'{"message": "no id"}', BadRequestError),
        (418, _bmw_error("XX-999"), BadRequestError),
        (502, b"<html>Bad gateway</html>", ServerError),
        (503, _bmw_error("CU-503"), ServerError),
        (403, b"<html>Forbidden</html>", UnexpectedResponseError),
        (400, b"", UnexpectedResponseError),
    ],
)
def test_error_mapping_by_id_then_status(status: int, body: bytes, expected: type) -> None:
    assert type(error_from_response("e", status, body)) is expected


def test_error_excerpt_is_short_and_scrubbed() -> None:
    secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9abcdefghijklmnop"
    error = error_from_response(
        "e", 403, f"<html>\n<b>denied</b> token={secret}</html>".encode() * 20
    )
    assert isinstance(error, UnexpectedResponseError)
    assert secret not in str(error)
    assert len(error.excerpt) <= 120
    assert "\n" not in error.excerpt
    assert error.excerpt.startswith("<html> <b>denied</b>")


def test_error_messages() -> None:
    assert str(ReauthRequiredError("invalid_grant")) == "token refresh refused: invalid_grant"
    assert str(DeviceFlowError("invalid_client", "unknown")) == (
        "device authorization refused: invalid_client (unknown)"
    )
    assert "cardata:api:read" in str(ClientNotSubscribedError(frozenset({"cardata:api:read"})))
    assert str(RateLimitError("image", 403, "CU-429")) == "image: HTTP 403 CU-429"
    assert str(ServerError("image", 500)) == "image: HTTP 500"


def test_permission_denied_says_whether_container_or_vehicle() -> None:
    vehicle = error_from_response("e", 403, _bmw_error("CU-104"))
    container = error_from_response("e", 403, _bmw_error("CU-105"))
    assert isinstance(vehicle, PermissionDeniedError)
    assert isinstance(container, PermissionDeniedError)
    assert (vehicle.container, container.container) == (False, True)
    assert (container.error_id, container.error_message) == ("CU-105", "m")


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=10**6))
def test_decode_jwt_lifetime_is_exp_minus_iat(issued: int, lifetime: int) -> None:
    token = _jwt({"iat": issued, "exp": issued + lifetime})
    assert decode_jwt_lifetime(token) == timedelta(seconds=lifetime)


@pytest.mark.parametrize(
    "claims",
    [{"exp": 1_800_000_000}, {"iat": 1_800_000_000}, {"iat": 5, "exp": 5}, {"iat": 9, "exp": 5}],
)
def test_decode_jwt_lifetime_gives_none_when_the_token_does_not_say(claims: Any) -> None:
    assert decode_jwt_lifetime(_jwt(claims)) is None


@given(st.text() | json_values.map(_jwt))
def test_decode_jwt_lifetime_never_raises(token: str) -> None:
    result = decode_jwt_lifetime(token)
    assert result is None or result > timedelta(0)
