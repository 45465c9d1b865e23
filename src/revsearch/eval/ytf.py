"""`revsearch eval ytf`: video retrieval and verification on YouTube Faces.

Every video is tracked by the shipped path (`Pipeline.track_video`: detect, embed, rate
and link faces); its person of interest is its most prominent track. Each aggregation
method turns that track into descriptors; every video then queries all the others
(itself excluded), scored set to set by the best descriptor pair. Two single-frame
references sit beside them: `best_frame` (the best-quality frame as the descriptor) and
`single_frame` (each frame alone queries every frame of the other videos, as an image
search with a still would; its metrics average over all query frames).

Verification uses the `splits.txt` pairs whose two videos are present, 10-fold with
YTF's own splits as the folds.

With `occlude_frames=N`, N frames of every video are covered by a random occluder (sunglasses,
mask, patch; `occlusion.py`) before detection, for the robustness experiment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from revsearch.config import Settings
from revsearch.eval import metrics, provenance
from revsearch.eval.datasets import YtfVideo, read_ytf_splits, ytf_videos
from revsearch.eval.occlusion import KINDS, occlude
from revsearch.faces.pipeline import Pipeline, main_track
from revsearch.video.frames import Sampling, folder_frames
from revsearch.video.track import aggregate

log = logging.getLogger(__name__)

METHODS = ("single_frame", "best_frame", "mean", "quality", "prototypes")


@dataclass
class TrackedVideo:
    video: YtfVideo
    embeddings: np.ndarray  # (frames, d) of its person-of-interest track; may be empty
    qualities: np.ndarray
    frames: int  # frames read


def track_videos(videos: list[YtfVideo], pipeline: Pipeline, occlude_frames: int = 0,
                 seed: int = 0) -> list[TrackedVideo]:
    """Track every video's faces; keep the person-of-interest track's frames."""
    out = []
    sampling = Sampling(fps=0, every=1, max_frames=10_000)
    for n, video in enumerate(videos):
        rng = np.random.default_rng([seed, n])
        transform = (_occluder(pipeline, occlude_frames, len(folder_frames(video.path)), rng)
                     if occlude_frames else None)
        found = pipeline.track_video(video.path, sampling, transform=transform)
        main = main_track(found.tracks)
        if main is None:
            out.append(TrackedVideo(video, np.zeros((0, pipeline.dim), np.float32),
                                    np.zeros(0), found.frames))
            continue
        t = found.tracks[main]
        out.append(TrackedVideo(video, t.embeddings(), t.qualities(), found.frames))
    return out


def cached_tracks(videos: list[YtfVideo], pipeline: Pipeline, cache_dir: Path,
                  occlude_frames: int = 0) -> list[TrackedVideo]:
    """`track_videos`, kept in `cache_dir` per space, model files and occlusion, so the
    FAR and normalisation experiments reuse the tracking of `eval ytf`."""
    digest = (pipeline.space.digest or "none")[:16]
    path = cache_dir / f"ytf_tracks_{pipeline.key}_{digest}_o{occlude_frames}.npz"
    keys = [v.key for v in videos]
    if path.is_file():
        data = np.load(path)
        cached = [str(k) for k in data["keys"]]
        if set(keys) <= set(cached):
            at = {k: i for i, k in enumerate(cached)}
            ends = np.r_[data["starts"][1:], len(data["embeddings"])]
            return [TrackedVideo(v, data["embeddings"][data["starts"][at[v.key]]:ends[at[v.key]]],
                                 data["qualities"][data["starts"][at[v.key]]:ends[at[v.key]]],
                                 int(data["frames"][at[v.key]])) for v in videos]
    tracked = track_videos(videos, pipeline, occlude_frames=occlude_frames)
    cache_dir.mkdir(parents=True, exist_ok=True)
    sizes = [len(t.embeddings) for t in tracked]
    np.savez(path, keys=np.array(keys), starts=np.r_[0, np.cumsum(sizes)[:-1]].astype(int),
             embeddings=np.concatenate([t.embeddings for t in tracked]).astype(np.float32),
             qualities=np.concatenate([t.qualities for t in tracked]).astype(np.float32),
             frames=np.array([t.frames for t in tracked]))
    return tracked


def _occluder(pipeline: Pipeline, count: int, frames: int,
              rng: np.random.Generator) -> Callable[[np.ndarray, int], np.ndarray]:
    """Covers the largest face in `count` random frames of a `frames`-frame video."""
    chosen = set(rng.choice(frames, size=min(count, frames), replace=False).tolist())

    def transform(image: np.ndarray, position: int) -> np.ndarray:
        if position not in chosen:
            return image
        faces = pipeline.detect(image)
        if not faces:
            return image
        face = max(faces, key=lambda f: f.area)
        return occlude(image, face, KINDS[int(rng.integers(len(KINDS)))], rng)

    return transform


def descriptors(tracked: list[TrackedVideo], method: str, k: int = 3) -> list[np.ndarray]:
    agg = {"best_frame": "single"}.get(method, method)
    # A video with no face keeps its empty (0, d) array: it matches nothing.
    return [aggregate(t.embeddings, t.qualities, agg, k=k) if len(t.embeddings)
            else t.embeddings for t in tracked]


def set_scores(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) best-pair similarity between descriptor sets; -inf when empty."""
    scores = np.full((len(a), len(b)), -np.inf)
    a_rows = np.concatenate([x for x in a if len(x)]) if any(len(x) for x in a) else None
    b_rows = np.concatenate([x for x in b if len(x)]) if any(len(x) for x in b) else None
    if a_rows is None or b_rows is None:
        return scores
    sims = a_rows @ b_rows.T
    a_has = [i for i, x in enumerate(a) if len(x)]
    b_has = [j for j, x in enumerate(b) if len(x)]
    a_starts = np.cumsum([0] + [len(a[i]) for i in a_has[:-1]])
    b_starts = np.cumsum([0] + [len(b[j]) for j in b_has[:-1]])
    reduced = np.maximum.reduceat(np.maximum.reduceat(sims, a_starts, axis=0), b_starts, axis=1)
    scores[np.ix_(a_has, b_has)] = reduced
    return scores


