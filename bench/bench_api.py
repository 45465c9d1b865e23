"""Load test of `revsearch serve`: concurrent clients searching over HTTP on loopback.

    .venv/bin/python bench/bench_api.py [--db PATH] [--runs 4:30,8:60]

Starts `revsearch serve` on 127.0.0.1 (a free port) over an existing index (default: the
one `make demo` builds from full LFW), then for each CLIENTS:SECONDS run, that many
client threads post random LFW photos (seed 0) to `/api/search` (k=10) back to back until
the time is up; the run stops by itself. Reports requests/s, p50/p95/max latency and
errors; any error fails the benchmark. Writes docs/results/bench_api.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from revsearch.eval.bench import machine, percentiles, save_report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, port: int, *extra: str, seconds: float = 120) -> subprocess.Popen:
    """`revsearch serve` on `db` (plus `extra` flags), once it answers on `port`."""
    proc = subprocess.Popen([sys.executable, "-m", "revsearch", "serve", "--db", db,
                             "--port", str(port), *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server did not start in {seconds:.0f} s")


def run_load(base: str, photos: list[Path], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop_at:
                photo = rng.choice(photos)
                started = time.perf_counter()
                try:
                    r = http.post("/api/search", files={"file": (photo.name, photo.read_bytes())},
                                  data={"k": "10"})
                    ok = r.status_code == 200 and r.json()["results"][0]["hits"]
                    problem = None if ok else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                took = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(took)
                    if problem:
                        errors.append(f"{photo.name}: {problem}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(latencies),
            "requests_per_s": round(len(latencies) / wall, 2), "errors": len(errors),
            "error_examples": errors[:5], "latency": {**percentiles(latencies),
                                                      "max_ms": round(max(latencies), 1)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    home = Path(os.environ.get("REVSEARCH_HOME", Path.home() / ".local/share/revsearch"))
    ap.add_argument("--db", default=str(home / "revsearch.db"))
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared/data/lfw/lfw-deepfunneled"))
    ap.add_argument("--runs", default="4:30,8:60", help="CLIENTS:SECONDS,...")
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--out", default=str(RESULTS),
                    help="folder for the JSON and Markdown results (default docs/results)")
    args = ap.parse_args()
    photos = sorted(Path(args.lfw).glob("*/*.jpg"))
    photos = random.Random(0).sample(photos, min(args.photos, len(photos)))
    port = free_port()
    server = start_server(args.db, port)
    try:
        base = f"http://127.0.0.1:{port}"
        stats = httpx.get(f"{base}/api/stats").json()
        runs = []
        for spec in args.runs.split(","):
            clients, seconds = (float(v) for v in spec.split(":"))
            runs.append(run_load(base, photos, int(clients), seconds))
            print(json.dumps(runs[-1]))
    finally:
        server.terminate()
        server.wait(30)
    result = {"machine": machine(), "index": {k: stats[k] for k in ("images", "faces", "db")},
              "runs": runs, "command": "python bench/bench_api.py " + " ".join(sys.argv[1:])}
    lines = ["# REST API load test", "",
             f"Command: `{result['command'].strip()}` on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores), server and clients on the same machine.",
             "", f"Index: {stats['images']} images, {stats['faces']} faces (Milvus Lite). "
             "Each client posts a random LFW photo to `/api/search` (k=10) and waits for the "
             "answer, back to back, for the run's duration.", "",
             "| clients | seconds | requests | requests/s | errors | p50 ms | p95 ms | max ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lat = r["latency"]
        lines.append(f"| {r['clients']} | {r['seconds']} | {r['requests']} | "
                     f"{r['requests_per_s']} | {r['errors']} | {lat['p50_ms']} | "
                     f"{lat['p95_ms']} | {lat['max_ms']} |")
    print(save_report(Path(args.out), "bench_api", result, lines), end="")
    if any(r["errors"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
