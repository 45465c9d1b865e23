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


def licence_lines(licences: dict[str, str]) -> list[str]:
    """The licence of each space's models, with the caveat for research-only ones: every
    page that shows a figure made with such a model says so."""
    lines = []
    for key, licence in licences.items():
        if not licence:
            continue
        lines.append(f"Licence of the models of {key}: {licence}.")
        if any(w in licence.lower() for w in ("non-commercial", "research")):
            lines.append(f"**Licence caveat: {key} uses a model licensed for non-commercial "
                         "research use only. Its figures show what a stronger network "
                         "gives; they are not available to a commercial deployment, and "
                         "the model is never a default (README, \"Bring your own model\").**")
    return [*lines, ""] if lines else []


def _row(r: dict) -> str:
    ret, ver = r["retrieval"], r["verification"]
    return (f"| {r['pipeline']} | {ret['mAP']:.4f}{_ci(ret, 'mAP')} "
            f"| {ret['rank1']:.4f}{_ci(ret, 'rank1')} | {ret['rank5']:.4f} "
            f"| {ret['rank10']:.4f} | {ret['precision_at_10']:.4f} "
            f"| {ver['accuracy'] * 100:.2f} +- {ver['accuracy_std'] * 100:.2f} "
            f"| {ver['auc']:.4f} | {ver['tar_at_far_1e-3']:.4f} | {r['no_face_images']} |")


def _ci(block: dict, key: str) -> str:
    """" [lo, hi]" when the result carries a 95% bootstrap interval for `key`."""
    ci = block.get(f"{key}_ci95")
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


