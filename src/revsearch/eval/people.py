"""`revsearch eval people`: grouping faces into persons, method against method.

LFW: every image indexed into the eval database (`build_gallery`), the k-NN graph of all
faces searched in Milvus once, then each method clustered on that same graph over a grid
of thresholds. Parameters are chosen on the development people (those in
`pairsDevTrain.txt`) by the mean of BCubed F and pairwise F, and reported on the other
people (and on all). Only faces that carry an identity (the labelled face of each
image) are scored; the other faces are clustered too, as in a real library.

YouTube Faces: every video folder indexed as a video (its face tracks), the tracks
clustered with the parameters chosen on LFW (no tuning on YTF).

Also timed: the graph search, each method, the whole `PeopleBook.recluster()` with its
writes, and the incremental placement of 100 photos re-indexed after removal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np

from revsearch.config import Settings
from revsearch.eval import metrics, provenance
from revsearch.eval.bench import machine, save_report
from revsearch.eval.datasets import read_pairs
from revsearch.people import cluster
from revsearch.people.book import DEFAULT_K, PeopleBook
from revsearch.people.graph import Items, KnnGraph, build_graph, load_items

log = logging.getLogger(__name__)

# Threshold grids (cosine similarity) per method; rank_order also tries its rank cut.
GRID = np.round(np.arange(0.40, 0.651, 0.025), 3)
RANKS = (1.2, 2.0, 3.0)
SENSITIVITY_K = (10, 20, 30)  # the default method at other graph sizes (k fixed at 30)
IMMICH = {"threshold": 0.5, "min_samples": 3}  # maxDistance 0.5 (cosine), minFaces 3


def dev_people(lfw_root: Path) -> set[str]:
    path = lfw_root / "pairsDevTrain.txt"
    return {name for fold in read_pairs(path) for p in fold for name in (p.name1, p.name2)}


def _scores(labels: np.ndarray, truth: np.ndarray, rows: np.ndarray) -> dict:
    return metrics.clustering_scores(labels[rows], truth[rows])


def _objective(s: dict) -> float:
    return (s["bcubed_f"] + s["pairwise_f"]) / 2


def _settings_grid(method: str) -> list[dict]:
    if method == "rank_order":
        return [{"threshold": float(t), "rank": r} for t in GRID for r in RANKS]
    return [{"threshold": float(t)} for t in GRID]


def _run(method: str, graph: KnnGraph, items: Items, params: dict) -> tuple[np.ndarray, float]:
    extra = {k: v for k, v in params.items() if k != "threshold"}
    started = time.monotonic()
    labels = cluster.run(method, graph, params["threshold"], vectors=items.vectors, **extra)
    return labels, time.monotonic() - started


def compare(graph: KnnGraph, items: Items, truth: np.ndarray, dev: np.ndarray,
            test: np.ndarray, match_threshold: float | None = None) -> dict:
    """Every method over its grid; the chosen setting's scores on dev, test and all."""
    labelled = np.flatnonzero(truth != "")
    out: dict = {}
    for method in cluster.METHODS:
        curve = []
        for params in _settings_grid(method):
            labels, _ = _run(method, graph, items, params)
            curve.append({**params, "dev": _scores(labels, truth, dev)})
            log.info("%s %s dev bcubed %.4f pairwise %.4f", method, params,
                     curve[-1]["dev"]["bcubed_f"], curve[-1]["dev"]["pairwise_f"])
        best = max(curve, key=lambda c: _objective(c["dev"]))
        params = {k: v for k, v in best.items() if k != "dev"}
        out[method] = _entry(method, graph, items, truth, params, dev, test, labelled)
        out[method]["curve"] = curve
    out["dbscan_immich"] = _entry("dbscan", graph, items, truth, IMMICH, dev, test, labelled)
    if match_threshold is not None:  # what single links at the match threshold do
        out["components_at_match"] = _entry("components", graph, items, truth,
                                            {"threshold": match_threshold}, dev, test,
                                            labelled)
    return out


