"""Stored match thresholds: one JSON file per embedding space, one threshold per
operating point (a stated false-accept rate, FAR).

A calibration is fitted by `revsearch calibrate` (the fitting lives in
`revsearch.eval.calibrate`, on LFW's development people or on a user's own labelled
folders); the product only reads it. A user's own calibration under
`$REVSEARCH_HOME/calibration/` wins over the one shipped in this package.

Files written before operating points existed hold a single `threshold` at `target_far`;
they are read as a calibration with that one point.

`Decision` is what every result carries: the operating point it was judged at (or why
none was), so a "match" is never shown without the FAR it stands for.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The operating points a calibration holds and a user can pick (the `far` setting).
FARS = (1e-2, 1e-3, 1e-4)
DEFAULT_FAR = 1e-3

# The kinds of comparison the product makes; a point may hold a threshold per kind
# when one threshold does not keep its stated FAR for all of them.
KINDS = ("photo", "track", "photo_track")


@dataclass
class OperatingPoint:
    """One stated FAR and the threshold that reaches it, with its fit and its check.

    `threshold` is on the cosine; `by_kind` overrides it per comparison kind;
    `norm_threshold` is the threshold on the normalised score (`norm` setting), when
    the calibration was fitted with normalisation too. `train` / `test`: the rates where
    it was fitted and where it was checked (with their pair counts and, for the FAR, a
    95% exact binomial interval `far_ci`)."""

    far: float
    threshold: float
    train: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    by_kind: dict[str, float] = field(default_factory=dict)
    norm_threshold: float | None = None

    def threshold_for(self, kind: str = "photo", normalised: bool = False) -> float | None:
        if normalised:
            return self.norm_threshold
        return self.by_kind.get(kind, self.threshold)


@dataclass
class Calibration:
    key: str
    model_sha256: str
    detector: str
    points: list[OperatingPoint]
    source: str = "LFW pairsDevTrain"  # what the thresholds were fitted on
    norm: dict = field(default_factory=dict)  # the normalisation fitted with it, if any
    command: str = ""
    created: str = ""

    def point(self, far: float) -> OperatingPoint | None:
        """The operating point at `far` (compared with a relative tolerance: JSON and
        flags spell 1e-3 as 0.001)."""
        for p in self.points:
            if abs(p.far - far) <= 1e-9 * max(far, 1e-12):
                return p
        return None

    @property
    def fars(self) -> list[float]:
        return [p.far for p in self.points]


@dataclass(frozen=True)
class Decision:
    """How the `match` of a result was decided: at which operating point, on which score.

    `far` is the stated false-accept rate of `threshold` (None when the threshold was
    set by hand, or when there is none); `score` names what the threshold applies to
    ("cosine", or the normalisation's name, whose value hits carry as `score`);
    `note` says why there is no decision, or what to keep in mind."""

    far: float | None
    threshold: float | None
    score: str = "cosine"
    source: str = ""
    note: str = ""
    by_kind: dict[str, float] = field(default_factory=dict)  # per comparison kind, if any

    @property
    def decides(self) -> bool:
        return self.threshold is not None

    def threshold_for(self, kind: str) -> float | None:
        """The threshold for one kind of comparison (`KINDS`)."""
        return self.by_kind.get(kind, self.threshold) if self.threshold is not None else None


def save(calibration: Calibration, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{calibration.key}.json"
    path.write_text(json.dumps(asdict(calibration), indent=2) + "\n")
    return path


def packaged_dir() -> Path:
    return Path(str(importlib.resources.files("revsearch").joinpath("spaces", "calibration")))


def from_dict(data: dict) -> Calibration:
    """A calibration from its JSON, in the current or the single-threshold format."""
    data = dict(data)
    if "points" not in data:  # the single-threshold format
        data["points"] = [{"far": data.pop("target_far"), "threshold": data.pop("threshold"),
                           "train": data.pop("train", {}), "test": data.pop("test", {})}]
    points = [OperatingPoint(**p) for p in data.pop("points")]
    known = {f for f in Calibration.__dataclass_fields__} - {"points"}
    return Calibration(points=sorted(points, key=lambda p: -p.far),
                       **{k: v for k, v in data.items() if k in known})


def load(key: str, home: Path) -> Calibration | None:
    """The user's calibration for `key` if any, else the one shipped with the package."""
    for directory in (home / "calibration", packaged_dir()):
        path = directory / f"{key}.json"
        if path.is_file():
            return from_dict(json.loads(path.read_text()))
    return None
