"""Searching while the server ingests: `revsearch serve` answering 8 clients during a
background ingest of 6,000 LFW photos, on loopback.

    .venv/bin/python bench/bench_watch.py [--ingest 6000] [--base 1000] [--clients 8]
                                          [--seconds 30]

Picks disjoint random LFW photos (seed 0): `--base` of them are indexed first (with
`revsearch index`, not timed) so that searches have something to find; two more sets of
`--ingest` photos are copied into a folder the server may index (`--allow`). Then, with
`revsearch serve --workers 2` on a free port:

1. searches alone (after a few seconds of warm-up): CLIENTS threads post random base
   photos to `/api/search` (k=10) back to back for SECONDS (bench/bench_api.py's loop);
2. ingest alone: `POST /api/jobs` with the first set; its rate is read from the job's
   progress over a window of SECONDS that starts `--settle` seconds after the first file
   (the worker pool is up by then), and over the whole job;
3. both: the second set is submitted, and over the same window the clients search.

Any failed or empty search counts as an error and fails the benchmark, as does a window
that the ingest did not cover. Writes docs/results/bench_watch{--tag}.json and .md.
`--ingest-nice 0 --tag _nice0` runs the ingest at the searches' CPU priority, to show what
the server's default of running it lower buys.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_api import free_port, run_load, start_server

import revsearch
from revsearch.config import load_settings
from revsearch.eval import provenance
from revsearch.eval.bench import machine, save_report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def copy_set(photos: list[Path], dest: Path) -> Path:
    """The photos under `dest`, LFW layout kept (so labels come out the same)."""
    for p in photos:
        (dest / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dest / p.parent.name / p.name)
    return dest


class JobWatch:
    """Follows a job; `window(seconds, settle)` is the files done over a window that
    starts `settle` s after the first file was done."""

    def __init__(self, base: str, job_id: str) -> None:
        self.url = f"{base}/api/jobs/{job_id}"
        self.http = httpx.Client(timeout=60)

    def get(self) -> dict:
        return self.http.get(self.url).json()

    def first_file(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while (job := self.get())["done"] < 1:
            if time.monotonic() > deadline or job["state"] not in ("queued", "running"):
                raise RuntimeError(f"the job did not start: {job}")
            time.sleep(0.1)

    def finish(self) -> dict:
        while (job := self.get())["state"] in ("queued", "running"):
            time.sleep(0.5)
        if job["state"] != "done":
            raise RuntimeError(f"the job ended {job['state']}: {job['error']}")
        return job


def ingest_window(watch: JobWatch, seconds: float, settle: float,
                  during=None) -> dict:
    """Files/s over a window of `seconds` (running `during()` meanwhile, if given)."""
    watch.first_file()
    time.sleep(settle)
    start = watch.get()
    started = time.perf_counter()
    load = during() if during else time.sleep(seconds)
    end = watch.get()
    wall = time.perf_counter() - started
    if end["state"] != "running" or end["done"] >= end["total"]:
        raise RuntimeError("the ingest ended inside the window: use more photos (--ingest)")
    return {"files": end["done"] - start["done"], "seconds": round(wall, 1),
            "files_per_s": round((end["done"] - start["done"]) / wall, 2), "searches": load}


def whole_job(job: dict) -> dict:
    r = job["report"]
    return {"indexed": r["indexed"], "faces": r["faces"], "problems": len(r["problems"]),
            "seconds": round(r["seconds"], 1),
            "files_per_s": round(r["indexed"] / r["seconds"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared/data/lfw/lfw-deepfunneled"))
    # Enough photos that an ingest alone outlasts the window on a quiet machine.
    ap.add_argument("--ingest", type=int, default=6000, help="photos per ingest")
    ap.add_argument("--base", type=int, default=1000, help="photos indexed beforehand")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds after the first ingested file before a window starts")
    ap.add_argument("--workers", type=int, default=2, help="the server's ingest processes")
    ap.add_argument("--ingest-nice", type=int,
                    help="the server's --ingest-nice (default: the server's own default)")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    command = "python bench/bench_watch.py " + " ".join(sys.argv[1:])
    loads = [os.getloadavg()[0]]
    photos = sorted(Path(args.lfw).glob("*/*.jpg"))
    need = args.base + 2 * args.ingest
    if len(photos) < need:
        raise SystemExit(f"{args.lfw} has {len(photos)} photos; {need} are needed")
    chosen = random.Random(0).sample(photos, need)
    base_set, sets = chosen[:args.base], [chosen[args.base + i * args.ingest:
                                                 args.base + (i + 1) * args.ingest]
                                          for i in range(2)]
    with tempfile.TemporaryDirectory(prefix="bench_watch_") as tmp:
        work = Path(tmp)
        home, db = work / "home", str(work / "watch.db")
        base_dir = copy_set(base_set, work / "base")
        incoming = [copy_set(s, work / "incoming" / f"set{i}") for i, s in enumerate(sets)]
        done = subprocess.run([sys.executable, "-m", "revsearch", "index", str(base_dir),
                               "--db", db, "--home", str(home), "--no-progress"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        with revsearch.connect(db, home=home) as rs:  # queries with a face: none fails
            queries = [Path(m["path"]) for m in rs.collection.media() if m["n_faces"]]
        port = free_port()
        nice = [] if args.ingest_nice is None else ["--ingest-nice", str(args.ingest_nice)]
        server = start_server(db, port, "--home", str(home), "--allow", str(work / "incoming"),
                              "--workers", str(args.workers), *nice, seconds=180)
        base = f"http://127.0.0.1:{port}"
        try:
            stats = httpx.get(f"{base}/api/stats").json()
            run_load(base, queries, args.clients, min(5.0, args.seconds))  # models load
            alone = run_load(base, queries, args.clients, args.seconds)
            print("searches alone", alone)
            loads.append(os.getloadavg()[0])

            def submit(folder: Path) -> JobWatch:
                r = httpx.post(f"{base}/api/jobs", json={"paths": [str(folder)]}, timeout=60)
                r.raise_for_status()
                return JobWatch(base, r.json()["id"])

            job = submit(incoming[0])
            ingest_alone = ingest_window(job, args.seconds, args.settle)
            ingest_alone["whole_job"] = whole_job(job.finish())
            print("ingest alone", ingest_alone)
            loads.append(os.getloadavg()[0])
            job = submit(incoming[1])
            both = ingest_window(job, args.seconds, args.settle, during=lambda: run_load(
                base, queries, args.clients, args.seconds))
            both["whole_job"] = whole_job(job.finish())
            print("both", both)
            loads.append(os.getloadavg()[0])
            final = httpx.get(f"{base}/api/stats").json()
        finally:
            server.terminate()
            server.wait(60)
    result = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"),
              "git_commit": provenance.git_commit(), "machine": machine(),
              "load_average_1min": [round(x, 2) for x in loads],
              "settings": {"ingest_photos": args.ingest, "base_photos": args.base,
                           "clients": args.clients, "seconds": args.seconds,
                           "settle": args.settle, "server_workers": args.workers,
                           "ingest_nice": (load_settings().ingest_nice
                                           if args.ingest_nice is None else args.ingest_nice)},
              "index_before": {k: stats[k] for k in ("images", "faces")},
              "index_after": {k: final[k] for k in ("images", "faces")},
              "searches_alone": alone, "ingest_alone": ingest_alone,
              "searches_during_ingest": both.pop("searches"), "ingest_during_searches": both}
    ingest_alone.pop("searches")
    print(save_report(Path(args.out), f"bench_watch{args.tag}", result, markdown(result)),
          end="")
    errors = result["searches_alone"]["errors"] + result["searches_during_ingest"]["errors"]
    if errors:
        sys.exit(1)


def markdown(r: dict) -> list[str]:
    s, a, d = r["settings"], r["searches_alone"], r["searches_during_ingest"]
    ia, ib = r["ingest_alone"], r["ingest_during_searches"]
    m = r["machine"]
    lines = [
        "# Searching while the server ingests", "",
        f"Command: `{r['command'].strip()}`  ",
        f"Date: {r['date']}; commit {r['git_commit'][:10]}; {m['cpu']} ({m['cores']} "
        f"cores); 1-minute load average at the start and after each phase: "
        f"{', '.join(map(str, r['load_average_1min']))}.", "",
        f"`revsearch serve --workers {s['server_workers']} --ingest-nice "
        f"{s.get('ingest_nice', 10)}` over Milvus Lite, starting "
        f"from {r['index_before']['images']} LFW photos ({r['index_before']['faces']} "
        f"faces); {s['clients']} clients on the same machine each post a random indexed "
        f"photo to `/api/search` (k=10), back to back, for {s['seconds']:.0f} s. The "
        f"ingests are background jobs (`POST /api/jobs`) of {s['ingest_photos']} other "
        f"LFW photos each; their rate is taken over the same {s['seconds']:.0f} s window "
        f"({s['settle']:g} s after the first file), and over the whole job.", "",
        "| searches | requests | requests/s | errors | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in (("alone", a), ("during the ingest", d)):
        lat = run["latency"]
        lines.append(f"| {name} | {run['requests']} | {run['requests_per_s']} | "
                     f"{run['errors']} | {lat['p50_ms']} | {lat['p95_ms']} | "
                     f"{lat['max_ms']} |")
    lines += ["", "| ingest | files/s in the window | files/s, whole job | whole job s | "
              "problems |", "|---|---|---|---|---|"]
    for name, run in (("alone", ia), ("during the searches", ib)):
        w = run["whole_job"]
        lines.append(f"| {name} | {run['files_per_s']} ({run['files']} files in "
                     f"{run['seconds']} s) | {w['files_per_s']} | {w['seconds']} | "
                     f"{w['problems']} |")
    lines += ["", f"Index after both ingests: {r['index_after']['images']} photos, "
              f"{r['index_after']['faces']} faces."]
    return lines


if __name__ == "__main__":
    main()