def _entry(method: str, graph: KnnGraph, items: Items, truth: np.ndarray, params: dict,
           dev: np.ndarray, test: np.ndarray, labelled: np.ndarray) -> dict:
    labels, seconds = _run(method, graph, items, params)
    return {"method": method, "params": params, "seconds": round(seconds, 2),
            "clusters_all_faces": len(np.unique(labels)),
            "dev": _scores(labels, truth, dev), "test": _scores(labels, truth, test),
            "all": _scores(labels, truth, labelled), "_labels": labels}


def _truth(items: Items) -> np.ndarray:
    return np.array(items.labels, dtype=object).astype(str)


def evaluate_lfw(lfw_root: Path, settings: Settings, db: str, k: int = DEFAULT_K) -> dict:
    from revsearch.api import open_collection
    from revsearch.eval.lfw import build_gallery
    from revsearch.spaces import space_for
    from revsearch.store import Store

    build_gallery(lfw_root / "lfw-deepfunneled", settings, db)  # indexes if needed
    space = space_for(settings)
    with Store(db) as store:
        coll = open_collection(store, space, settings)
        started = time.monotonic()
        items = load_items(coll)
        read_s = time.monotonic() - started
        started = time.monotonic()
        graph = build_graph(coll, items, k)
        graph_s = time.monotonic() - started
        truth = _truth(items)
        devs = dev_people(lfw_root)
        is_dev = np.array([t in devs for t in truth])
        dev = np.flatnonzero((truth != "") & is_dev)
        test = np.flatnonzero((truth != "") & ~is_dev)
        calibration = space.calibration(settings.home)
        methods = compare(graph, items, truth, dev, test,
                          calibration.threshold if calibration else None)
        best = max(cluster.METHODS, key=lambda m: _objective(methods[m]["dev"]))
        sensitivity = _k_sensitivity(graph, items, truth, best, dev, test,
                                     np.flatnonzero(truth != ""))
        timing = _product_timing(coll, settings, best, methods[best]["params"], k, lfw_root)
    return {"space": space.key, "k": k, "faces": len(items),
            "labelled": int((truth != "").sum()),
            "people": len(set(truth[truth != ""])), "dev_faces": len(dev),
            "test_faces": len(test), "dev_people": len(set(truth[dev])),
            "test_people": len(set(truth[test])),
            "read_seconds": round(read_s, 2), "graph_seconds": round(graph_s, 2),
            "methods": methods, "best": best, "product": timing, "k_sensitivity": sensitivity,
            "_items": items, "_truth": truth}


def _k_sensitivity(graph: KnnGraph, items: Items, truth: np.ndarray, method: str,
                   dev: np.ndarray, test: np.ndarray, labelled: np.ndarray) -> list[dict]:
    """The chosen method on the graph cut to fewer neighbours, threshold re-chosen on
    the development people for each k."""
    out = []
    for k in SENSITIVITY_K:
        cut = KnnGraph(graph.neighbours[:, :k], graph.sims[:, :k])
        scored = []
        for params in _settings_grid(method):
            labels, _ = _run(method, cut, items, params)
            scored.append((_objective(_scores(labels, truth, dev)), params))
        params = max(scored, key=lambda p: p[0])[1]
        entry = _entry(method, cut, items, truth, params, dev, test, labelled)
        entry.pop("_labels")
        out.append({"k": k, **entry})
    return out


