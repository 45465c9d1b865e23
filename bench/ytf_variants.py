"""What we tried to lift YouTube Faces rank-1 past the `mean` aggregation, measured.

    .venv/bin/python bench/ytf_variants.py [--ytf DIR] [--lfw DIR] [--people N]

Every YTF video is tracked exactly as `revsearch eval ytf` does (same pipeline, same
person-of-interest track, `mean` descriptor) three times: as shipped, with flip
test-time augmentation, and with jitter (below). Each variant then re-scores those
descriptors and reports rank-1, misses and mAP, every video querying all the others:

- `mean`: the shipped aggregation, as in `docs/results/ytf_sface.md`.
- `csls kN`: hubness correction (Conneau et al. 2018): 2 s(q, v) - r(q) - r(v), where
  r(x) is x's mean similarity to its N nearest other videos.
- `centred`: the collection's mean descriptor subtracted, then re-normalised.
- `wccn aA`: within-class covariance normalisation learned on labelled LFW faces of
  people *not* in the YTF set (x -> (S_w + A * mean eigenvalue * I)^(-1/2) x).
- `csls, k chosen on LFW`: CSLS with the k (or none, k=0) that gives the best LFW
  retrieval rank-1 (every photo of a person with 2+ photos queries all 13,233), so k is
  not picked on YTF.
- `lfw cohort kN`: CSLS with r(x) measured against a fixed cohort (LFW faces of people
  not in the YTF set) instead of the collection: does not depend on what is indexed.
- `jitter`: test-time augmentation on the alignment: each face embedded in 9 warps
  (as aligned; scale 0.93 and 1.07; rotated -6 and +6 degrees; shifted 3 px left, right,
  up, down), each also mirrored, the 18 unit vectors averaged (dlib's `num_jitters`
  idea, deterministic). 18x the embedding cost.

These variants are not in the product; they are kept runnable because the docs quote
them (docs/experiments.md, "Video retrieval on YouTube Faces"). Settings are a grid,
not tuned: the set has no development split, so a best cell is not a result to claim.
Writes ytf_variants.json and .md under --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from revsearch.config import load_settings
from revsearch.eval import lfw as evaluate
from revsearch.eval import ytf as evaluate_video
from revsearch.eval.bench import save_report
from revsearch.eval.datasets import YtfVideo, ytf_videos
from revsearch.faces.align import ARCFACE_TEMPLATE_112, similarity_transform
from revsearch.faces.pipeline import Pipeline
from revsearch.spaces import space_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
CSLS_KS = (0, 5, 10, 20, 50, 100)  # 0: plain cosine, no CSLS
DATA = ROOT.parent / "shared" / "data"


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# (scale, degrees, dx, dy) of each jitter warp, applied after alignment.
JITTERS = ((1.0, 0, 0, 0), (0.93, 0, 0, 0), (1.07, 0, 0, 0), (1.0, -6, 0, 0), (1.0, 6, 0, 0),
           (1.0, 0, -3, 0), (1.0, 0, 3, 0), (1.0, 0, 0, -3), (1.0, 0, 0, 3))


def _warp(centre: tuple[float, float], scale: float, degrees: float, dx: float,
          dy: float) -> np.ndarray:
    """3x3 matrix: rotate and scale about `centre`, then shift by (dx, dy)."""
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D(centre, degrees, scale)
    m[:2, 2] += (dx, dy)
    return m


class JitterEmbedder:
    """Wraps an aligned ONNX embedder: the mean of its vectors over JITTERS x mirror."""

    def __init__(self, base) -> None:
        self.base, self.dim, self.name = base, base.dim, f"{base.name}_jitter"
        size = base.size
        centre = (size / 2, size / 2)
        self._template = ARCFACE_TEMPLATE_112 * (size / 112)
        self._warps = [_warp(centre, *jitter) for jitter in JITTERS]

    def embed(self, image: np.ndarray, faces) -> np.ndarray:
        size = self.base.size
        out = np.zeros((len(faces), self.dim), np.float32)
        for i, face in enumerate(faces):
            align = np.vstack([similarity_transform(face.landmarks.reshape(5, 2),
                                                    self._template), [0, 0, 1]])
            crops = np.stack([cv2.warpAffine(image, (w @ align)[:2], (size, size),
                                             flags=cv2.INTER_LINEAR) for w in self._warps])
            crops = np.concatenate([crops, np.ascontiguousarray(crops[:, :, ::-1])])
            out[i] = unit(self.base.embed_aligned(crops)).sum(axis=0)
        return unit(out).astype(np.float32)


def mean_descriptors(ytf: Path, people: int, flip: bool,
                     jitter: bool = False) -> tuple[np.ndarray, list[YtfVideo]]:
    """(videos, d) `mean` descriptors (zero row: no face) and the videos, in that order."""
    settings = load_settings(progress=False, flip=flip and not jitter)
    videos = ytf_videos(ytf)
    if people:
        keep = sorted({v.name for v in videos})[:people]
        videos = [v for v in videos if v.name in keep]
    pipeline = Pipeline(settings, threads=max(1, settings.workers))
    if jitter:
        pipeline.embedder = JitterEmbedder(pipeline.embedder)
    tracked = evaluate_video.track_videos(videos, pipeline)
    desc = evaluate_video.descriptors(tracked, "mean")
    dim = pipeline.dim
    rows = np.stack([d[0] if len(d) else np.zeros(dim, np.float32) for d in desc])
    return rows.astype(np.float64), [t.video for t in tracked]


def score(sims: np.ndarray, names: np.ndarray) -> dict:
    """Rank-1, misses and mAP with each video querying the others."""
    result = evaluate_video.retrieval(sims, names, exclude=np.arange(len(names)))
    return {"rank1": round(result["rank1"] * 100, 2),
            "misses": round((1 - result["rank1"]) * result["queries"]),
            "mAP": round(result["mAP"], 4), "queries": result["queries"]}


def neighbour_means(sims: np.ndarray, k: int) -> np.ndarray:
    """r(x): each row's mean of its k highest entries (k capped by the row length)."""
    k = min(k, sims.shape[1])  # a tiny collection has fewer neighbours than k
    return np.sort(sims, axis=1)[:, -k:].mean(axis=1)


