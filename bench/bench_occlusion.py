"""Query latency with and without occlusion handling, for clean and covered photos.

    .venv/bin/python bench/bench_occlusion.py [--db PATH] [--lfw DIR] [--queries 100]

Searches (k=10, the Python API end to end: decode, detect, embed, Milvus, re-ranking)
for --queries random LFW photos (seed 0), clean and under each synthetic occluder of
`revsearch eval occlusion`, once with occlusion handling on and once off, against an
existing index (default: the full-LFW index `revsearch eval occlusion` builds in
$REVSEARCH_HOME/eval; --lfw DIR --index first indexes DIR into a fresh --db). Reports
p50/p95 per case and the added latency (on minus off). Writes
docs/results/bench_occlusion.json and .md (or under --out).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

import revsearch
from revsearch.config import load_settings
from revsearch.eval.bench import machine, percentiles, save_report
from revsearch.eval.occlusion import KINDS, occlude
from revsearch.faces.embed import PRECISIONS
from revsearch.faces.occlusion import OcclusionSettings, VisibleMatcher
from revsearch.faces.pipeline import central_face
from revsearch.media import load_image
from revsearch.search import candidate_crops

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def covered_queries(lfw: Path, n: int, detect) -> dict[str, list[np.ndarray]]:
    """n random LFW photos with a face, clean and under each occluder (in memory)."""
    files = sorted(lfw.glob("*/*.jpg"))
    picked = random.Random(0).sample(files, min(len(files), 3 * n))
    rng = np.random.default_rng(0)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("clean", *KINDS)}
    for f in picked:
        image = load_image(f)
        faces = detect(image)
        if not faces:
            continue
        face = faces[central_face(faces, image.shape)]
        out["clean"].append(image)
        for kind in KINDS:
            out[kind].append(occlude(image, face, kind, rng))
        if len(out["clean"]) == n:
            break
    return out


def time_searches(rs: revsearch.RevSearch, images: list[np.ndarray]) -> tuple[dict, int]:
    """Latency percentiles of searching each image; and how many were handled as covered."""
    ms, handled = [], 0
    for image in images:
        t = time.perf_counter()
        try:
            [result] = rs.search(image, k=10)
        except revsearch.errors.NoFaceError:
            continue
        ms.append((time.perf_counter() - t) * 1000)
        handled += int(result.occlusion_handled)
    return percentiles(ms), handled


def profile_rerank(on: revsearch.RevSearch, off: revsearch.RevSearch,
                   images: list[np.ndarray]) -> dict:
    """Where a covered query's added time goes: fetching the hits' landmarks and cutting
    their crops from their files, then embedding the query and the crops again, at each
    precision the re-ranking can use (ms per query; the hits come from a plain search)."""
    matchers = {p: VisibleMatcher(on.pipeline.embedder, OcclusionSettings(precision=p))
                for p in PRECISIONS}
    n = matchers["f32"].settings.rerank
    parts: dict[str, list[float]] = {"crops": [], **{f"rescore_{p}": [] for p in matchers}}
    for image in images:
        faces = on.pipeline.detect(image)
        if not faces:
            continue
        face = faces[central_face(faces, image.shape)]
        occlusion = matchers["f32"].inspect(image, face.landmarks)
        if not occlusion.covered:
            continue
        [result] = off.search(image, k=n)
        t = time.perf_counter()
        usable = candidate_crops(on.collection, result.hits)
        parts["crops"].append((time.perf_counter() - t) * 1000)
        crops = np.stack([c for _, c in usable])
        plain = np.array([h.similarity for h, _ in usable])
        for p, matcher in matchers.items():
            matcher.rescore(image, face.landmarks, occlusion, crops[:1], plain[:1])  # warm
            t = time.perf_counter()
            matcher.rescore(image, face.landmarks, occlusion, crops, plain)
            parts[f"rescore_{p}"].append((time.perf_counter() - t) * 1000)
    return {"rerank": n, **{k: percentiles(v) if v else {"n": 0, "p50_ms": None}
                            for k, v in parts.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="")
    ap.add_argument("--lfw", default="")
    ap.add_argument("--index", action="store_true", help="index --lfw into --db first")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    settings = load_settings()
    lfw = Path(args.lfw) if args.lfw else ROOT.parent / "shared/data/lfw/lfw-deepfunneled"
    db = args.db or str(settings.home / "eval" / "lfw_sface.db")
    if args.index:
        with revsearch.connect(db, progress=False) as rs:
            rs.index([lfw])
    result: dict = {"db": db, "queries": args.queries, "cases": {},
                    "command": "python bench/bench_occlusion.py " + " ".join(sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()}
    with revsearch.connect(db, occlusion=True) as on, \
            revsearch.connect(db, occlusion=False) as off:
        queries = covered_queries(lfw, args.queries, on.pipeline.detect)
        for rs in (on, off):  # load models, the collection and the calibration once
            rs.search(queries["clean"][0], k=10)
            rs.search(queries["sunglasses"][0], k=10)
        for kind, images in queries.items():
            timed_on, handled = time_searches(on, images)
            timed_off, _ = time_searches(off, images)
            result["cases"][kind] = {
                "on": timed_on, "off": timed_off, "handled_as_covered": handled,
                "added_p50_ms": round(timed_on["p50_ms"] - timed_off["p50_ms"], 2)}
        result["profile"] = {kind: profile_rerank(on, off, queries[kind]) for kind in KINDS}
    lines = ["# Query latency with occlusion handling", "",
             f"Command: `{result['command']}` ({result['date']}, "
             f"{result['machine']['cpu']}, {result['machine']['cores']} cores)", "",
             f"{args.queries} random LFW photos (seed 0), each searched clean and under each "
             f"occluder, k=10, end to end through the Python API, against `{db}`.", "",
             "| query | handled as covered | p50 off (ms) | p50 on (ms) | added p50 (ms) "
             "| p95 off | p95 on |", "|---|---|---|---|---|---|---|"]
    for kind, c in result["cases"].items():
        lines.append(f"| {kind} | {c['handled_as_covered']}/{c['on']['n']} | "
                     f"{c['off']['p50_ms']} | {c['on']['p50_ms']} | {c['added_p50_ms']} | "
                     f"{c['off']['p95_ms']} | {c['on']['p95_ms']} |")
    first = next(iter(result["profile"].values()))
    lines += ["", f"Where the added time goes (the first {first['rerank']} hits of a plain "
              "search of each covered query; p50 ms per query): cutting the hits' crops from "
              "their files (landmarks from the database, decode, align), and embedding the "
              "query and the crops again with the same part covered, at each precision.", "",
              "| query | crops | re-embed f32 | re-embed bf16 |", "|---|---|---|---|"]
    for kind, prof in result["profile"].items():
        lines.append(f"| {kind} | {prof['crops']['p50_ms']} | {prof['rescore_f32']['p50_ms']} "
                     f"| {prof['rescore_bf16']['p50_ms']} |")
    print(save_report(Path(args.out), "bench_occlusion", result, lines))


if __name__ == "__main__":
    main()
