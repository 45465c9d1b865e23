"""Fuzzing the image decoder: any bytes either decode or raise MediaError, quickly."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from conftest import lfw, require_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from revsearch.errors import MediaError
from revsearch.media import decode_image

MAX_PIXELS = 4_000_000
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    started = time.monotonic()
    try:
        img = decode_image(data, MAX_PIXELS)
    except MediaError:
        pass
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[0] * img.shape[1] <= MAX_PIXELS
    assert time.monotonic() - started < 5.0, "decoding took too long"


def _seed(fmt: str) -> bytes:
    require_data()
    buf = io.BytesIO()
    Image.open(lfw("Colin_Powell", 1)).save(buf, fmt)
    return buf.getvalue()


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@pytest.mark.slow
# Pillow warns when it skips corrupt metadata (EXIF, TIFF tags) of a mutated file and
# decodes the pixels anyway; a photo with broken EXIF should still be indexed.
@pytest.mark.filterwarnings("ignore::UserWarning")
@FUZZ
@given(st.sampled_from(["JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP"]),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                max_size=12),
       st.integers(0, 10**6))
def test_mutated_real_images(fmt, flips, cut):
    data = bytearray(_seed(fmt))
    for pos, value in flips:  # overwrite bytes, headers included
        data[pos % len(data)] = value
    _check(bytes(data[: max(1, cut % (len(data) + 1))]))


def test_tiff_with_corrupt_directory_is_refused():
    # Byte 9 is the high byte of the TIFF directory's entry count: Pillow then reads
    # "tags" past the end of the file, only warns, and returns an image anyway.
    data = bytearray(_seed("TIFF"))
    assert data[:4] == b"II*\x00" and data[4:8] == b"\x08\x00\x00\x00"
    data[9] = 0xFF
    try:
        decode_image(bytes(data), MAX_PIXELS)
    except MediaError as exc:
        assert "Truncated File Read" in str(exc)
    else:
        raise AssertionError("a TIFF with a corrupt directory decoded without complaint")


@pytest.mark.slow
def test_mutated_real_videos(tmp_path):
    """300 mutated GRID (MPEG-1 program stream) and MJPEG-AVI clips: frames or a
    MediaError each, no crash, no case slower than 10 s."""
    import json
    import subprocess
    import sys

    import cv2
    from conftest import DATA, ROOT

    mpg = DATA / "videos" / "grid" / "pwij3p.mpg"
    if not mpg.is_file():
        pytest.skip("GRID clips not found")
    avi = tmp_path / "clip.avi"
    cap = cv2.VideoCapture(str(mpg))
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, (360, 288))
    for _ in range(20):
        _, frame = cap.read()
        writer.write(frame)
    writer.release()
    cap.release()
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_video.py"), "300", "0",
                           str(mpg), str(avi)], capture_output=True, text=True, timeout=600)
    last = done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else []
    assert done.returncode == 0, f"the reader crashed on case {last}: {done.stderr[-500:]}"
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["cases"] == 300
    assert outcome["frames"] > 0 and outcome["media_errors"] > 0  # both paths exercised
    assert outcome["slowest_s"] < 10.0
