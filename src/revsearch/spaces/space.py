"""What an embedding space is: the one object that says how its vectors are made,
compared, stored and judged.

Vectors of two spaces are never compared: each space has its own Milvus collections
(named by `Space.key`) and its own calibration. A space owns

- its detector (`detector`; empty means the `detector` setting) and its embedder (`embedder`
  names the kind of model, one class each in `revsearch.faces`), with the model files it
  loads and their SHA-256 digests;
- the vector dimension and metric, and the index parameters per backend (`IndexPolicy`);
- how a video's face track becomes stored descriptors (`track_aggregation`; empty means
  the `aggregation` setting) and whether frames are weighed by face quality;
- whether it makes match decisions at all (`decides`: the AWS baseline only ranks), and
  the calibration that makes them (read through `calibration()`, checked against the
  digests of the files it was fitted with).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from revsearch.faces.models import MODEL_FILES, ModelFile
from revsearch.spaces import calibration as calibration_store

if TYPE_CHECKING:
    from revsearch.config import Settings
    from revsearch.faces.detect import Detector
    from revsearch.faces.embed import Embedder
    from revsearch.spaces.calibration import Calibration

log = logging.getLogger(__name__)

KINDS = ("face", "image")
EMBEDDER_KINDS = ("sface", "dlib", "onnx", "fusion", "imagenet")


@dataclass(frozen=True)
class OnnxInput:
    """Input conventions of an ArcFace-style ONNX model: square aligned crops of `size`
    pixels, `(pixel - mean) / std`, channels RGB (or BGR)."""

    size: int = 112
    mean: float = 127.5
    std: float = 127.5
    rgb: bool = True


@dataclass(frozen=True)
class IndexPolicy:
    """Vector index parameters per backend.

    `lite` / `server`: Milvus index parameters for new collections; None on a server means
    HNSW built from the `hnsw_m` and `hnsw_ef_construction` settings. `search_ef`: the HNSW
    search width; None means the `search_ef` setting (or the store's default)."""

    lite: dict | None = None
    server: dict | None = None
    search_ef: int | None = None

    def for_backend(self, is_lite: bool, settings: Settings) -> tuple[dict, int | None]:
        if is_lite:
            return (self.lite or {"index_type": "FLAT"}), self.search_ef
        params = self.server or {"index_type": "HNSW", "params": {
            "M": settings.hnsw_m, "efConstruction": settings.hnsw_ef_construction}}
        return params, self.search_ef or (settings.search_ef or None)


# Exact search on Milvus Lite: its HNSW can miss hits under a filter, and at the sizes
# Lite is for, brute force over face vectors takes milliseconds.
FACE_INDEX = IndexPolicy()


@dataclass(frozen=True)
class Space:
    """One embedding space; see the module docstring."""

    name: str
    kind: str  # "face": detect, align and embed each face; "image": the whole picture
    embedder: str  # one of EMBEDDER_KINDS
    dim: int | None  # None: known once the model is loaded (an unregistered model file)
    description: str = ""
    metric: str = "COSINE"
    files: tuple[ModelFile, ...] = ()  # the embedder's weights: what a calibration pins
    members: tuple[Space, ...] = ()  # fusion: the spaces whose vectors are joined
    onnx_input: OnnxInput | None = None
    backbone: str = ""  # image spaces: efficientnet_lite0 or onnx
    detector: str = ""  # "" means the `detector` setting; "whole" for image spaces
    index: IndexPolicy = FACE_INDEX
    track_aggregation: str = ""  # "" means the `aggregation` setting
    weighs_frames: bool = True  # rate a track's frames by face quality
    decides: bool = True  # False: scores only rank; no match decision, no calibration
    licence: str = ""
    builtin: bool = True
    flip: bool = False

    @property
    def key(self) -> str:
        """Names the space's collections and calibration: the name, `_flip` when flipped."""
        return f"{self.name}_flip" if self.flip else self.name

    def flipped(self) -> Space:
        """The same space with flip test-time augmentation (a space of its own: flipped
        vectors differ)."""
        if self.kind != "face":
            return self
        return replace(self, flip=True,
                       members=tuple(m.flipped() for m in self.members))

    def all_files(self) -> tuple[ModelFile, ...]:
        return self.files + tuple(f for m in self.members for f in m.all_files())

    @property
    def digest(self) -> str:
        """The SHA-256 digests of the embedder's files, '+'-joined: what a calibration
        was fitted with."""
        return "+".join(f.sha256 for f in self.all_files())

    def detector_name(self, settings: Settings) -> str:
        return self.detector or settings.detector

    def aggregation(self, settings: Settings) -> str:
        return self.track_aggregation or settings.aggregation

    # -- models --------------------------------------------------------------------
    def create_detector(self, settings: Settings) -> Detector:
        from revsearch.faces.detect import create_detector

        name = self.detector_name(settings)
        if name == "yunet":
            return create_detector("yunet", score_threshold=settings.det_score,
                                   max_side=settings.det_max_side)
        return create_detector(name)

    def create_embedder(self, settings: Settings, threads: int = 1) -> Embedder:
        """Load this space's embedder (model files checked against their digests)."""
        return _EMBEDDER_FACTORIES[self.embedder](self, settings, threads)

    # -- decisions -----------------------------------------------------------------
    def calibration(self, home: Path) -> Calibration | None:
        """The stored calibration of this space, if one was fitted with its files."""
        if not self.decides:
            return None
        found = calibration_store.load(self.key, home)
        if found is not None and self.digest and found.model_sha256 != self.digest:
            log.warning("the calibration of %s was fitted with other model files (%s); "
                        "ignoring it: run `revsearch calibrate --space %s`", self.key,
                        found.model_sha256[:16], self.name)
            return None
        return found


def _sface(space: Space, settings: Settings, threads: int) -> Embedder:
    from revsearch.faces.embed import SFaceEmbedder

    return SFaceEmbedder(flip=space.flip, threads=threads, runtime=settings.runtime)


def _dlib(space: Space, settings: Settings, threads: int) -> Embedder:
    from revsearch.faces.embed import DlibResNetEmbedder

    return DlibResNetEmbedder(flip=space.flip, threads=threads)


def _onnx(space: Space, settings: Settings, threads: int) -> Embedder:
    from revsearch.faces.embed import OnnxArcFaceEmbedder

    [weights] = space.files
    conv = space.onnx_input or OnnxInput()
    return OnnxArcFaceEmbedder(weights.locate(), weights.sha256, flip=space.flip,
                               threads=threads, mean=conv.mean, std=conv.std, rgb=conv.rgb,
                               runtime=settings.runtime)


def _fusion(space: Space, settings: Settings, threads: int) -> Embedder:
    from revsearch.faces.embed import FusedEmbedder

    return FusedEmbedder([m.create_embedder(settings, threads) for m in space.members])


def _imagenet(space: Space, settings: Settings, threads: int) -> Embedder:
    from revsearch.faces.baseline import ImageNetEmbedder

    weights = space.files[0] if space.backbone == "onnx" else None
    return ImageNetEmbedder(space.backbone, str(weights.locate()) if weights else "",
                            weights.sha256 if weights else "", threads=threads)


_EMBEDDER_FACTORIES = {"sface": _sface, "dlib": _dlib, "onnx": _onnx, "fusion": _fusion,
                       "imagenet": _imagenet}


def packaged(*names: str) -> tuple[ModelFile, ...]:
    return tuple(MODEL_FILES[n] for n in names)


def user_file(name: str, path: str, sha256: str) -> ModelFile:
    return ModelFile(name, path=path, sha256=sha256)


__all__ = ["EMBEDDER_KINDS", "KINDS", "IndexPolicy", "OnnxInput", "Space"]
