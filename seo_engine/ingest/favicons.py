"""Favicon files a site file may name: PNG or ICO, square, small; checked before storing.

Browsers and Google's favicon fetcher accept both at /favicon.ico, telling them apart by
their bytes. SVG is refused: it is a document that may run scripts when opened from the
site's own origin, and it has no magic bytes to check.
"""

from __future__ import annotations

import struct

MAX_BYTES = 100 * 1024  # a 256 px PNG icon is a few kB; a real favicon is far below this
PNG = b"\x89PNG\r\n\x1a\n"
ICO = b"\x00\x00\x01\x00"
ICO_HEADER = 6  # reserved, type, image count
# Per image: width, height (0 means 256), colours, reserved, planes, bits, size, offset.
ICO_ENTRY = struct.Struct("<BBBBHHII")


class FaviconError(Exception):
    """The file is not a favicon the app will serve; the message says why."""


def media_type(body: bytes) -> str:
    """The Content-Type of a checked favicon, from its magic bytes."""
    return "image/png" if body.startswith(PNG) else "image/x-icon"


def _png_size(body: bytes) -> tuple[int, int]:
    if len(body) < 24 or body[12:16] != b"IHDR":
        raise FaviconError("is a truncated PNG image")
    width, height = struct.unpack(">II", body[16:24])
    return width, height


def _ico_sizes(body: bytes) -> list[tuple[int, int]]:
    count = struct.unpack("<H", body[4:6])[0] if len(body) >= ICO_HEADER else 0
    if count == 0 or len(body) < ICO_HEADER + count * ICO_ENTRY.size:
        raise FaviconError("is a truncated ICO file")
    sizes = []
    for number in range(count):
        width, height, _, _, _, _, size, offset = ICO_ENTRY.unpack_from(
            body, ICO_HEADER + number * ICO_ENTRY.size
        )
        if size == 0 or offset + size > len(body):
            raise FaviconError("is a truncated ICO file")
        sizes.append((width or 256, height or 256))
    return sizes


def check(body: bytes) -> str:
    """The favicon's Content-Type; FaviconError if it is empty, too big, not PNG or ICO,
    or not square (Google shows only square icons)."""
    if not body:
        raise FaviconError("is empty")
    if len(body) > MAX_BYTES:
        raise FaviconError(f"is larger than {MAX_BYTES // 1024} KiB")
    if body.startswith(PNG):
        sizes = [_png_size(body)]
    elif body.startswith(ICO):
        sizes = _ico_sizes(body)
    else:
        raise FaviconError("is not a PNG or ICO image")
    for width, height in sizes:
        if width != height or width == 0:
            raise FaviconError(f"is {width}x{height} px; a favicon must be square")
    return media_type(body)
