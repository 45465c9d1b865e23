"""What every benchmark script in bench/ shares: the machine a run was made on, latency
percentiles, and writing a report as JSON (every figure, with its provenance) beside
Markdown (the tables)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from revsearch.eval import provenance


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2),
            "mean_ms": round(float(a.mean()), 2)}


def machine() -> dict:
    """The machine and package versions, for a report's header line."""
    return {**provenance.machine(), "packages": provenance.packages()}


def save_report(out: Path, stem: str, result: dict, lines: list[str]) -> str:
    """Write `stem`.json (every figure) and `stem`.md (the tables) under `out`; return
    the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    provenance.write_json(out / f"{stem}.json", result)
    (out / f"{stem}.md").write_text(text)
    return text


@contextlib.contextmanager
def milvus_server(base_dir: Path) -> Iterator[str]:
    """A Milvus standalone server on this machine for one run (the `milvus` package, a
    test dependency), keeping its data under `base_dir`; yields its URI."""
    try:
        from milvus import MilvusServer
    except ImportError as exc:
        raise RuntimeError("a local Milvus server needs the `milvus` package "
                           "(pip install milvus)") from exc
    server = MilvusServer()
    server.set_base_dir(str(base_dir))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()
