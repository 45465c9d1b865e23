"""Face embedders: (image, faces) in, one L2-normalised vector per face out.

All embedders return unit vectors, so cosine similarity is a dot product and the
vector index can use inner product or cosine interchangeably.

- `SFaceEmbedder` (default, 128-d): MobileFaceNet-style network trained with the SFace
  loss; 99.40% on LFW as published. The packaged file is int8 block-quantised; we
  dequantise its weights once at load (identical outputs), which keeps onnxruntime from
  re-running 29 DequantizeLinear nodes on every call.
- `DlibResNetEmbedder` (128-d): dlib's ResNet-29 (the model behind face_recognition),
  99.38% on LFW as published; about 3x slower per face on CPU and expects dlib's
  own 150x150 face chips, which it cuts itself.
- `FusedEmbedder` ("sface_dlib", 256-d): SFace and dlib side by side, each unit vector
  scaled by 1/sqrt(2), so the cosine of two fused vectors is the mean of the two models'
  cosines (score-level fusion, equal weights, nothing fitted). The two networks err on
  different faces: LFW retrieval rank-1 98.1% against SFace's 98.0%, at about a quarter
  of SFace's speed (dlib dominates). The accuracy option, not the default.
- `OnnxArcFaceEmbedder`: any ArcFace-style ONNX model from a path you give (e.g. an
  insightface `w600k_r50.onnx`), 112x112 aligned input, with its SHA-256 checked if given.

`flip=True` adds the embedding of the mirrored face (test-time augmentation): about
2x the embedding cost for a small gain in accuracy.

The ONNX embedders run on OpenVINO when it is installed (`runtime="auto"`, the
default) and on onnxruntime otherwise. Both compute the same float32 network (cosine
between their outputs > 0.99999 on LFW faces); on this project's AVX-512 Xeon, OpenVINO
aligns and embeds a face in 11.0 ms on one core against 21.8 ms for onnxruntime
(docs/results/bench_lfw.md; docs/experiments.md, "Speed").
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from revsearch.faces.align import align_face
from revsearch.faces.detect import Face
from revsearch.faces.models import model_path, sha256_file, verify_file

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(len(faces), dim) float32 unit vectors for these faces of a BGR image."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _session(model: bytes | str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle worker threads spin by default, burning the core that the database search or
    # the next decode needs right after (query p50 56 -> see docs/experiments.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


RUNTIMES = ("auto", "openvino", "onnxruntime")


def resolve_runtime(runtime: str) -> str:
    """The runtime an embedder built with `runtime` runs on ("auto" resolved)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "auto":
        return "openvino" if _openvino_available() else "onnxruntime"
    return runtime


def _openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class _OnnxRuntimeRunner:
    def __init__(self, model: bytes, threads: int) -> None:
        self._session = _session(model, threads)
        first = self._session.get_inputs()[0]
        self._input = first.name
        self.input_shape = first.shape
        self.precision = "f32"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch})[0]

    def with_precision(self, precision: str) -> _OnnxRuntimeRunner:
        """onnxruntime's CPU kernels here are float32 only: the same runner."""
        check_precision(precision)
        return self


def _import_openvino():
    """`import openvino`, without its usage telemetry.

    Importing openvino sends an event to Google Analytics unless the user opted out, by
    forking a process to do so; a fork while the in-process Milvus Lite server's gRPC
    threads run also prints a gRPC warning. Hiding the telemetry package for the import
    makes openvino fall back to its own no-op stub.
    """
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    saved = sys.modules.get("openvino_telemetry")
    sys.modules["openvino_telemetry"] = None  # makes `import openvino_telemetry` fail
    try:
        import openvino
    finally:
        if saved is None:
            del sys.modules["openvino_telemetry"]
        else:
            sys.modules["openvino_telemetry"] = saved
    return openvino


PRECISIONS = ("f32", "bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")


