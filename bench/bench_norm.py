"""Query latency added by score normalisation (AS-norm) on an LFW index.

    .venv/bin/python bench/bench_norm.py --db PATH [--queries 300] [--space sface]

Opens an existing index of full LFW (e.g. the one `revsearch eval lfw` builds under
HOME/eval/), then runs the same --queries searches for random LFW photos (seed 0), k=10,
end to end (read, decode, detect, embed, search, decide), with `norm` none and asnorm,
interleaved so load on the machine hits both alike. The cohort is sampled once per open
index: its one-time cost is reported apart. Writes docs/results/bench_norm.json and .md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import revsearch
from revsearch.eval.bench import machine, percentiles, save_report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="an index of full LFW")
    ap.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "lfw"
                                            / "lfw-deepfunneled"),
                    help="a folder of person folders of photos (LFW's layout)")
    ap.add_argument("--space", default="sface")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    photos = sorted(Path(args.photos).glob("*/*.jpg"))
    queries = random.Random(0).sample(photos, args.queries)
    times: dict[str, list[float]] = {"none": [], "asnorm": []}
    with revsearch.connect(args.db, space=args.space, workers=1, progress=False) as plain, \
            revsearch.connect(args.db, space=args.space, workers=1, progress=False,
                              norm="asnorm") as normed:
        faces = plain.stats()["faces"]
        plain.search(queries[0], k=10)  # models and collection loaded outside the timing
        started = time.perf_counter()
        cohort = len(normed.cohort())
        cohort_ms = (time.perf_counter() - started) * 1000
        normed.search(queries[0], k=10)
        decision = normed.decision()
        for q in queries:
            for name, rs in (("none", plain), ("asnorm", normed)):
                t = time.perf_counter()
                try:
                    rs.search(q, k=10)
                except revsearch.NoFaceError:
                    continue
                times[name].append((time.perf_counter() - t) * 1000)
    stats = {name: percentiles(ms) for name, ms in times.items()}
    added = round(stats["asnorm"]["p50_ms"] - stats["none"]["p50_ms"], 2)
    result = {"command": "python bench/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": machine(), "space": args.space,
              "index_faces": faces, "cohort_faces": cohort,
              "cohort_sampling_ms": round(cohort_ms, 1), "decision": decision.score,
              "latency": stats, "added_p50_ms": added}
    m = result["machine"]
    lines = ["# Query latency with score normalisation (AS-norm)", "",
             f"Command: `{result['command']}`  ",
             f"Date: {result['date']}; machine: {m['cores']} cores, {m['cpu']}; space "
             f"{args.space}, index of {faces} faces (Milvus Lite).", "",
             "| norm | queries | p50 ms | p95 ms | mean ms |", "|---|---|---|---|---|"]
    for name, s in stats.items():
        lines.append(f"| {name} | {s['n']} | {s['p50_ms']} | {s['p95_ms']} | {s['mean_ms']} |")
    lines += ["", f"Added p50: **{added} ms** (target: p50 with normalisation <= 40 ms). "
              f"Sampling the cohort ({cohort} faces) once per open index: {cohort_ms:.0f} ms. "
              f"Decisions were made on: {decision.score}.", ""]
    print(save_report(Path(args.out), "bench_norm", result, lines))


if __name__ == "__main__":
    main()
