"""Ingest on Ray against the local engine: full LFW into a Milvus server.

    .venv/bin/python bench/bench_ray.py [--lfw DIR] [--db URI] [--runs local:2,ray:1,ray:2]

Each run indexes every photo under --lfw into emptied collections of one Milvus server
(the `milvus` package's standalone server on 127.0.0.1, or --db URI), timed end to end as
`revsearch index` runs it (start-up of the workers or of Ray included). The Ray runs
start Ray on this machine with as many CPUs as workers. Every run's face rows are
compared with the first run's (ids, boxes, embeddings).

Then, each on its own: Ray's transport cost per photo (an actor that answers every call
with ready-made outcomes of real size, so no analysis is timed: what the driver and Ray
spend to ship work and rows), the reader's scan rate, and the Milvus server's insert
rate (the first run's rows written again through the same calls the writer makes, into
another collection). A scaling model for N machines is derived from those figures and
stated as a model. Writes docs/results/bench_ray.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import numpy as np
import ray

import revsearch
from revsearch.config import load_settings
from revsearch.eval import provenance
from revsearch.eval.bench import machine, milvus_server, save_report
from revsearch.ingest import scan
from revsearch.ingest.engines.ray import IN_FLIGHT, MAX_BATCH
from revsearch.ingest.mapper import analyze_file, worker_pipeline
from revsearch.ingest.records import Task
from revsearch.store import FaceRow, MediaRow, Store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
# Assumed, not measured: a shared file system read over 1 Gb/s Ethernet (NFS).
SHARED_FS_MB_S = 110.0
MACHINES = (1, 2, 4, 8, 16, 32, 64)


def empty(uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    for name in client.list_collections():
        client.drop_collection(name)
    client.close()


def face_rows(uri: str, home: Path) -> list[dict]:
    with revsearch.connect(uri, home=home) as rs:
        return sorted(rs.collection.all_faces(with_embeddings=True), key=lambda r: r["face_id"])


def compare(rows: list[dict], reference: list[dict]) -> dict:
    same_ids = [r["face_id"] for r in rows] == [r["face_id"] for r in reference]
    if not same_ids:
        return {"same_face_ids": False, "faces": len(rows)}
    emb = max(float(np.abs(np.asarray(a["embedding"], np.float32)
                           - np.asarray(b["embedding"], np.float32)).max())
              for a, b in zip(rows, reference, strict=True)) if rows else 0.0
    box = max(float(np.abs(np.asarray(a["box"]) - np.asarray(b["box"])).max())
              for a, b in zip(rows, reference, strict=True)) if rows else 0.0
    return {"same_face_ids": True, "faces": len(rows), "max_embedding_diff": emb,
            "max_box_diff": box}


def ingest(uri: str, lfw: Path, home: Path, engine: str, workers: int) -> dict:
    """`revsearch index` in a fresh process, as a user runs it."""
    empty(uri)
    cmd = [sys.executable, "-m", "revsearch", "index", str(lfw), "--db", uri, "--home",
           str(home), "--engine", engine, "--workers", str(workers), "--no-progress", "--json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout[done.stdout.index("{"):])
    return {"engine": engine, "workers": workers, "images": report["indexed"],
            "faces": report["faces"], "problems": len(report["problems"]),
            "seconds": round(seconds, 1), "images_per_s": round(report["indexed"] / seconds, 1)}


class Echo:
    """An actor answering each call with ready-made outcomes: Ray's cost, no analysis."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def analyze(self, tasks: list[Task]) -> list:
        return [self.outcome] * len(tasks)


