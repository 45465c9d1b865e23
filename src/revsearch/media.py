"""Reading media safely: find files, tell their type by content, decode images to BGR uint8.

Everything that can go wrong with a user's file (empty, truncated, not an image, a
decompression bomb, an odd pixel format, EXIF rotation) is handled here and turned
into a `MediaError` whose message says what was wrong.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from revsearch.errors import MediaError

# Types are told by content, never by extension: JPEG, PNG, BMP, GIF, TIFF (LE and BE).
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a",
                b"II*\x00", b"MM\x00*")


def sniff(head: bytes) -> str | None:
    """The media kind ('image' or 'video') the first bytes of a file announce, or None."""
    if head.startswith(_IMAGE_MAGIC):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[4:8] == b"ftyp" or head[:4] in (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba"):
        return "video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    return None


def walk(paths: Iterable[str | os.PathLike],
         unit: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Every regular file under the given files and folders, sorted, hidden ones skipped.

    A folder for which `unit(folder)` is true is yielded whole instead of its files
    (a video stored as a folder of frames).
    """
    for root in paths:
        root = Path(root)
        if root.is_file() or (unit and root.is_dir() and unit(root)):
            yield root
            continue
        if not root.is_dir():
            raise MediaError(f"no such file or folder: {root}")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if unit:
                units = [d for d in dirnames if unit(Path(dirpath) / d)]
                dirnames[:] = [d for d in dirnames if d not in units]
                yield from (Path(dirpath) / d for d in units)
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield Path(dirpath) / name


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    if size > max_bytes:
        raise MediaError(f"file too large: {size} bytes > limit {max_bytes}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode image bytes to an upright BGR uint8 array (H, W, 3).

    Grayscale, palette, CMYK, alpha and 16-bit images are converted; EXIF orientation is
    applied. Raises MediaError for anything that is not a complete, sane image.
    """
    if not data:
        raise MediaError("empty file (0 bytes)")
    if sniff(data[:16]) != "image":
        raise MediaError("not an image (unrecognised content)")
    try:
        with warnings.catch_warnings():
            # `max_pixels` is the limit, checked from the header before any decoding;
            # Pillow's own (process-wide) one only warns below twice its value.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow only warns on some truncated files (TIFF) and returns half an image.
            warnings.filterwarnings("error", message="Truncated File Read")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise MediaError(
                    f"image too large: {width}x{height} = {width * height} pixels "
                    f"> limit {max_pixels} (possible decompression bomb)"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        # Above twice Pillow's limit it refuses to open the image at all: an application
        # wanting larger images raises PIL.Image.MAX_IMAGE_PIXELS as well as max_pixels.
        cap = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise MediaError(f"image too large: more than {cap} pixels, Pillow's own limit "
                         f"(possible decompression bomb)") from exc
    except Exception as exc:  # Pillow raises many types for bad data; all mean "unreadable".
        raise MediaError(f"cannot decode image: {_reason(exc)}") from exc
    return _to_bgr(img)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _to_bgr(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        peak = arr.max() if arr.size else 0.0
        # 16-bit data uses the full 0..65535 range; 'I' images may hold anything.
        scale = 255.0 / 65535.0 if peak > 255 else 1.0
        gray = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def load_image(path: str | os.PathLike, max_pixels: int = 100_000_000,
               max_bytes: int = 200 * 1024 * 1024) -> np.ndarray:
    """Read and decode an image file (see `decode_image`)."""
    return decode_image(read_bytes(Path(path), max_bytes), max_pixels)