def _product_timing(coll, settings: Settings, method: str, params: dict, k: int,
                    lfw_root: Path, n_new: int = 100) -> dict:
    """The shipped path, end to end: recluster with its writes; then 100 photos
    removed, re-clustered without them, re-indexed, and placed incrementally."""
    from revsearch.ingest import run_ingest

    extra = {kk: v for kk, v in params.items() if kk != "threshold"}
    if extra:  # the book runs each method with its default extra parameters
        log.info("product timing uses %s's default parameters, not %s", method, extra)
    book = PeopleBook(coll, method, params["threshold"], k)
    started = time.monotonic()
    full = book.recluster()
    recluster_s = time.monotonic() - started
    media = sorted(coll.media(), key=lambda r: r["path"])
    rng = np.random.default_rng(0)
    chosen = [media[i] for i in sorted(rng.choice(len(media), n_new, replace=False))]
    coll.remove([m["image_id"] for m in chosen])
    book.recluster()
    written: list[str] = []
    report = run_ingest([m["path"] for m in chosen], coll, settings, labels="auto",
                        changed=written)
    started = time.monotonic()
    placed = book.update(media=written)  # as `RevSearch.index` does after an ingest
    update_s = time.monotonic() - started
    return {"method": method, "threshold": params["threshold"],
            "recluster_seconds": round(recluster_s, 2), "recluster": asdict(full),
            "new_photos": n_new, "new_faces": report.faces,
            "ingest_seconds": round(report.seconds, 2),
            "update_seconds": round(update_s, 3), "update": asdict(placed)}


def evaluate_ytf(ytf_root: Path, settings: Settings, db: str, chosen: dict,
                 k: int = DEFAULT_K) -> dict:
    """Cluster the face tracks of the YTF videos with the parameters chosen on LFW."""
    from revsearch.api import open_collection
    from revsearch.ingest import run_ingest
    from revsearch.spaces import space_for
    from revsearch.store import Store

    space = space_for(settings)
    with Store(db) as store:
        coll = open_collection(store, space, settings)
        report = run_ingest([ytf_root / "aligned_images_DB"], coll, settings, labels="auto")
        items = load_items(coll)
        graph = build_graph(coll, items, k)
    truth = _truth(items)
    labelled = np.flatnonzero(truth != "")
    out = {}
    for name, entry in chosen.items():
        labels, seconds = _run(entry["method"], graph, items, entry["params"])
        out[name] = {"method": entry["method"], "params": entry["params"],
                     "seconds": round(seconds, 2), "all": _scores(labels, truth, labelled)}
    return {"videos": report.videos + report.unchanged, "tracks": len(items),
            "labelled_tracks": len(labelled), "people": len(set(truth[labelled])),
            "methods": out}


# -- reports ----------------------------------------------------------------------------
def _row(name: str, e: dict, part: str) -> str:
    s = e[part]
    params = ", ".join(f"{k} {v:g}" for k, v in e["params"].items())
    return (f"| {name} | {params} | {s['bcubed_precision']:.4f} | {s['bcubed_recall']:.4f} | "
            f"**{s['bcubed_f']:.4f}** | {s['pairwise_precision']:.4f} | "
            f"{s['pairwise_recall']:.4f} | **{s['pairwise_f']:.4f}** | {s['clusters']} / "
            f"{s['classes']} | {e.get('seconds', 0):.2f} |")


HEADER = ["| method | parameters | BCubed P | BCubed R | BCubed F | pairwise P | pairwise R | "
          "pairwise F | clusters / people | seconds |",
          "|---|---|---|---|---|---|---|---|---|---|"]


def rewrite_markdown(out: Path) -> str:
    """people_lfw.md again from people_lfw.json (after a change to the wording)."""
    import json

    result = json.loads((out / "people_lfw.json").read_text())
    text = "\n".join(markdown(result)) + "\n"
    (out / "people_lfw.md").write_text(text)
    return text


