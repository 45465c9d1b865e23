"""What every benchmark script in bench/ shares: the machine a run was made on, latency
percentiles, and writing a report as JSON (every figure) beside Markdown (the tables)."""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np

# The packages whose versions move the measured speeds.
PACKAGES = ("onnxruntime", "openvino", "opencv-python-headless", "pymilvus", "milvus-lite",
            "numpy")


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2),
            "mean_ms": round(float(a.mean()), 2)}


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "packages": {p: version(p) for p in PACKAGES}}


def save_report(out: Path, stem: str, result: dict, lines: list[str]) -> str:
    """Write `stem`.json (every figure) and `stem`.md (the tables) under `out`; return
    the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(text)
    return text
