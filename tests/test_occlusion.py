"""Occlusion handling on real LFW photos, covered in the test (revsearch.faces.occlusion).

The covers are the synthetic occluders of `revsearch eval occlusion` (a dark band over the
eyes, a light mask over the lower face, a grey patch). Each search test compares the same
covered queries with occlusion handling on and off, so it fails when the mitigation is
switched off or stops working.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import lfw, require_data

import revsearch
from revsearch.config import load_settings
from revsearch.eval.occlusion import occlude
from revsearch.faces.occlusion import OcclusionDetector, create_matcher
from revsearch.faces.pipeline import Pipeline, central_face
from revsearch.media import load_image

# Photos of the indexed subset's people that the subset leaves out (conftest.MANY).
CLEAN = [("Colin_Powell", i) for i in range(9, 15)] + [("Tony_Blair", i) for i in range(9, 15)]


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    require_data()
    return Pipeline(load_settings(workers=1))


def _covered(pipeline: Pipeline, name: str, num: int, kind: str, seed: int = 0):
    image = load_image(lfw(name, num))
    faces = pipeline.detect(image)
    face = faces[central_face(faces, image.shape)]
    if kind == "clean":
        return image
    return occlude(image, face, kind, np.random.default_rng(seed))


def _inspect(pipeline: Pipeline, image: np.ndarray):
    faces = pipeline.detect_query(image)
    face = faces[central_face(faces, image.shape)]
    return OcclusionDetector().inspect(image, face.landmarks)


def test_detector_says_where_a_face_is_covered(pipeline):
    for name, num in CLEAN[::2]:
        assert not _inspect(pipeline, _covered(pipeline, name, num, "clean")).covered, num
        assert _inspect(pipeline, _covered(pipeline, name, num, "sunglasses")).region == "eyes"
        assert _inspect(pipeline, _covered(pipeline, name, num, "mask")).region == "lower"
        patched = _inspect(pipeline, _covered(pipeline, name, num, "patch", seed=num))
        assert patched.covered and patched.mask is not None and patched.mask.any()


def test_matcher_needs_an_embedder_of_aligned_crops(pipeline):
    assert create_matcher(pipeline.embedder) is not None
    assert create_matcher(object()) is None


@pytest.fixture
def both(indexed):
    with revsearch.connect(indexed["db"], home=indexed["home"], workers=2) as on, \
            revsearch.connect(indexed["db"], home=indexed["home"], workers=2,
                              occlusion=False) as off:
        yield on, off


@pytest.mark.slow
def test_clean_queries_are_searched_as_before(both, pipeline):
    on, off = both
    for name, num in CLEAN[:4]:
        image = _covered(pipeline, name, num, "clean")
        [a], [b] = on.search(image, k=5), off.search(image, k=5)
        assert not a.occlusion_handled and a.occlusion == "none"
        assert [(h.path, h.similarity) for h in a.hits] == [(h.path, h.similarity)
                                                          for h in b.hits]


# Covered queries (person, photo, occluder, seed) whose first hit is someone else
# without occlusion handling, on the indexed subset; with it, the right person.
RESCUED = [("Colin_Powell", 13, "patch", 13)]


@pytest.mark.slow
def test_covered_queries_find_the_person_only_with_occlusion_handling(both, pipeline):
    on, off = both
    for name, num, kind, seed in RESCUED:
        image = _covered(pipeline, name, num, kind, seed)
        [a], [b] = on.search(image, k=5), off.search(image, k=5)
        assert b.hits[0].label != name and not b.occlusion_handled
        assert a.occlusion_handled and a.occlusion != "none"
        assert a.hits[0].label == name, [(h.label, h.similarity) for h in a.hits]
        # The shown cosine is what the decision compares; the visible-part score that
        # ranked the head is given beside it.
        assert a.hits[0].visible is not None
        assert all(h.match == (h.similarity >= a.threshold) for h in a.hits)
        assert all(h.visible is None for h in b.hits)


def test_reranking_embeds_at_its_own_precision_and_leaves_the_index_float32(pipeline):
    from revsearch.faces.align import align_face
    from revsearch.faces.embed import resolve_runtime
    from revsearch.faces.occlusion import CROP, OcclusionSettings

    crops = []
    for name, num in CLEAN[:4]:
        image = load_image(lfw(name, num))
        faces = pipeline.detect(image)
        crops.append(align_face(image, faces[central_face(faces, image.shape)].landmarks, CROP))
    crops = np.stack(crops)
    before = pipeline.embedder.embed_aligned(crops)
    matcher = create_matcher(pipeline.embedder, OcclusionSettings(precision="bf16"))
    fast = matcher.embedder.embed_aligned(crops)
    # The index's embedder is untouched: the same vectors as before, at float32.
    assert np.array_equal(pipeline.embedder.embed_aligned(crops), before)
    assert pipeline.embedder._run.precision == "f32"
    if resolve_runtime("auto") == "openvino":
        assert matcher.embedder._run.precision == "bf16"
    # Close enough to rank by (each face nearest its own float32 vector), not identical
    # on a CPU with bfloat16 units.
    cos = fast @ before.T
    assert (np.argmax(cos, axis=1) == np.arange(len(crops))).all()
    assert np.diag(cos).min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        create_matcher(pipeline.embedder, OcclusionSettings(precision="int4"))
