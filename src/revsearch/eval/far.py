"""`revsearch eval far`: the stated false-accept rate, checked where it is used.

A space's calibration states, for each operating point, the FAR of its threshold on LFW
DevTrain photos. The product uses the same threshold for every kind of comparison it
makes, on people it was not fitted on. This measures false- and true-accept rates per
kind, on data the thresholds never saw:

- photo vs photo, LFW DevTest: every pair of the images listed in `pairsDevTest.txt`
  (the calibration's own check);
- photo vs photo, YouTube Faces frames: another population (video stills), every pair of
  frames of different videos;
- track vs track, YouTube Faces: each video's person-of-interest track as the product
  stores it (the `aggregation` setting), every pair of videos;
- photo vs track, YouTube Faces: each frame against the track descriptor of every other
  video.

YouTube Faces was collected from LFW's names, so its people are disjoint from LFW DevTrain
only by name: every YTF person whose name is a DevTrain name is left out (the count is
reported). Intervals are exact binomial (Clopper-Pearson, 95%); pairs sharing a video or
an image are not independent, so read them as lower bounds on the uncertainty.

"After": the method that replaces one threshold for all kinds by one per kind (`by_kind`
in the calibration), each fitted like the photo one (the score at the stated FAR among
impostor pairs of that kind) on half of the eligible YTF people (`ytf_halves`), and
measured on the other half.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from revsearch.config import Settings
from revsearch.eval import provenance
from revsearch.eval.calibrate import rates, threshold_at_far
from revsearch.eval.datasets import default_ytf_root, read_pairs, ytf_videos
from revsearch.eval.ytf import TrackedVideo, cached_tracks
from revsearch.faces.pipeline import Pipeline
from revsearch.spaces import space_for
from revsearch.spaces.calibration import FARS, Calibration
from revsearch.video.track import aggregate

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """Genuine and impostor scores of one kind of comparison on one population."""

    kind: str  # photo, track or photo_track (revsearch.spaces.calibration.KINDS)
    population: str
    genuine: np.ndarray
    impostor: np.ndarray


# -- populations -----------------------------------------------------------------------

def devtrain_names(lfw_root: Path) -> set[str]:
    [pairs] = read_pairs(lfw_root / "pairsDevTrain.txt")
    return {p.name1 for p in pairs} | {p.name2 for p in pairs}


def ytf_halves(names: list[str]) -> tuple[set[str], set[str]]:
    """A fixed split of people into a fitting half and a measuring half (by a hash of the
    name, so adding people never moves anyone)."""
    fit, measure = set(), set()
    for name in sorted(set(names)):
        (fit if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else measure).add(name)
    return fit, measure


@dataclass
class YtfPopulation:
    """The tracked YTF videos of the eligible people: frames and track descriptors."""

    frames: np.ndarray  # (n_frames, d)
    frame_video: np.ndarray  # video index of each frame
    tracks: np.ndarray  # (n_videos, d): one descriptor per video
    names: np.ndarray  # person per video

    def subset(self, people: set[str]) -> YtfPopulation:
        keep = np.array([n in people for n in self.names])
        new_index = np.cumsum(keep) - 1
        frames = keep[self.frame_video]
        return YtfPopulation(self.frames[frames], new_index[self.frame_video[frames]],
                             self.tracks[keep], self.names[keep])


def ytf_population(tracked: list[TrackedVideo], aggregation: str, prototypes: int,
                   excluded: set[str]) -> YtfPopulation:
    """Videos with a face track whose person is not in `excluded`. A multi-descriptor
    aggregation keeps its first descriptor (the pair score is then a lower bound)."""
    kept = [t for t in tracked if len(t.embeddings) and t.video.name not in excluded]
    frames = np.concatenate([t.embeddings for t in kept]).astype(np.float32)
    frame_video = np.concatenate([np.full(len(t.embeddings), i) for i, t in enumerate(kept)])
    tracks = np.stack([aggregate(t.embeddings, t.qualities, aggregation, k=prototypes)[0]
                       for t in kept]).astype(np.float32)
    return YtfPopulation(frames, frame_video, tracks, np.array([t.video.name for t in kept]))


def _split(sims: np.ndarray, same: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    return sims[valid & same], sims[valid & ~same]


def ytf_scores(pop: YtfPopulation, label: str) -> list[Scores]:
    """The three kinds of comparison on one YTF population (never within one video)."""
    out = []
    names_f = pop.names[pop.frame_video]
    sims = pop.frames @ pop.frames.T
    valid = np.triu(np.ones_like(sims, dtype=bool), k=1)
    valid &= pop.frame_video[:, None] != pop.frame_video[None, :]
    out.append(Scores("photo", f"YTF frames{label}",
                      *_split(sims, names_f[:, None] == names_f[None, :], valid)))
    del sims, valid
    sims = pop.tracks @ pop.tracks.T
    valid = np.triu(np.ones_like(sims, dtype=bool), k=1)
    out.append(Scores("track", f"YTF tracks{label}",
                      *_split(sims, pop.names[:, None] == pop.names[None, :], valid)))
    sims = pop.frames @ pop.tracks.T
    valid = pop.frame_video[:, None] != np.arange(len(pop.tracks))[None, :]
    out.append(Scores("photo_track", f"YTF frame vs track{label}",
                      *_split(sims, names_f[:, None] == pop.names[None, :], valid)))
    return out


def lfw_devtest_scores(vectors: np.ndarray, names: np.ndarray) -> Scores:
    sims = vectors @ vectors.T
    valid = np.triu(np.ones_like(sims, dtype=bool), k=1)
    return Scores("photo", "LFW DevTest photos",
                  *_split(sims, names[:, None] == names[None, :], valid))


def lfw_devtest_vectors(lfw_root: Path, settings: Settings, db: str
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The labelled face of every image listed in pairsDevTest (images without a
    detected face left out, as the calibration does), from the LFW evaluation gallery."""
    from revsearch.eval.lfw import build_gallery

    g = build_gallery(lfw_root / "lfw-deepfunneled", settings, db)
    [pairs] = read_pairs(lfw_root / "pairsDevTest.txt")
    listed = {(p.name1, p.num1) for p in pairs} | {(p.name2, p.num2) for p in pairs}
    rows = [i for i, path in enumerate(g.paths) if not g.fallback[i]
            and (Path(path).parent.name, int(Path(path).stem.rsplit("_", 1)[1])) in listed]
    return g.queries[rows], g.labels[rows]


