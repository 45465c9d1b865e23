"""Stored match thresholds: one JSON file per embedding space.

A calibration is fitted by `revsearch calibrate` (the fitting lives in
`revsearch.eval.calibrate`); the product only reads it. A user's own calibration under
`$REVSEARCH_HOME/calibration/` wins over the one shipped in this package.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Calibration:
    key: str
    threshold: float
    target_far: float
    model_sha256: str
    detector: str
    train: dict
    test: dict
    command: str
    created: str


def save(calibration: Calibration, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{calibration.key}.json"
    path.write_text(json.dumps(asdict(calibration), indent=2) + "\n")
    return path


def packaged_dir() -> Path:
    return Path(str(importlib.resources.files("revsearch").joinpath("spaces", "calibration")))


def load(key: str, home: Path) -> Calibration | None:
    """The user's calibration for `key` if any, else the one shipped with the package."""
    for directory in (home / "calibration", packaged_dir()):
        path = directory / f"{key}.json"
        if path.is_file():
            return Calibration(**json.loads(path.read_text()))
    return None
