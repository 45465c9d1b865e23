"""`revsearch eval lfw`: the product's task (retrieval) and LFW's own (verification).

Gallery: every LFW image, indexed by the same ingest as a user's photos (so the numbers
describe the shipped path), every face kept. An image's score for a query is its best
face's score. LFW's labelled person is the face nearest the image centre (the face the
ingest labels); that face is the query and carries the label.

No face found: the image gets one stand-in face at LFW's canonical face position (the
mean landmarks of all detected labelled faces; deep-funnelled LFW is aligned, so this is
where the face is), embedded like any other, as gallery face and as query. The count is
reported. The baseline looks at whole images and never lacks one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from revsearch.api import open_collection
from revsearch.config import Settings
from revsearch.eval import metrics, provenance
from revsearch.eval.bench import machine
from revsearch.eval.datasets import read_pairs
from revsearch.faces.detect import Face
from revsearch.faces.pipeline import Pipeline
from revsearch.ingest import run_ingest
from revsearch.media import load_image
from revsearch.spaces import space_for
from revsearch.store import Store

log = logging.getLogger(__name__)


@dataclass
class Gallery:
    paths: list[str]  # one per image
    labels: np.ndarray  # person name per image
    face_vectors: np.ndarray  # (faces, d), grouped by image in `paths` order
    face_starts: np.ndarray  # index of each image's first face in face_vectors
    labelled_face: np.ndarray  # per image, the row of its labelled face in face_vectors
    fallback: np.ndarray  # bool per image: no face was found
    metric: str
    face_landmarks: np.ndarray | None = None  # (faces, 5, 2), the stored landmarks

    @cached_property
    def queries(self) -> np.ndarray:
        """(images, d): the labelled face of each image, the one it queries with."""
        return self.face_vectors[self.labelled_face]


def build_gallery(images_dir: Path, settings: Settings, db: str) -> Gallery:
    """Index `images_dir` into `db` (incremental), then read back faces and queries."""
    space = space_for(settings)
    pipeline: Pipeline | None = None  # loaded only if a fallback face must be embedded
    if space.dim is None:
        pipeline = Pipeline(settings, threads=max(1, settings.workers), space=space)
    store = Store(db)
    try:
        coll = open_collection(store, space, settings, dim=space.dim or pipeline.dim)
        report = run_ingest([images_dir], coll, settings, labels="auto", sync=True)
        if report.problems:
            log.warning("%d LFW files could not be indexed", len(report.problems))
        faces = list(coll.all_faces(with_embeddings=True))
        images = {r["path"]: r for r in coll.media()}
    finally:
        store.close()
    by_image: dict[str, list[dict]] = {}
    for f in faces:
        by_image.setdefault(f["path"], []).append(f)
    paths = sorted(images)
    labelled = [f for f in faces if f["label"]]
    canonical = (np.mean([np.asarray(f["landmarks"]).reshape(5, 2) for f in labelled], axis=0)
                 if labelled else None)
    vectors, starts, fallback, labelled_rows, marks = [], [], [], [], []
    for path in paths:
        rows = sorted(by_image.get(path, []), key=lambda r: r["face_index"])
        starts.append(len(vectors))
        if rows:
            vecs = [np.asarray(r["embedding"], np.float32) for r in rows]
            at = next((i for i, r in enumerate(rows) if r["label"]), 0)
            labelled_rows.append(len(vectors) + at)
            vectors.extend(vecs)
            marks.extend(np.asarray(r["landmarks"], np.float32).reshape(5, 2) for r in rows)
            fallback.append(False)
        else:
            pipeline = pipeline or Pipeline(settings, threads=max(1, settings.workers))
            labelled_rows.append(len(vectors))
            vectors.append(_fallback_vector(pipeline, Path(path), canonical))
            marks.append(np.asarray(canonical, np.float32))
            fallback.append(True)
    labels = np.array([Path(p).parent.name for p in paths])
    return Gallery(paths, labels, np.stack(vectors), np.array(starts),
                   np.array(labelled_rows), np.array(fallback), space.metric, np.stack(marks))


def _fallback_vector(pipeline: Pipeline, path: Path, landmarks: np.ndarray | None) -> np.ndarray:
    image = load_image(path)
    if landmarks is None:
        raise RuntimeError("no detected face anywhere to derive the canonical position from")
    xs, ys = landmarks[:, 0], landmarks[:, 1]
    w, h = (xs.max() - xs.min()) * 2.2, (ys.max() - ys.min()) * 2.2
    box = (float(xs.mean() - w / 2), float(ys.mean() - h / 2), float(w), float(h))
    face = Face(box, landmarks.astype(np.float32), 0.0)
    return pipeline.embedder.embed(image, [face])[0]


def retrieval(g: Gallery, chunk: int = 256, max_rank: int = 100,
              keep_top: int = 5) -> dict:
    """Every image of a person with 2+ images queries the whole gallery (itself excluded)."""
    names, counts = np.unique(g.labels, return_counts=True)
    multi = set(names[counts >= 2])
    query_idx = np.array([i for i, name in enumerate(g.labels) if name in multi])
    aps, first, p10, tops = [], [], [], {}
    for start in range(0, len(query_idx), chunk):
        idx = query_idx[start:start + chunk]
        face_scores = metrics.similarity(g.queries[idx], g.face_vectors, g.metric)
        image_scores = np.maximum.reduceat(face_scores, g.face_starts, axis=1)
        image_scores[np.arange(len(idx)), idx] = -np.inf  # the query image itself
        for row, qi in zip(image_scores, idx, strict=True):
            relevant = g.labels == g.labels[qi]
            relevant[qi] = False
            ranks = metrics.ranks_of_relevant(row, relevant)
            aps.append(metrics.average_precision(ranks))
            first.append(ranks[0])
            p10.append(metrics.precision_at(ranks, 10))
            tops[int(qi)] = np.argsort(-row, kind="stable")[:keep_top]
    first_arr = np.array(first)
    curve = metrics.cmc(first_arr, max_rank)
    misses = query_idx[first_arr > 1]
    return {
        "queries": len(query_idx), "gallery_images": len(g.paths),
        "gallery_faces": len(g.face_vectors), "mAP": float(np.mean(aps)),
        **{f"rank{k}": float((first_arr <= k).mean()) for k in (1, 5, 10)},
        "mAP_ci95": metrics.bootstrap_ci(aps), "rank1_ci95": metrics.bootstrap_ci(first_arr <= 1),
        "precision_at_10": float(np.mean(p10)), "cmc": curve.tolist(),
        "rank1_misses": len(misses),
        "rank1_misses_on_unlabelled_face": _misses_on_unlabelled_face(g, misses, tops),
        "_first": first_arr, "_query_idx": query_idx, "_tops": tops,
    }


def _misses_on_unlabelled_face(g: Gallery, misses: np.ndarray, tops: dict) -> int:
    """Rank-1 misses whose top image won through a face that is *not* its labelled one.

    LFW labels one person per image; someone else in the picture is unlabelled. When a
    query's best match is such a face, the query's person may well be in that photo
    (inspection finds most are), but the protocol counts a miss. Reported, not excused.
    """
    ends = np.r_[g.face_starts[1:], len(g.face_vectors)]
    count = 0
    for q in misses:
        top = int(tops[int(q)][0])
        rows = np.arange(g.face_starts[top], ends[top])
        scores = metrics.similarity(g.queries[q:q + 1], g.face_vectors[rows], g.metric)
        best = rows[int(np.argmax(scores))]
        count += int(best != g.labelled_face[top])
    return count


def verification(g: Gallery, pairs_file: Path) -> dict:
    """The 10-fold protocol on pairs.txt, on the labelled face of each image."""
    index = {p: i for i, p in enumerate(g.paths)}
    root = Path(g.paths[0]).parent.parent
    scores, same, folds = [], [], []
    for f, fold in enumerate(read_pairs(pairs_file)):
        for p in fold:
            a = index[str(root / p.name1 / f"{p.name1}_{p.num1:04d}.jpg")]
            b = index[str(root / p.name2 / f"{p.name2}_{p.num2:04d}.jpg")]
            pair = metrics.similarity(g.queries[a:a + 1], g.queries[b:b + 1], g.metric)
            scores.append(float(pair[0, 0]))
            same.append(p.same)
            folds.append(f)
    scores_a, same_a = np.array(scores), np.array(same)
    acc = metrics.ten_fold_accuracy(scores_a, same_a, np.array(folds))
    far, tar, _ = metrics.roc(scores_a, same_a)
    return {
        "pairs": len(scores), "accuracy": acc["mean"], "accuracy_std": acc["std"],
        "fold_accuracies": acc["folds"], "auc": metrics.roc_auc(scores_a, same_a),
        "tar_at_far_1e-3": metrics.tar_at_far(scores_a, same_a, 1e-3)["tar"],
        "roc": _roc_points(far, tar),
        "_scores": scores_a, "_same": same_a, "_roc": (far, tar),
    }


def _roc_points(far: np.ndarray, tar: np.ndarray, points: int = 200) -> dict:
    """The ROC curve thinned to about `points` points on a log FAR axis (for plots that
    compare pipelines from their results files)."""
    grid = np.unique(np.r_[0.0, np.geomspace(1e-4, 1.0, points)])
    idx = np.clip(np.searchsorted(far, grid, side="right") - 1, 0, len(far) - 1)
    return {"far": far[idx].round(6).tolist(), "tar": tar[idx].round(6).tolist()}


def evaluate_lfw(lfw_root: Path, settings: Settings, out_dir: Path, db: str) -> dict:
    """Run retrieval and verification for one pipeline; write JSON, Markdown, plots."""
    started = time.monotonic()
    g = build_gallery(lfw_root / "lfw-deepfunneled", settings, db)
    ret = retrieval(g)
    ver = verification(g, lfw_root / "pairs.txt")
    result = {
        "pipeline": space_for(settings).key, "licence": space_for(settings).licence,
        "metric": g.metric,
        "images": len(g.paths), "no_face_images": int(g.fallback.sum()),
        "retrieval": {k: v for k, v in ret.items() if not k.startswith("_")},
        "verification": {k: v for k, v in ver.items() if not k.startswith("_")},
        "seconds": round(time.monotonic() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance.write_json(out_dir / f"lfw_{space_for(settings).key}.json", result,
                          runtime_name=settings.runtime)
    from revsearch.eval import report

    report.lfw_plots(out_dir, space_for(settings).key, g, ret, ver)
    report.lfw_markdown(out_dir, [result])
    return result


def evaluate_occlusion(lfw_root: Path, settings: Settings, out_dir: Path, db: str,
                       queries: int = 1000, seed: int = 0, command: str = "") -> dict:
    """Occluded LFW queries against the clean LFW gallery (see `occlusion.py`), before
    and after occlusion handling (revsearch.faces.occlusion).

    The same `queries` labelled images (people with 2+ images, drawn with `seed`) are
    searched clean and with each occluder over their labelled face. The occluded image
    goes through the whole query path again (detection included); a query whose face is
    no longer found counts as a miss and is reported as lost. "Before" is the plain
    path (the index's detector, the plain vector); "after" is the product's query path
    with occlusion handling: the query-only detector fallback, the occlusion detector,
    and the best `rerank` images compared again on the visible part (their faces cut
    again from the files with the stored landmarks, as a search does). The detector's
    confusion table counts its verdict (none, eyes, lower, other) per occluder.
    """
    from revsearch.eval.occlusion import KINDS, occlude
    from revsearch.faces.occlusion import REGIONS, create_matcher

    g = build_gallery(lfw_root / "lfw-deepfunneled", settings, db)
    on = replace(settings, occlusion=True)
    pipeline = Pipeline(on, threads=max(1, settings.workers))
    matcher = create_matcher(pipeline.embedder)
    names, counts = np.unique(g.labels, return_counts=True)
    multi = set(names[counts >= 2])
    pool = [i for i, name in enumerate(g.labels) if name in multi]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(pool, size=min(queries, len(pool)), replace=False).tolist())
    runs: dict[str, dict] = {}
    confusion = {kind: dict.fromkeys(("lost", *REGIONS), 0) for kind in ("clean", *KINDS)}
    crops = _GalleryCrops(g)
    started = time.monotonic()
    for kind in ("clean", *KINDS):
        before, after = _Tally(), _Tally()
        for q in chosen:
            relevant = g.labels == g.labels[q]
            relevant[q] = False
            image = load_image(g.paths[q])
            shown, target = _occluded(pipeline, image, kind, occlude, rng)
            if shown is None:  # no face even before occluding
                before.lost_query()
                after.lost_query()
                confusion[kind]["lost"] += 1
                continue
            plain = _found(pipeline.detect(shown), target)
            scored = _image_scores(g, pipeline, shown, plain, q)
            before.add(None if scored is None else scored[0], relevant)
            face = plain or _found(pipeline.detect_query(shown), target)
            if face is None:
                after.lost_query()
                confusion[kind]["lost"] += 1
                continue
            occ = matcher.inspect(shown, face.landmarks) if matcher else None
            confusion[kind][occ.region if occ else "none"] += 1
            scored = _image_scores(g, pipeline, shown, face, q)
            scores = scored[0]
            if occ is not None and occ.covered:
                scores = _rerank(g, matcher, crops, shown, face, occ, scored)
            after.add(scores, relevant)
        runs[kind] = {"queries": len(chosen), "before": before.summary(),
                      "after": after.summary()}
    result = {"pipeline": space_for(settings).key, "licence": space_for(settings).licence,
              "gallery_images": len(g.paths),
              "seed": seed, "runs": runs, "detector_confusion": confusion,
              "occlusion_settings": asdict(matcher.settings) if matcher else None,
              "seconds": round(time.monotonic() - started, 1), "command": command,
              "date": time.strftime("%Y-%m-%d"), "git_commit": provenance.git_commit(),
              "machine": machine()}
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance.write_json(out_dir / f"occlusion_lfw_{space_for(settings).key}.json", result,
                          command=command or None, runtime_name=settings.runtime)
    from revsearch.eval import report

    report.occlusion_markdown(out_dir, result)
    report.occlusion_plot(out_dir, result)
    report.occlusion_examples(out_dir / "occlusion_examples.png", g.paths[chosen[0]],
                              pipeline, np.random.default_rng(seed))
    return result


class _Tally:
    """First relevant ranks and average precisions of a run's queries."""

    def __init__(self) -> None:
        self.first: list[float] = []
        self.aps: list[float] = []
        self.lost = 0

    def lost_query(self) -> None:
        self.lost += 1
        self.first.append(np.inf)
        self.aps.append(0.0)

    def add(self, scores: np.ndarray | None, relevant: np.ndarray) -> None:
        if scores is None:
            self.lost_query()
            return
        ranks = metrics.ranks_of_relevant(scores, relevant)
        self.first.append(ranks[0])
        self.aps.append(metrics.average_precision(ranks))

    def summary(self) -> dict:
        first = np.array(self.first)
        return {"lost": self.lost, "mAP": float(np.mean(self.aps)),
                "rank1": float((first <= 1).mean()), "rank5": float((first <= 5).mean()),
                "rank1_ci95": metrics.bootstrap_ci(first <= 1)}


class _GalleryCrops:
    """Aligned crops of gallery faces, cut from their files with the stored landmarks
    (as a search does for its candidates; not cached, as a search does not)."""

    def __init__(self, g: Gallery) -> None:
        self.g = g
        self.owner = np.repeat(np.arange(len(g.paths)),
                               np.diff(np.r_[g.face_starts, len(g.face_vectors)]))

    def __call__(self, rows: list[int]) -> np.ndarray:
        from revsearch.faces.align import align_face
        from revsearch.faces.occlusion import CROP

        return np.stack([align_face(load_image(self.g.paths[self.owner[r]]),
                                    self.g.face_landmarks[r], CROP) for r in rows])


def _occluded(pipeline: Pipeline, image: np.ndarray, kind: str, occlude,
              rng: np.random.Generator) -> tuple[np.ndarray | None, Face | None]:
    """The image with its labelled (central) face occluded, and that face as it was."""
    from revsearch.faces.pipeline import central_face

    faces = pipeline.detect(image)
    if not faces:
        return None, None
    target = faces[central_face(faces, image.shape)]
    return (image if kind == "clean" else occlude(image, target, kind, rng)), target


def _found(faces: list[Face], target: Face) -> Face | None:
    """The detected face nearest the occluded one, if within half its width of it."""
    if not faces:
        return None
    cx, cy = target.center
    near = min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)
    if (near.center[0] - cx) ** 2 + (near.center[1] - cy) ** 2 > (target.box[2] / 2) ** 2:
        return None  # only some other face is left
    return near


