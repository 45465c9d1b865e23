"""The walkthrough notebook runs from top to bottom on the shared data (so it cannot rot)."""

from __future__ import annotations

import os

import nbformat
import pytest
from conftest import DATA, ROOT
from nbclient import NotebookClient

# Executes the whole walkthrough in a Jupyter kernel.
pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_runs(tmp_path):
    if not (DATA / "ytf").is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ.setdefault("REVSEARCH_DATA", str(DATA))
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "pwij3p.mpg" in outputs and "Colin_Powell/" in outputs