def retrieval(scores: np.ndarray, names: np.ndarray, query_names: np.ndarray | None = None,
              exclude: np.ndarray | None = None) -> dict:
    """Rank-k and mAP of each query row over the gallery columns (`exclude`: per query,
    the column of its own video)."""
    query_names = names if query_names is None else query_names
    first, aps = [], []
    for i, row in enumerate(scores):
        row = row.copy()
        relevant = names == query_names[i]
        if exclude is not None:
            row[exclude[i]] = -np.inf
            relevant[exclude[i]] = False
        if not relevant.any():
            continue
        ranks = metrics.ranks_of_relevant(row, relevant)
        first.append(ranks[0])
        aps.append(metrics.average_precision(ranks))
    first_arr = np.array(first)
    return {"queries": len(first), "mAP": float(np.mean(aps)),
            **{f"rank{k}": float((first_arr <= k).mean()) for k in (1, 5)},
            "mAP_ci95": metrics.bootstrap_ci(aps),
            "rank1_ci95": metrics.bootstrap_ci(first_arr <= 1),
            "cmc": metrics.cmc(first_arr, 20).tolist()}


def verification(scores: np.ndarray, keys: list[str], splits: Path) -> dict:
    index = {k: i for i, k in enumerate(keys)}
    pairs = [p for p in read_ytf_splits(splits) if p.first in index and p.second in index]
    s = np.array([scores[index[p.first], index[p.second]] for p in pairs])
    s = np.where(np.isfinite(s), s, -1.0)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.split for p in pairs])
    acc = metrics.ten_fold_accuracy(s, same, folds)
    far, tar, _ = metrics.roc(s, same)
    return {"pairs": len(pairs), "same_pairs": int(same.sum()), "accuracy": acc["mean"],
            "accuracy_std": acc["std"], "auc": metrics.roc_auc(s, same),
            "_roc": (far, tar)}


def single_frame(tracked: list[TrackedVideo], names: np.ndarray) -> dict:
    """Each frame queries every frame of the other videos (video = its best frame)."""
    frames = [t.embeddings[[i]] for t in tracked for i in range(len(t.embeddings))]
    owner = np.array([v for v, t in enumerate(tracked) for _ in range(len(t.embeddings))])
    gallery = [t.embeddings for t in tracked]
    scores = set_scores(frames, gallery)
    return retrieval(scores, names, names[owner], exclude=owner)


def evaluate_methods(tracked: list[TrackedVideo], splits: Path | None, k: int = 3) -> dict:
    names = np.array([t.video.name for t in tracked])
    keys = [t.video.key for t in tracked]
    results: dict[str, dict] = {"single_frame": {"retrieval": single_frame(tracked, names)}}
    for method in METHODS[1:]:
        desc = descriptors(tracked, method, k)
        scores = set_scores(desc, desc)
        entry = {"retrieval": retrieval(scores, names, exclude=np.arange(len(names)))}
        if splits is not None and splits.is_file():
            entry["verification"] = verification(scores, keys, splits)
        results[method] = entry
    return results


def evaluate_ytf(root: Path, settings: Settings, out_dir: Path, people: int = 0,
                 occlude_frames: int = 0, command: str = "") -> dict:
    """Run every method on the YTF videos under `root`; write JSON, Markdown and plots.

    `people`: only the first N people (0: all), for quick runs.
    """
    started = time.monotonic()
    videos = ytf_videos(root)
    if people:
        keep = sorted({v.name for v in videos})[:people]
        videos = [v for v in videos if v.name in keep]
    pipeline = Pipeline(settings, threads=max(1, settings.workers))
    runs = {"clean": 0} | ({f"occluded_{occlude_frames}of5": occlude_frames}
                           if occlude_frames else {})
    result: dict = {"pipeline": pipeline.key, "licence": pipeline.space.licence,
                    "videos": len(videos),
                    "people": len({v.name for v in videos}), "runs": {}}
    for run, count in runs.items():
        tracked = cached_tracks(videos, pipeline, settings.home / "eval", occlude_frames=count)
        result["runs"][run] = {
            "frames": int(sum(t.frames for t in tracked)),
            "frames_with_poi": int(sum(len(t.embeddings) for t in tracked)),
            "videos_without_face": int(sum(len(t.embeddings) == 0 for t in tracked)),
            "methods": evaluate_methods(tracked, root / "splits.txt", settings.prototypes),
        }
    result["seconds"] = round(time.monotonic() - started, 1)
    result["command"] = command
    out_dir.mkdir(parents=True, exist_ok=True)
    from revsearch.eval import report

    report.ytf_plots(out_dir, result)
    clean = _public(result)
    provenance.write_json(out_dir / f"ytf_{pipeline.key}.json", clean,
                          runtime_name=settings.runtime)
    report.ytf_markdown(out_dir, clean)
    return clean


def _public(obj):
    """Drop the plot-only entries (keys starting with '_') for the JSON file."""
    if isinstance(obj, dict):
        return {k: _public(v) for k, v in obj.items() if not str(k).startswith("_")}
    return obj

