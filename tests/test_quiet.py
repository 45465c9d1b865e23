"""Importing revsearch changes nothing global; third-party noise stays out of the terminal
and progress does not flood a log file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import lfw, require_data, run_cli

IMPORT_EVERYTHING = r"""
import importlib, json, logging, os, pkgutil, sys
import cv2, numpy, PIL.Image  # their own import-time changes are not ours
before = {
    "pixels": PIL.Image.MAX_IMAGE_PIXELS, "env": dict(os.environ),
    "root": [logging.root.level, len(logging.root.handlers)],
    "levels": {n: l.level for n, l in logging.root.manager.loggerDict.items()
               if isinstance(l, logging.Logger)},
}
import revsearch
for m in pkgutil.walk_packages(revsearch.__path__, "revsearch."):
    if not m.name.startswith(("revsearch.eval", "revsearch.__main__")):
        importlib.import_module(m.name)
ours = {n: [l.level, len(l.handlers)] for n, l in logging.root.manager.loggerDict.items()
        if isinstance(l, logging.Logger) and n.startswith("revsearch")}
print(json.dumps({
    "pixels": [before["pixels"], PIL.Image.MAX_IMAGE_PIXELS],
    "env": {k: v for k, v in os.environ.items() if before["env"].get(k) != v},
    "root": [before["root"], [logging.root.level, len(logging.root.handlers)]],
    "levels": {n: [lvl, logging.getLogger(n).level] for n, lvl in before["levels"].items()
               if logging.getLogger(n).level != lvl},
    "ours": {n: v for n, v in ours.items() if v != [0, 0]},
    "imported": sorted(m for m in sys.modules if m.startswith("revsearch")),
}))
"""

NO_FORK = r"""
import json, sys
forks = []
sys.addaudithook(lambda event, args: forks.append(event)
                 if event in ("os.fork", "os.forkpty", "os.posix_spawn", "subprocess.Popen")
                 else None)
from revsearch.faces.embed import create_embedder
create_embedder("sface", runtime="openvino")
import openvino.tools.ovc.telemetry_utils as telemetry
print(json.dumps({"forks": forks, "telemetry": telemetry.tm.__name__}))
"""


def _python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_revsearch_changes_nothing_global():
    seen = _python(IMPORT_EVERYTHING)
    assert "revsearch.serve.app" in seen["imported"] and "revsearch.cli" in seen["imported"]
    before, after = seen["pixels"]
    assert before == after and after is not None  # Pillow's bomb guard still on
    assert seen["root"][0] == seen["root"][1]  # no handler, no level on the root logger
    assert seen["env"] == {}
    assert seen["levels"] == {}
    assert seen["ours"] == {}


def test_loading_the_openvino_embedder_forks_no_telemetry_process():
    pytest.importorskip("openvino")
    seen = _python(NO_FORK)
    assert seen["forks"] == []
    assert seen["telemetry"].endswith("telemetry_stub")


FORK_WITH_LITE_OPEN = r"""
import subprocess, sys
import revsearch
with revsearch.connect(sys.argv[1], home=sys.argv[2]) as rs:
    rs.collection.count()
    # Ray starts its processes like this: a fork with a pre-exec hook.
    for _ in range(3):
        subprocess.run(["true"], preexec_fn=lambda: None, check=True)
"""


def test_forks_beside_milvus_lite_skip_grpc_fork_handlers(tmp_path):
    """Milvus Lite's gRPC server runs in the process; with gRPC's fork handlers on, a child
    forked beside it (Ray's raylet under `--engine ray`) sometimes hung before exec, so
    revsearch imports pymilvus with them off, and gRPC then never reports running them."""
    done = subprocess.run([sys.executable, "-c", FORK_WITH_LITE_OPEN, str(tmp_path / "x.db"),
                           str(tmp_path / "home")], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items()
                                            if k != "GRPC_ENABLE_FORK_SUPPORT"})
    assert done.returncode == 0, done.stderr
    assert "fork_posix" not in done.stderr and "fork()" not in done.stderr, done.stderr


@pytest.mark.slow
def test_cli_output_is_quiet_when_piped(tmp_path):
    """`make demo` in miniature, with stderr to a pipe (a log file or CI): progress as a
    few log lines without carriage returns, and no gRPC fork warning from search."""
    require_data()
    photos = tmp_path / "photos"
    for name in ("George_W_Bush", "Colin_Powell"):
        (photos / name).mkdir(parents=True)
        for i in (1, 2, 3, 4):
            shutil.copy2(lfw(name, i), photos / name)
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    # Bytes: text mode would turn the carriage returns looked for into newlines.
    done = subprocess.run([sys.executable, "-m", "revsearch", "index", str(photos)],
                          capture_output=True, env={**os.environ, **env}, timeout=300)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert b"indexed 8" in done.stdout
    assert "\r" not in stderr, stderr
    lines = stderr.strip().split("\n")
    assert 1 <= len(lines) <= 3, stderr
    assert all(re.fullmatch(r"INFO revsearch\.progress: indexed \d+/8 files \(.*\)", line)
               for line in lines), stderr
    found = run_cli("search", str(lfw("Colin_Powell", 5)), "-k", "3", env=env)
    assert found.returncode == 0, found.stderr
    assert "Colin_Powell" in found.stdout
    assert "fork_posix" not in found.stderr and "grpc" not in found.stderr.lower()
    assert found.stderr == ""


def test_progress_off_a_terminal_is_an_occasional_log_line(caplog, monkeypatch):
    import io

    from revsearch.ingest.run import _LogProgress, _progress_bar

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert isinstance(_progress_bar(5, True), _LogProgress)
    progress = _LogProgress(total=4, interval=0.0)
    with caplog.at_level("INFO", logger="revsearch.progress"):
        for _ in range(4):
            progress.update()
        progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # every update but the last, then the summary
    assert re.fullmatch(r"indexed 1/4 files \(\d+\.\d files/s, ETA \d+:\d\d\)", lines[0])
    assert re.fullmatch(r"indexed 4/4 files \(\d+\.\d files/s, took \d+:\d\d\)", lines[-1])
    quiet = _LogProgress(total=4)  # the default interval: nothing until it has passed
    with caplog.at_level("INFO", logger="revsearch.progress"):
        caplog.clear()
        quiet.update(3)
    assert caplog.records == []
