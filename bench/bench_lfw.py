"""Benchmark on full LFW: ingest rate and memory, query latency end to end and in Milvus.

    .venv/bin/python bench/bench_lfw.py [--lfw DIR] [--db PATH] [--queries 300]

Profiles the per-image stages on one core (decode, detect, align + embed with each
embedding runtime) on --profile random LFW photos, ingests every LFW image into a fresh
Milvus Lite database (unless --reuse), then runs --queries searches for random LFW photos
(seed 0). Writes docs/results/bench_lfw.json and docs/results/bench_lfw.md; with
--server, the same against a real Milvus standalone server, to bench_lfw_server.*.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import revsearch
from revsearch.config import load_settings
from revsearch.eval.bench import machine, milvus_server, percentiles, save_report
from revsearch.media import load_image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def profile_stages(lfw: Path, n: int) -> dict:
    """Mean ms per image for each ingest stage, one process, one thread."""
    from revsearch.faces.detect import create_detector
    from revsearch.faces.embed import create_embedder

    files = random.Random(1).sample(sorted(lfw.glob("*/*.jpg")), n)
    detector = create_detector("yunet")
    embedders = {rt: create_embedder("sface", runtime=rt, threads=1)
                 for rt in ("onnxruntime", "openvino")}
    totals = {"decode": 0.0, "detect": 0.0, **{f"embed_{rt}": 0.0 for rt in embedders}}
    faces_seen = 0
    for f in files:
        t = time.perf_counter()
        image = load_image(f)
        totals["decode"] += time.perf_counter() - t
        t = time.perf_counter()
        faces = detector.detect(image)
        totals["detect"] += time.perf_counter() - t
        faces_seen += len(faces)
        for rt, embedder in embedders.items():
            t = time.perf_counter()
            embedder.embed(image, faces)
            totals[f"embed_{rt}"] += time.perf_counter() - t
    per_image = {k: round(v / n * 1000, 2) for k, v in totals.items()}
    per_face = {k: round(totals[k] / max(faces_seen, 1) * 1000, 2)
                for k in totals if k.startswith("embed")}
    return {"images": n, "faces": faces_seen, "ms_per_image": per_image,
            "embed_ms_per_face": per_face}


def bench_ingest(rs: revsearch.RevSearch, lfw: Path) -> dict:
    start = time.perf_counter()
    report = rs.index([lfw])
    seconds = time.perf_counter() - start
    return {"images": report.indexed, "faces": report.faces, "no_face": report.no_face,
            "problems": len(report.problems), "seconds": round(seconds, 1),
            "images_per_s": round(report.indexed / seconds, 1),
            "peak_rss_main_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "peak_rss_worker_mb": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}


def bench_queries(rs: revsearch.RevSearch, lfw: Path, n: int) -> dict:
    files = sorted(lfw.glob("*/*.jpg"))
    queries = random.Random(0).sample(files, n)
    rs.search(queries[0], k=10)  # load models and the collection once, outside the timing
    end_to_end, database, vectors = [], [], []
    for q in queries:
        t = time.perf_counter()
        try:
            rs.search(q, k=10)
        except revsearch.NoFaceError:
            continue
        end_to_end.append((time.perf_counter() - t) * 1000)
        image = load_image(q)
        faces = rs.pipeline.detect(image)
        vectors.append(rs.pipeline.embedder.embed(image, [max(faces, key=lambda f: f.area)]))
    for v in vectors:
        t = time.perf_counter()
        rs.collection.search(v, 10)
        database.append((time.perf_counter() - t) * 1000)
    return {"end_to_end": percentiles(end_to_end), "database_only": percentiles(database),
            "queries": n, "no_face_queries": n - len(end_to_end)}


def write(result: dict, out: Path, tag: str = "") -> None:
    i, q = result["ingest"], result["query"]
    lines = [
        "# LFW benchmark: ingest and query", "",
        f"Command: `{result['command']}`  ", f"Date: {result['date']}; machine: "
        f"{result['machine']['cores']} cores, {result['machine']['cpu']}, no GPU; "
        f"pipeline {result['pipeline']}, database {result['backend']}.", "",
        "| measure | value | target |", "|---|---|---|",
    ]
    if i:
        lines += [
            f"| ingest, full LFW | {i['images']} images, {i['faces']} faces in {i['seconds']} s"
            f" | |",
            f"| ingest rate | **{i['images_per_s']} images/s** | >= 60 |",
            f"| peak memory | main {i['peak_rss_main_mb']} MB, largest worker "
            f"{i['peak_rss_worker_mb']} MB | |",
            f"| images with no face found | {i['no_face']} | |",
        ]
    e, d = q["end_to_end"], q["database_only"]
    lines += [
        f"| query end to end (read, decode, detect, embed, search k=10), {e['n']} queries "
        f"| **p50 {e['p50_ms']} ms**, p95 {e['p95_ms']} ms | p50 <= 50 ms |",
        f"| database search alone ({d['n']} queries) | p50 {d['p50_ms']} ms, "
        f"p95 {d['p95_ms']} ms | |",
    ]
    pr = result.get("profile")
    if pr:
        ms, face = pr["ms_per_image"], pr["embed_ms_per_face"]
        lines += [
            "", f"Profile: one process, one thread, {pr['images']} random LFW photos "
            f"({pr['faces']} faces); mean ms per image (per face for embedding).", "",
            "| stage | ms per image | ms per face |", "|---|---|---|",
            f"| decode (JPEG) | {ms['decode']} | |",
            f"| detect (YuNet, OpenCV) | {ms['detect']} | |",
            f"| align + embed, SFace on onnxruntime | {ms['embed_onnxruntime']} "
            f"| {face['embed_onnxruntime']} |",
            f"| align + embed, SFace on OpenVINO (default) | {ms['embed_openvino']} "
            f"| {face['embed_openvino']} |",
        ]
    save_report(out, f"bench_lfw{tag}", result, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(ROOT.parent / "shared/data/lfw/lfw-deepfunneled"))
    parser.add_argument("--db", help="database to fill (default: a fresh temporary one)")
    parser.add_argument("--reuse", action="store_true", help="skip ingest, query --db as is")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--profile", type=int, default=300,
                        help="photos for the per-stage profile (0: skip it)")
    parser.add_argument("--server", action="store_true",
                        help="on a Milvus standalone server: the one --db names, or else "
                        "one started on 127.0.0.1 for the run; results go to "
                        "bench_lfw_server.*")
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder for the JSON and Markdown results (default docs/results)")
    args = parser.parse_args()
    lfw = Path(args.lfw)
    tmp = Path(tempfile.mkdtemp(prefix="revsearch-bench-"))
    db = args.db or str(tmp / "bench.db")
    servers = contextlib.ExitStack()
    if args.server and not args.db:
        db = servers.enter_context(milvus_server(tmp / "milvus"))
    try:
        profile = profile_stages(lfw, args.profile) if args.profile else {}
        with revsearch.connect(db, home=tmp, progress=False) as rs:
            ingest = {} if args.reuse else bench_ingest(rs, lfw)
        # Queries from a fresh connection, as a user's next session would make them.
        with revsearch.connect(db, home=tmp) as rs:
            query = bench_queries(rs, lfw, args.queries)
            stats = rs.stats()
        result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
                  "machine": machine(), "pipeline": stats["pipeline"],
                  "backend": stats["backend"], "index": {k: stats[k] for k in ("images", "faces")},
                  "runtime": load_settings().runtime, "profile": profile,
                  "ingest": ingest, "query": query}
        write(result, Path(args.out), "_server" if args.server else "")
        print(json.dumps(result, indent=2))
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
