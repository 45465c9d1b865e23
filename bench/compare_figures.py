"""Draw the LFW pipelines side by side: CMC (and ROC where stored) on one axis each; and
the million-vector index runs side by side: recall against latency.

    .venv/bin/python bench/compare_figures.py [--results DIR] [--out FILE]

Reads every `lfw_<space>.json` that `revsearch eval lfw` wrote under --results (default
docs/results) and draws `compare_lfw_cmc_roc.png`: left, the CMC curves of all of them on
one axis (same y range, 0 to 1, so the face pipeline and the AWS-demo baseline are
compared at a glance); right, the ROC on LFW `pairs.txt`. Nothing is recomputed: the
figure shows only what the JSON files hold. The CMC is stored (`retrieval.cmc`, ranks 1
to 100); a full ROC curve is drawn only from a file that stores one
(`verification.roc` with `far` and `tar` lists). Files without it contribute the one
operating point they do store (`verification.tar_at_far_1e-3`) and their ROC AUC, marked
as such in the legend.

Beside it, `scale_curves.png`: recall@10 against p50 latency of every `scale*.json` that
`bench/bench_scale.py` wrote for a million vectors (one line per index and build, its
swept ef or nprobe marked at each point).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
NAME = "compare_lfw_cmc_roc.png"
SCALE_NAME = "scale_curves.png"


def load(results: Path) -> dict[str, dict]:
    """Each lfw_<space>.json that holds a CMC curve, by space, the baseline last."""
    runs = {}
    for path in sorted(results.glob("lfw_*.json")):
        data = json.loads(path.read_text())
        if data.get("retrieval", {}).get("cmc"):
            runs[data.get("pipeline", path.stem.removeprefix("lfw_"))] = data
    return dict(sorted(runs.items(), key=lambda kv: (kv[0].startswith("baseline"), kv[0])))


def stored_roc(verification: dict) -> tuple[np.ndarray, np.ndarray] | None:
    roc = verification.get("roc")
    if isinstance(roc, dict) and roc.get("far") and roc.get("tar"):
        return np.asarray(roc["far"], dtype=float), np.asarray(roc["tar"], dtype=float)
    return None


def draw(runs: dict[str, dict], out: Path) -> list[str]:
    """Write the figure; returns the spaces whose ROC curve is not stored."""
    fig, (cmc_ax, roc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    missing_roc = []
    for i, (space, data) in enumerate(runs.items()):
        colour = f"C{i}"
        cmc = np.asarray(data["retrieval"]["cmc"], dtype=float)
        ranks = np.arange(1, len(cmc) + 1)
        cmc_ax.plot(ranks, cmc, color=colour,
                    label=f"{space} (rank-1 {data['retrieval']['rank1']:.4f})")
        ver = data.get("verification", {})
        curve = stored_roc(ver)
        auc = ver.get("auc")
        auc_text = f", AUC {auc:.4f}" if auc is not None else ""
        if curve is not None:
            far, tar = curve
            roc_ax.plot(np.maximum(far, 1e-4), tar, color=colour, label=f"{space}{auc_text}")
        else:
            missing_roc.append(space)
            point = ver.get("tar_at_far_1e-3")
            if point is not None:
                roc_ax.plot([1e-3], [point], "o", color=colour,
                            label=f"{space}: TAR at FAR 1e-3 only{auc_text} (curve not stored)")
    cmc_ax.set(xscale="log", xlabel="rank", ylabel="identification rate (CMC)", ylim=(0, 1.02),
               title="LFW retrieval: 9,164 queries vs 13,233 images")
    roc_ax.set(xscale="log", xlabel="false accept rate", ylabel="true accept rate",
               ylim=(0, 1.02), xlim=(1e-4, 1), title="LFW pairs.txt verification")
    for ax in (cmc_ax, roc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center right")
    _save(fig, out)
    return missing_roc


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def scale_runs(results: Path, vectors: int = 1_000_000) -> dict[str, dict]:
    """The server part of each scale*.json over `vectors` vectors, by a label of its index,
    build parameters and segments."""
    runs = {}
    for path in sorted(results.glob("scale*.json")):
        server = json.loads(path.read_text()).get("server", {})
        if server.get("vectors") != vectors or not server.get("searches"):
            continue
        # Files from before the build was recorded ran with bench_scale's defaults then.
        build = server.get("build") or {"M": server.get("M", 16),
                                        "efConstruction": server.get("efConstruction", 200)}
        params = ", ".join(f"{k} {v}" for k, v in build.items())
        n = len(server.get("segments", []))
        segments = f"{n} segment{'s' * (n != 1)}" if n else "segments not recorded"
        runs[f"{server.get('index', 'HNSW')} {params} ({segments})"] = server
    return runs


def draw_scale(runs: dict[str, dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, server) in enumerate(runs.items()):
        knob = "nprobe" if "nprobe" in server["searches"][0] else "ef"
        pts = server["searches"]
        ax.plot([r["p50_ms"] for r in pts], [r["recall_at_10"] for r in pts], "o-",
                color=f"C{i}", label=label)
        for r in pts:
            ax.annotate(f"{knob} {r[knob]}", (r["p50_ms"], r["recall_at_10"]), fontsize=6,
                        xytext=(3, -8), textcoords="offset points", color=f"C{i}")
    ax.set(xscale="log", xlabel="p50 latency per query (ms, log scale)", ylabel="recall@10",
           title="A million synthetic vectors on a Milvus server (COSINE, 1,000 queries)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where lfw_*.json are")
    parser.add_argument("--out", type=Path, default=None, help=f"PNG (default RESULTS/{NAME})")
    parser.add_argument("--scale-out", type=Path, default=None,
                        help=f"PNG (default RESULTS/{SCALE_NAME})")
    args = parser.parse_args(argv)
    runs = load(args.results)
    if not runs:
        parser.error(f"no lfw_*.json with a CMC curve under {args.results}")
    out = args.out or args.results / NAME
    missing = draw(runs, out)
    print(f"{len(runs)} pipelines ({', '.join(runs)}) -> {out}")
    if missing:
        print(f"ROC curve not stored in the JSON of: {', '.join(missing)} "
              "(plotted their TAR at FAR 1e-3 point only)")
    scale = scale_runs(args.results)
    if scale:
        scale_out = args.scale_out or args.results / SCALE_NAME
        draw_scale(scale, scale_out)
        print(f"{len(scale)} million-vector index runs -> {scale_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
