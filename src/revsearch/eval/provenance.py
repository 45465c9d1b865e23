"""Where a published figure came from: one record written into every results file.

Every JSON under docs/results carries a `provenance` object with the command, date,
git commit, machine (CPU model, cores), package versions, the embedding runtime and the
wall time of the process that wrote it, so a reader can rerun it and compare like with
like. `write_json` is the one way results are written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# The packages whose versions move the measured figures (speeds and vectors alike).
PACKAGES = ("revsearch", "numpy", "onnxruntime", "openvino", "opencv-python-headless",
            "pymilvus", "milvus-lite", "milvus", "torch", "ray", "scikit-learn")

REQUIRED = ("command", "date", "git_commit", "machine", "packages", "runtime",
            "wall_seconds")


def machine() -> dict:
    """The CPU model and core count (what speeds depend on), and the Python version."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.system()}


def packages() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str:
    """The checkout's commit, with `+dirty` when files differ from it ('' outside git)."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=here, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=here, check=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")


def command_line() -> str:
    """The command as a user would type it: `revsearch ...` or `python bench/x.py ...`."""
    args = sys.argv[1:]
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if first.name == "revsearch" or first.parts[-2:] == ("revsearch", "__main__.py"):
        return " ".join(["revsearch", *args])
    try:
        shown = first.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = first
    return " ".join(["python", str(shown), *args])


def runtime(name: str | None = None) -> str:
    """The embedding runtime a run used: the setting resolved as the embedders do."""
    from revsearch.faces.embed import resolve_runtime

    if name is None:
        from revsearch.config import load_settings

        name = load_settings().runtime
    return resolve_runtime(name)


def process_seconds() -> float | None:
    """Wall time since this process started (None where /proc is missing)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(uptime - ticks / os.sysconf("SC_CLK_TCK"), 1)


def record(command: str | None = None, runtime_name: str | None = None,
           started: float | None = None) -> dict:
    """The provenance of a result written now. `started` (time.monotonic()) gives the
    wall time of the measured part; otherwise that of the whole process."""
    wall = round(time.monotonic() - started, 1) if started is not None else process_seconds()
    return {"command": command or command_line(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git_commit": git_commit(), "machine": machine(), "packages": packages(),
            "runtime": runtime(runtime_name), "wall_seconds": wall}


def write_json(path: Path, result: dict[str, Any], *, command: str | None = None,
               runtime_name: str | None = None, started: float | None = None) -> Path:
    """Write `result` as JSON with its provenance (see the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {**result, "provenance": record(command or result.get("command"),
                                              runtime_name, started)}
    path.write_text(json.dumps(stamped, indent=2, default=_plain) + "\n")
    return path


def missing(result: dict) -> list[str]:
    """The provenance fields a results file lacks (empty when complete)."""
    prov = result.get("provenance")
    if not isinstance(prov, dict):
        return ["provenance"]
    gone = [k for k in REQUIRED if prov.get(k) in (None, "", {})]
    m = prov.get("machine") or {}
    gone += [f"machine.{k}" for k in ("cpu", "cores") if not m.get(k)]
    return gone


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
