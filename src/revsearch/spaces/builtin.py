"""The spaces that ship with revsearch: their models come from PyPI packages."""

from __future__ import annotations

from revsearch.spaces.space import IndexPolicy, Space, packaged

SFACE = Space(
    "sface", "face", "sface", 128, files=packaged("sface"), licence="Apache-2.0",
    description="YuNet + SFace (OpenCV Zoo, int8): the fast default")
DLIB = Space(
    "dlib", "face", "dlib", 128, files=packaged("dlib_resnet", "dlib_shape5"),
    licence="CC0 (dlib models)",
    description="dlib ResNet-29 on dlib's own face chips (face_recognition's model)")
SFACE_DLIB = Space(
    "sface_dlib", "face", "fusion", 256, members=(SFACE, DLIB),
    licence="Apache-2.0 + CC0",
    description="SFace and dlib fused (mean of their cosines): more accurate, slower")

# The AWS demo's Elasticsearch k-NN settings, as far as Milvus has them (L2 on raw
# features, HNSW m=16, ef_construction=512, ef_search=512), on Lite as on a server.
_BLOG_HNSW = {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 512}}
BASELINE_INDEX = IndexPolicy(lite=_BLOG_HNSW, server=_BLOG_HNSW, search_ef=512)


def baseline_space(backbone: str, dim: int | None, files=(), name: str = "") -> Space:
    """A whole-image ImageNet CNN space, the AWS demo's replica (revsearch.faces.baseline)."""
    return Space(
        name or f"baseline_{backbone}", "image", "imagenet", dim, metric="L2", files=files,
        backbone=backbone, detector="whole", index=BASELINE_INDEX,
        # Raw features: a plain mean, like the frames; no face to rate.
        track_aggregation="raw_mean", weighs_frames=False, decides=False,
        description=f"AWS-demo baseline: whole image, ImageNet {backbone}, L2")


BASELINE_EFFICIENTNET = baseline_space("efficientnet_lite0", 1280,
                                       packaged("efficientnet_lite0"))

BUILTIN: tuple[Space, ...] = (SFACE, DLIB, SFACE_DLIB, BASELINE_EFFICIENTNET)
