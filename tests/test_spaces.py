"""The registry of embedding spaces: one place says what a space is, from the built-ins
to a user's own ONNX model, and the older flags still name the same spaces."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import lfw, require_data, run_cli

from revsearch.config import load_settings
from revsearch.errors import ModelFileError, RevsearchError
from revsearch.faces.embed import fold_constant_weights
from revsearch.faces.models import model_path, sha256_file
from revsearch.faces.pipeline import Pipeline, central_face
from revsearch.media import load_image
from revsearch.spaces import OnnxInput, Registry, UnknownSpaceError, space_for

# The packaged SFace network takes raw RGB pixels (it normalises inside the graph).
SFACE_INPUT = OnnxInput(size=112, mean=0.0, std=1.0, rgb=True)


@pytest.mark.parametrize(("flags", "key"), [
    ({}, "sface"),
    ({"flip": True}, "sface_flip"),
    ({"embedder": "dlib"}, "dlib"),
    ({"embedder": "sface_dlib"}, "sface_dlib"),
    ({"space": "sface_dlib", "flip": True}, "sface_dlib_flip"),
    ({"space": "sface_flip"}, "sface_flip"),
    ({"pipeline": "baseline"}, "baseline_efficientnet_lite0"),
    ({"pipeline": "baseline", "flip": True}, "baseline_efficientnet_lite0"),
    ({"embedder": "onnx", "model_path": "/m.onnx", "model_sha256": "ab" * 32},
     "onnx_abababababab"),
])
def test_settings_name_the_same_space_as_before(tmp_path, flags, key):
    # The keys name the Milvus collections of existing databases: they must not move.
    assert space_for(load_settings(home=tmp_path, **flags)).key == key


def test_builtin_spaces_declare_what_they_are(tmp_path):
    reg = Registry(tmp_path)
    assert {"sface", "dlib", "sface_dlib", "baseline_efficientnet_lite0"} <= set(reg.names())
    sface, fused, base = reg.get("sface"), reg.get("sface_dlib"), reg.get(
        "baseline_efficientnet_lite0")
    assert (sface.dim, sface.metric, sface.kind, sface.decides) == (128, "COSINE", "face", True)
    assert fused.dim == 256 and [m.name for m in fused.members] == ["sface", "dlib"]
    assert fused.digest == "+".join(f.sha256 for f in (*sface.files, *reg.get("dlib").files))
    assert (base.metric, base.kind, base.decides, base.detector) == ("L2", "image", False,
                                                                      "whole")
    settings = load_settings(home=tmp_path)
    assert base.index.for_backend(True, settings)[0]["index_type"] == "HNSW"
    assert sface.index.for_backend(True, settings)[0]["index_type"] == "FLAT"
    server = sface.index.for_backend(False, load_settings(home=tmp_path, hnsw_m=32))
    assert server[0]["params"]["M"] == 32
    # Shipped calibrations are found and match their files' digests.
    assert sface.calibration(tmp_path) is not None
    assert reg.get("sface_flip").calibration(tmp_path) is not None
    assert base.calibration(tmp_path) is None


def test_unknown_space_is_a_clear_error(tmp_path):
    with pytest.raises(UnknownSpaceError, match=r"no embedding space 'nope'.*sface"):
        space_for(load_settings(home=tmp_path, space="nope"))


def test_names_are_checked_and_builtins_cannot_be_removed(tmp_path):
    reg = Registry(tmp_path)
    for bad in ("Bad Name", "x_flip", "baseline_mine", "sface", "9lives"):
        with pytest.raises(RevsearchError):
            reg.add_fusion(bad, ["sface", "dlib"])
    with pytest.raises(RevsearchError, match="built in"):
        reg.remove("sface")
    with pytest.raises(UnknownSpaceError):
        reg.remove("never_added")
    with pytest.raises(RevsearchError, match="at least two"):
        reg.add_fusion("solo", ["sface"])
    assert not (tmp_path / "models.json").exists()  # nothing was written


def _user_sface(tmp_path):
    path = tmp_path / "models" / "my_sface.onnx"
    path.parent.mkdir()
    path.write_bytes(fold_constant_weights(model_path("sface").read_bytes()))
    return path


def _central_vector(pipeline: Pipeline, image: np.ndarray) -> np.ndarray:
    faces = pipeline.detect(image)
    return pipeline.embedder.embed(image, [faces[central_face(faces, image.shape)]])[0]


@pytest.mark.slow
def test_registered_model_gives_the_builtin_vectors_through_the_generic_path(tmp_path):
    require_data()
    home = tmp_path / "home"
    path = _user_sface(tmp_path)
    space = Registry(home).add_onnx("my_sface", path, onnx_input=SFACE_INPUT,
                                    licence="Apache-2.0")
    assert space.dim == 128 and space.files[0].sha256 == sha256_file(path)
    # A new registry (another process) reads the declaration back.
    again = Registry(home).get("my_sface")
    assert again == space and not again.builtin
    settings = load_settings(home=home, space="my_sface")
    assert space_for(settings) == space
    image = load_image(lfw("Colin_Powell", 1))
    mine = _central_vector(Pipeline(settings), image)
    builtin = _central_vector(Pipeline(load_settings(home=home)), image)
    assert float(mine @ builtin) > 0.9999
    # A fusion of two registered or built-in spaces is declared, not coded.
    fused = Registry(home).add_fusion("sface_twice", ["sface", "my_sface"])
    sface = Registry(home).get("sface")
    assert fused.dim == 256 and fused.digest == f"{sface.digest}+{space.digest}"
    v = _central_vector(Pipeline(load_settings(home=home, space="sface_twice")), image)
    assert v.shape == (256,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    with pytest.raises(RevsearchError, match="part of the fusion"):
        Registry(home).remove("my_sface")


@pytest.mark.slow
def test_registered_file_is_pinned(tmp_path):
    home = tmp_path / "home"
    path = _user_sface(tmp_path)
    with pytest.raises(ModelFileError, match="altered"):
        Registry(home).add_onnx("pinned", path, "0" * 64, onnx_input=SFACE_INPUT)
    Registry(home).add_onnx("pinned", path, onnx_input=SFACE_INPUT)
    path.write_bytes(path.read_bytes() + b"\0")  # the file changes after registration
    with pytest.raises(ModelFileError, match="altered"):
        Pipeline(load_settings(home=home, space="pinned"))


@pytest.mark.slow
def test_calibration_fitted_with_other_files_is_not_used(tmp_path):
    home = tmp_path / "home"
    Registry(home).add_onnx("cal", _user_sface(tmp_path), onnx_input=SFACE_INPUT)
    (home / "calibration").mkdir()
    stale = {"key": "cal", "threshold": 0.5, "target_far": 1e-3, "model_sha256": "0" * 64,
             "detector": "yunet", "train": {}, "test": {}, "command": "", "created": ""}
    (home / "calibration" / "cal.json").write_text(json.dumps(stale))
    space = Registry(home).get("cal")
    assert space.calibration(home) is None
    stale["model_sha256"] = space.digest
    (home / "calibration" / "cal.json").write_text(json.dumps(stale))
    assert space.calibration(home).point(1e-3).threshold == 0.5


@pytest.mark.slow
def test_models_cli_add_list_search_remove(tmp_path, subset_dir):
    """A registered model indexes and searches like a built-in, from the command line."""
    require_data()
    home = tmp_path / "home"
    env = {"REVSEARCH_HOME": str(home), "REVSEARCH_WORKERS": "1"}
    path = _user_sface(tmp_path)
    added = run_cli("models", "add", "mine", "--path", str(path), "--mean", "0", "--std", "1",
                    env=env)
    assert added.returncode == 0, added.stderr
    listed = json.loads(run_cli("models", "--json", env=env).stdout)
    mine = next(r for r in listed if r["name"] == "mine")
    assert mine["dim"] == 128 and mine["files"][0]["sha256"] == sha256_file(path)
    assert mine["calibration"] is None
    photos = subset_dir / "Tony_Blair"
    assert run_cli("index", str(photos), "--space", "mine", env=env).returncode == 0
    found = run_cli("search", str(lfw("Tony_Blair", 50)), "--space", "mine", "--json",
                    "-k", "3", env=env)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)[0]["hits"]
    assert hits and all(h["label"] == "Tony_Blair" for h in hits)
    assert all(h["match"] is None for h in hits)  # not calibrated: no decision, said so
    assert "no calibration for mine" in found.stderr
    stats = json.loads(run_cli("stats", "--space", "mine", "--json", env=env).stdout)
    assert stats["pipeline"] == "mine" and stats["faces"] > 0
    assert run_cli("models", "remove", "mine", env=env).returncode == 0
    gone = run_cli("search", str(lfw("Tony_Blair", 50)), "--space", "mine", env=env)
    assert gone.returncode == 2 and "no embedding space 'mine'" in gone.stderr


def test_the_older_embedder_flag_names_exactly_the_builtin_face_spaces():
    from revsearch.config import LEGACY_EMBEDDERS
    from revsearch.spaces.builtin import BUILTIN

    assert set(LEGACY_EMBEDDERS) == {s.name for s in BUILTIN if s.kind == "face"} | {"onnx"}