def markdown(result: dict) -> list[str]:
    r = result["lfw"]
    lines = [f"# People: clustering faces into persons ({r['space']})", "",
             f"`{result['command']}` on {result['date']}, commit `{result['commit'][:10]}`, "
             f"{result['machine']['cpu']} ({result['machine']['cores']} cores).", "",
             f"LFW, all {r['faces']} faces of the full index ({r['labelled']} labelled, "
             f"{r['people']} people); k-NN graph k={r['k']} built in "
             f"{r['graph_seconds']:.1f} s (`people.graph.build_graph`: exact search in "
             f"memory on Milvus Lite, batched Milvus searches on a server; vectors read "
             f"in {r['read_seconds']:.1f} s). "
             f"Parameters chosen on the {r['dev_people']} development people "
             f"(pairsDevTrain, {r['dev_faces']} faces) by mean(BCubed F, pairwise F); "
             f"scored on the other {r['test_people']} people ({r['test_faces']} faces). "
             "'seconds' is the clustering alone, on the graph.", "",
             "## LFW, test people (not used for choosing)", "", *HEADER]
    order = [*cluster.METHODS, "dbscan_immich"] + \
        (["components_at_match"] if "components_at_match" in r["methods"] else [])
    names = {"dbscan_immich": "dbscan, Immich's eps 0.5 as is",
             "components_at_match": "components at the match threshold"}
    for m in order:
        lines.append(_row(names.get(m, m), r["methods"][m], "test"))
    lines += ["", "## LFW, development people (parameters chosen here)", "", *HEADER]
    lines += [_row(names.get(m, m), r["methods"][m], "dev") for m in order]
    lines += ["", "## LFW, all people", "", *HEADER]
    lines += [_row(names.get(m, m), r["methods"][m], "all") for m in order]
    p = r["product"]
    lines += ["", f"Default: **{r['best']}** (best on the development people).", "",
              f"### {r['best']} at other graph sizes (threshold re-chosen on development "
              "people for each k; k=30 was fixed before measuring)", "",
              "| k | threshold | test BCubed F | test pairwise F | dev BCubed F | "
              "dev pairwise F |", "|---|---|---|---|---|---|"]
    lines += [f"| {e['k']} | {e['params']['threshold']:g} | {e['test']['bcubed_f']:.4f} | "
              f"{e['test']['pairwise_f']:.4f} | {e['dev']['bcubed_f']:.4f} | "
              f"{e['dev']['pairwise_f']:.4f} |" for e in r["k_sensitivity"]]
    lines += ["",
              "## The shipped path, timed", "",
              f"- `PeopleBook.recluster()` on the full LFW index ({p['method']} at "
              f"{p['threshold']:g}: read vectors, k-NN graph, cluster, write persons and "
              f"assignments): **{p['recluster_seconds']:.1f} s**.",
              f"- {p['new_photos']} photos removed, re-clustered, then indexed again "
              f"({p['new_faces']} faces, ingest {p['ingest_seconds']:.1f} s): placing them "
              f"into persons (`PeopleBook.update(media=...)`, as after `revsearch index`) "
              f"took **{p['update_seconds']:.2f} s** "
              f"({p['update']['joined']} joined existing persons, "
              f"{p['update']['created']} new persons)."]
    if "ytf" in result:
        y = result["ytf"]
        lines += ["", f"## YouTube Faces tracks ({y['tracks']} tracks of {y['videos']} "
                  f"videos, {y['labelled_tracks']} labelled, {y['people']} people)", "",
                  "Parameters as chosen on LFW development people (no tuning on YTF).", "",
                  *HEADER]
        for m, e in y["methods"].items():
            lines.append(_row(m, e, "all"))
    lines += ["", "Plots: `people_lfw_curves.png` (development F against threshold); "
              "contact sheet: `people_lfw_contact.png` (rows: persons found by the "
              "default; green: the person's majority identity, red: others)."]
    return lines


def plots(out: Path, r: dict) -> None:
    from revsearch.eval.report import _figure

    with _figure(out / "people_lfw_curves.png") as ax:
        for m in cluster.METHODS:
            curve = r["methods"][m]["curve"]
            if m == "rank_order":  # the best rank cut's curve
                rank = r["methods"][m]["params"]["rank"]
                curve = [c for c in curve if c["rank"] == rank]
            ax.plot([c["threshold"] for c in curve],
                    [_objective(c["dev"]) for c in curve], label=m)
        ax.set(xlabel="threshold (cosine)", ylabel="mean(BCubed F, pairwise F)",
               title="LFW development people", ylim=(0, 1.02))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)


