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
        point = calibration.point(settings.far) if calibration else None
        methods = compare(graph, items, truth, dev, test,
                          point.threshold if point else None)
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
    """The shipped path, end to end: recluster with its writes; then `n_new` photos (at
    most a quarter of a small collection) removed, re-clustered without them,
    re-indexed, and placed incrementally."""
    from revsearch.ingest import run_ingest

    extra = {kk: v for kk, v in params.items() if kk != "threshold"}
    if extra:  # the book runs each method with its default extra parameters
        log.info("product timing uses %s's default parameters, not %s", method, extra)
    book = PeopleBook(coll, method, params["threshold"], k)
    started = time.monotonic()
    full = book.recluster()
    recluster_s = time.monotonic() - started
    media = sorted(coll.media(), key=lambda r: r["path"])
    n_new = min(n_new, len(media) // 4)
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


# -- person query expansion ---------------------------------------------------------------
# `revsearch eval people --expansion`: does querying with every face of the query's person
# find what the single face misses? LFW retrieval as `revsearch eval lfw` runs it (each
# image of a person with 2+ images queries all 13,233 images, itself excluded, an image
# scores by its best face, relevant = same person), plain against expanded. The persons
# are the shipped default clustering of the whole collection.
ALPHAS = (0.25, 0.5, 0.75)  # weight of the person's score in the fused rules
BOOTSTRAP = 2000
# Test queries for which the collection is clustered again without the query photo
# (one clustering each, so a sample).
RECLUSTER_SAMPLE = 150


def _expansion_rules() -> list[tuple[str, str, float]]:
    """(name, rule, alpha): rule is how the person's faces score a gallery face."""
    rules = [("plain", "plain", 0.0), ("max", "max", 1.0), ("mean", "mean", 1.0),
             ("members_first", "members_first", 1.0)]
    rules += [(f"fused_max_{a:g}", "max", a) for a in ALPHAS]
    rules += [(f"fused_mean_{a:g}", "mean", a) for a in ALPHAS]
    return rules


def _person_scores(faces: np.ndarray, group: np.ndarray) -> dict[str, np.ndarray]:
    """How the faces `group` (rows of `faces`, the query face among them) score every
    face. `max`: a face of the group is scored by the *other* faces of the group, else
    each would tie at similarity 1 with itself; `members`: 1 for the group's faces."""
    sims = faces[group] @ faces.T
    sims[np.arange(len(group)), group] = -np.inf
    members = np.zeros(len(faces), np.float32)
    members[group] = 1.0
    mean = _unit_rows(faces[group].sum(0))
    return {"max": sims.max(0), "mean": faces @ mean, "members": members}


def _ranks(image_scores: np.ndarray, relevant: np.ndarray) -> tuple[float, int]:
    ranks = metrics.ranks_of_relevant(image_scores, relevant)
    return metrics.average_precision(ranks), int(ranks[0])


def _bootstrap(diff: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator,
               n: int = BOOTSTRAP) -> list[float]:
    """95% percentile interval of the mean of `diff`, resampling queries (or, with
    `groups`, whole people: queries of one person are not independent)."""
    if groups is None:
        means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n)]
    else:
        keys, inverse = np.unique(groups, return_inverse=True)
        sums = np.bincount(inverse, diff, len(keys))
        counts = np.bincount(inverse, minlength=len(keys))
        means = []
        for _ in range(n):
            pick = rng.integers(0, len(keys), len(keys))
            means.append(sums[pick].sum() / counts[pick].sum())
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def _gallery_rows(g, items: Items, media_ids: dict[str, str]) -> np.ndarray:
    """The item (row of `items`) of each gallery face row (-1: a stand-in face of an
    image where no face was found, which is not in the collection)."""
    position: dict[str, list[tuple[int, int]]] = {}
    for n, item in enumerate(items.ids):
        media, number = item.rsplit("_", 1)
        position.setdefault(media, []).append((int(number), n))
    out = np.full(len(g.face_vectors), -1, np.int64)
    ends = np.r_[g.face_starts[1:], len(g.face_vectors)]
    for i, path in enumerate(g.paths):
        if g.fallback[i]:
            continue
        rows = [n for _, n in sorted(position[media_ids[path]])]
        if len(rows) != ends[i] - g.face_starts[i]:
            raise RuntimeError(f"gallery and collection disagree on the faces of {path}")
        out[g.face_starts[i]:ends[i]] = rows
        if not np.allclose(items.vectors[rows], g.face_vectors[g.face_starts[i]:ends[i]],
                           atol=1e-5):
            raise RuntimeError(f"gallery and collection vectors differ for {path}")
    return out


