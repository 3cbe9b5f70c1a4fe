"""Untidy input at the parsers and in the merge rule (issue 10: 1, 2, 5, 10, 11).

Pure functions: no simulator needed. What they guarantee end to end is tested in
tests/integration/test_untidy_input.py and by the short fuzz run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
import logging
from typing import Any

import orjson
import pytest

from custom_components.cardata.api import values
from custom_components.cardata.api.models import TelematicValue
from custom_components.cardata.api.stream import (
    ForeignMessageError,
    MalformedMessageError,
    parse_stream_message,
)
from custom_components.cardata.api.values import decode_json, parse_epoch, parse_timestamp
from custom_components.cardata.descriptors import generic_sensor_description
from custom_components.cardata.units import condition_based_services, normalize_unit
from custom_components.cardata.vehicle import MAX_CLOCK_SKEW, DescriptorState, VehicleState
from tests.simulator import fleet

GCID = fleet.GCID_MAIN
VIN = fleet.VIN_BEV
SOC = "vehicle.drivetrain.batteryManagement.header"
POWER = "vehicle.powertrain.electric.battery.charging.power"
FAULT_MEMORY = "vehicle.electronicControlUnit.diagnosticTroubleCodes.raw"


def payload(data: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"vin": VIN, "entityId": GCID, "data": data, **fields}).encode()


# --- 10.5: only the documented error types ---------------------------------------------------


@pytest.mark.parametrize("raw", [10**30, -(10**30), 1e300, "1" * 300, float("inf")])
def test_huge_epoch_times_are_no_time(raw: Any) -> None:
    """Before: OverflowError out of the division by 1000."""
    assert parse_epoch(raw) is None
    if not isinstance(raw, str):
        assert parse_timestamp(raw) is None


def test_deep_nesting_is_a_malformed_message() -> None:
    """Before: RecursionError, logged with a traceback per message."""
    deep = b'{"vin": "' + VIN.encode() + b'", "data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with pytest.raises(MalformedMessageError):
        parse_stream_message(f"{GCID}/{VIN}", deep, gcid=GCID)


def test_deep_nesting_inside_a_value_is_cut_and_storable() -> None:
    """Nesting the decoder accepts but JSON writers refuse (orjson: 255 levels) becomes null."""
    value = json.loads("[" * 900 + "]" * 900)
    message = parse_stream_message(
        f"{GCID}/{VIN}", payload({SOC: {"value": value}, POWER: {"value": 7}}), gcid=GCID
    )
    state = DescriptorState.from_telematic_value(message.updates[SOC], "stream", datetime.now(UTC))
    orjson.dumps(state.as_dict())
    assert message.updates[POWER].value == 7


def test_condition_based_services_nested_too_deeply_are_unreadable() -> None:
    assert condition_based_services("[" * 200_000 + "]" * 200_000) is None


# --- 10.2: values JSON cannot store ---------------------------------------------------------------


def test_values_json_cannot_store_are_repaired_and_the_rest_survives() -> None:
    body = (
        '{"a": 18446744073709551616, "b": -9223372036854775809, "c": NaN, "d": -Infinity,'
        ' "e": 1e999, "\\udfff": "x\\ud800y", "f": "\\ud83d\\ude00", "g": 9223372036854775807}'
    )
    decoded = decode_json(body)
    assert decoded == {
        "a": float(2**64),
        "b": float(-(2**63) - 1),
        "c": None,
        "d": None,
        "e": None,
        "\ufffd": "x\ufffdy",
        "f": "\U0001f600",
        "g": 2**63 - 1,
    }
    orjson.dumps(decoded)


def test_repairs_are_logged_once_an_hour_without_the_values(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "_last_repair_log", None)
    with caplog.at_level(logging.WARNING):
        decode_json('{"secret-looking": "\\ud800abc", "n": NaN}', context="a stream message")
        decode_json('{"n": NaN}', context="a stream message")
    lines = [r.getMessage() for r in caplog.records if r.name == values.__name__]
    assert lines == [
        "BMW sent values JSON cannot store in a stream message (NaN or Infinity, lone "
        "surrogate); they were replaced (further ones within the hour are not logged)"
    ]


def test_a_stream_message_with_unstorable_values_stays_storable() -> None:
    raw = (
        f'{{"vin": "{VIN}", "data": {{"{POWER}": {{"value": 18446744073709551616, "unit": "W"}},'
        f' "{SOC}": {{"value": "\\ud800", "unit": "%"}}}}}}'
    )
    message = parse_stream_message(f"{GCID}/{VIN}", raw.encode(), gcid=GCID)
    now = datetime.now(UTC)
    for point in message.updates.values():
        orjson.dumps(DescriptorState.from_telematic_value(point, "stream", now).as_dict())
    assert message.updates[POWER].value == float(2**64)


# --- 10.10: only our topic, only the topic's car ---------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        (f"{fleet.GCID_OTHER}/{VIN}", payload({SOC: {"value": 5}})),
        (f"{GCID}/{VIN}", payload({SOC: {"value": 5}}, vin=fleet.VIN_PHEV)),
        (f"{GCID}/{VIN}", payload({SOC: {"value": 5}}, topic=fleet.VIN_PHEV)),
        (f"{GCID}/{VIN}/extra", payload({SOC: {"value": 5}})),
        (GCID, payload({SOC: {"value": 5}})),
        ("", payload({SOC: {"value": 5}})),
    ],
)
def test_messages_for_another_topic_or_car_are_foreign(topic: str, body: bytes) -> None:
    with pytest.raises(ForeignMessageError):
        parse_stream_message(topic, body, gcid=GCID)


def test_foreign_message_errors_name_no_full_vin() -> None:
    with pytest.raises(ForeignMessageError) as raised:
        parse_stream_message(
            f"{GCID}/{VIN}", payload({SOC: {"value": 5}}, vin=fleet.VIN_PHEV), gcid=GCID
        )
    assert fleet.VIN_PHEV not in str(raised.value)
    assert VIN not in str(raised.value)
    assert GCID not in str(raised.value)


def test_our_topic_and_car_are_applied() -> None:
    message = parse_stream_message(f"{GCID}/{VIN}", payload({SOC: {"value": 5}}), gcid=GCID)
    assert (message.vin, message.gcid) == (VIN, GCID)


# --- 10.1: future-stamped readings -------------------------------------------------------------------


def point(value: int, timestamp: datetime) -> TelematicValue:
    return TelematicValue(value=value, raw_value=str(value), unit="%", timestamp=timestamp)


def test_a_reading_far_ahead_counts_as_measured_when_it_arrived() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    state = VehicleState()
    state.merge({SOC: point(11, now + timedelta(days=365))}, "stream", now)
    assert state.descriptors[SOC].timestamp == now
    state.merge({SOC: point(64, now + timedelta(seconds=1))}, "rest", now + timedelta(seconds=2))
    assert state.descriptors[SOC].value == 64


def test_a_reading_within_the_clock_skew_keeps_its_time() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    state = VehicleState()
    state.merge({SOC: point(11, now + MAX_CLOCK_SKEW)}, "stream", now)
    assert state.descriptors[SOC].timestamp == now + MAX_CLOCK_SKEW


def test_a_future_reading_stored_before_the_rule_gives_way_after_a_restart() -> None:
    """State written by an earlier version (or a clock that jumped back) is ranked the same."""
    received = datetime.now(UTC) - timedelta(hours=1)
    stored = {
        "descriptors": {
            SOC: {
                "value": 11,
                "raw_value": "11",
                "unit": "%",
                "timestamp": (received + timedelta(days=365)).isoformat(),
                "source": "stream",
                "received_at": received.isoformat(),
                "measured": True,
            }
        }
    }
    state = VehicleState.from_dict(stored)
    assert state.descriptors[SOC].timestamp == received
    now = datetime.now(UTC)
    state.merge({SOC: point(64, now)}, "stream", now)
    assert state.descriptors[SOC].value == 64


# --- 10.11: placeholder units, text values ------------------------------------------------------------


@pytest.mark.parametrize("unit", ["-", " - ", "--", "n/a"])
def test_placeholder_units_mean_no_unit(unit: str) -> None:
    assert normalize_unit(unit) is None


def test_a_text_value_never_gets_a_numeric_sensor() -> None:
    """Even when the car puts a unit next to it."""
    for unit, text in (("-", False), ("km", True)):
        description = generic_sensor_description(FAULT_MEMORY, unit, text=text)
        assert description.native_unit_of_measurement is None
        assert description.state_class is None
        assert description.device_class is None
