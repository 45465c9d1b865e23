"""Embedding speed per space, and one table of what each space reaches.

    .venv/bin/python bench/bench_spaces.py --spaces sface,arcface_mbf,sface_arcface [--faces 200]

Speed: one process, one thread; the faces of random LFW photos (seed 0) are detected
once, then each space aligns and embeds them; reported as ms per face (p50, mean).
Accuracy: read from the results of `revsearch eval lfw --space X` (and `ytf`, `occlusion`) in
--results (lfw_X.json, ytf_X.json, occlusion_lfw_X.json), so every figure keeps the
command that made it. Writes spaces_compare.json and .md (with each
space's licence, and the caveat for research-only models).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from revsearch.config import load_settings
from revsearch.eval.bench import machine, percentiles, save_report
from revsearch.eval.report import licence_lines
from revsearch.faces.pipeline import Pipeline
from revsearch.media import load_image
from revsearch.spaces import space_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
TARGETS = {"ytf_rank1": 0.97, "lfw_rank1": 0.985, "lfw_verification": 0.996}


def speed(spaces: list[str], folder: Path, n_faces: int) -> dict:
    photos = sorted(folder.glob("*/*.jpg"))
    rng = random.Random(0)
    detector = Pipeline(load_settings(workers=1), threads=1)
    faces = []
    while len(faces) < n_faces:
        image = load_image(rng.choice(photos))
        faces += [(image, f) for f in detector.detect(image)]
    out = {}
    for name in spaces:
        pipe = Pipeline(load_settings(space=name, workers=1), threads=1)
        image, face = faces[0]
        pipe.embedder.embed(image, [face])  # warm up outside the timing
        ms = []
        for image, face in faces[:n_faces]:
            t = time.perf_counter()
            pipe.embedder.embed(image, [face])
            ms.append((time.perf_counter() - t) * 1000)
        out[name] = percentiles(ms)
    return out


def _read(results: Path, stem: str) -> dict | None:
    path = results / f"{stem}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def accuracy(name: str, results: Path) -> dict:
    key = space_for(load_settings(space=name)).key
    row: dict = {}
    lfw = _read(results, f"lfw_{key}")
    if lfw:
        row["lfw_rank1"] = lfw["retrieval"]["rank1"]
        row["lfw_mAP"] = lfw["retrieval"]["mAP"]
        row["lfw_verification"] = lfw["verification"]["accuracy"]
    ytf = _read(results, f"ytf_{key}")
    if ytf:
        methods = ytf["runs"]["clean"]["methods"]
        row["ytf_rank1"] = methods["quality"]["retrieval"]["rank1"]
        row["ytf_verification"] = methods["quality"]["verification"]["accuracy"]
        if "occluded_2of5" in ytf["runs"]:
            row["ytf_occluded_rank1"] = \
                ytf["runs"]["occluded_2of5"]["methods"]["quality"]["retrieval"]["rank1"]
    occ = _read(results, f"occlusion_lfw_{key}")
    if occ:
        # With occlusion handling ("after"), as a search runs by default.
        runs = {k: v["after"]["rank1"] for k, v in occ["runs"].items() if k != "clean"}
        row["occluded_lfw_rank1_mean"] = sum(runs.values()) / len(runs)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="sface,arcface_mbf,sface_arcface")
    ap.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "lfw"
                                            / "lfw-deepfunneled"),
                    help="a folder of person folders of photos (LFW's layout)")
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--results", default=str(RESULTS), help="where the eval JSONs are")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    names = args.spaces.split(",")
    spaces = {n: space_for(load_settings(space=n)) for n in names}
    timing = speed(names, Path(args.photos), args.faces)
    rows = {n: {"licence": spaces[n].licence, "dim": spaces[n].dim,
                "embed_ms_per_face": timing[n], **accuracy(n, Path(args.results))}
            for n in names}
    result = {"command": "python bench/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": machine(), "targets": TARGETS,
              "spaces": rows}

    def pct(row: dict, key: str) -> str:
        if key not in row:
            return "-"
        mark = " ✓" if key in TARGETS and row[key] >= TARGETS[key] else ""
        return f"{row[key] * 100:.2f}%{mark}"

    m = result["machine"]
    lines = ["# Embedding spaces compared: accuracy, speed, licence", "",
             f"Command: `{result['command']}`  ",
             f"Date: {result['date']}; machine: {m['cores']} cores, {m['cpu']}. Speed: one "
             "thread, align + embed per face (other processes were running: compare the "
             "spaces with each other, not with other pages). Accuracy: from "
             "`revsearch eval lfw --space X` (and `ytf`, `occlusion`) (the pages lfw_X.md, "
             "ytf_X.md, occlusion_lfw_X.md). ✓ = meets the target (YTF rank-1 >= 97%, "
             "LFW retrieval rank-1 >= 98.5%, LFW verification >= 99.6%).", "",
             *licence_lines({n: r["licence"] for n, r in rows.items()}),
             "| space | dim | LFW retrieval rank-1 | LFW mAP | LFW verification (pairs.txt) | "
             "YTF rank-1 | YTF verification | YTF rank-1, 2 of 5 frames occluded | "
             "occluded LFW queries, mean rank-1 | embed ms/face (p50) | licence |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in rows.items():
        mAP = f"{r['lfw_mAP']:.4f}" if "lfw_mAP" in r else "-"
        lines.append(
            f"| {n} | {r['dim']} | {pct(r, 'lfw_rank1')} | {mAP} | "
            f"{pct(r, 'lfw_verification')} | {pct(r, 'ytf_rank1')} | "
            f"{pct(r, 'ytf_verification')} | {pct(r, 'ytf_occluded_rank1')} | "
            f"{pct(r, 'occluded_lfw_rank1_mean')} | {r['embed_ms_per_face']['p50_ms']} | "
            f"{r['licence']} |")
    print(save_report(Path(args.out), "spaces_compare", result, lines))


if __name__ == "__main__":
    main()