class _OpenVinoRunner:
    def __init__(self, model: bytes, threads: int) -> None:
        ov = _import_openvino()
        self._core = ov.Core()
        self._network = self._core.read_model(model, ov.Tensor(np.empty(0, dtype=np.uint8)))
        self._threads = threads
        self.input_shape = [d.get_length() if d.is_static else "batch"
                            for d in self._network.inputs[0].get_partial_shape()]
        self._compile("f32")

    def _compile(self, precision: str) -> None:
        check_precision(precision)
        # float32, the default, keeps the vectors identical to onnxruntime's, which stored
        # vectors must be (bf16 moves them by up to 1e-3 in cosine). A CPU without bf16
        # units runs the bf16 hint in float32. No pinning: several worker processes each
        # pinning their thread to core 0 would share one core.
        self.precision = precision
        self._compiled = self._core.compile_model(self._network, "CPU", {
            "INFERENCE_NUM_THREADS": self._threads, "INFERENCE_PRECISION_HINT": precision,
            "ENABLE_CPU_PINNING": False, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        # An infer request is not thread-safe (an onnxruntime session is): one per thread.
        self._local = threading.local()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        # The output tensor is reused by the next call on this request.
        return np.array(request.infer({0: batch})[0], copy=True)

    def with_precision(self, precision: str) -> _OpenVinoRunner:
        """The same network compiled at another precision (the model is read once)."""
        if precision == self.precision:
            return self
        other = copy.copy(self)
        other._local = threading.local()
        other._compile(precision)
        return other


def _runner(model: bytes, threads: int, runtime: str):
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {list(RUNTIMES)}")
    if resolve_runtime(runtime) == "openvino":
        return _OpenVinoRunner(model, threads)
    return _OnnxRuntimeRunner(model, threads)


def fold_constant_weights(model_bytes: bytes) -> bytes:
    """Return the graph with every weight-only subgraph (dequantise, reshape) precomputed.

    Also drops graph inputs that no node reads: onnxruntime refuses the SFace file
    with them. The result computes exactly what the original computes.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    consumed = {name for node in graph.node for name in node.input}
    inputs = [i for i in graph.input if i.name not in initializers and i.name in consumed]
    del graph.input[:]
    graph.input.extend(inputs)

    constant = set(initializers)
    folded = []
    for node in graph.node:
        if node.op_type in ("DequantizeLinear", "Reshape", "Constant") and all(
            name in constant for name in node.input if name
        ):
            folded.append(node)
            constant.update(node.output)
    if folded:
        kept_nodes = [n for n in graph.node if n not in folded]
        needed = {name for n in kept_nodes for name in n.input} | {o.name for o in graph.output}
        targets = sorted({o for n in folded for o in n.output} & needed)
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in targets)
        feeds = {}
        for inp in inputs:
            dims = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
            feeds[inp.name] = np.zeros(dims, dtype=np.float32)
        values = _session(probe.SerializeToString(), 1).run(targets, feeds)
        del graph.node[:]
        graph.node.extend(kept_nodes)
        graph.initializer.extend(
            numpy_helper.from_array(v, t) for t, v in zip(targets, values, strict=True))
        still_used = {name for n in graph.node for name in n.input}
        kept_init = [t for t in graph.initializer if t.name in still_used]
        del graph.initializer[:]
        graph.initializer.extend(kept_init)
    # A symbolic batch dimension lets one call embed every face of an image.
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    return model.SerializeToString()


class _AlignedOnnxEmbedder:
    """Shared by the ONNX embedders: align to the template, batch, run, normalise."""

    name = "onnx"
    dim = 0

    def __init__(self, model_bytes: bytes, *, flip: bool, threads: int, mean: float,
                 std: float, rgb: bool, runtime: str = "auto") -> None:
        self.flip = flip
        self._run = _runner(model_bytes, threads, runtime)
        size = self._run.input_shape[-1]
        self.size = size if isinstance(size, int) and size > 0 else 112
        self._mean, self._std, self._rgb = mean, std, rgb
        probe = np.zeros((1, 3, self.size, self.size), dtype=np.float32)
        self.dim = int(self._run(probe).shape[-1])

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        crops = np.stack([align_face(image, f.landmarks, self.size) for f in faces])
        return self.embed_aligned(crops)

    def with_precision(self, precision: str) -> _AlignedOnnxEmbedder:
        """This embedder computing at another precision ("f32" or "bf16"), for vectors
        that are only compared with each other, never with stored ones (occlusion
        re-ranking embeds both sides itself). onnxruntime stays float32."""
        other = copy.copy(self)
        other._run = self._run.with_precision(precision)
        return other

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embed already aligned BGR crops, (n, size, size, 3) uint8."""
        batch = crops[..., ::-1] if self._rgb else crops
        batch = (batch.astype(np.float32) - self._mean) / self._std
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self.flip:
            batch = np.concatenate([batch, batch[..., ::-1]])
        out = self._run(batch).astype(np.float32)
        if self.flip:
            half = len(out) // 2
            out = l2_normalize(out[:half]) + l2_normalize(out[half:])
        return l2_normalize(out)


class SFaceEmbedder(_AlignedOnnxEmbedder):
    """SFace (OpenCV Zoo, int8 block-quantised) through onnxruntime; 128-d."""

    name = "sface"

    def __init__(self, flip: bool = False, threads: int = 1, runtime: str = "auto") -> None:
        raw = model_path("sface").read_bytes()
        # The network normalises its own input ((x - 127.5) / 128 inside the graph).
        super().__init__(fold_constant_weights(raw), flip=flip, threads=threads,
                         mean=0.0, std=1.0, rgb=True, runtime=runtime)


class OnnxArcFaceEmbedder(_AlignedOnnxEmbedder):
    """An ArcFace-style ONNX model from a path: NCHW input of aligned 112x112 crops."""

    name = "onnx"

    def __init__(self, path: str | Path, sha256: str = "", flip: bool = False,
                 threads: int = 1, mean: float = 127.5, std: float = 127.5,
                 rgb: bool = True, runtime: str = "auto") -> None:
        path = Path(path).expanduser()
        verify_file(path, sha256 or None, f"ONNX embedder {path.name}")
        if not sha256:
            log.warning("no SHA-256 given for %s (it is %s); pass it to pin the file",
                        path, sha256_file(path))
        super().__init__(fold_constant_weights(path.read_bytes()), flip=flip,
                         threads=threads, mean=mean, std=std, rgb=rgb, runtime=runtime)


class DlibResNetEmbedder:
    """dlib's ResNet face descriptor on its own 150x150 chips (5-point shape model)."""

    name = "dlib"
    dim = 128

    def __init__(self, flip: bool = False, threads: int = 1) -> None:
        import dlib

        self.flip = flip
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(model_path("dlib_shape5")))
        self._net = dlib.face_recognition_model_v1(str(model_path("dlib_resnet")))

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        dlib = self._dlib
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        chips = []
        for face in faces:
            x, y, w, h = face.box
            rect = dlib.rectangle(int(x), int(y), int(x + w), int(y + h))
            chips.append(dlib.get_face_chip(rgb, self._shape(rgb, rect), size=150, padding=0.25))
        vectors = np.array(self._net.compute_face_descriptor(chips), dtype=np.float32)
        if self.flip:
            mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in chips]
            flipped = np.array(self._net.compute_face_descriptor(mirrored), dtype=np.float32)
            vectors = l2_normalize(vectors) + l2_normalize(flipped)
        return l2_normalize(vectors)


