"""Evaluation outputs: Markdown tables, PNG plots and example galleries."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _figure(path: Path):
    """One small plot: yields its axes, then lays it out, saves it and frees it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    try:
        yield ax
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def lfw_plots(out: Path, key: str, g, ret: dict, ver: dict) -> None:
    with _figure(out / f"lfw_{key}_cmc.png") as ax:
        ax.plot(np.arange(1, len(ret["cmc"]) + 1), ret["cmc"])
        ax.set(xscale="log", xlabel="rank", ylabel="identification rate",
               title=f"CMC, LFW retrieval ({key})")
        ax.grid(alpha=0.3)

    far, tar = ver["_roc"]
    with _figure(out / f"lfw_{key}_roc.png") as ax:
        ax.plot(np.maximum(far, 1e-4), tar)
        ax.set(xscale="log", xlabel="false accept rate", ylabel="true accept rate",
               title=f"ROC, LFW pairs.txt ({key})", xlim=(1e-4, 1))
        ax.grid(alpha=0.3)

    scores, same = ver["_scores"], ver["_same"]
    with _figure(out / f"lfw_{key}_hist.png") as ax:
        bins = np.linspace(scores.min(), scores.max(), 60)
        ax.hist(scores[same], bins=bins, alpha=0.6, label="same person")
        ax.hist(scores[~same], bins=bins, alpha=0.6, label="different people")
        ax.set(xlabel="similarity" if g.metric != "L2" else "negative L2 distance",
               ylabel="pairs", title=f"pairs.txt scores ({key})")
        ax.legend()
    examples(out / f"lfw_{key}_examples.png", g, ret)


def examples(path: Path, g, ret: dict, n_each: int = 3, thumb: int = 96) -> None:
    """Rows: query, then its top results; green border = same person, red = not."""
    rng = np.random.default_rng(0)
    first, qidx = ret["_first"], ret["_query_idx"]
    good = rng.permutation(np.flatnonzero(first == 1))[:n_each]
    bad = rng.permutation(np.flatnonzero(first > 1))[:n_each]
    rows = [(int(qidx[i]), "hit") for i in good] + [(int(qidx[i]), "miss") for i in bad]
    cols = 1 + len(next(iter(ret["_tops"].values()))) if ret["_tops"] else 1
    pad = 6
    canvas = Image.new("RGB", (cols * (thumb + pad) + pad, len(rows) * (thumb + pad) + pad),
                       "white")
    draw = ImageDraw.Draw(canvas)
    for r, (q, _) in enumerate(rows):
        items = [(q, None)] + [(int(t), g.labels[int(t)] == g.labels[q])
                               for t in ret["_tops"][q]]
        for c, (img_i, correct) in enumerate(items):
            x, y = pad + c * (thumb + pad), pad + r * (thumb + pad)
            im = Image.open(g.paths[img_i]).convert("RGB").resize((thumb, thumb))
            canvas.paste(im, (x, y))
            color = "blue" if correct is None else ("green" if correct else "red")
            draw.rectangle([x - 2, y - 2, x + thumb + 1, y + thumb + 1], outline=color, width=3)
    canvas.save(path)


def _row(r: dict) -> str:
    ret, ver = r["retrieval"], r["verification"]
    return (f"| {r['pipeline']} | {ret['mAP']:.4f} | {ret['rank1']:.4f} | {ret['rank5']:.4f} "
            f"| {ret['rank10']:.4f} | {ret['precision_at_10']:.4f} "
            f"| {ver['accuracy'] * 100:.2f} +- {ver['accuracy_std'] * 100:.2f} "
            f"| {ver['auc']:.4f} | {ver['tar_at_far_1e-3']:.4f} | {r['no_face_images']} |")


HEADER = ("| pipeline | mAP | rank-1 | rank-5 | rank-10 | P@10 | verification acc. (%) "
          "| ROC AUC | TAR @ FAR 1e-3 | no face found |\n|---|---|---|---|---|---|---|---|---|---|")


def lfw_markdown(out: Path, results: list[dict], command: str = "") -> Path:
    name = "lfw_compare.md" if len(results) > 1 else f"lfw_{results[0]['pipeline']}.md"
    first = results[0]
    lines = [
        "# LFW evaluation" + (": face pipeline vs AWS baseline" if len(results) > 1 else ""),
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"Retrieval: each of {first['retrieval']['queries']} images of the people with 2+ "
        f"images queries the {first['retrieval']['gallery_images']}-image gallery (itself "
        "excluded); an image is relevant when it shows the query's person. Verification: "
        "LFW `pairs.txt`, 10 folds, threshold fitted on 9 folds, accuracy on the 10th.",
        "",
        HEADER,
        *[_row(r) for r in results],
        "",
    ]
    for r in results:
        k = r["pipeline"]
        ret = r["retrieval"]
        lines += [f"## {k}", "",
                  f"Rank-1 misses: {ret['rank1_misses']} of {ret['queries']} queries; in "
                  f"{ret['rank1_misses_on_unlabelled_face']} of them the top image won "
                  "through a face that is not its labelled person (LFW labels one person per "
                  "image; the query's person may be the one in the background). They count "
                  "as misses above.", "",
                  f"![CMC](lfw_{k}_cmc.png) ![ROC](lfw_{k}_roc.png) ![scores](lfw_{k}_hist.png)",
                  "", "Examples (query in blue, then the top 5; green = same person): "
                  "first three rows rank-1 hits, last three misses.", "",
                  f"![examples](lfw_{k}_examples.png)", ""]
    path = out / name
    path.write_text("\n".join(lines))
    return path
