"""Vehicle pictures for the image endpoint: a plain car side view, drawn and PNG-encoded here.

No artwork is shipped: the picture is computed from a few shapes (body, cabin, windows, wheels,
lights) in the car's paint colour, and written with a minimal PNG encoder (zlib + struct).
"""

from __future__ import annotations

import functools
import math
import struct
import zlib

from . import fleet

WIDTH = 320
HEIGHT = 160

Rgba = tuple[int, int, int, int]

_TRANSPARENT: Rgba = (0, 0, 0, 0)
_TYRE: Rgba = (24, 24, 26, 255)
_RIM: Rgba = (176, 180, 186, 255)
_HUB: Rgba = (90, 94, 100, 255)
_GLASS: Rgba = (132, 158, 182, 255)
_HEADLIGHT: Rgba = (250, 244, 210, 255)
_TAILLIGHT: Rgba = (196, 24, 32, 255)
_TRIM: Rgba = (40, 40, 44, 255)

_FRONT_WHEEL = (242.0, 122.0)
_REAR_WHEEL = (80.0, 122.0)
_WHEEL_RADIUS = 23.0
_ARCH_RADIUS = 27.0


def encode_png(width: int, height: int, pixels: list[Rgba]) -> bytes:
    """An 8-bit RGBA PNG of `pixels` (row-major, `width * height` entries)."""
    if len(pixels) != width * height:
        raise ValueError("pixel count does not match the size")
    raw = bytearray()
    for row in range(height):
        raw.append(0)  # filter type "None" for every scanline
        for red, green, blue, alpha in pixels[row * width : (row + 1) * width]:
            raw += bytes((red, green, blue, alpha))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def _in_rounded_rect(
    x: float, y: float, left: float, top: float, right: float, bottom: float, radius: float
) -> bool:
    if not (left <= x <= right and top <= y <= bottom):
        return False
    corner_x = min(max(x, left + radius), right - radius)
    corner_y = min(max(y, top + radius), bottom - radius)
    return (x - corner_x) ** 2 + (y - corner_y) ** 2 <= radius**2


def _in_trapezoid(
    x: float,
    y: float,
    top: float,
    bottom: float,
    top_span: tuple[float, float],
    bottom_span: tuple[float, float],
) -> bool:
    if not top <= y <= bottom:
        return False
    share = (y - top) / (bottom - top)
    left = top_span[0] + (bottom_span[0] - top_span[0]) * share
    right = top_span[1] + (bottom_span[1] - top_span[1]) * share
    return left <= x <= right


def _distance(x: float, y: float, centre: tuple[float, float]) -> float:
    return math.hypot(x - centre[0], y - centre[1])


def _shade(colour: tuple[int, int, int], factor: float) -> Rgba:
    red, green, blue = (max(0, min(255, round(part * factor))) for part in colour)
    return (red, green, blue, 255)


def _pixel(x: float, y: float, paint: tuple[int, int, int]) -> Rgba:
    """The colour of one pixel of the side view (front of the car to the right)."""
    wheel_distance = min(_distance(x, y, _FRONT_WHEEL), _distance(x, y, _REAR_WHEEL))
    if wheel_distance <= _WHEEL_RADIUS:
        if wheel_distance <= 4:
            return _HUB
        if wheel_distance <= 14:
            # Five spokes: darker gaps between them.
            centre = _FRONT_WHEEL if x > WIDTH / 2 else _REAR_WHEEL
            angle = math.atan2(y - centre[1], x - centre[0])
            return _RIM if math.cos(5 * angle) > -0.3 else _HUB
        return _TYRE
    if wheel_distance <= _ARCH_RADIUS and y <= 126:
        return _TRIM if y > 100 else _TRANSPARENT
    # Cabin: glass with a B-pillar, framed by paint.
    if _in_trapezoid(x, y, 46, 78, (118, 214), (86, 256)):
        inner = _in_trapezoid(x, y, 51, 76, (124, 210), (96, 250))
        if inner and not 160 <= x <= 166:
            return _GLASS
        return _shade(paint, 0.92)
    # Body: a long rounded box, darker below the shoulder line.
    if _in_rounded_rect(x, y, 20, 76, 302, 124, 14):
        if 290 <= x <= 300 and 84 <= y <= 93:
            return _HEADLIGHT
        if 21 <= x <= 30 and 83 <= y <= 93:
            return _TAILLIGHT
        if 150 <= x <= 160 and 96 <= y <= 98:
            return _TRIM  # door handle
        return _shade(paint, 1.0 if y < 100 else 0.82)
    # Soft shadow on the ground.
    if ((x - WIDTH / 2) / 150) ** 2 + ((y - 148) / 7) ** 2 <= 1:
        return (0, 0, 0, 60)
    return _TRANSPARENT


def draw_car(paint: tuple[int, int, int]) -> bytes:
    """A side view of a car in `paint`, as PNG bytes."""
    pixels = [_pixel(x + 0.5, y + 0.5, paint) for y in range(HEIGHT) for x in range(WIDTH)]
    return encode_png(WIDTH, HEIGHT, pixels)


@functools.cache
def vehicle_png(vin: str) -> bytes:
    """The picture the image endpoint serves for `vin` (drawn once per process)."""
    return draw_car(fleet.VEHICLES[vin].body_colour)