# -- measuring -------------------------------------------------------------------------

def measure(scores: Scores, thresholds: dict[float, float]) -> list[dict]:
    """Rates at each operating point's threshold, with the FAR's ratio to the stated."""
    out = []
    for far, t in thresholds.items():
        r = rates(scores.genuine, scores.impostor, t)
        out.append({"stated_far": far, "threshold": round(t, 5), **r,
                    "ratio": r["far"] / far, "verdict": verdict(r["far"], r["far_ci"], far)})
    return out


def verdict(measured: float, ci: list[float], stated: float) -> str:
    """Whether a measured FAR is within 2x of the stated one, as far as its interval
    tells: "within 2x", "over 2x" / "under 2x" (the interval says so too), or
    "borderline" (the point is outside but the interval reaches inside)."""
    if stated / 2 <= measured <= 2 * stated:
        return "within 2x"
    if ci[0] > 2 * stated:
        return "over 2x"
    if ci[1] < stated / 2:
        return "under 2x"
    return "borderline"


def fit_by_kind(fit: list[Scores], fars: tuple[float, ...] = FARS) -> dict[float, dict]:
    """Per operating point, a threshold per comparison kind other than photo, fitted at
    the stated FAR on `fit`'s impostor scores of that kind."""
    return {far: {s.kind: threshold_at_far(s.impostor, far) for s in fit
                  if s.kind != "photo"} for far in fars}


def evaluate_far(lfw_root: Path, settings: Settings, out_dir: Path, db: str,
                 ytf_root: Path | None = None, command: str = "") -> dict:
    """Stated vs measured FAR per kind of comparison, before and after per-kind
    thresholds; writes far_<key>.json and .md."""
    started = time.monotonic()
    space = space_for(settings)
    cal = space.calibration(settings.home)
    if cal is None:
        raise ValueError(f"{space.key} has no calibration to check: run `revsearch "
                         f"calibrate --space {space.name}` first")
    before = {p.far: p.threshold for p in cal.points}
    vectors, names = lfw_devtest_vectors(lfw_root, settings, db)
    lfw_scores = lfw_devtest_scores(vectors, names)

    ytf_root = ytf_root or default_ytf_root()
    pipeline = Pipeline(settings, threads=max(1, settings.workers), space=space)
    tracked = cached_tracks(ytf_videos(ytf_root), pipeline, settings.home / "eval")
    shared = devtrain_names(lfw_root)
    all_ytf = sorted({t.video.name for t in tracked})
    pop = ytf_population(tracked, space.aggregation(settings), settings.prototypes, shared)
    fit_people, measure_people = ytf_halves(list(pop.names))
    before_all = ytf_scores(pop, "")
    fit_scores = ytf_scores(pop.subset(fit_people), " (fitting half)")
    held = ytf_scores(pop.subset(measure_people), " (measuring half)")
    by_kind = fit_by_kind(fit_scores, tuple(before))

    rows = []
    for s in [lfw_scores, *before_all]:
        rows.append(_row(s, "before", measure(s, before)))
    for s in held:
        rows.append(_row(s, "before", measure(s, before)))
        after = {far: by_kind[far].get(s.kind, t) for far, t in before.items()}
        rows.append(_row(s, "after", measure(s, after)))
    result = {
        "pipeline": space.key, "calibration": _calibration_summary(cal),
        "ytf": {"people": len(all_ytf), "excluded_devtrain_names": len(set(all_ytf) & shared),
                "eligible_people": len(set(pop.names)), "videos": len(pop.names),
                "frames": len(pop.frames), "fitting_people": len(fit_people),
                "measuring_people": len(measure_people),
                "aggregation": space.aggregation(settings)},
        "by_kind": {str(far): kinds for far, kinds in by_kind.items()},
        "rows": rows, "seconds": round(time.monotonic() - started, 1), "command": command,
        "created": time.strftime("%Y-%m-%d"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance.write_json(out_dir / f"far_{space.key}.json", result,
                          runtime_name=settings.runtime)
    from revsearch.eval import report

    report.far_markdown(out_dir, result, space.licence)
    return result


def _row(s: Scores, method: str, points: list[dict]) -> dict:
    return {"kind": s.kind, "population": s.population, "method": method,
            "n_genuine": len(s.genuine), "n_impostor": len(s.impostor), "points": points}


def _calibration_summary(cal: Calibration) -> dict:
    return {"source": cal.source, "created": cal.created,
            "points": [{"far": p.far, "threshold": p.threshold, "by_kind": p.by_kind}
                       for p in cal.points]}
