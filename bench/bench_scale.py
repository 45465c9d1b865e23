"""Scale benchmark: a million face vectors in a Milvus server, and Milvus Lite's limit.

    .venv/bin/python bench/bench_scale.py [--n 1000000] [--lite-sizes 10000,50000,100000]

Vectors: the real SFace embeddings of LFW's faces (read from the index that `revsearch
eval lfw` builds, built here if missing), replicated as G = n / 15,786 copies; copy j
is the real set under its own random rotation Q_j plus Gaussian noise (sigma 0.3 per
vector, then re-normalised). A rotation keeps every similarity inside a copy, so each
copy has LFW's neighbourhood structure (people, near-duplicates, bystanders) while
copies are unrelated to each other, as different people are. Queries: 1,000 fresh
noisy versions of random vectors; ground truth: exact search in numpy.

Server: the standalone binary of the PyPI package `milvus` on 127.0.0.1 (or --db URI),
COSINE; by default HNSW M=16, efConstruction=200 (--hnsw-m, --ef-construction) swept
over ef (--efs); --index IVF_FLAT or IVF_PQ instead (--nlist lists per segment; IVF_PQ
--pq-m sub-vectors of 8 bits) swept over nprobe (--nprobes). The server seals
segments at 512 MB x 0.23 by default, which splits a million vectors into four segments,
each searched with its own graph; --segment-max-mb 4096 keeps them in one. The loaded
segments' row counts are reported. Writes docs/results/scale{--tag}.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from revsearch.config import load_settings
from revsearch.eval.ann import insert_vectors, vector_collection
from revsearch.eval.bench import save_report
from revsearch.eval.metrics import exact_top
from revsearch.spaces import space_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
SIGMA = 0.3


LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"


def real_vectors(lfw: Path, work: Path) -> np.ndarray:
    """The face vectors of every photo under `lfw`; full LFW's are kept where `revsearch
    eval lfw` keeps them, so the two share one ingest."""
    from revsearch.eval import lfw as evaluate

    settings = load_settings(progress=False)
    if lfw.resolve() == LFW.resolve():
        db = str(settings.home / "eval" / f"lfw_{space_for(settings).key}.db")
    else:
        db = str(work / "vectors.db")
    return evaluate.build_gallery(lfw, settings, db).face_vectors.astype(np.float32)


def synthetic(base: np.ndarray, n: int, seed: int = 0):
    """Yield (start, block) of the n vectors, one rotated noisy copy of `base` at a time."""
    rng = np.random.default_rng(seed)
    d = base.shape[1]
    made = 0
    while made < n:
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        block = base @ q.T + rng.standard_normal(base.shape).astype(np.float32) * SIGMA / np.sqrt(d)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        block = block[: n - made].astype(np.float32)
        yield made, block
        made += len(block)


class RssSampler:
    """Peak resident memory of a process tree, sampled from /proc every 0.5 s."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree_rss(self) -> int:
        pids, total = {self.pid}, 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) in pids or int(stat.parent.name) in pids:
                    pids.add(int(stat.parent.name))
                    total += int(fields[21]) * 4096
            except (OSError, ValueError, IndexError):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, self._tree_rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass(frozen=True)
class IndexSpec:
    """One server index to build over the million, and the search parameter to sweep."""

    kind: str  # HNSW, IVF_FLAT or IVF_PQ
    build: dict  # the index's build parameters, as Milvus takes them
    knob: str  # the search parameter swept: ef (HNSW) or nprobe (IVF)
    values: tuple[int, ...]


def index_spec(args: argparse.Namespace) -> IndexSpec:
    if args.index == "HNSW":
        return IndexSpec("HNSW", {"M": args.hnsw_m, "efConstruction": args.ef_construction},
                         "ef", tuple(int(x) for x in args.efs.split(",")))
    build = {"nlist": args.nlist}
    if args.index == "IVF_PQ":
        build |= {"m": args.pq_m, "nbits": 8}
    return IndexSpec(args.index, build, "nprobe", tuple(int(x) for x in args.nprobes.split(",")))


def bench_server(uri: str, base: np.ndarray, n: int, queries: np.ndarray, k: int,
                 spec: IndexSpec) -> dict:
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    name = "scale_bench"
    if client.has_collection(name):
        client.drop_collection(name)
    vector_collection(client, name, base.shape[1])  # indexed after the inserts
    all_vectors = np.empty((n, base.shape[1]), np.float32)
    t0 = time.perf_counter()
    for start, block in synthetic(base, n):
        all_vectors[start:start + len(block)] = block
        insert_vectors(client, name, block, first_id=start, batch=10000)
    client.flush(name)
    insert_s = time.perf_counter() - t0
    params = client.prepare_index_params()
    params.add_index(field_name="v", index_type=spec.kind, metric_type="COSINE",
                     params=spec.build)
    t0 = time.perf_counter()
    client.create_index(name, params)
    client.load_collection(name)
    build_s = time.perf_counter() - t0
    segments = loaded_segments(uri, name)
    truth = exact_top(all_vectors, queries, k)  # cosine: unit vectors
    runs = []
    for value in spec.values:
        lat, rec = [], []
        for q, t in zip(queries, truth, strict=True):
            t1 = time.perf_counter()
            res = client.search(name, data=[q.tolist()], limit=k,
                                search_params={"metric_type": "COSINE",
                                               "params": {spec.knob: value}})
            lat.append((time.perf_counter() - t1) * 1000)
            rec.append(len({h["id"] for h in res[0]} & set(t.tolist())) / k)
        runs.append({spec.knob: value, "recall_at_10": round(float(np.mean(rec)), 4),
                     "p50_ms": round(float(np.percentile(lat, 50)), 2),
                     "p95_ms": round(float(np.percentile(lat, 95)), 2)})
        print(runs[-1], flush=True)
    client.drop_collection(name)
    client.close()
    return {"vectors": n, "insert_s": round(insert_s, 1), "index_and_load_s": round(build_s, 1),
            "index": spec.kind, "build": spec.build, "segments": segments, "searches": runs}


def loaded_segments(uri: str, name: str) -> list[int]:
    """Rows of each loaded segment: a search visits every segment's own HNSW graph."""
    from pymilvus import connections, utility

    connections.connect(alias="segments", uri=uri)
    try:
        info = utility.get_query_segment_info(name, using="segments")
        return sorted((int(s.num_rows) for s in info), reverse=True)
    finally:
        connections.disconnect("segments")


def bench_lite(base: np.ndarray, sizes: list[int], queries: np.ndarray, k: int,
               work: Path) -> list[dict]:
    from pymilvus import MilvusClient

    from revsearch.store.lite import release

    rows = []
    for n in sizes:
        (work / f"lite_{n}").mkdir(parents=True)
        path = str(work / f"lite_{n}" / "scale.db")
        client = MilvusClient(path)
        vector_collection(client, "s", base.shape[1], index={"index_type": "FLAT"})
        t0 = time.perf_counter()
        for start, block in synthetic(base, n):
            insert_vectors(client, "s", block, first_id=start, batch=10000)
        client.flush("s")
        insert_s = time.perf_counter() - t0
        client.load_collection("s")
        lat = []
        for q in queries[:200]:
            t1 = time.perf_counter()
            client.search("s", data=[q.tolist()], limit=k, search_params={"metric_type": "COSINE"})
            lat.append((time.perf_counter() - t1) * 1000)
        rows.append({"vectors": n, "insert_per_s": round(n / insert_s),
                     "p50_ms": round(float(np.percentile(lat, 50)), 2),
                     "p95_ms": round(float(np.percentile(lat, 95)), 2)})
        client.close()
        release(path)
        print(rows[-1], flush=True)
    return rows


def write(result: dict, out: Path, tag: str = "") -> None:
    s = result["server"]
    knob = "nprobe" if "nprobe" in s["searches"][0] else "ef"
    build = ", ".join(f"{k}={v}" for k, v in s["build"].items())
    lines = [
        "# Scale: a million face vectors", "", f"Command: `{result['command']}`", "",
        "Vectors: rotated, noisy copies of LFW's real SFace face vectors (see the "
        "docstring of `bench/bench_scale.py`); 1,000 queries; recall@10 against exact "
        "numpy search; latency of single-vector searches through pymilvus on loopback.", "",
        f"## Milvus server {result['server_version']} (standalone, 2 cores), "
        f"{s['index']} {build}", "",
        f"{s['vectors']:,} vectors: insert {s['insert_s']} s, index build + load "
        f"{s['index_and_load_s']} s, peak server memory {result['server_peak_rss_mb']} MB; "
        f"{len(s.get('segments', [])) or '?'} sealed segments "
        f"({', '.join(f'{r:,}' for r in s.get('segments', []))} rows; segment limit "
        f"{result.get('segment_max_mb') or 512} MB).", "",
        f"| {knob} | recall@10 | p50 (ms) | p95 (ms) |", "|---|---|---|---|",
        *[f"| {r[knob]} | {r['recall_at_10']} | {r['p50_ms']} | {r['p95_ms']} |"
          for r in s["searches"]],
        "",
    ]
    if result["lite"]:
        lines += [
            "## Milvus Lite (FLAT, exact)", "",
            "| vectors | insert (vectors/s) | search p50 (ms) | p95 (ms) |", "|---|---|---|---|",
            *[f"| {r['vectors']:,} | {r['insert_per_s']:,} | {r['p50_ms']} | {r['p95_ms']} |"
              for r in result["lite"]], "",
        ]
    save_report(out, f"scale{tag}", result, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--lfw", default=str(LFW), help="photos whose face vectors are copied")
    parser.add_argument("--db", help="a running Milvus server (default: start one)")
    parser.add_argument("--lite-sizes", default="10000,50000,100000,200000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--index", default="HNSW", choices=("HNSW", "IVF_FLAT", "IVF_PQ"),
                        help="the server's index over the million")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--efs", default="64,128,256,512", help="search ef values (HNSW)")
    parser.add_argument("--nlist", type=int, default=4096, help="IVF lists per segment")
    parser.add_argument("--pq-m", type=int, default=16,
                        help="IVF_PQ sub-vectors (as `eval ann`: dim / 8 for SFace)")
    parser.add_argument("--nprobes", default="8,16,32,64,128,256",
                        help="search nprobe values (IVF)")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    parser.add_argument("--segment-max-mb", type=int, default=0,
                        help="started server only: dataCoord.segment.maxSize (default 512)")
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder for the JSON and Markdown results (default docs/results)")
    args = parser.parse_args()
    if args.db and args.segment_max_mb:
        parser.error("--segment-max-mb configures the server this script starts, not --db's")
    work = Path(tempfile.mkdtemp(prefix="revsearch-scale-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    base = real_vectors(Path(args.lfw), work)
    rng = np.random.default_rng(1)
    # Queries: fresh noise around vectors of the first copies (the same generator).
    qbase = next(synthetic(base, len(base), seed=0))[1]
    picks = rng.choice(len(qbase), args.queries, replace=False)
    queries = qbase[picks] + rng.standard_normal((args.queries, base.shape[1])).astype(
        np.float32) * SIGMA / np.sqrt(base.shape[1])
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    lite = bench_lite(base, [int(x) for x in args.lite_sizes.split(",") if x], queries, 10,
                      work)
    server = None
    if args.db:
        uri, sampler = args.db, None
    else:
        from milvus import MilvusServer

        server = MilvusServer()
        server.set_base_dir(str(work / "milvus"))
        if args.segment_max_mb:
            server.config.set("dataCoord.segment.maxSize", args.segment_max_mb)
        server.start()
        uri = f"http://127.0.0.1:{server.listen_port}"
        sampler = RssSampler(server.server_proc.pid)
    try:
        from pymilvus import MilvusClient

        version = MilvusClient(uri).get_server_version()
        result_server = bench_server(uri, base, args.n, queries, 10, index_spec(args))
    finally:
        peak = sampler.stop() if sampler else 0
        if server:
            server.stop()
    result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
              "server_version": version, "server_peak_rss_mb": round(peak / 2**20),
              "segment_max_mb": args.segment_max_mb or None,
              "server": result_server, "lite": lite}
    write(result, Path(args.out), args.tag)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