def ray_transport(lfw: Path, images: int) -> dict:
    """In a fresh process (one Ray start per process): see `transport`."""
    done = subprocess.run([sys.executable, __file__, "--lfw", str(lfw), "--transport-images",
                           str(images), "--transport-only"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the transport measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def transport(lfw: Path, settings, images: int) -> dict:
    """Driver-side ms per photo to send tasks and receive real-sized outcomes, one actor,
    the engine's batch size and calls in flight."""
    sample = next(iter(sorted(lfw.glob("*/*.jpg"))))
    outcome = analyze_file(Task(str(sample), ""), worker_pipeline(settings))
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=1)(Echo).remote(outcome)
        tasks = [Task(str(sample), "")] * MAX_BATCH
        ray.get(actor.analyze.remote(tasks))  # started, connected
        calls = max(1, images // MAX_BATCH)
        start = time.perf_counter()
        running = [actor.analyze.remote(tasks) for _ in range(IN_FLIGHT)]
        sent = IN_FLIGHT
        while running:
            [ref], running = ray.wait(running, num_returns=1)
            ray.get(ref)
            if sent < calls:
                running.append(actor.analyze.remote(tasks))
                sent += 1
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()
    return {"images": calls * MAX_BATCH, "batch": MAX_BATCH, "faces_per_outcome":
            len(outcome.faces), "ms_per_image": round(seconds / (calls * MAX_BATCH) * 1000, 3)}


def scan_rate(lfw: Path) -> dict:
    start = time.perf_counter()
    plan = scan([lfw], {})
    seconds = time.perf_counter() - start
    return {"files": len(plan.todo), "seconds": round(seconds, 2),
            "files_per_s": round(len(plan.todo) / seconds)}


def insert_rate(uri: str, home: Path, batch_images: int = 64) -> dict:
    """The rows in the server written again, in the writer's batches, to another space."""
    with revsearch.connect(uri, home=home) as rs:
        media = [MediaRow(**r) for r in rs.collection.media()]
        faces: dict[str, list[FaceRow]] = defaultdict(list)
        for r in rs.collection.all_faces(with_embeddings=True):
            r["embedding"] = np.asarray(r["embedding"], np.float32)
            faces[r["image_id"]].append(FaceRow(**r))
        dim = rs.collection.dim
    with Store(uri) as store:
        target = store.space("insert_bench", dim)
        start = time.perf_counter()
        for i in range(0, len(media), batch_images):
            chunk = media[i:i + batch_images]
            target.write(chunk, [f for m in chunk for f in faces[m.image_id]], replace=[])
        target.flush()
        seconds = time.perf_counter() - start
    rows = len(media) + sum(len(v) for v in faces.values())
    return {"images": len(media), "rows": rows, "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds), "images_per_s": round(len(media) / seconds)}


def scaling_model(runs: list[dict], transport: dict, scanned: dict, insert: dict,
                  mean_bytes: float) -> dict:
    """images/s for N machines like this one: the lowest of the bounds below."""
    local = next(r for r in runs if r["engine"] == "local")
    best = max((r for r in runs if r["engine"] == "ray"), key=lambda r: r["workers"])
    per_machine = best["images_per_s"]
    bounds = {
        "writer (one driver, measured insert rate)": insert["images_per_s"],
        "driver's Ray transport (measured)": round(1000 / transport["ms_per_image"]),
        f"shared file system (assumed {SHARED_FS_MB_S:.0f} MB/s)":
            round(SHARED_FS_MB_S * 1e6 / mean_bytes),
    }
    rows = []
    for n in MACHINES:
        limit, name = min((v, k) for k, v in bounds.items())
        workers = n * per_machine
        rows.append({"machines": n, "images_per_s": round(min(workers, limit)),
                     "bound": "workers" if workers <= limit else name})
    return {"per_machine_images_per_s": per_machine, "local_images_per_s":
            local["images_per_s"], "bounds_images_per_s": bounds,
            "scan_seconds_per_million_files": round(1e6 / scanned["files_per_s"]),
            "rows": rows}


def write(result: dict, out: Path) -> None:
    runs, model = result["runs"], result["model"]
    local = next(r for r in runs if r["engine"] == "local")
    lines = [
        "# Ingest on Ray: full LFW into a Milvus server", "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; commit {result['commit']}; machine: "
        f"{result['machine']['cores']} cores, {result['machine']['cpu']}, no GPU; Ray "
        f"{result['ray']}; Milvus server {result['milvus']} on the same machine. "
        f"Load average at the start: {result['load_at_start']}.", "",
        "| engine | workers | images | faces | seconds | images/s | vs local "
        "| rows vs first run |", "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c = r["rows_vs_first"]
        same = ("(first)" if r is runs[0] else
                f"same ids, max embedding diff {c['max_embedding_diff']:.1e}"
                if c["same_face_ids"] else "**differ**")
        lines.append(f"| {r['engine']} | {r['workers']} | {r['images']} | {r['faces']} | "
                     f"{r['seconds']} | **{r['images_per_s']}** | "
                     f"{r['images_per_s'] / local['images_per_s']:.0%} | {same} |")
    t, s, ins = result["transport"], result["scan"], result["insert"]
    o = result["overhead"]
    lines += [
        "", "Target: Ray with 2 workers at least 85% of the local engine's images/s.", "",
        "| measure | value |", "|---|---|",
        f"| Ray's transport cost per photo (driver side; {t['images']} photos in calls of "
        f"{t['batch']}, outcomes of real size, no analysis) | {t['ms_per_image']} ms |",
        f"| Ray's overhead per photo end to end (2 workers: Ray's seconds minus local's, "
        f"per photo) | {o['wall_ms_per_image']} ms wall, {o['core_ms_per_image']} core-ms |",
        f"| reader: scan (stat + content sniff) | {s['files_per_s']} files/s |",
        f"| Milvus server insert alone ({ins['rows']} rows: faces + media, batches of 64 "
        f"photos) | **{ins['rows_per_s']} rows/s** ({ins['images_per_s']} photos/s) |",
        "", "## Scaling model for N machines (a model, not a measurement)", "",
        "Each added machine like this one adds the 2-worker Ray rate measured above "
        f"({model['per_machine_images_per_s']} photos/s); the run is capped by the lowest "
        "of these bounds, which do not grow with N:", "",
        "| bound | photos/s |", "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in model["bounds_images_per_s"].items()]
    lines += [
        "", "| machines | photos/s (model) | limited by |", "|---|---|---|",
        *[f"| {r['machines']} | {r['images_per_s']} | {r['bound']} |" for r in model["rows"]],
        "", "Not in the model: the driver lists and stats every file before any work "
        f"(about {model['scan_seconds_per_million_files']} s per million files at the "
        "scan rate above, on a local disk; slower over NFS); a distributed Milvus "
        "(several data nodes) takes more inserts than this one standalone server on 2 "
        "shared cores, but the writer is one process; and the file system figure is an "
        "assumption, not measured here.",
    ]
    save_report(out, "bench_ray", result, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(LFW))
    parser.add_argument("--db", help="a running Milvus server (default: start one)")
    parser.add_argument("--runs", default="local:2,ray:1,ray:2",
                        help="engine:workers, in order (the first is the reference)")
    parser.add_argument("--transport-images", type=int, default=4000)
    parser.add_argument("--transport-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder for the JSON and Markdown results (default docs/results)")
    args = parser.parse_args()
    lfw = Path(args.lfw)
    if args.transport_only:
        print(json.dumps(transport(lfw, load_settings(), args.transport_images)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="revsearch-bench-ray-"))
    servers = contextlib.ExitStack()
    uri = args.db or servers.enter_context(milvus_server(tmp / "milvus"))
    load = round(os.getloadavg()[0], 1)
    try:
        runs, reference = [], None
        for spec in args.runs.split(","):
            engine, workers = spec.split(":")
            run = ingest(uri, lfw, tmp, engine, int(workers))
            rows = face_rows(uri, tmp)
            reference = reference if reference is not None else rows
            run["rows_vs_first"] = compare(rows, reference)
            runs.append(run)
            print(json.dumps(run), flush=True)
        insert = insert_rate(uri, tmp)
        shipped = ray_transport(lfw, args.transport_images)
        scanned = scan_rate(lfw)
        files = sorted(lfw.rglob("*.jpg"))
        mean_bytes = sum(f.stat().st_size for f in files) / max(len(files), 1)
        local = next(r for r in runs if r["engine"] == "local")
        ray2 = max((r for r in runs if r["engine"] == "ray"), key=lambda r: r["workers"])
        wall = (ray2["seconds"] - local["seconds"]) / local["images"] * 1000
        result = {
            "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
            "commit": provenance.git_commit(), "machine": machine(), "ray": ray.__version__,
            "milvus": uri if args.db else version("milvus"), "load_at_start": load,
            "runs": runs, "insert": insert, "transport": shipped, "scan": scanned,
            "mean_file_bytes": round(mean_bytes),
            "overhead": {"wall_ms_per_image": round(wall, 2),
                         "core_ms_per_image": round(wall * ray2["workers"], 2)},
            "ray_vs_local": round(ray2["images_per_s"] / local["images_per_s"], 3),
        }
        result["model"] = scaling_model(runs, shipped, scanned, insert, mean_bytes)
        write(result, Path(args.out))
        print(json.dumps(result, indent=2))
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