class FusedEmbedder:
    """Several embedders as one: their unit vectors concatenated, each scaled 1/sqrt(n)."""

    def __init__(self, members: Sequence[Embedder]) -> None:
        self.members = list(members)
        self.name = "_".join(m.name for m in self.members)
        self.dim = sum(m.dim for m in self.members)
        self._scale = 1.0 / np.sqrt(len(self.members))

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        parts = [m.embed(image, faces) for m in self.members]
        return (np.concatenate(parts, axis=1) * self._scale).astype(np.float32)

    @property
    def size(self) -> int:
        """The aligned crop size all members take, 0 if some cannot embed crops (dlib)."""
        sizes = {getattr(m, "size", 0) if hasattr(m, "embed_aligned") else 0
                 for m in self.members}
        return sizes.pop() if len(sizes) == 1 else 0

    def with_precision(self, precision: str) -> FusedEmbedder:
        """Every member that can at another precision (see _AlignedOnnxEmbedder's)."""
        return FusedEmbedder([m.with_precision(precision) if hasattr(m, "with_precision")
                              else m for m in self.members])

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """Embed aligned crops with every member (all must take the same crops)."""
        if not self.size:
            raise ValueError(f"{self.name}: not every member embeds aligned crops")
        parts = [m.embed_aligned(crops) for m in self.members]
        return (np.concatenate(parts, axis=1) * self._scale).astype(np.float32)


EMBEDDERS = ("sface", "dlib", "onnx")


def create_embedder(name: str = "sface", *, flip: bool = False, threads: int = 1,
                    model_path: str = "", model_sha256: str = "",
                    runtime: str = "auto") -> Embedder:
    """One model by kind: 'sface', 'dlib' or 'onnx' (which needs `model_path` and should
    get `model_sha256`). Spaces, fusions included, are built by `revsearch.spaces`.

    `runtime` picks the engine of the ONNX embedders: 'openvino', 'onnxruntime', or
    'auto' (OpenVINO when installed). dlib always runs on dlib.
    """
    if name == "sface":
        return SFaceEmbedder(flip=flip, threads=threads, runtime=runtime)
    if name == "dlib":
        return DlibResNetEmbedder(flip=flip, threads=threads)
    if name == "onnx":
        if not model_path:
            raise ValueError("the 'onnx' embedder needs model_path (REVSEARCH_MODEL_PATH)")
        return OnnxArcFaceEmbedder(model_path, model_sha256, flip=flip, threads=threads,
                                   runtime=runtime)
    raise ValueError(f"unknown embedder {name!r}; choose from {list(EMBEDDERS)}")
