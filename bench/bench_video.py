"""Benchmark video ingest and video queries on the shared real videos.

    .venv/bin/python bench/bench_video.py [--data DIR] [--ytf-people 100]

Three sets, each ingested into a fresh Milvus Lite database with the default settings
(5 sampled frames/s, both cores): the 11 GRID clips (360x288), street.mp4 (1920x1080,
several small faces) and the YouTube Faces frame folders of the first --ytf-people
people. Reports sampled frames/s, video seconds per wall second, tracks found; then the
latency of video -> video queries (GRID clips and YTF folders as queries). Writes
docs/results/bench_video.json and .md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2

import revsearch
from revsearch.eval.bench import machine, percentiles, save_report
from revsearch.video.frames import FOLDER_FPS, folder_frames, read_frames

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def video_seconds_and_frames(paths: list[Path], sampling) -> tuple[float, int]:
    seconds, frames = 0.0, 0
    for path in paths:
        if path.is_dir():
            n = len(folder_frames(path))
            seconds += n / FOLDER_FPS
            frames += n
            continue
        frames += sum(1 for _ in read_frames(path, sampling))
        cap = cv2.VideoCapture(str(path))
        seconds += cap.get(cv2.CAP_PROP_FRAME_COUNT) / (cap.get(cv2.CAP_PROP_FPS) or 25.0)
        cap.release()
    return seconds, frames


def bench_set(name: str, sources: list[Path], queries: list[Path], work: Path) -> dict:
    home = work / f"home_{name}"
    with revsearch.connect(str(home / "bench.db"), home=home, progress=False) as rs:
        units = [u for s in sources for u in _videos_under(s)]
        seconds, frames = video_seconds_and_frames(units, rs.settings.sampling)
        start = time.perf_counter()
        report = rs.index(sources)
        took = time.perf_counter() - start
        rs.pipeline  # noqa: B018 - load the models before timing queries
        latencies = []
        for q in queries:
            t0 = time.perf_counter()
            rs.search(q, k=10, target="videos")
            latencies.append((time.perf_counter() - t0) * 1000)
        stats = rs.stats()
    return {"set": name, "videos": report.videos, "problems": len(report.problems),
            "tracks": stats["tracks"], "video_seconds": round(seconds, 1),
            "sampled_frames": frames, "ingest_seconds": round(took, 1),
            "frames_per_s": round(frames / took, 1),
            "video_seconds_per_s": round(seconds / took, 2),
            "query": percentiles(latencies) if latencies else None}


def _videos_under(folder: Path) -> list[Path]:
    from revsearch.media import walk
    from revsearch.video.frames import is_frame_folder

    return list(walk([folder], unit=is_frame_folder))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--ytf-people", type=int, default=100)
    ap.add_argument("--sets", default="grid,street,ytf", help="which sets to run")
    ap.add_argument("--out", default=str(RESULTS),
                    help="folder for the JSON and Markdown results (default docs/results)")
    args = ap.parse_args()
    data = Path(args.data)
    grid = data / "videos" / "grid"
    street = data / "videos" / "street"
    ytf_root = data / "ytf" / "aligned_images_DB"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ytf = work / "ytf" / "aligned_images_DB"
        for person in sorted(p.name for p in ytf_root.iterdir())[:args.ytf_people]:
            shutil.copytree(ytf_root / person, ytf / person)
        ytf_queries = [next(p.iterdir()) for p in sorted(ytf.iterdir())[:30]]
        sets = {"grid": ([grid], sorted(grid.glob("*.mpg"))),
                "street": ([street], [street / "street.mp4"]),
                "ytf": ([ytf.parent], ytf_queries)}
        runs = [bench_set(name, *sets[name], work) for name in args.sets.split(",")]
    result = {"machine": machine(), "sampling": "default: <= 5 frames/s, every frame of "
              "YTF folders", "runs": runs,
              "command": "python bench/bench_video.py " + " ".join(sys.argv[1:])}
    lines = ["# Video ingest and query benchmark", "",
             f"Command: `{result['command'].strip()}` on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores).", "",
             "Ingest with default settings (both cores, 5 sampled frames/s for files; "
             "YouTube Faces folders are already sampled stills, each frame is used). "
             "Query: video -> videos, k=10, end to end (decode, detect, track, search), "
             "models already loaded. Ingest times include starting the workers and "
             "loading their models.", "",
             "| set | videos | video s | sampled frames | tracks | ingest s | frames/s | "
             "video s per s | query p50 ms | query p95 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        q = r["query"] or {"p50_ms": "-", "p95_ms": "-"}
        lines.append(f"| {r['set']} | {r['videos']} | {r['video_seconds']} | "
                     f"{r['sampled_frames']} | {r['tracks']} | {r['ingest_seconds']} | "
                     f"{r['frames_per_s']} | {r['video_seconds_per_s']} | {q['p50_ms']} | "
                     f"{q['p95_ms']} |")
    print(save_report(Path(args.out), "bench_video", result, lines), end="")


if __name__ == "__main__":
    main()
