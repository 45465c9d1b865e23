"""Decoding odd and hostile images, and the alignment maths."""

from __future__ import annotations

import numpy as np
import pytest
from badfiles import as_mode, exif_rotated_jpeg, png_bomb
from conftest import lfw, require_data

from revsearch.errors import MediaError
from revsearch.faces.align import ARCFACE_TEMPLATE_112, align_face, similarity_transform
from revsearch.media import decode_image, sniff


@pytest.fixture
def photo():
    require_data()
    return lfw("George_W_Bush", 1)


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)


def test_similarity_transform_refuses_reflection():
    src = ARCFACE_TEMPLATE_112
    mirrored = src * np.array([-1.0, 1.0])
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0  # a rotation-and-scale, never a mirror


def test_align_puts_landmarks_on_template():
    img = np.zeros((300, 300, 3), np.uint8)
    pts = ARCFACE_TEMPLATE_112 * 2 + 40  # the template, scaled and shifted
    for x, y in pts:
        img[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2] = 255
    crop = align_face(img, pts)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE_112:
        assert crop[round(y), round(x)].max() > 100


def test_sniff_by_content():
    assert sniff(b"\xff\xd8\xff\xe0") == "image"
    assert sniff(b"\x89PNG\r\n\x1a\n") == "image"
    assert sniff(b"\x00\x00\x00\x18ftypmp42") == "video"
    assert sniff(b"hello world") is None


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("I;16", "PNG"),
                                      ("RGBA", "PNG"), ("P", "PNG")])
def test_odd_pixel_formats_decode_to_bgr(photo, mode, fmt):
    reference = decode_image(photo.read_bytes(), 10**8)
    img = decode_image(as_mode(photo, mode, fmt), 10**8)
    assert img.shape == reference.shape and img.dtype == np.uint8
    # Same picture: the gray levels agree with the colour original's luminance.
    gray_ref = reference.mean(axis=2)
    assert np.corrcoef(gray_ref.ravel(), img.mean(axis=2).ravel())[0, 1] > 0.95


def test_exif_orientation_is_applied(photo):
    reference = decode_image(photo.read_bytes(), 10**8)
    img = decode_image(exif_rotated_jpeg(photo), 10**8)
    assert img.shape == reference.shape
    diff = np.abs(img.astype(int) - reference.astype(int)).mean()
    assert diff < 8, "the rotated file must come out upright"


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"plain text, not a picture" * 10, "not an image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 500, "cannot decode"),
    (png_bomb(), "decompression bomb"),
])
def test_bad_bytes_raise_clear_errors(data, reason):
    with pytest.raises(MediaError, match=reason):
        decode_image(data, 10**8)


def test_truncated_jpeg_is_refused(photo):
    data = photo.read_bytes()
    with pytest.raises(MediaError, match="cannot decode"):
        decode_image(data[: len(data) // 3], 10**8)


def test_pixel_limit_is_configurable(photo):
    with pytest.raises(MediaError, match="too large"):
        decode_image(photo.read_bytes(), 250 * 250 - 1)
    assert decode_image(photo.read_bytes(), 250 * 250).shape == (250, 250, 3)
