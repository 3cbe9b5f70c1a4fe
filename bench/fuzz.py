"""Fuzz: untidy payloads through the stream, REST parsers, coordinator and entities.

Pushes N generated payloads into a real Home Assistant (pytest-homeassistant-custom-component's
harness) with the integration set up against the simulator:

- stream payloads through the stream client's real message handler (`CarDataStream`'s paho
  `on_message`, which parses, checks topic and VIN, and hands over to the stream manager,
  the coordinator and the entities);
- REST bodies through the client's real answer decoding and every endpoint's `from_json`
  (mappings, basic data, containers, telematic data, charging history and settings, tyres,
  error bodies); telematic data goes on into the coordinator as a poll's would.

Payloads: non-JSON, wrong types, huge and deeply nested values, NaN/Infinity, lone
surrogates, future and ancient times, unknown descriptors, other VINs and topics, 1 MB bodies.

Counts:
- escaped: exceptions out of an entry point, and error log lines not about an entity write;
- entity-write errors: exceptions and error or warning lines from writing an entity's state;
- storage failures: what our Store and Home Assistant's restore_state would write that
  Home Assistant's JSON writer (orjson) refuses, checked every 500 payloads and at the end,
  and REST answers (`raw`, what actions return) it refuses;
- frozen: descriptors that a fresh real reading afterwards does not reach (measured at the
  end of the trusted clock-skew window, so that no value the fuzz was allowed to date ahead
  can outrank it).

    .venv-3.14/bin/python -m bench.fuzz --payloads 100000 [--seed 1]

The last line is `fuzz: N payloads, E escaped, W entity-write errors, S storage failures,
F frozen`. The run itself is tests/integration/test_fuzz_short.py (it needs the harness's
fixtures); this script starts it with the requested size and prints its result.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
import json
import logging
import os
from pathlib import Path
import random
import subprocess
import sys
import tempfile
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_PAYLOADS = "CARDATA_FUZZ_PAYLOADS"
ENV_SEED = "CARDATA_FUZZ_SEED"
ENV_RESULT = "CARDATA_FUZZ_RESULT"
STORAGE_CHECK_EVERY = 500
MEGABYTE = 1_000_000
FRESH_VALUE = 424_242

UNKNOWN_DESCRIPTORS = (
    *(f"vehicle.fuzz.unknown{n}.value" for n in range(20)),
    "vehicle.fuzz." + "x" * 300,
    "vehicle.fuzz.\ud800",
    "not a descriptor at all",
    "",
)
ODD_TEXTS = (
    "",
    " ",
    "-NA-",
    "INVALID",
    "ASN_isTrue",
    "ASN_isUnknown",
    "true",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-" * 3,
    "\ud800",
    "\udfff\ud800",
    "x\u0000y",
    "<dtcs><dtc code='1'/></dtcs>",
    "9" * 30,
    "9" * 5000,
    "1" * 300 + "x",
    "2026-13-45T99:99:99Z",
)
ODD_UNITS = (None, "-", "", "%", "percent", "km", "miles", "kWh", "W", "Celsius", "\ud800", 5, [])


@dataclass
class FuzzResult:
    """What the fuzz counted."""

    payloads: int = 0
    escaped: int = 0
    entity_write_errors: int = 0
    storage_failures: int = 0
    frozen: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The summary line."""
        return (
            f"fuzz: {self.payloads} payloads, {self.escaped} escaped, "
            f"{self.entity_write_errors} entity-write errors, "
            f"{self.storage_failures} storage failures, {self.frozen} frozen"
        )

    def note(self, text: str) -> None:
        """Keep a few examples of what went wrong, for whoever fixes it."""
        if len(self.examples) < 20:
            self.examples.append(text[:2000])


