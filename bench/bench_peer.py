"""revsearch vs the most common peer: a face_recognition-style script, on the same photos.

    .venv/bin/python bench/bench_peer.py [--images 1000] [--queries 200]

The peer is what the face_recognition README's "find this person in a folder" recipe
does, written against the same dlib models (face_recognition itself is not installed: it
compiles dlib): for every photo, dlib's HOG detector with one upsampling (its default),
the 5-point shape model, the ResNet descriptor (one jitter), all encodings in a numpy
array; a query is encoded the same way and compared by brute-force Euclidean distance
(`face_distance`), each photo scored by its closest face. It runs in one process, as
such scripts do.

revsearch runs with its defaults (YuNet + SFace, Milvus Lite), once with one worker (the
same cores as the peer) and once with all cores, then with its most accurate embedder
(`sface_dlib`: SFace and dlib's ResNet fused) on all cores. All index the same --images LFW photos
(seed 0, people with 2+ photos first so that queries have answers) and answer the same
--queries queries, photos from the set itself with their own image excluded. Reported:
ingest photos/s, query p50/p95, rank-1 and mAP over those queries, and the ratios.
Writes docs/results/bench_peer.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import revsearch
from revsearch.eval import metrics
from revsearch.eval.bench import machine, percentiles, save_report
from revsearch.faces.models import model_path
from revsearch.media import load_image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def pick_images(lfw: Path, n: int) -> list[Path]:
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    rng = random.Random(0)
    multi = [p for p in people if len(list(p.glob("*.jpg"))) >= 2]
    rng.shuffle(multi)
    chosen: list[Path] = []
    for person in multi:
        photos = sorted(person.glob("*.jpg"))[:6]
        if len(chosen) + len(photos) > n:
            break
        chosen += photos
    return chosen


class FaceRecognitionStyle:
    """The peer: dlib HOG + 5-point + ResNet, numpy brute force (see module doc)."""

    def __init__(self) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(model_path("dlib_shape5")))
        self.net = dlib.face_recognition_model_v1(str(model_path("dlib_resnet")))
        self.encodings = np.zeros((0, 128))
        self.owner: list[int] = []

    def encode(self, path: Path) -> list[np.ndarray]:
        """Encodings of every face, largest face first."""
        rgb = np.ascontiguousarray(load_image(path)[:, :, ::-1])
        boxes = sorted(self.detector(rgb, 1), key=lambda b: -b.area())
        return [np.array(self.net.compute_face_descriptor(rgb, self.shape(rgb, b), 1))
                for b in boxes]

    def index(self, paths: list[Path]) -> None:
        rows, owner = [], []
        for i, path in enumerate(paths):
            for enc in self.encode(path):
                rows.append(enc)
                owner.append(i)
        self.encodings, self.owner = np.array(rows), owner

    def scores(self, query: Path, n_images: int) -> np.ndarray | None:
        found = self.encode(query)
        if not found:
            return None
        # face_recognition's recipe takes the first face found; we give the peer our
        # largest-face rule, to compare models and search, not heuristics.
        distances = np.linalg.norm(self.encodings - found[0], axis=1)
        per_image = np.full(n_images, -np.inf)
        np.maximum.at(per_image, self.owner, -distances)
        return per_image


def rank_stats(score_rows: list[np.ndarray | None], labels: np.ndarray,
               queries: list[int]) -> dict:
    first, aps = [], []
    for q, row in zip(queries, score_rows, strict=True):
        relevant = labels == labels[q]
        relevant[q] = False
        if row is None:
            first.append(np.inf)
            aps.append(0.0)
            continue
        row = row.copy()
        row[q] = -np.inf
        ranks = metrics.ranks_of_relevant(row, relevant)
        first.append(ranks[0])
        aps.append(metrics.average_precision(ranks))
    first_arr = np.array(first)
    return {"rank1": float((first_arr <= 1).mean()), "mAP": float(np.mean(aps)),
            "no_face": int(sum(r is None for r in score_rows))}


def run_ours(paths: list[Path], queries: list[int], workers: int, work: Path,
             embedder: str = "sface") -> dict:
    index = {str(p.resolve()): i for i, p in enumerate(paths)}
    with revsearch.connect(str(work / f"ours{workers}_{embedder}.db"), home=work,
                           workers=workers, embedder=embedder, progress=False) as rs:
        started = time.perf_counter()
        rs.index(paths)
        ingest = time.perf_counter() - started
        rs.pipeline  # noqa: B018 - load models before timing queries
        times, rows = [], []
        for q in queries:
            t0 = time.perf_counter()
            try:
                rs.search(paths[q], k=10)  # timed: what a user asks for
                times.append((time.perf_counter() - t0) * 1000)
                [result] = rs.search(paths[q], k=len(paths))  # the full ranking, for mAP
            except revsearch.NoFaceError:
                times.append((time.perf_counter() - t0) * 1000)
                result = None
            if result is None:
                rows.append(None)
                continue
            row = np.full(len(paths), -np.inf)
            for h in result.hits:
                row[index[h.path]] = h.similarity
            rows.append(row)
    return {"ingest_s": ingest, "ingest_per_s": len(paths) / ingest,
            "query": percentiles(times), "_rows": rows}


def run_peer(paths: list[Path], queries: list[int]) -> dict:
    peer = FaceRecognitionStyle()
    started = time.perf_counter()
    peer.index(paths)
    ingest = time.perf_counter() - started
    times, rows = [], []
    for q in queries:
        t0 = time.perf_counter()
        rows.append(peer.scores(paths[q], len(paths)))
        times.append((time.perf_counter() - t0) * 1000)
    return {"ingest_s": ingest, "ingest_per_s": len(paths) / ingest,
            "query": percentiles(times), "_rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared/data/lfw/lfw-deepfunneled"))
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default=str(RESULTS),
                    help="folder for the JSON and Markdown results (default docs/results)")
    args = ap.parse_args()
    paths = pick_images(Path(args.lfw), args.images)
    labels = np.array([p.parent.name for p in paths])
    queries = sorted(random.Random(1).sample(range(len(paths)), args.queries))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, job in (("revsearch, 1 worker", lambda: run_ours(paths, queries, 1, Path(tmp))),
                          ("revsearch, all cores", lambda: run_ours(paths, queries,
                                                                      os.cpu_count() or 1,
                                                                      Path(tmp))),
                          ("revsearch sface_dlib, all cores",
                           lambda: run_ours(paths, queries, os.cpu_count() or 1, Path(tmp),
                                            "sface_dlib")),
                          ("face_recognition-style", lambda: run_peer(paths, queries))):
            result = job()
            result.update(rank_stats(result.pop("_rows"), labels, queries))
            runs[name] = result
            print(name, json.dumps({k: v for k, v in result.items()}, default=str))
    peer = runs["face_recognition-style"]
    ratios = {name: {"ingest_speed_x": round(r["ingest_per_s"] / peer["ingest_per_s"], 2),
                     "query_p50_x": round(peer["query"]["p50_ms"] / r["query"]["p50_ms"], 2)}
              for name, r in runs.items() if name != "face_recognition-style"}
    result = {"machine": machine(), "images": len(paths), "queries": len(queries),
              "runs": runs, "ratios": ratios,
              "command": "python bench/bench_peer.py " + " ".join(sys.argv[1:])}
    lines = ["# revsearch vs a face_recognition-style script", "",
             f"Command: `{result['command'].strip()}` on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores).", "",
             f"{len(paths)} LFW photos, {len(queries)} queries from among them (own photo "
             "excluded). The peer: dlib HOG (1 upsample) + 5-point + ResNet descriptor, "
             "numpy brute-force distance, one process (see bench/bench_peer.py).", "",
             "| system | ingest photos/s | query p50 ms | query p95 ms | rank-1 | mAP | "
             "queries with no face |", "|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['ingest_per_s']:.1f} | {r['query']['p50_ms']} | "
                     f"{r['query']['p95_ms']} | {r['rank1']:.4f} | {r['mAP']:.4f} | "
                     f"{r['no_face']} |")
    lines += ["", "| revsearch vs the peer | ingest speed | query speed (p50) |",
              "|---|---|---|"]
    lines += [f"| {name} | {r['ingest_speed_x']}x | {r['query_p50_x']}x |"
              for name, r in ratios.items()]
    print(save_report(Path(args.out), "bench_peer", result, lines), end="")


if __name__ == "__main__":
    main()
