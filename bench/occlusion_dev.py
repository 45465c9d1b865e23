"""Choose the occlusion detector's and matcher's parameters on LFW DevTrain people.

    python bench/occlusion_dev.py --queries 200 --clean 2000 --out docs/results

Queries are drawn from the people of pairsDevTrain.txt with 2+ images (the eval
protocol's 1,000 queries report the result); the gallery is the whole LFW index that
`revsearch eval occlusion` builds in $REVSEARCH_HOME/eval. Stage 1 sweeps the flat-cell
threshold and the group size (false flags on clean faces, catch rate per occluder);
stage 2 sweeps the mask growth, the number of candidates embedded again and the score
weight (rank-1 per occluder).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from revsearch.config import load_settings
from revsearch.eval import metrics
from revsearch.eval.bench import machine, save_report
from revsearch.eval.datasets import default_lfw_root, read_pairs
from revsearch.eval.lfw import build_gallery
from revsearch.eval.occlusion import KINDS, occlude
from revsearch.faces.align import align_face
from revsearch.faces.detect import create_detector
from revsearch.faces.occlusion import (
    CROP,
    OcclusionDetector,
    OcclusionSettings,
    _inside_image,
    cover,
)
from revsearch.faces.pipeline import Pipeline, central_face
from revsearch.media import load_image

TOP = 50


def dev_people(lfw: Path) -> set[str]:
    return {n for fold in read_pairs(lfw / "pairsDevTrain.txt") for p in fold
            for n in (p.name1, p.name2)}


def target_after(pipeline, fallback, image, target):
    """The occluded face as the query path finds it: default detector, then fallback."""
    for det in (pipeline.detector, fallback):
        faces = det.detect(image)
        if not faces:
            continue
        cx, cy = target.center
        near = min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)
        if (near.center[0] - cx) ** 2 + (near.center[1] - cy) ** 2 <= (target.box[2] / 2) ** 2:
            return near, det is fallback
    return None, False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--clean", type=int, default=2000)
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reranks", default="10,15,20,30,50",
                    help="numbers of hits re-ranked on the visible part (stage 2)")
    ap.add_argument("--weights", default="1.0,0.7,0.5",
                    help="weights of the visible-part score (stage 2)")
    ap.add_argument("--precisions", default=OcclusionSettings().precision,
                    help="the re-ranking embedder's precisions to compare (f32, bf16)")
    ap.add_argument("--lfw", default="", help="LFW root with lfw-deepfunneled/ and "
                    "pairsDevTrain.txt (default: ../shared/data/lfw)")
    ap.add_argument("--render", default="", help="only write the Markdown of this JSON")
    args = ap.parse_args()
    if args.render:  # the Markdown again from a results file (its JSON left as it is)
        lines = report_lines(json.loads(Path(args.render).read_text()))
        (Path(args.out) / "occlusion_dev_sface.md").write_text("\n".join(lines) + "\n")
        return
    started = time.time()
    settings = load_settings()
    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    db = str(settings.home / "eval" / f"lfw_{'sface'}.db")
    g = build_gallery(lfw / "lfw-deepfunneled", settings, db)
    pipeline = Pipeline(settings, threads=1)
    # The re-ranking's own embedders, as VisibleMatcher builds them.
    precisions = args.precisions.split(",")
    rerank_embedders = {p: pipeline.embedder.with_precision(p) for p in precisions}
    fallback = create_detector("yunet", score_threshold=0.3, max_side=settings.det_max_side)
    people = dev_people(lfw)
    names, counts = np.unique(g.labels, return_counts=True)
    multi = set(names[counts >= 2])
    dev = [i for i, n in enumerate(g.labels) if n in people and n in multi]
    rng = np.random.default_rng(args.seed)
    queries = sorted(rng.choice(dev, size=min(args.queries, len(dev)), replace=False).tolist())
    clean_pool = [i for i, n in enumerate(g.labels) if n in people]
    clean_ids = sorted(rng.choice(clean_pool, size=min(args.clean, len(clean_pool)),
                                  replace=False).tolist())
    base = OcclusionDetector(OcclusionSettings())
    face_of_image = np.r_[g.face_starts[1:], len(g.face_vectors)]

    # -- stage 1: cell statistics of clean and covered query crops --------------------
    def cells_of(image, face):
        crop = align_face(image, face.landmarks, CROP)
        return (base.cell_std(crop), _inside_image(image.shape, face.landmarks, base.cells),
                crop)

    clean_stats = []
    for i in clean_ids:
        image = load_image(g.paths[i])
        faces = pipeline.detect(image)
        if faces:
            f = faces[central_face(faces, image.shape)]
            clean_stats.append(cells_of(image, f)[:2])
    records = {k: [] for k in ("clean", *KINDS)}
    crop_cache: dict[int, np.ndarray] = {}

    def gallery_crop(img: int, row: int) -> np.ndarray:
        if row not in crop_cache:
            crop_cache[row] = align_face(load_image(g.paths[img]), g.face_landmarks[row], CROP)
        return crop_cache[row]

    for q in queries:
        image = load_image(g.paths[q])
        faces = pipeline.detect(image)
        if not faces:
            for k in records:
                records[k].append(None)
            continue
        target = faces[central_face(faces, image.shape)]
        relevant = g.labels == g.labels[q]
        relevant[q] = False
        for kind in ("clean", *KINDS):
            shown, face, used_fallback = image, target, False
            if kind != "clean":
                shown = occlude(image, target, kind, rng)
                face, used_fallback = target_after(pipeline, fallback, shown, target)
            if face is None:
                records[kind].append({"lost": True})
                continue
            std, inside, crop = cells_of(shown, face)
            vec = pipeline.embedder.embed(shown, [face])[0]
            fs = metrics.similarity(vec[None], g.face_vectors, g.metric)[0]
            scores = np.maximum.reduceat(fs, g.face_starts)
            scores[q] = -np.inf
            top = np.argsort(-scores, kind="stable")[:TOP]
            rows = [int(g.face_starts[t] + np.argmax(fs[g.face_starts[t]:face_of_image[t]]))
                    for t in top]
            records[kind].append({
                "lost": False, "fallback": used_fallback, "std": std, "inside": inside,
                "crop": crop, "scores": scores, "top": top, "rows": rows,
                "relevant": relevant, "lm_shift": float(np.abs(face.landmarks -
                                                              target.landmarks).max()
                                                       / target.box[2])})

    def flagged(std, inside, s: OcclusionSettings):
        det = OcclusionDetector(s)
        flat = (std < s.flat_std) & inside & det._face
        n, labels, st, _ = cv2.connectedComponentsWithStats(flat.astype(np.uint8),
                                                              connectivity=4)
        if n <= 1:
            return "none", None
        best = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
        if st[best, cv2.CC_STAT_AREA] < s.min_cells:
            return "none", None
        group = labels == best
        return det._region(group), det._pixel_mask(group)

    stage1 = []
    for flat_std, min_cells in itertools.product((1.0, 1.5, 2.0, 3.0), (24, 32, 40, 48, 64, 80)):
        s = replace(OcclusionSettings(), flat_std=flat_std, min_cells=min_cells)
        row = {"flat_std": flat_std, "min_cells": min_cells,
               "clean_flagged": float(np.mean([flagged(st, ins, s)[0] != "none"
                                               for st, ins in clean_stats]))}
        for kind in KINDS:
            found = [flagged(r["std"], r["inside"], s)[0] for r in records[kind]
                     if r and not r["lost"]]
            row[f"{kind}_caught"] = float(np.mean([f != "none" for f in found]))
            row[f"{kind}_regions"] = {reg: found.count(reg) for reg in
                                      ("none", "eyes", "lower", "other")}
        stage1.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("regions")}))
    ok = [r for r in stage1 if r["clean_flagged"] <= 0.01] or \
        [min(stage1, key=lambda r: r["clean_flagged"])]
    chosen1 = max(ok, key=lambda r: (min(r[f"{k}_caught"] for k in KINDS),
                                     -r["clean_flagged"]))
    print("chosen detector", chosen1)

    # -- stage 2: matching on what is visible ---------------------------------------
    def rank1(kind, s: OcclusionSettings | None, n: int, weight: float) -> float:
        firsts, above = [], [0, 0, 0]  # impostors over the threshold: plain, new, seen
        for r in records[kind]:
            if r is None or r["lost"]:
                firsts.append(np.inf)
                continue
            scores = r["scores"].copy()
            _, mask = ("none", None) if s is None else flagged(r["std"], r["inside"], s)
            if mask is not None:
                top = r["top"][:n]
                key = (kind, id(r), s.grow, s.precision)
                if key not in masked_cache:
                    crops = np.stack([gallery_crop(int(t), row) for t, row in
                                      zip(r["top"], r["rows"], strict=True)])
                    embedder = rerank_embedders[s.precision]
                    qv = embedder.embed_aligned(cover(r["crop"][None], mask))[0]
                    gv = embedder.embed_aligned(cover(crops, mask))
                    masked_cache[key] = gv @ qv
                new = masked_cache[key][:n]
                impostor = ~r["relevant"][top]
                above[0] += int((scores[top][impostor] >= threshold).sum())
                above[1] += int(((weight * new + (1 - weight) * scores[top])[impostor]
                                 >= threshold).sum())
                above[2] += int(impostor.sum())
                order = np.argsort(-(weight * new + (1 - weight) * scores[top]), kind="stable")
                head = top[order]
                rest = np.setdiff1d(np.argsort(-scores, kind="stable"), head,
                                    assume_unique=True)
                ranking = np.r_[head, rest]
            else:
                ranking = np.argsort(-scores, kind="stable")
            firsts.append(int(np.flatnonzero(r["relevant"][ranking])[0]) + 1)
        impostors[(kind, n, weight, None if s is None else (s.grow, s.precision))] = above
        return float((np.array(firsts) <= 1).mean())

    masked_cache: dict = {}
    impostors: dict = {}
    cal = pipeline.space.calibration(settings.home)
    threshold = cal.point(1e-3).threshold if cal else 0.358
    stage2 = [{"config": "plain", **{k: rank1(k, None, 0, 0) for k in ("clean", *KINDS)}}]
    print(stage2[-1])
    reranks = [int(v) for v in args.reranks.split(",")]
    weights = [float(v) for v in args.weights.split(",")]
    for precision, grow, n, weight in itertools.product(precisions, (2,), reranks, weights):
        s = replace(OcclusionSettings(), flat_std=chosen1["flat_std"],
                    min_cells=chosen1["min_cells"], grow=grow, precision=precision)
        row = {"precision": precision, "grow": grow, "rerank": n, "weight": weight,
               **{k: rank1(k, s, n, weight) for k in ("clean", *KINDS)}}
        row["impostors_over_threshold"] = {
            k: impostors[(k, n, weight, (grow, precision))] for k in KINDS}
        stage2.append(row)
        print(row)
    lost = {k: sum(1 for r in records[k] if r is None or r["lost"]) for k in records}
    rescued = {k: sum(1 for r in records[k] if r and not r["lost"] and r["fallback"])
               for k in records}
    shift = {k: float(np.median([r["lm_shift"] for r in records[k] if r and not r["lost"]]))
             for k in records}
    result = {"queries": len(queries), "clean_faces": len(clean_stats), "seed": args.seed,
              "lost": lost, "found_by_fallback": rescued,
              "median_landmark_shift_over_box_width": shift,
              "threshold": threshold, "stage1": stage1, "chosen_detector": chosen1,
              "stage2": stage2,
              "seconds": round(time.time() - started, 1),
              "command": "python bench/occlusion_dev.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items()),
              "machine": machine()}
    print(write_report(result, Path(args.out)))


def chosen_rerank(stage2: list[dict], precision: str, within: float = 0.01) -> dict:
    """The re-ranking setting to ship: at the weight with the best mean rank-1 over the
    occluders, the fewest re-ranked hits within `within` of that weight's best rank-1 on
    every occluder (each re-embedded hit costs query time)."""
    rows = [r for r in stage2 if r.get("precision", "f32") == precision and "rerank" in r]
    weight = max({r["weight"] for r in rows}, key=lambda w: max(
        np.mean([r[k] for k in KINDS]) for r in rows if r["weight"] == w))
    at = [r for r in rows if r["weight"] == weight]
    best = {k: max(r[k] for r in at) for k in KINDS}
    ok = [r for r in at if all(r[k] >= best[k] - within - 1e-9 for k in KINDS)]
    return min(ok, key=lambda r: r["rerank"])


def write_report(result: dict, out: Path) -> str:
    """occlusion_dev_sface.json (every figure) and .md (the tables)."""
    return save_report(out, "occlusion_dev_sface", result, report_lines(result))


def report_lines(result: dict) -> list[str]:
    lines = ["# Occlusion handling: parameters chosen on LFW DevTrain people (sface)", "",
             f"Command: `{result['command']}` ({result['machine']['cpu']}, "
             f"{result['machine']['cores']} cores)", "",
             f"{result['queries']} queries of DevTrain people (seed {result['seed']}) "
             f"against the full LFW index; {result['clean_faces']} clean DevTrain faces for "
             "the false-flag rate. Landmark shift (median, of the face box width) from "
             "covering: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                     result["median_landmark_shift_over_box_width"].items()),
             "", "## Stage 1: detector (flat cells of 4x4 pixels on the 112x112 crop)", "",
             "| flat std < | min cells | clean flagged | sunglasses caught | mask caught "
             "| patch caught |", "|---|---|---|---|---|---|"]
    for r in result["stage1"]:
        lines.append(f"| {r['flat_std']} | {r['min_cells']} | {r['clean_flagged']:.4f} | "
                     f"{r['sunglasses_caught']:.3f} | {r['mask_caught']:.3f} | "
                     f"{r['patch_caught']:.3f} |")
    c = result["chosen_detector"]
    lines += ["", f"Chosen (most caught with at most 1% clean flagged): flat std < "
              f"{c['flat_std']}, at least {c['min_cells']} cells.", "",
              "## Stage 2: re-ranking on the visible part (rank-1)", "",
              "| precision | grow | re-ranked | weight | clean | sunglasses | mask | patch |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["stage2"]:
        if r.get("config") == "plain":
            lines.append(f"| plain | - | - | - | {r['clean']:.3f} | {r['sunglasses']:.3f} | "
                         f"{r['mask']:.3f} | {r['patch']:.3f} |")
        else:
            lines.append(f"| {r.get('precision', 'f32')} | {r['grow']} | {r['rerank']} | "
                         f"{r['weight']} | {r['clean']:.3f} | "
                         f"{r['sunglasses']:.3f} | {r['mask']:.3f} | {r['patch']:.3f} |")
    lines.append("")
    for precision in dict.fromkeys(r.get("precision", "f32") for r in result["stage2"][1:]):
        c = chosen_rerank(result["stage2"], precision)
        lines.append(f"Chosen at {precision} (at the weight with the best mean rank-1, the "
                     "fewest re-ranked hits within 1 point of that weight's best on every "
                     f"occluder): {c['rerank']} hits, weight {c['weight']}.")
    return lines


if __name__ == "__main__":
    main()