class _ErrorLog(logging.Handler):
    """Collects error lines, and warning lines about entities, while the fuzz runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or _about_entity_state(record):
            self.records.append(record)


def _about_entity_state(record: logging.LogRecord) -> bool:
    return record.name.startswith(
        ("homeassistant.components.sensor", "homeassistant.helpers.entity")
    )


def _is_entity_write(exc: BaseException | None, record: logging.LogRecord | None = None) -> bool:
    if record is not None and _about_entity_state(record):
        return True
    if exc is None:
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any("write_ha_state" in frame.name for frame in frames)


# --- payload generators -------------------------------------------------------------------------


class Payloads:
    """Random untidy payloads, reproducible from a seed."""

    def __init__(self, seed: int, gcid: str, vin: str, other_vins: tuple[str, ...]) -> None:
        from custom_components.cardata.descriptor_names import DESCRIPTOR_NAMES  # noqa: PLC0415

        self.rng = random.Random(seed)
        self.gcid = gcid
        self.vin = vin
        self.other_vins = other_vins
        self.descriptors = tuple(DESCRIPTOR_NAMES)
        self.now = datetime.now(UTC)

    # values

    def timestamp(self) -> Any:
        rng = self.rng
        choice = rng.randrange(16)
        now = self.now
        if choice < 5:
            return (now - timedelta(seconds=rng.randrange(0, 86_400))).isoformat()
        if choice == 5:
            return (now + timedelta(minutes=rng.randrange(1, 10))).isoformat()
        if choice == 6:
            return (now + timedelta(days=rng.randrange(1, 3650))).isoformat()
        if choice == 7:
            return rng.choice(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "1970-01-01"])
        if choice == 8:
            return rng.choice([10**30, -(10**30), 1e300, 2**63, 253402300800, -62135596801])
        if choice == 9:
            return int(now.timestamp() * rng.choice([1, 1000]))
        if choice == 10:
            return rng.choice(ODD_TEXTS)
        if choice == 11:
            return rng.choice([True, [], {}, 1.5])
        return None

    def scalar(self) -> Any:
        rng = self.rng
        choice = rng.randrange(14)
        if choice < 3:
            return rng.choice([rng.randint(-1000, 1000), round(rng.uniform(-1e4, 1e4), 3)])
        if choice < 5:
            return str(rng.choice([rng.randint(0, 500_000), round(rng.uniform(0, 100), 1)]))
        if choice == 5:
            return rng.choice([2**63, 2**64, -(2**63) - 1, 10**40, 1e308, -1e308, 5e-324])
        if choice == 6:
            return rng.choice(ODD_TEXTS)
        if choice == 7:
            return rng.choice([True, False, None])
        if choice == 8:
            return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(300)))
        return rng.choice(["CHARGING", "NOCHARGING", "LOCKED", "OPEN", "CLOSED", "-NA-"])

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        if depth < 3 and rng.random() < 0.1:
            if rng.random() < 0.5:
                return [self.value(depth + 1) for _ in range(rng.randrange(4))]
            return {str(self.scalar()): self.value(depth + 1) for _ in range(rng.randrange(4))}
        return self.scalar()

    def point(self) -> Any:
        rng = self.rng
        if rng.random() < 0.05:
            return self.value()
        point: dict[str, Any] = {"value": self.value()}
        if rng.random() < 0.8:
            point["timestamp"] = self.timestamp()
        if rng.random() < 0.7:
            point["unit"] = rng.choice(ODD_UNITS)
        return point

    def descriptor(self) -> str:
        if self.rng.random() < 0.05:
            return self.rng.choice(UNKNOWN_DESCRIPTORS)
        return self.rng.choice(self.descriptors)

    def data(self) -> dict[str, Any]:
        return {self.descriptor(): self.point() for _ in range(self.rng.randrange(1, 6))}

    # raw JSON text for what json.dumps cannot write

    @staticmethod
    def deep(levels: int, inner: str = "1") -> str:
        return "[" * levels + inner + "]" * levels

    def raw_specials(self) -> str:
        return self.rng.choice(
            [
                "NaN",
                "Infinity",
                "-Infinity",
                "1e999",
                "18446744073709551616",
                "-92233720368547758080",
                "9" * 5000,
                '"\\ud800"',
                '"\\udfff\\ud800x"',
                self.deep(self.rng.choice([40, 300, 900])),
            ]
        )

    # stream

    def stream(self) -> tuple[str, str, bytes]:
        """Return (kind, topic, payload)."""
        rng = self.rng
        topic = f"{self.gcid}/{self.vin}"
        kind = rng.choice(STREAM_KINDS)
        envelope: dict[str, Any] = {
            "vin": self.vin,
            "entityId": self.gcid,
            "topic": self.vin,
            "timestamp": self.timestamp(),
        }
        if kind == "valid":
            body = json.dumps({**envelope, "data": self.data()})
        elif kind == "not_json":
            body = rng.choice(
                [
                    "",
                    "{",
                    "not json",
                    '{"vin": "X", "data": {',
                    json.dumps({**envelope, "data": self.data()})[: rng.randrange(1, 40)],
                ]
            )
            if rng.random() < 0.3:
                return kind, topic, bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        elif kind == "wrong_types":
            body = json.dumps(
                rng.choice(
                    [
                        [],
                        "text",
                        5,
                        None,
                        {**envelope, "data": rng.choice([[], "x", 5, None])},
                        {**envelope, "data": {self.descriptor(): self.scalar()}},
                        {**envelope, "vin": rng.choice([5, None, [], {}]), "data": self.data()},
                        {"data": self.data(), "timestamp": self.timestamp()},
                    ]
                )
            )
        elif kind == "specials":
            inner = ", ".join(
                f'"{self.descriptor()}": {{"value": {self.raw_specials()}, '
                f'"timestamp": {rng.choice(["1e300", "NaN", "99999999999999999999999", "null"])}}}'
                for _ in range(rng.randrange(1, 4))
            )
            body = f'{{"vin": "{self.vin}", "data": {{{inner}}}}}'
        elif kind == "surrogates":
            body = (
                f'{{"vin": "{self.vin}", "\\ud800": 1, "data": {{'
                f'"{self.descriptor()}": {{"value": "a\\ud800b", "unit": "\\udfff"}},'
                f'"vehicle.\\ud800": {{"value": 1}}}}}}'
            )
        elif kind == "deep":
            body = (
                f'{{"vin": "{self.vin}", "data": {{"{self.descriptor()}": '
                f'{{"value": {self.deep(rng.choice([50, 500, 5_000, 200_000]))}}}}}}}'
            )
        elif kind == "foreign":
            choice = rng.randrange(5)
            data = json.dumps({**envelope, "data": self.data()})
            if choice == 0:
                topic = f"{rng.choice(['other-gcid', '', self.gcid.upper()])}/{self.vin}"
            elif choice == 1:
                topic = f"{self.gcid}/{rng.choice(self.other_vins)}"
            elif choice == 2:
                topic = rng.choice([self.gcid, f"{self.gcid}/{self.vin}/x", "#", "", "/"])
            elif choice == 3:
                data = json.dumps(
                    {**envelope, "vin": rng.choice(self.other_vins), "data": self.data()}
                )
            else:
                other = rng.choice(self.other_vins)
                topic = f"{self.gcid}/{other}"
                data = json.dumps({**envelope, "vin": other, "topic": other, "data": self.data()})
            body = data
        else:
            raise AssertionError(kind)
        return kind, topic, body.encode("utf-8", "surrogatepass")

    # REST

    def rest(self) -> tuple[str, int, bytes]:
        """Return (endpoint, status, body)."""
        rng = self.rng
        endpoint = rng.choice(REST_ENDPOINTS)
        status = 200 if rng.random() < 0.85 else rng.choice([400, 401, 403, 404, 429, 500, 503])
        shape = rng.randrange(10)
        if shape == 0:
            text = rng.choice(["", "<html>Akamai</html>", "{", "null", "[]", '"x"', "5"])
        elif shape == 1:
            text = rng.choice([self.deep(200_000), '{"a": ' + self.raw_specials() + "}"])
        elif shape == 2 and rng.random() < 0.02:
            text = json.dumps({"data": ["z" * MEGABYTE]})
        elif shape == 3:
            text = json.dumps(
                {
                    "exveErrorId": rng.choice(["CU-429", "CU-105", "CU-1", 5, None]),
                    "exveErrorMsg": self.scalar(),
                }
            )
        else:
            text = json.dumps(self.rest_shaped(endpoint))
            if rng.random() < 0.2:
                text = text.replace('"value": 1', '"value": ' + self.raw_specials(), 1)
        return endpoint, status, text.encode("utf-8", "surrogatepass")

    def rest_shaped(self, endpoint: str) -> Any:
        rng = self.rng
        value = self.value
        if endpoint == "vehicle_mappings":
            item = {
                "vin": rng.choice([self.vin, 5, None]),
                "mappedSince": self.timestamp(),
                "mappingType": value(),
            }
            return rng.choice([[item], {"mappings": [item]}, item])
        if endpoint == "basic_data":
            return {
                key: value()
                for key in (
                    "vin",
                    "brand",
                    "modelName",
                    "constructionDate",
                    "numberOfDoors",
                    "hasNavi",
                    "chargingModes",
                    "hvsMaxEnergyAbsolute",
                )
            } | {"constructionDate": self.timestamp()}
        if endpoint in ("containers", "container"):
            item = {
                "containerId": value(),
                "name": value(),
                "state": value(),
                "created": self.timestamp(),
                "technicalDescriptors": [self.descriptor(), value()],
            }
            return {"containers": [item, value()]} if endpoint == "containers" else item
        if endpoint == "telematic_data":
            points = {self.descriptor(): self.point() for _ in range(rng.randrange(1, 8))}
            points[self.descriptor()] = {"value": 1, "unit": "-", "timestamp": self.timestamp()}
            return {"telematicData": points}
        if endpoint == "charging_history":
            session = {
                "startTime": self.timestamp(),
                "endTime": rng.choice([10**30, 1e300, value()]),
                "displayedSoc": value(),
                "energyConsumedFromPowerGridKwh": value(),
                "chargingLocation": {"formattedAddress": value(), "mapMatchedLatitude": value()},
            }
            return {"data": [session, value()], "next_token": value()}
        if endpoint == "location_based_charging_settings":
            entry = {
                "id": value(),
                "latitude": value(),
                "lastVisit": self.timestamp(),
                "visits": value(),
                "acCurrentLimit": value(),
            }
            return {"data": [entry], "nextToken": value()}
        tyre = {
            "label": value(),
            "dimension": {"value": value()},
            "tyreWear": {"dueMileage": value()},
            "runFlat": {"runFlat": value()},
        }
        return {
            "passengerCar": {"mountedTyres": {"frontLeft": tyre, "rearRight": value()}},
            "errors": value(),
        }


STREAM_KINDS = (
    ("valid",) * 10
    + ("not_json", "wrong_types", "wrong_types", "specials", "specials", "surrogates", "deep")
    + ("foreign", "foreign")
)
REST_ENDPOINTS = (
    "vehicle_mappings",
    "basic_data",
    "containers",
    "container",
    "telematic_data",
    "charging_history",
    "location_based_charging_settings",
    "tyre_diagnosis",
)
# One payload in this many is a 1 MB body.
HUGE_EVERY = 500
# One payload in this many is a REST body; the others are stream messages.
REST_EVERY = 4


# --- the run -------------------------------------------------------------------------------------


def _rest_parsers() -> dict[str, Callable[[Any], Any]]:
    from custom_components.cardata.api import models  # noqa: PLC0415

    return {
        "vehicle_mappings": models.VehicleMapping.list_from_json,
        "basic_data": models.BasicData.from_json,
        "containers": models.Container.list_from_json,
        "container": models.Container.from_json,
        "telematic_data": lambda raw: models.TelematicData.from_json(raw, "VIN", "container"),
        "charging_history": models.ChargingHistory.from_json,
        "location_based_charging_settings": models.ChargingSettings.from_json,
        "tyre_diagnosis": models.TyreDiagnosis.from_json,
    }


async def async_fuzz(
    hass: HomeAssistant, entry: MockConfigEntry, payloads: int, seed: int = 1
) -> FuzzResult:
    """Run the fuzz against a set-up entry (all entities enabled) and return the counts."""
    # The harness's modules import Home Assistant: imported here, when it runs.
    from homeassistant.helpers.json import json_bytes  # noqa: PLC0415
    from homeassistant.helpers.restore_state import async_get as restore_state  # noqa: PLC0415
    from homeassistant.util import dt as dt_util  # noqa: PLC0415
    import paho.mqtt.client as mqtt  # noqa: PLC0415

    from custom_components.cardata.api.client import (  # noqa: PLC0415
        CarDataClient,
        _Response,
        error_from_response,
    )
    from custom_components.cardata.api.errors import CarDataError  # noqa: PLC0415
    from custom_components.cardata.vehicle import MAX_CLOCK_SKEW  # noqa: PLC0415
    from tests.simulator import fleet  # noqa: PLC0415

    result = FuzzResult()
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    stream = runtime.stream._stream  # noqa: SLF001 - the client paho calls
    assert stream is not None
    vin = fleet.VIN_BEV
    gcid = entry.data["gcid"]
    generator = Payloads(
        seed, gcid, vin, (fleet.VIN_PHEV, fleet.VIN_SECONDARY, fleet.VIN_OTHER, "X")
    )
    parsers = _rest_parsers()
    errors = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    started = time.monotonic()

    def failed(exc: BaseException, where: str) -> None:
        if _is_entity_write(exc):
            result.entity_write_errors += 1
        else:
            result.escaped += 1
        result.note(f"{where}: {''.join(traceback.format_exception(exc))}")

    def storage_check() -> None:
        written: list[tuple[str, Any]] = [
            (
                "cardata store",
                {
                    v: {d: s.as_dict() for d, s in coordinator.state(v).items()}
                    for v in coordinator.vehicles
                },
            ),
            (
                "core.restore_state",
                [state.as_dict() for state in restore_state(hass).async_get_stored_states()],
            ),
        ]
        for name, data in written:
            try:
                json_bytes(data)
            except (TypeError, ValueError) as err:
                result.storage_failures += 1
                result.note(f"{name}: {err}")

    def deliver(topic: str, payload: bytes) -> None:
        message = mqtt.MQTTMessage(topic=topic.encode("utf-8", "surrogatepass"))
        message.payload = payload
        try:
            stream._on_mqtt_message(None, None, message)  # noqa: SLF001 - paho's callback
        except Exception as err:  # noqa: BLE001 - counting whatever escapes is the point
            failed(err, "stream")

    try:
        for number in range(payloads):
            if number % REST_EVERY == REST_EVERY - 1:
                endpoint, status, body = generator.rest()
                kind = f"rest:{endpoint}"
                try:
                    if status != 200:
                        error_from_response(endpoint, status, body)
                        raw = None
                    else:
                        raw = CarDataClient._json_result(  # noqa: SLF001 - the client's decoding
                            endpoint, _Response(200, "application/json", body), (200,)
                        )
                except CarDataError:
                    raw = None
                except Exception as err:  # noqa: BLE001 - counting whatever escapes
                    failed(err, kind)
                    raw = None
                if raw is not None:
                    try:
                        parsed = parsers[endpoint](raw)
                        json_bytes(raw)
                        if endpoint == "telematic_data":
                            coordinator.apply_rest_values(vin, parsed.values)
                    except (TypeError, ValueError) as err:
                        if "JSON" in type(err).__name__ or isinstance(err, TypeError):
                            result.storage_failures += 1
                            result.note(f"{kind} raw: {err}")
                        else:
                            failed(err, kind)
                    except Exception as err:  # noqa: BLE001 - counting whatever escapes
                        failed(err, kind)
            else:
                if number % HUGE_EVERY == HUGE_EVERY - 2:
                    kind, topic, payload = _huge_stream(generator)
                else:
                    kind, topic, payload = generator.stream()
                deliver(topic, payload)
            result.kinds[kind] = result.kinds.get(kind, 0) + 1
            result.payloads += 1
            if number % 50 == 0:
                await _settle(hass, failed)
            if number % STORAGE_CHECK_EVERY == STORAGE_CHECK_EVERY - 1:
                storage_check()
        await _settle(hass, failed)
        storage_check()

        # A fresh real reading for every descriptor touched must win.
        touched = [d for d in coordinator.state(vin) if d]
        fresh_at = dt_util.utcnow() + MAX_CLOCK_SKEW
        for start in range(0, len(touched), 20):
            chunk = touched[start : start + 20]
            body = json.dumps(
                {
                    "vin": vin,
                    "entityId": gcid,
                    "timestamp": fresh_at.isoformat(),
                    "data": {
                        d: {"value": str(FRESH_VALUE), "timestamp": fresh_at.isoformat()}
                        for d in chunk
                    },
                }
            ).encode("utf-8", "surrogatepass")
            deliver(f"{gcid}/{vin}", body)
        await _settle(hass, failed)
        state = coordinator.state(vin)
        for descriptor in touched:
            if state[descriptor].value != FRESH_VALUE:
                result.frozen += 1
                result.note(f"frozen: {descriptor[:80]!r} = {state[descriptor]!r}"[:500])
        storage_check()
    finally:
        root.removeHandler(errors)
    for record in errors.records:
        exc = record.exc_info[1] if record.exc_info else None
        if _is_entity_write(exc, record):
            result.entity_write_errors += 1
        else:
            result.escaped += 1
        result.note(f"log {record.levelname} {record.name}: {record.getMessage()[:500]}")
    result.seconds = time.monotonic() - started
    return result


async def _settle(hass: HomeAssistant, failed: Callable[[BaseException, str], None]) -> None:
    """Let the tasks the payloads started run (delayed saves, entity writes)."""
    try:
        await hass.async_block_till_done()
    except Exception as err:  # noqa: BLE001 - counting whatever escapes is the point
        failed(err, "tasks")


def _huge_stream(generator: Payloads) -> tuple[str, str, bytes]:
    """A 1 MB body: one long value, garbage, or many long values."""
    rng = generator.rng
    topic = f"{generator.gcid}/{generator.vin}"
    choice = rng.randrange(3)
    if choice == 0:
        body = json.dumps(
            {"vin": generator.vin, "data": {generator.descriptor(): {"value": "x" * MEGABYTE}}}
        )
    elif choice == 1:
        body = "{" * 10 + "a" * MEGABYTE
    else:
        body = json.dumps(
            {
                "vin": generator.vin,
                "data": {
                    f"vehicle.fuzz.long{n}": {"value": "y" * 20_000, "unit": "-"} for n in range(50)
                },
            }
        )
    return "huge", topic, body.encode()


# --- command line -------------------------------------------------------------------------------


def _iter_lines(result: FuzzResult) -> Iterator[str]:
    yield f"payload kinds: {json.dumps(result.kinds, sort_keys=True)}"
    yield f"runtime: {result.seconds:.1f} s ({result.payloads / max(result.seconds, 1e-9):.0f} payloads/s)"
    for example in result.examples:
        yield f"example: {example}"
    yield result.line()


def main() -> int:
    """Run tests/integration/test_fuzz_short.py with N payloads and print its counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--payloads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "fuzz.json"
        env = {
            **os.environ,
            ENV_PAYLOADS: str(args.payloads),
            ENV_SEED: str(args.seed),
            ENV_RESULT: str(result_file),
        }
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "-n0",
                "--timeout=0",
                "tests/integration/test_fuzz_short.py::test_fuzz",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if not result_file.exists():
            print(completed.stdout[-5000:], completed.stderr[-5000:], sep="\n")
            return 2
        result = FuzzResult(**json.loads(result_file.read_text()))
    for line in _iter_lines(result):
        print(line)
    return 0


def write_result(result: FuzzResult) -> None:
    """Hand the counts to main() when it started the run."""
    if target := os.environ.get(ENV_RESULT):
        Path(target).write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    sys.exit(main())