def contact_sheet(path: Path, paths: dict[str, str], boxes: dict[str, list[float]],
                  items: Items, truth: np.ndarray, labels: np.ndarray, thumb: int = 72,
                  per_row: int = 10) -> None:
    """Rows of faces of a few persons: three pure ones, three that mix identities."""
    from PIL import Image, ImageDraw

    from revsearch.people.book import parse_item

    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        named = [m for m in members if truth[m]]
        if len(named) < 4:
            continue
        ids, counts = np.unique(truth[named], return_counts=True)
        rows.append((c, members, ids[np.argmax(counts)], counts.max() / len(named)))
    pure = sorted([r for r in rows if r[3] == 1.0], key=lambda r: -len(r[1]))[:3]
    mixed = sorted([r for r in rows if r[3] < 1.0], key=lambda r: r[3])[:3]
    chosen = pure + mixed
    if not chosen:
        return
    sheet = Image.new("RGB", (per_row * thumb, len(chosen) * (thumb + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (_, members, major, purity) in enumerate(chosen):
        top = y * (thumb + 16)
        draw.text((2, top + 2), f"{major} ({len(members)} faces, purity {purity:.2f})",
                  fill="black")
        wrong = [m for m in members if truth[m] and truth[m] != major]
        show = (wrong[:per_row // 2] + [m for m in members if m not in wrong])[:per_row]
        for x, m in enumerate(show):
            media, _ = parse_item(items.ids[m])
            try:
                image = Image.open(paths[media]).convert("RGB")
            except (OSError, KeyError):
                continue
            x0, y0, w, h = boxes.get(items.ids[m], [0, 0, image.width, image.height])
            face = image.crop((int(x0), int(y0), int(x0 + w), int(y0 + h)))
            face.thumbnail((thumb - 4, thumb - 4))
            colour = "red" if truth[m] and truth[m] != major else \
                ("green" if truth[m] else "grey")
            cell = Image.new("RGB", (thumb, thumb), colour)
            cell.paste(face, (2, 2))
            sheet.paste(cell, (x * thumb, top + 16))
    sheet.save(path)


def run(lfw_root: Path, ytf_root: Path | None, settings: Settings, out: Path, lfw_db: str,
        ytf_db: str | None, command: str) -> dict:
    from revsearch.api import open_collection
    from revsearch.spaces import space_for
    from revsearch.store import Store

    started = time.monotonic()
    lfw = evaluate_lfw(lfw_root, settings, lfw_db)
    result: dict = {"command": command, "date": date.today().isoformat(),
                    "commit": provenance.git_commit(), "machine": machine(), "lfw": lfw}
    if ytf_root is not None and ytf_db:
        chosen = {m: e for m, e in lfw["methods"].items() if m != "components_at_match"}
        result["ytf"] = evaluate_ytf(ytf_root, settings, ytf_db, chosen)
    result["seconds"] = round(time.monotonic() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    plots(out, lfw)
    with Store(lfw_db) as store:
        coll = open_collection(store, space_for(settings), settings)
        paths = {r["image_id"]: r["path"] for r in coll.media()}
        boxes = {f["face_id"]: f["box"] for f in coll.all_faces()}
    best = lfw["methods"][lfw["best"]]
    contact_sheet(out / "people_lfw_contact.png", paths, boxes, lfw["_items"], lfw["_truth"],
                  best["_labels"])
    public = _public(result)
    save_report(out, "people_lfw", public, markdown(public))
    return public


def _public(obj):
    if isinstance(obj, dict):
        return {k: _public(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list):
        return [_public(v) for v in obj]
    return obj