def _image_scores(g: Gallery, pipeline: Pipeline, image: np.ndarray, face: Face | None,
                  q: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per gallery image, its best face's similarity to this query face (q excluded),
    and per gallery face, its similarity."""
    if face is None:
        return None
    vector = pipeline.embedder.embed(image, [face])[0]
    face_scores = metrics.similarity(vector[None], g.face_vectors, g.metric)[0]
    scores = np.maximum.reduceat(face_scores, g.face_starts)
    scores[q] = -np.inf
    return scores, face_scores


def _rerank(g: Gallery, matcher, crops: _GalleryCrops, image: np.ndarray, face: Face,
            occ, scored: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Image scores with the best `rerank` images re-scored on the visible part (each
    through its best face, as a search hit is), ranked above the rest as the search's
    re-ranked head is."""
    scores, face_scores = scored
    top = np.argsort(-scores, kind="stable")[:matcher.settings.rerank]
    ends = np.r_[g.face_starts[1:], len(g.face_vectors)]
    rows = [int(g.face_starts[t] + np.argmax(face_scores[g.face_starts[t]:ends[t]]))
            for t in top]
    new = matcher.rescore(image, face.landmarks, occ, crops(rows), scores[top])
    out = scores.copy()
    out[top] = 10.0 + new  # the head stays above every image not looked at again
    return out
