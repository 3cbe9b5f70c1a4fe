"""Draw the integration's brand icon (an original design: a car with signal arcs).

Run once when the design changes: `python scripts/make_brand_icon.py`. Pure Python (zlib),
so it needs nothing beyond the standard library. Writes icon.png (256 px) and icon@2x.png.
"""

from __future__ import annotations

import math
from pathlib import Path
import struct
import zlib

OUT = Path(__file__).parents[1] / "custom_components" / "cardata" / "brand"


def _png(size: int, pixel) -> bytes:  # type: ignore[no-untyped-def]
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            rows.extend(pixel(x / size, y / size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _inside_rounded_rect(
    x: float, y: float, x0: float, y0: float, x1: float, y1: float, r: float
) -> bool:
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r and x0 <= x <= x1 and y0 <= y <= y1


def _pixel(x: float, y: float) -> tuple[int, int, int, int]:
    # Background: rounded tile with a vertical blue gradient.
    if not _inside_rounded_rect(x, y, 0.02, 0.02, 0.98, 0.98, 0.2):
        return (0, 0, 0, 0)
    top, bottom = (38, 132, 214), (12, 52, 110)
    colour = tuple(round(a + (b - a) * y) for a, b in zip(top, bottom, strict=True))
    white = (255, 255, 255, 255)
    # Signal arcs above the car: the stream.
    dx, dy = x - 0.5, y - 0.46
    dist = math.hypot(dx, dy)
    angle = math.degrees(math.atan2(-dy, dx))
    if 55 <= angle <= 125 and any(abs(dist - r) < 0.022 for r in (0.12, 0.2, 0.28)):
        return white
    # Car body: lower slab plus cabin, with wheel cut-outs and wheels.
    body = _inside_rounded_rect(x, y, 0.16, 0.60, 0.84, 0.74, 0.05)
    cabin = (
        0.30 <= x <= 0.70
        and 0.50 <= y <= 0.62
        and (y - 0.50) >= (0.36 - x) * 0.9
        and (y - 0.50) >= (x - 0.64) * 0.9
    )
    window = (
        0.36 <= x <= 0.64
        and 0.535 <= y <= 0.595
        and (y - 0.535) >= (0.40 - x) * 0.9
        and (y - 0.535) >= (x - 0.60) * 0.9
        and abs(x - 0.5) > 0.012
    )
    wheels = [(0.30, 0.74), (0.70, 0.74)]
    for wx, wy in wheels:
        d = math.hypot(x - wx, y - wy)
        if d < 0.045:
            return (*colour, 255) if d < 0.025 else white
        if d < 0.065:
            return (*colour, 255)
    if window:
        return (*colour, 255)
    if body or cabin:
        return white
    return (*colour, 255)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "icon.png").write_bytes(_png(256, _pixel))
    (OUT / "icon@2x.png").write_bytes(_png(512, _pixel))