def csls(sims: np.ndarray, k: int) -> np.ndarray:
    s = sims.copy()
    np.fill_diagonal(s, -np.inf)
    r = neighbour_means(s, min(k, len(s) - 1))
    return 2 * sims - r[:, None] - r[None, :]


def cohort_csls(desc: np.ndarray, cohort: np.ndarray, k: int) -> np.ndarray:
    """CSLS with r(x) taken against a fixed cohort, not the collection itself."""
    x = unit(desc)
    r = neighbour_means(x @ cohort.T, k)
    return 2 * (x @ x.T) - r[:, None] - r[None, :]


def lfw_faces(lfw: Path, settings_kw: dict, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """One unit vector per LFW photo (its labelled face) and the photo's person."""
    settings = load_settings(progress=False, **settings_kw)
    default = (DATA / "lfw" / "lfw-deepfunneled").resolve()
    db = (settings.home / "eval" / f"lfw_{space_for(settings).key}.db"
          if lfw.resolve() == default else work / f"lfw_{space_for(settings).key}.db")
    gallery = evaluate.build_gallery(lfw, settings, str(db))
    return unit(gallery.queries.astype(np.float64)), np.asarray(gallery.labels)


def csls_k_on_lfw(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    """LFW retrieval rank-1 (%) under CSLS at each k: photos of people with 2+ photos
    query all photos, themselves excluded. Chunked: 13k x 13k floats would be 1.4 GB."""
    names, counts = np.unique(labels, return_counts=True)
    multi = np.isin(labels, names[counts >= 2])
    r = {k: np.zeros(len(x)) for k in ks}
    for start in range(0, len(x), 2048):
        block = x[start:start + 2048] @ x.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        for k in ks:
            if k:
                r[k][start:start + len(block)] = neighbour_means(block, min(k, len(x) - 1))
    hits = {k: 0 for k in ks}
    queries = np.flatnonzero(multi)
    for start in range(0, len(queries), 2048):
        rows = queries[start:start + 2048]
        block = x[rows] @ x.T
        block[np.arange(len(rows)), rows] = -np.inf
        for k in ks:
            scores = 2 * block - r[k][rows, None] - r[k][None, :] if k else block
            top = np.argmax(scores, axis=1)
            hits[k] += int((labels[top] == labels[rows]).sum())
    return {k: round(100 * hits[k] / max(1, len(queries)), 2) for k in ks}


def wccn(x: np.ndarray, labels: np.ndarray, exclude: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of LFW's within-person covariance (people in
    `exclude` left out, as are people with one photo)."""
    names, counts = np.unique(labels, return_counts=True)
    keep = {n for n, c in zip(names, counts, strict=True) if c >= 2 and n not in exclude}
    sw = np.zeros((x.shape[1], x.shape[1]))
    n = 0
    for name in keep:
        z = x[labels == name]
        z = z - z.mean(axis=0)
        sw += z.T @ z
        n += len(z)
    if not n:
        raise SystemExit("no LFW person with 2+ photos outside the YTF set")
    return np.linalg.eigh(sw / n)


def variants(desc: np.ndarray, names: np.ndarray, eig, prefix: str, lfw_k: int,
             cohort: np.ndarray) -> dict:
    sims = unit(desc) @ unit(desc).T
    out = {f"{prefix}mean": score(sims, names)}
    for k in (5, 10, 20):
        out[f"{prefix}csls k{k}"] = score(csls(sims, k), names)
    chosen = csls(sims, lfw_k) if lfw_k else sims
    out[f"{prefix}csls, k chosen on LFW (k={lfw_k})"] = score(chosen, names)
    for k in (10, 50):
        out[f"{prefix}lfw cohort k{k}"] = score(cohort_csls(desc, cohort, k), names)
    if not prefix:
        centred = unit(desc - desc.mean(axis=0))
        out["centred"] = score(centred @ centred.T, names)
        w, v = eig
        for a in (0.25, 1.0, 4.0):
            t = unit(unit(desc) @ (v @ np.diag(1 / np.sqrt(w + a * w.mean())) @ v.T))
            out[f"wccn a{a}"] = score(t @ t.T, names)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ytf", default=str(DATA / "ytf"))
    ap.add_argument("--lfw", default=str(DATA / "lfw" / "lfw-deepfunneled"))
    ap.add_argument("--people", type=int, default=0, help="first N YTF people (0: all)")
    ap.add_argument("--out", default=str(RESULTS),
                    help="folder for the JSON and Markdown results (default docs/results)")
    args = ap.parse_args()
    rows, lfw_ks, lfw = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        names = None
        for prefix, flip, jitter in (("", False, False), ("flip + ", True, False),
                                     ("jitter + ", False, True)):
            desc, videos = mean_descriptors(Path(args.ytf), args.people, flip, jitter)
            seen = np.array([v.name for v in videos])
            if names is not None and not (seen == names).all():
                raise SystemExit("the runs tracked different videos")
            names = seen
            # Jitter is not run over 13k LFW photos: it borrows the plain embedding's k.
            if flip not in lfw:
                lfw[flip] = lfw_faces(Path(args.lfw), {"flip": flip}, Path(tmp))
            x, labels = lfw[flip]
            if not jitter:
                by_k = csls_k_on_lfw(x, labels, CSLS_KS)
                best = max(CSLS_KS, key=lambda k: (by_k[k], -k))  # a tie: the smaller k
                lfw_ks[prefix.strip(" +") or "plain"] = {"lfw_rank1_by_k": by_k, "chosen": best}
            eig = wccn(x, labels, set(names))
            rows |= variants(desc, names, eig, prefix, best, x[~np.isin(labels, names)])
    queries = rows["mean"]["queries"]
    allowed = int(np.floor(queries * 0.03))
    result = {"videos": len(names), "people": len(set(names)), "queries": queries,
              "misses_allowed_at_97": allowed, "variants": rows, "csls_k_on_lfw": lfw_ks,
              "command": "python bench/ytf_variants.py " + " ".join(sys.argv[1:])}
    lines = ["# YouTube Faces: variants tried on the `mean` descriptors", "",
             f"Command: `{result['command'].strip()}`", "",
             f"{len(names)} videos of {len(set(names))} people; each queries all the others. "
             f"Rank-1 >= 97% allows at most {allowed} misses. A grid, not tuned: none of "
             "these is in the product (see bench/ytf_variants.py).", "",
             "| variant | rank-1 % | misses | mAP |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['rank1']} | {r['misses']} | {r['mAP']} |"
              for name, r in rows.items()]
    lines += ["", "CSLS's k chosen on LFW (retrieval rank-1 %, every photo of a person with "
              "2+ photos querying all the others; k=0 is plain cosine):", "",
              "| embedding | " + " | ".join(f"k={k}" for k in CSLS_KS) + " | chosen |",
              "|---" * (len(CSLS_KS) + 2) + "|"]
    lines += [f"| {name} | " + " | ".join(str(v["lfw_rank1_by_k"][k]) for k in CSLS_KS)
              + f" | {v['chosen']} |" for name, v in lfw_ks.items()]
    print(save_report(Path(args.out), "ytf_variants", result, lines), end="")


if __name__ == "__main__":
    main()