def _place(plain: np.ndarray, own: np.ndarray, person: np.ndarray, k: int,
           threshold: float) -> int | None:
    """The person a face not in the collection joins, as `PeopleBook.update` places a
    new face: its k nearest faces (its own photo's left out) vote by similarity at the
    clustering threshold; None when none is that close."""
    s = np.where(own, -np.inf, plain)
    near = np.argpartition(-s, k)[:k]
    votes: dict[int, float] = {}
    for j in near[s[near] >= threshold].tolist():
        if person[j] >= 0:
            votes[int(person[j])] = votes.get(int(person[j]), 0.0) + float(s[j])
    return max(votes, key=lambda p: (votes[p], -p)) if votes else None


def _reclustered_sample(g, graph: KnnGraph, item_row: np.ndarray, method: str,
                        threshold: float, k: int, pool: np.ndarray, rule: str,
                        alpha: float, sample: int, rng: np.random.Generator) -> dict:
    """The query photo truly not in the collection, on a sample of queries: the
    collection clustered again without the query's faces (the graph without them), the
    query placed into those persons, then plain against the chosen rule."""
    faces = g.face_vectors
    image_of = np.repeat(np.arange(len(g.paths)), np.diff(np.r_[g.face_starts, len(faces)]))
    chosen_q = np.sort(rng.choice(pool, min(sample, len(pool)), replace=False))
    d_ap, d_r1, expanded = [], [], 0
    for q in chosen_q.tolist():
        own = image_of == q
        drop = item_row[own]
        drop = drop[drop >= 0]
        neighbours, sims = graph.neighbours.copy(), graph.sims.copy()
        gone = np.isin(neighbours, drop)
        gone[drop] = True
        neighbours[gone], sims[gone] = -1, -np.inf
        labels = cluster.run(method, KnnGraph(neighbours, sims), threshold)
        person = np.where((item_row >= 0) & ~own, labels[np.maximum(item_row, 0)], -1)
        row_q = int(g.labelled_face[q])
        plain = faces @ faces[row_q]
        relevant = g.labels == g.labels[q]
        relevant[q] = False
        target = _place(plain, own, person, k, threshold)
        members = np.flatnonzero(person == target) if target is not None else \
            np.zeros(0, np.int64)
        scores = plain
        if len(members):
            expanded += 1
            group = np.union1d(members, [row_q]).astype(np.int64)
            mine = _person_scores(faces, group)
            scores = plain + 2.0 * mine["members"] if rule == "members_first" else \
                (1 - alpha) * plain + alpha * mine[rule]
        out = []
        for face_scores in (plain, scores):
            image_scores = np.maximum.reduceat(face_scores, g.face_starts)
            image_scores[q] = -np.inf
            out.append(_ranks(image_scores, relevant))
        d_ap.append(out[1][0] - out[0][0])
        d_r1.append(float(out[1][1] == 1) - float(out[0][1] == 1))
    d_ap_a, d_r1_a = np.array(d_ap), np.array(d_r1)
    return {"queries": len(chosen_q), "expanded": expanded, "mAP": float(d_ap_a.mean()),
            "rank1": float(d_r1_a.mean()), "mAP_ci95_queries": _bootstrap(d_ap_a, None, rng),
            "rank1_ci95_queries": _bootstrap(d_r1_a, None, rng),
            "mAP_ci95_people": _bootstrap(d_ap_a, g.labels[chosen_q], rng),
            "rank1_ci95_people": _bootstrap(d_r1_a, g.labels[chosen_q], rng)}


