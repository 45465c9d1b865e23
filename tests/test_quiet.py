"""Importing revsearch changes nothing global."""

from __future__ import annotations

import json
import subprocess
import sys

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
