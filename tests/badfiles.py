"""Builders for the hostile and odd files the ingest must survive, from real LFW photos."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bomb(width: int = 40000, height: int = 40000) -> bytes:
    """A tiny valid PNG that claims width x height pixels (a decompression bomb)."""
    raw = zlib.compress(b"\x00" * 64)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def exif_rotated_jpeg(src: Path) -> bytes:
    """The photo stored rotated 90 degrees with EXIF orientation 6, so viewers show it upright."""
    img = Image.open(src).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def as_mode(src: Path, mode: str, fmt: str) -> bytes:
    img = Image.open(src)
    if mode == "I;16":
        gray = np.asarray(img.convert("L")).astype(np.uint16) * 257
        out = Image.frombytes("I;16", (gray.shape[1], gray.shape[0]), gray.astype("<u2").tobytes())
    else:
        out = img.convert(mode)
    buf = io.BytesIO()
    out.save(buf, fmt)
    return buf.getvalue()


def write_bad_folder(dest: Path, good: Path) -> dict[str, str]:
    """Fill `dest` with one file of each kind; returns name -> 'ok' or 'problem'."""
    dest.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    files = {
        "good.jpg": (data, "ok"),
        "gray.jpg": (as_mode(good, "L", "JPEG"), "ok"),
        "cmyk.jpg": (as_mode(good, "CMYK", "JPEG"), "ok"),
        "sixteen_bit.png": (as_mode(good, "I;16", "PNG"), "ok"),
        "exif_rotated.jpg": (exif_rotated_jpeg(good), "ok"),
        "corrupt.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "problem"),
        "truncated.jpg": (data[: len(data) // 3], "problem"),
        "empty.jpg": (b"", "problem"),
        "not_an_image.jpg": (b"this is a text file, not a photo\n" * 20, "problem"),
        "notes.txt": (b"some notes\n", "problem"),
        "bomb.png": (png_bomb(), "problem"),
    }
    expected = {}
    for name, (content, verdict) in files.items():
        (dest / name).write_bytes(content)
        expected[name] = verdict
    (dest / "dangling.jpg").symlink_to(dest / "does_not_exist.jpg")
    expected["dangling.jpg"] = "problem"
    return expected
