"""Images for vision-language perf requests: PNG files made offline (zlib + struct, no imaging
library) and the images of a local folder, as base64 data URLs with their pixel sizes.

Made images are blocks of 8x8 pixels of random colours, drawn from a seeded ``random.Random``:
the same seed gives the same bytes. A folder's images are read as they are (PNG, JPEG, GIF or
WebP, told apart by their first bytes, never by the file name); their width and height come
from the file headers.
"""
from __future__ import annotations

import base64
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from lmgauge.plugin import DataError

BLOCK = 8  # pixels per side of one colour block
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Image:
    """One image ready to send: its ``data:`` URL and size in pixels."""

    url: str
    width: int
    height: int


def png_bytes(width: int, height: int, rng: random.Random) -> bytes:
    """An RGB PNG of ``width`` x ``height`` pixels: blocks of random colours."""
    cols, rows = -(-width // BLOCK), -(-height // BLOCK)
    colours = rng.randbytes(cols * rows * 3)
    raw = bytearray()
    for r in range(rows):
        base = r * cols * 3
        line = b"\x00" + b"".join(colours[base + 3 * c: base + 3 * c + 3] * BLOCK for c in range(cols))[: width * 3]
        raw += line * min(BLOCK, height - r * BLOCK)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + _chunk(b"IEND", b"")


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def made_image(width: int, height: int, rng: random.Random) -> Image:
    return Image(data_url("image/png", png_bytes(width, height, rng)), width, height)


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_info(data: bytes) -> tuple[str, int, int] | None:
    """(MIME type, width, height) of a PNG, JPEG, GIF or WebP file's bytes; None for anything
    else (or a header too broken to give a size)."""
    try:
        if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return "image/png", w, h
        if data[:3] == b"\xff\xd8\xff":
            size = _jpeg_size(data)
            return ("image/jpeg", *size) if size else None
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return "image/gif", w, h
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size = _webp_size(data)
            return ("image/webp", *size) if size else None
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in a JPEG's start-of-frame segment (any SOFn marker)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        b = data[21:25]
        return 1 + (((b[1] & 0x3F) << 8) | b[0]), 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
    if kind == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    return None


class ImageFolder:
    """The images of a folder, in file-name order (requests cycle through them), all read when
    it is opened. Every file but hidden ones must be an image: anything else is one DataError
    naming it."""

    def __init__(self, folder: str, flag: str = "--image-folder"):
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise DataError(f"{flag} {folder}: no such folder", "pass a folder of PNG, JPEG, GIF or WebP images")
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{flag} {folder}: the folder holds no files", "pass a folder of PNG, JPEG, GIF or WebP images")
        self.images = [self._read(p, flag) for p in files]

    @staticmethod
    def _read(path: Path, flag: str) -> Image:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None
        info = image_info(data)
        if info is None:
            raise DataError(f"{flag}: {path} is not a PNG, JPEG, GIF or WebP image (or its header is broken)",
                            "remove it from the folder, or convert it")
        mime, w, h = info
        if not w or not h:
            raise DataError(f"{flag}: {path} says it is {w}x{h} pixels", "remove it from the folder")
        return Image(data_url(mime, data), w, h)

    def image(self, i: int) -> Image:
        return self.images[i % len(self.images)]