HEADER = ("| pipeline | mAP [95% CI] | rank-1 [95% CI] | rank-5 | rank-10 | P@10 "
          "| verification acc. (%) "
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
        "LFW `pairs.txt`, 10 folds, threshold fitted on 9 folds, accuracy on the 10th "
        "(mean +- std over folds). Intervals: 95% percentile bootstrap over queries.",
        "",
        HEADER,
        *[_row(r) for r in results],
        "",
        *licence_lines({r["pipeline"]: r.get("licence", "") for r in results}),
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


# -- YouTube Faces -----------------------------------------------------------------------
def ytf_plots(out: Path, result: dict) -> None:
    key = result["pipeline"]
    for run, data in result["runs"].items():
        methods = data["methods"]
        with _figure(out / f"ytf_{key}_{run}_cmc.png") as ax:
            for name, entry in methods.items():
                cmc = entry["retrieval"]["cmc"]
                ax.plot(np.arange(1, len(cmc) + 1), cmc, label=name)
            ax.set(xlabel="rank", ylabel="identification rate", xlim=(1, 10),
                   title=f"CMC, YTF video retrieval ({run})")
            ax.legend()
            ax.grid(alpha=0.3)
        with _figure(out / f"ytf_{key}_{run}_roc.png") as ax:
            for name, entry in methods.items():
                if "verification" in entry:
                    far, tar = entry["verification"]["_roc"]
                    ax.plot(np.maximum(far, 1e-3), tar, label=name)
            ax.set(xscale="log", xlabel="false accept rate", ylabel="true accept rate",
                   title=f"ROC, YTF splits.txt pairs ({run})", xlim=(1e-3, 1))
            ax.legend()
            ax.grid(alpha=0.3)


def ytf_markdown(out: Path, result: dict) -> Path:
    key = result["pipeline"]
    lines = [f"# YouTube Faces video retrieval ({key})", "",
             f"Command: `{result['command']}`" if result.get("command") else "", "",
             f"{result['videos']} videos of {result['people']} people. Retrieval: every video "
             "queries all the others (itself excluded); relevant = same person. `single_frame`"
             ": each frame alone queries every frame of the other videos (metrics averaged "
             "over query frames). Verification: YTF `splits.txt` pairs whose two videos are "
             "present, 10-fold over YTF's splits.", "",
             *licence_lines({key: result.get("licence", "")})]
    for run, data in result["runs"].items():
        lines += [f"## {run}", "",
                  f"Frames read {data['frames']}, frames in the person-of-interest track "
                  f"{data['frames_with_poi']}, videos with no face found "
                  f"{data['videos_without_face']}.", "",
                  "| method | queries | mAP [95% CI] | rank-1 [95% CI] | rank-5 | "
                  "verification pairs | "
                  "verification acc. (%) | ROC AUC |", "|---|---|---|---|---|---|---|---|"]
        for name, entry in data["methods"].items():
            r = entry["retrieval"]
            v = entry.get("verification")
            ver = (f"{v['pairs']} ({v['same_pairs']} same) | {v['accuracy'] * 100:.2f} +- "
                   f"{v['accuracy_std'] * 100:.2f} | {v['auc']:.4f}") if v else "- | - | -"
            lines.append(f"| {name} | {r['queries']} | {r['mAP']:.4f}{_ci(r, 'mAP')} | "
                         f"{r['rank1']:.4f}{_ci(r, 'rank1')} | "
                         f"{r['rank5']:.4f} | {ver} |")
        lines += ["", f"![CMC](ytf_{key}_{run}_cmc.png) ![ROC](ytf_{key}_{run}_roc.png)", ""]
    path = out / f"ytf_{key}.md"
    path.write_text("\n".join(lines))
    return path


# -- occlusion ---------------------------------------------------------------------------
def occlusion_markdown(out: Path, result: dict) -> Path:
    key = result["pipeline"]
    lines = [f"# Occluded LFW queries ({key})", "",
             f"Command: `{result['command']}`" if result.get("command") else "", "",
             f"Date {result.get('date', '?')}, commit `{result.get('git_commit', '?')[:10]}`, "
             f"{result.get('machine', {}).get('cpu', '?')}.", "",
             f"The same queries, clean and with each occluder over the labelled face, "
             f"searched against the clean {result['gallery_images']}-image LFW gallery "
             "(query image excluded). Lost = no face found any more near the occluded one "
             "(counted as a miss). Before: the plain query path. After: with occlusion "
             "handling (query-only detector fallback, occlusion detector, the best "
             "candidates compared again on the visible part).", "",
             *licence_lines({key: result.get("licence", "")}),
             "| query | queries | lost before | lost after | rank-1 before | rank-1 after "
             "| rank-5 before | rank-5 after | mAP before | mAP after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, r in result["runs"].items():
        b, a = r["before"], r["after"]
        lines.append(f"| {kind} | {r['queries']} | {b['lost']} | {a['lost']} | "
                     f"{b['rank1']:.4f}{_ci(b, 'rank1')} | {a['rank1']:.4f}{_ci(a, 'rank1')} | "
                     f"{b['rank5']:.4f} | "
                     f"{a['rank5']:.4f} | {b['mAP']:.4f} | {a['mAP']:.4f} |")
    confusion = result.get("detector_confusion")
    if confusion:
        regions = list(next(iter(confusion.values())))
        lines += ["", "Occlusion detector's verdict per occluder (faces found after the "
                  "fallback; lost = no face):", "",
                  "| query | " + " | ".join(regions) + " | flagged |",
                  "|---" * (len(regions) + 2) + "|"]
        for kind, row in confusion.items():
            found = sum(v for r, v in row.items() if r != "lost")
            flagged = sum(v for r, v in row.items() if r not in ("lost", "none"))
            share = f"{flagged / found:.3f}" if found else "-"
            lines.append(f"| {kind} | " + " | ".join(str(row[r]) for r in regions) +
                         f" | {share} |")
    lines += ["", f"![before and after](occlusion_lfw_{key}.png)", "",
              "![occluders](occlusion_examples.png)", ""]
    path = out / f"occlusion_lfw_{key}.md"
    path.write_text("\n".join(lines))
    return path


def occlusion_plot(out: Path, result: dict) -> Path:
    """Rank-1 before and after occlusion handling, per occluder."""
    plt = _plt()
    kinds = list(result["runs"])
    before = [result["runs"][k]["before"]["rank1"] for k in kinds]
    after = [result["runs"][k]["after"]["rank1"] for k in kinds]
    x = np.arange(len(kinds))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, before, 0.4, label="before")
    ax.bar(x + 0.2, after, 0.4, label="after (occlusion handling)")
    for xi, (b, a) in enumerate(zip(before, after, strict=True)):
        ax.text(xi - 0.2, b + 0.01, f"{b:.3f}", ha="center", fontsize=7)
        ax.text(xi + 0.2, a + 0.01, f"{a:.3f}", ha="center", fontsize=7)
    ax.set_xticks(x, kinds)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("rank-1")
    ax.set_title(f"Occluded LFW queries, {result['pipeline']}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = out / f"occlusion_lfw_{result['pipeline']}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def occlusion_examples(path: Path, image_path: str, pipeline, rng) -> None:
    """One face, clean and under each occluder, side by side."""
    from revsearch.eval.occlusion import KINDS, occlude
    from revsearch.faces.pipeline import central_face
    from revsearch.media import load_image

    image = load_image(image_path)
    faces = pipeline.detect(image)
    if not faces:
        return
    face = faces[central_face(faces, image.shape)]
    tiles = [image] + [occlude(image, face, kind, rng) for kind in KINDS]
    strip = np.concatenate(tiles, axis=1)[:, :, ::-1]
    Image.fromarray(np.ascontiguousarray(strip)).save(path)


# -- stated vs measured FAR --------------------------------------------------------------
def _sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def far_markdown(out: Path, result: dict, licence: str = "") -> Path:
    key = result["pipeline"]
    y = result["ytf"]
    cal = result["calibration"]
    lines = [f"# Stated vs measured false-accept rate ({key})", "",
             f"Command: `{result['command']}` ({result['created']})", "",
             f"Thresholds: the calibration of {key} ({cal['source']}). Measured on data "
             "they were not fitted on. YouTube Faces: "
             f"{y['people']} people, {y['excluded_devtrain_names']} left out because LFW "
             f"DevTrain has their name, {y['eligible_people']} kept ({y['videos']} videos, "
             f"{y['frames']} frames); tracks aggregated by `{y['aggregation']}`. "
             f"'after': one threshold per comparison kind, fitted at the stated FAR on "
             f"{y['fitting_people']} of those people, measured on the other "
             f"{y['measuring_people']}. Intervals: exact binomial, 95% (pairs sharing a "
             "video or image are not independent: read them as lower bounds).", "",
             *licence_lines({key: licence}),
             "| kind | population | method | stated FAR | threshold | measured FAR [95% CI] "
             "| false accepts / impostor pairs | measured/stated | TAR (genuine pairs) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        for p in row["points"]:
            lo, hi = p["far_ci"]
            ok = f" ({p['verdict']})"
            lines.append(
                f"| {row['kind']} | {row['population']} | {row['method']} | "
                f"{p['stated_far']:g} | {p['threshold']:.4f} | {_sci(p['far'])} "
                f"[{_sci(lo)}, {_sci(hi)}] | {p['false_accepts']} / {p['n_impostor']} | "
                f"{p['ratio']:.2f}{ok} | {p['tar']:.4f} ({p['n_genuine']}) |")
    lines += ["", "Per-kind thresholds fitted on the fitting half:", "",
              "| stated FAR | " + " | ".join(sorted(next(iter(result["by_kind"].values()))))
              + " |", "|---|" + "---|" * len(next(iter(result["by_kind"].values())))]
    for far, kinds in result["by_kind"].items():
        lines.append(f"| {float(far):g} | " + " | ".join(f"{kinds[k]:.4f}" for k in
                                                          sorted(kinds)) + " |")
    path = out / f"far_{key}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- score normalisation -----------------------------------------------------------------
def norm_markdown(out: Path, result: dict) -> Path:
    key = result["pipeline"]
    sel, held, params = result["selection"], result["held_out"], result["params"]
    lines = [f"# Score normalisation: AS-norm vs the raw cosine ({key})", "",
             f"Command: `{result['command']}` ({result['created']})", "",
             *licence_lines({key: result.get("licence", "")}),
             "## 1. Parameters, chosen on LFW DevTrain only", "",
             f"DevTrain's listed images split by person: {sel['cohort_pool']} cohort images, "
             f"{sel['pair_images']} images whose every pair is scored "
             f"({sel['pairs']['genuine']} genuine, {sel['pairs']['impostor']} impostor). "
             f"Chosen (best mean TAR at FAR 1e-3 and 1e-4; among settings within one genuine "
             f"pair of the best, the largest cohort, then k; `revsearch calibrate` makes the "
             f"same choice): cohort {params['cohort']}, "
             f"top {params['top_k']}. `asnorm` (as shipped) leaves out of a face's cohort "
             "statistics the cohort faces it matches at the loosest cosine point "
             f"(cosine >= {params['exclude_above']:.4f}, FAR 1e-2 on DevTrain); "
             "`asnorm_keeping_matches` is plain AS-norm.", "",
             "| method | cohort | top k | TAR @ 1e-3 | TAR @ 1e-4 |", "|---|---|---|---|---|"]
    for r in sel["grid"]:
        lines.append(f"| {r['method']} | {r.get('cohort', '-')} | {r.get('top_k', '-')} | "
                     f"{r['tar@0.001']:.4f} | {r['tar@0.0001']:.4f} |")
    lines += ["", "## 2. Verification on held-out people (LFW DevTest, every pair)", "",
              f"Thresholds fitted on DevTrain (cohort: {held['cohort']} DevTrain images). "
              "'TAR at true FAR': with the threshold that gives exactly the stated FAR on "
              "DevTest (separation, free of calibration drift).", "",
              "| score | stated FAR | threshold | measured FAR [95% CI] | TAR | "
              "TAR at true FAR |", "|---|---|---|---|---|---|"]
    for p in held["points"]:
        lo, hi = p["far_ci"]
        lines.append(f"| {p['method']} | {p['stated_far']:g} | {p['threshold']:.4f} | "
                     f"{_sci(p['far'])} [{_sci(lo)}, {_sci(hi)}] | {p['tar']:.4f} | "
                     f"{p['tar_at_true_far']:.4f} |")
    lines += ["", "## 3. YouTube Faces (tracks; cohort: DevTrain images of non-YTF names)", "",
              "| score | videos | rank-1 | mAP | verification acc. | ROC AUC |",
              "|---|---|---|---|---|---|"]
    for method, r in result["ytf"].items():
        ver = f"{r['verification'] * 100:.2f}%" if r["verification"] is not None else "-"
        auc = f"{r['auc']:.4f}" if r["auc"] is not None else "-"
        lines.append(f"| {method} | {r['videos']} | {r['rank1']:.4f} | {r['mAP']:.4f} | "
                     f"{ver} | {auc} |")
    lines += ["", "## 4. False matches per query as the gallery grows", "",
              "DevTest images query LFW galleries of growing size (labelled face per image, "
              "the query image left out); cohort: a sample of the gallery itself. "
              "Thresholds fitted on DevTrain. 'expected' = stated FAR x gallery size.", "",
              "| gallery | score | stated FAR | false matches / query | expected | "
              "queries with a false match | mates accepted |", "|---|---|---|---|---|---|---|"]
    for r in result["growth"]:
        lines.append(f"| {r['gallery']} | {r['method']} | {r['stated_far']:g} | "
                     f"{r['false_matches_per_query']:.3f} | {r['expected_far_x_n']:.2f} | "
                     f"{r['queries_with_a_false_match']:.3f} | {r['true_match_rate']:.4f} |")
    path = out / f"norm_{key}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