def _unit_rows(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def evaluate_expansion(lfw_root: Path, settings: Settings, db: str, k: int = DEFAULT_K,
                       seed: int = 0, recluster_sample: int = RECLUSTER_SAMPLE) -> dict:
    """Plain queries against person query expansion on LFW retrieval (module notes)."""
    from revsearch.api import open_collection
    from revsearch.eval.lfw import build_gallery
    from revsearch.people.book import DEFAULT_METHOD, default_threshold
    from revsearch.spaces import space_for
    from revsearch.store import Store

    g = build_gallery(lfw_root / "lfw-deepfunneled", settings, db)
    space = space_for(settings)
    threshold = default_threshold(space.key, DEFAULT_METHOD)
    with Store(db) as store:
        coll = open_collection(store, space, settings)
        items = load_items(coll)
        media_ids = {r["path"]: r["image_id"] for r in coll.media()}
        started = time.monotonic()
        graph = build_graph(coll, items, k)
        labels = cluster.run(DEFAULT_METHOD, graph, threshold, vectors=items.vectors)
        cluster_s = time.monotonic() - started
    item_row = _gallery_rows(g, items, media_ids)
    person = np.where(item_row >= 0, labels[np.maximum(item_row, 0)], -1)
    faces = g.face_vectors
    image_of = np.repeat(np.arange(len(g.paths)),
                         np.diff(np.r_[g.face_starts, len(faces)]))
    names, counts = np.unique(g.labels, return_counts=True)
    multi = set(names[counts >= 2])
    queries = np.array([i for i, name in enumerate(g.labels) if name in multi])
    devs = dev_people(lfw_root)
    rules = _expansion_rules()
    cases = ("in_collection", "not_in_collection")
    ap = {c: np.zeros((len(rules), len(queries))) for c in cases}
    r1 = {c: np.zeros((len(rules), len(queries)), np.int64) for c in cases}
    size = {c: np.zeros(len(queries), np.int64) for c in cases}  # faces of the person
    members_of: dict[int, np.ndarray] = {}
    for p in np.unique(person[person >= 0]):
        members_of[int(p)] = np.flatnonzero(person == p)
    placed_elsewhere = 0  # queries whose two cases use different faces
    cached: tuple[bytes, dict[str, np.ndarray] | None] = (b"", None)
    started = time.monotonic()
    for n, q in enumerate(queries.tolist()):
        row_q = int(g.labelled_face[q])
        plain = faces @ faces[row_q]
        own = image_of == q
        relevant = g.labels == g.labels[q]
        relevant[q] = False
        keys: dict[str, bytes] = {}
        for case in cases:
            if g.fallback[q]:
                members = np.zeros(0, np.int64)
            elif case == "in_collection":
                members = members_of[int(person[row_q])]
            else:  # placed as `PeopleBook.update` places a new face: neighbours vote
                chosen = _place(plain, own, person, k, threshold)
                members = np.zeros(0, np.int64) if chosen is None else \
                    members_of[chosen][~own[members_of[chosen]]]
            # The query face is one of its person's faces in both cases.
            group = np.union1d(members, [row_q]).astype(np.int64)
            keys[case] = group.tobytes()
            size[case][n] = len(group)
            if case != "in_collection" and keys[case] == keys["in_collection"]:
                ap[case][:, n], r1[case][:, n] = ap["in_collection"][:, n], \
                    r1["in_collection"][:, n]
                continue
            if case != "in_collection":
                placed_elsewhere += 1
            if len(group) < 2:
                person_scores = None
            elif cached[0] == keys[case]:
                person_scores = cached[1]
            else:
                person_scores = _person_scores(faces, group)
                cached = (keys[case], person_scores)
            for r, (_, rule, alpha) in enumerate(rules):
                if rule == "plain" or person_scores is None:
                    face_scores = plain
                elif rule == "members_first":
                    face_scores = plain + 2.0 * person_scores["members"]
                else:
                    face_scores = (1 - alpha) * plain + alpha * person_scores[rule]
                image_scores = np.maximum.reduceat(face_scores, g.face_starts)
                image_scores[q] = -np.inf
                ap[case][r, n], r1[case][r, n] = _ranks(image_scores, relevant)
        if n % 1000 == 0:
            log.info("expansion: %d / %d queries, %.0f s", n, len(queries),
                     time.monotonic() - started)
    is_dev = np.array([g.labels[q] in devs for q in queries])
    groups = g.labels[queries]
    rng = np.random.default_rng(seed)
    out: dict = {"space": space.key, "method": DEFAULT_METHOD, "threshold": threshold,
                 "k": k, "images": len(g.paths), "gallery_faces": len(faces),
                 "no_face_images": int(g.fallback.sum()), "queries": len(queries),
                 "dev_queries": int(is_dev.sum()), "test_queries": int((~is_dev).sum()),
                 "dev_people": len(set(groups[is_dev])),
                 "test_people": len(set(groups[~is_dev])),
                 "clustering_seconds": round(cluster_s, 2),
                 "placed_in_another_group": placed_elsewhere,
                 "query_seconds": round(time.monotonic() - started, 1), "cases": {}}
    for case in cases:
        table = {}
        for r, (name, rule, alpha) in enumerate(rules):
            table[name] = {"rule": rule, "alpha": alpha, **{
                part: _summary(ap[case][r, rows], r1[case][r, rows])
                for part, rows in (("dev", is_dev), ("test", ~is_dev))}}
        # Chosen on the development people only, by mAP.
        best = max(range(1, len(rules)), key=lambda r: ap[case][r, is_dev].mean())
        name = rules[best][0]
        test = ~is_dev
        d_ap = ap[case][best, test] - ap[case][0, test]
        d_r1 = (r1[case][best, test] == 1).astype(float) - (r1[case][0, test] == 1)
        expanded = size[case] > 1
        out["cases"][case] = {
            "rules": table, "chosen": name,
            "expanded_queries_test": int(expanded[test].sum()),
            "mean_person_faces_test": float(size[case][test].mean()),
            "difference_test": {
                "mAP": float(d_ap.mean()), "rank1": float(d_r1.mean()),
                "mAP_ci95_queries": _bootstrap(d_ap, None, rng),
                "rank1_ci95_queries": _bootstrap(d_r1, None, rng),
                "mAP_ci95_people": _bootstrap(d_ap, groups[test], rng),
                "rank1_ci95_people": _bootstrap(d_r1, groups[test], rng),
                "rank1_gained": int(((r1[case][best, test] == 1)
                                     & (r1[case][0, test] > 1)).sum()),
                "rank1_lost": int(((r1[case][best, test] > 1)
                                   & (r1[case][0, test] == 1)).sum())}}
    if recluster_sample:
        started = time.monotonic()
        chosen = out["cases"]["not_in_collection"]["chosen"]
        _, rule, alpha = next(r for r in rules if r[0] == chosen)
        out["reclustered_sample"] = {"rule": chosen, **_reclustered_sample(
            g, graph, item_row, DEFAULT_METHOD, threshold, k, queries[~is_dev], rule, alpha,
            recluster_sample, rng)}
        out["reclustered_sample"]["seconds"] = round(time.monotonic() - started, 1)
    return out


def _summary(aps: np.ndarray, firsts: np.ndarray) -> dict:
    return {"queries": len(aps), "mAP": float(aps.mean()),
            **{f"rank{k}": float((firsts <= k).mean()) for k in (1, 5, 10)}}


CASE_TITLES = {
    "in_collection": "The query photo is in the collection (the product's situation: an "
                     "indexed photo searched again); its face's person is the one the "
                     "clustering of the whole collection put it in",
    "not_in_collection": "The query photo is not in the collection: its face is placed as "
                         "`PeopleBook.update` places a new face (its 30 nearest faces, "
                         "its own photo left out, vote by similarity at the clustering "
                         "threshold; no vote: no person, plain search). The persons are "
                         "those of the whole collection minus the query's faces (not "
                         "re-clustered without it for each query)",
}


def expansion_markdown(result: dict) -> list[str]:
    r = result["expansion"]
    lines = [f"# People: person query expansion on LFW retrieval ({r['space']})", "",
             f"`{result['command']}` on {result['date']}, commit `{result['commit'][:10]}`, "
             f"{result['machine']['cpu']} ({result['machine']['cores']} cores), "
             f"{result['seconds']:.0f} s.", "",
             "Protocol of `revsearch eval lfw`: each of the "
             f"{r['queries']} images of a person with 2+ images queries all {r['images']} "
             f"images ({r['gallery_faces']} faces), itself excluded; an image scores by "
             "its best face; relevant = same person. Persons: the shipped default "
             f"clustering ({r['method']} at {r['threshold']:g} on the k={r['k']} graph) of "
             f"every face of the collection, computed once ({r['clustering_seconds']:.1f} "
             "s).", "",
             "Rules (how the query's person scores a gallery face; the query face is "
             "one of the person's faces):", "",
             "- `plain`: the query face alone (what search does today);",
             "- `max`: the best similarity between the face and any face of the person "
             "(a face of the person is scored by the *other* faces, not by itself);",
             "- `mean`: similarity to the normalised mean of the person's faces;",
             "- `members_first`: the person's faces first, each group ranked by the plain "
             "similarity;",
             "- `fused_max_a`, `fused_mean_a`: (1 - a) x plain + a x max (or mean).", "",
             f"Chosen on the {r['dev_people']} development people (pairsDevTrain names, "
             f"{r['dev_queries']} queries) by mAP; reported on the other "
             f"{r['test_people']} people ({r['test_queries']} queries). 95% bootstrap "
             f"intervals ({BOOTSTRAP} resamples) of the test difference, chosen minus "
             "plain, over queries (as asked) and over people (a person's queries share "
             "their person, so they are not independent: the wider, honest one).", ""]
    for case, c in r["cases"].items():
        d = c["difference_test"]
        lines += [f"## {case.replace('_', ' ')}", "", CASE_TITLES[case] + ".", "",
                  f"Test queries whose person has other faces (expansion used): "
                  f"{c['expanded_queries_test']} of {r['test_queries']}."
                  + (f" Queries (all people) whose placement gave another group of faces "
                     f"than their own person: {r['placed_in_another_group']}."
                     if case == "not_in_collection" else ""), "",
                  "| rule | test mAP | test rank-1 | test rank-5 | test rank-10 | "
                  "dev mAP | dev rank-1 |", "|---|---|---|---|---|---|---|"]
        for name, e in c["rules"].items():
            t, v = e["test"], e["dev"]
            mark = " (chosen)" if name == c["chosen"] else ""
            lines.append(f"| {name}{mark} | {t['mAP']:.4f} | {t['rank1']:.4f} | "
                         f"{t['rank5']:.4f} | {t['rank10']:.4f} | {v['mAP']:.4f} | "
                         f"{v['rank1']:.4f} |")
        lines += ["", f"Chosen on development people: **{c['chosen']}**. Test difference "
                  f"against plain: mAP **{d['mAP']:+.4f}** (95% CI over queries "
                  f"[{d['mAP_ci95_queries'][0]:+.4f}, {d['mAP_ci95_queries'][1]:+.4f}], "
                  f"over people [{d['mAP_ci95_people'][0]:+.4f}, "
                  f"{d['mAP_ci95_people'][1]:+.4f}]); rank-1 **{d['rank1']:+.4f}** "
                  f"([{d['rank1_ci95_queries'][0]:+.4f}, {d['rank1_ci95_queries'][1]:+.4f}]"
                  f", over people [{d['rank1_ci95_people'][0]:+.4f}, "
                  f"{d['rank1_ci95_people'][1]:+.4f}]); rank-1 gained on "
                  f"{d['rank1_gained']} queries, lost on {d['rank1_lost']}.", ""]
    if "reclustered_sample" in r:
        x = r["reclustered_sample"]
        lines += ["## not in collection, clustered without it (a sample)", "",
                  "Above, the persons come from a clustering that saw the query face, which "
                  "may have pulled its neighbours into its person. Here, for "
                  f"{x['queries']} test queries drawn at random, the collection is "
                  f"clustered again without the query photo's faces ({r['method']} on the "
                  "same graph with them removed), the query is placed into those persons, "
                  f"and `{x['rule']}` is compared with plain ({x['expanded']} placed in a "
                  f"person; {x['seconds']:.0f} s). Difference: mAP **{x['mAP']:+.4f}** "
                  f"(95% CI over queries [{x['mAP_ci95_queries'][0]:+.4f}, "
                  f"{x['mAP_ci95_queries'][1]:+.4f}], over people "
                  f"[{x['mAP_ci95_people'][0]:+.4f}, {x['mAP_ci95_people'][1]:+.4f}]); "
                  f"rank-1 **{x['rank1']:+.4f}** ([{x['rank1_ci95_queries'][0]:+.4f}, "
                  f"{x['rank1_ci95_queries'][1]:+.4f}], over people "
                  f"[{x['rank1_ci95_people'][0]:+.4f}, {x['rank1_ci95_people'][1]:+.4f}]).",
                  ""]
    lines += ["## Verdict", "", result["verdict"]]
    return lines


def run_expansion(lfw_root: Path, settings: Settings, out: Path, lfw_db: str,
                  command: str) -> dict:
    """`revsearch eval people --expansion`: people_expansion.json and .md in `out`."""
    started = time.monotonic()
    expansion = evaluate_expansion(lfw_root, settings, lfw_db)
    result: dict = {"command": command, "date": date.today().isoformat(),
                    "commit": provenance.git_commit(), "machine": machine(),
                    "expansion": expansion}
    result["verdict"] = verdict(expansion)
    result["seconds"] = round(time.monotonic() - started, 1)
    save_report(out, "people_expansion", result, expansion_markdown(result))
    return result


def verdict(expansion: dict) -> str:
    """Shipped only if the chosen rule beats plain on held-out people beyond the
    interval, on mAP and rank-1 both, in the product's situation."""
    d = expansion["cases"]["in_collection"]["difference_test"]
    chosen = expansion["cases"]["in_collection"]["chosen"]
    helps = d["mAP_ci95_people"][0] > 0 and d["rank1_ci95_people"][0] >= 0
    if helps:
        text = (f"Expansion helps on held-out people beyond the 95% interval (over people) "
                f"in the product's situation: shipped as the `{chosen}` rule behind "
                "`--person-expansion` (off by default).")
    else:
        text = ("Expansion does not help on held-out people beyond the 95% interval (over "
                "people) in the product's situation: not shipped.")
    sample = expansion.get("reclustered_sample")
    if sample:
        low = sample["mAP_ci95_people"][0]
        text += (f" For a query photo that is not in the collection, the sample clustered "
                 f"without it moves mAP by {sample['mAP']:+.4f} and rank-1 by "
                 f"{sample['rank1']:+.4f}: "
                 + ("above zero beyond its interval too." if low > 0 else
                    "the same direction, but its interval includes zero: "
                    "not shown to help there."))
    return text


def rewrite_expansion_markdown(out: Path) -> str:
    """people_expansion.md again from people_expansion.json (after a change to the
    wording); the verdict is derived again from the figures."""
    import json

    result = json.loads((out / "people_expansion.json").read_text())
    result["verdict"] = verdict(result["expansion"])
    (out / "people_expansion.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n".join(expansion_markdown(result)) + "\n"
    (out / "people_expansion.md").write_text(text)
    return text
