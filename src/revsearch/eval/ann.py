"""`revsearch eval ann`: Milvus index types on real face embeddings.

Exact search (FLAT) is the reference; HNSW and IVF_FLAT trade recall for speed. Each
index is built in a fresh collection from the same vectors; recall@10 is measured
against exact numpy search, latency per single-vector query. On unit vectors cosine
and L2 rank identically (|a-b|^2 = 2 - 2 cos), which the run checks too.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from revsearch.eval import provenance
from revsearch.eval.metrics import exact_top
from revsearch.store.backend import import_pymilvus

# Index types milvus-lite's factory cannot build (milvus_lite/index/factory.py).
LITE_LACKS = frozenset({"IVF_PQ"})


def index_configs(n: int, dim: int) -> dict[str, tuple[dict, list[dict]]]:
    """(build params, the search params swept) per index type for n vectors.

    IVF: nlist ~ 4 sqrt(n) (Milvus's rule of thumb); nprobe swept from one list to a
    quarter of them. IVF_PQ: 8 bits per code, dim/8 sub-vectors. HNSW: M 16,
    efConstruction 200, ef swept (Milvus needs ef >= k).
    """
    nlist = max(1, min(1024, int(4 * np.sqrt(n))))
    probes = [{"nprobe": p} for p in (1, 2, 4, 8, 16, 32, 64, 128) if p <= max(1, nlist // 4)]
    return {
        "FLAT": ({"index_type": "FLAT"}, [{}]),
        "HNSW": ({"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}},
                 [{"ef": e} for e in (10, 16, 32, 64, 128, 256)]),
        "IVF_FLAT": ({"index_type": "IVF_FLAT", "params": {"nlist": nlist}}, probes),
        "IVF_PQ": ({"index_type": "IVF_PQ",
                    "params": {"nlist": nlist, "m": max(1, dim // 8), "nbits": 8}}, probes),
    }


def vector_collection(client, name: str, dim: int, metric: str = "COSINE",
                      index: dict | None = None) -> None:
    """A bare (id, v) collection for measurements; `index` None leaves it unindexed."""
    pymilvus = import_pymilvus()
    DataType = pymilvus.DataType
    schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=dim)
    params = None
    if index is not None:
        params = client.prepare_index_params()
        params.add_index(field_name="v", metric_type=metric, **index)
    client.create_collection(name, schema=schema, index_params=params)


def insert_vectors(client, name: str, vectors: np.ndarray, first_id: int = 0,
                   batch: int = 5000) -> None:
    for s in range(0, len(vectors), batch):
        client.insert(name, [{"id": first_id + s + i, "v": v.tolist()}
                             for i, v in enumerate(vectors[s:s + batch])])


def _sweep(client, name: str, vectors: np.ndarray, queries: np.ndarray, k: int,
           metric: str, index: dict, searches: list[dict], truth: np.ndarray) -> list[dict]:
    """Build one index, then measure recall@k and latency at each search setting.

    The index is created once the rows are flushed: pymilvus then waits until it is built
    over every row. Given at the collection's creation instead, a server builds it in the
    background after the load, and the first searches scan unindexed segments (exact,
    slow) while later ones use the index: a sweep would mix the two."""
    started = time.perf_counter()
    vector_collection(client, name, vectors.shape[1], metric)
    try:
        insert_vectors(client, name, vectors)
        client.flush(name)
        params = client.prepare_index_params()
        params.add_index(field_name="v", metric_type=metric, **index)
        client.create_index(name, params)
        client.load_collection(name)
        build = time.perf_counter() - started
        _require_all_rows(client, name, len(vectors))
        points = []
        for search in searches:
            client.search(name, data=[queries[0].tolist()], limit=k,  # warm-up, untimed
                          search_params={"metric_type": metric, "params": search})
            latencies, recalls = [], []
            for q, t in zip(queries, truth, strict=True):
                t0 = time.perf_counter()
                res = client.search(name, data=[q.tolist()], limit=k,
                                    search_params={"metric_type": metric, "params": search})
                latencies.append((time.perf_counter() - t0) * 1000)
                got = {int(h["id"]) for h in res[0]}
                recalls.append(len(got & {int(x) for x in t}) / k)
            points.append({"index": index["index_type"], "metric": metric,
                           "build_params": index.get("params", {}), "search_params": search,
                           "build_s": round(build, 2),
                           "recall_at_10": round(float(np.mean(recalls)), 4),
                           "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                           "p95_ms": round(float(np.percentile(latencies, 95)), 2)})
        return points
    finally:
        client.drop_collection(name)


def _require_all_rows(client, name: str, n: int) -> None:
    """Refuse to measure a collection whose searches would not see all `n` rows yet."""
    seen = int(client.query(name, filter="", output_fields=["count(*)"],
                            consistency_level="Strong")[0]["count(*)"])
    if seen != n:
        raise RuntimeError(f"{name}: {seen} of {n} rows visible after the load")


def compare_indexes(vectors: np.ndarray, n_queries: int = 500, k: int = 10,
                    uri: str | None = None, metrics: tuple[str, ...] = ("COSINE", "L2"),
                    indexes: tuple[str, ...] | None = None) -> dict:
    """Build each index type (or those named in `indexes`) over `vectors` (unit rows) on
    Milvus Lite (or the server at `uri`) and sweep its search parameter; an index type
    the backend refuses is recorded with the reason."""
    pymilvus = import_pymilvus()
    MilvusClient, MilvusException = pymilvus.MilvusClient, pymilvus.MilvusException

    rng = np.random.default_rng(0)
    qi = rng.choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)
    queries = vectors[qi]
    tmp = tempfile.mkdtemp(prefix="revsearch-ann-")
    client = MilvusClient(uri or str(Path(tmp) / "ann.db"))
    rows: list[dict] = []
    refused: dict[str, str] = {}
    try:
        backend = f"Milvus server {client.get_server_version()}" if uri else "Milvus Lite"
        for metric in metrics:
            truth = exact_top(vectors, queries, k, metric)
            for name, (index, searches) in index_configs(*vectors.shape).items():
                if indexes is not None and name not in indexes:
                    continue
                if uri is None and name in LITE_LACKS:
                    # Lite accepts the index but fails to build it in the background and
                    # answers by brute force: a curve of it would be FLAT's under its name.
                    refused[f"{name} {metric}"] = "Milvus Lite has no such index"
                    continue
                try:
                    rows += _sweep(client, f"{name}__{metric}", vectors, queries, k, metric,
                                   index, searches, truth)
                except (MilvusException, NotImplementedError) as exc:
                    # e.g. Milvus Lite has no IVF_PQ: recorded, the others still run.
                    refused[f"{name} {metric}"] = str(getattr(exc, "message", exc))[:300]
        cos = exact_top(vectors, queries, k, "COSINE")
        l2 = exact_top(vectors, queries, k, "L2")
        agreement = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(cos, l2,
                                                                           strict=True)]))
    finally:
        client.close()
        if uri is None:
            from revsearch.store.lite import release

            release(Path(tmp) / "ann.db")
    return {"backend": backend, "vectors": len(vectors), "dim": int(vectors.shape[1]),
            "queries": len(queries), "k": k, "results": rows, "refused": refused,
            "cosine_vs_l2_exact_top10_agreement": round(agreement, 4)}


def on_a_server(vectors: np.ndarray, n_queries: int = 500) -> dict:
    """`compare_indexes` on a Milvus standalone server started for the run."""
    from revsearch.eval.bench import milvus_server

    with milvus_server(Path(tempfile.mkdtemp(prefix="revsearch-ann-server-"))) as uri:
        return compare_indexes(vectors, n_queries, uri=uri)


def write_report(results: list[dict], out: Path, command: str) -> Path:
    """ann.json (every point), ann.md (the tables) and ann_curves.png (recall vs p50)."""
    out.mkdir(parents=True, exist_ok=True)
    provenance.write_json(out / "ann.json", {"runs": results, "command": command})
    first = results[0]
    lines = [
        "# Similarity search: index types in Milvus on face embeddings", "",
        f"Command: `{command}`", "",
        f"{first['vectors']} SFace face vectors ({first['dim']}-d, unit length) from LFW; "
        f"{first['queries']} of them as queries; recall@{first['k']} against exact numpy "
        "search; latency of one single-vector search call through pymilvus, per search "
        "setting. Build time covers creating the collection, inserting, flushing and "
        "loading it (the index is built during these steps). On Milvus Lite each call also "
        "pays Lite's pure-Python overhead, which narrows the gap between index types at "
        "this size. Curves: `ann_curves.png` (recall@10 against p50 latency).", ""]
    for run in results:
        lines += [f"## {run['backend']}", "",
                  "| index | metric | build params | search params | build (s) | recall@10 "
                  "| p50 (ms) | p95 (ms) |", "|---|---|---|---|---|---|---|---|",
                  *[f"| {r['index']} | {r['metric']} | {_params(r['build_params'])} | "
                    f"{_params(r['search_params'])} | {r['build_s']} | {r['recall_at_10']} | "
                    f"{r['p50_ms']} | {r['p95_ms']} |" for r in run["results"]], ""]
        for what, why in run.get("refused", {}).items():
            lines.append(f"- {what}: refused by {run['backend']}: {why}")
        lines += ["", "Cosine vs L2 on unit vectors, exact top-10 agreement: "
                  f"{run['cosine_vs_l2_exact_top10_agreement']}.", ""]
    path = out / "ann.md"
    path.write_text("\n".join(lines))
    _curves(results, out / "ann_curves.png")
    return path


def _params(params: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items()) or "-"


def _curves(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False,
                             sharey=True)
    for ax, run in zip(axes[0], results, strict=True):
        for index in dict.fromkeys(r["index"] for r in run["results"]):
            pts = [r for r in run["results"] if r["index"] == index and r["metric"] == "COSINE"]
            ax.plot([r["p50_ms"] for r in pts], [r["recall_at_10"] for r in pts], "o-",
                    label=index)
        ax.set(title=f"{run['backend']}, {run['vectors']} vectors (COSINE)",
               xlabel="p50 latency per query (ms)", ylabel="recall@10")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
