"""The walkthrough notebook follows the report's main path, (b) to (g), and runs from top
to bottom on the shared data (so it cannot rot)."""

from __future__ import annotations

import os
import re

import nbformat
import pytest
from conftest import DATA, ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"
REPORT = ROOT / "docs" / "report.md"
SECTIONS = "bcdefg"  # the report's sections the notebook walks, in the report's order
REPORT_LINK = re.compile(r"\]\(\.\./docs/report\.md#([\w-]+)\)")
# A measured number (a decimal or a percentage) belongs in docs/results, not in prose.
MEASURED = re.compile(r"\d\.\d|\d\s*%")


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _report_sections() -> dict[str, str]:
    """Section letter -> the anchor of the report's heading '## (x) ...'."""
    return {m.group(1): _slug(m.group(0).lstrip("#"))
            for m in re.finditer(r"^## \((\w)\) .*$", REPORT.read_text(), re.M)}


def test_walkthrough_follows_the_report():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    anchors = _report_sections()
    letters, linked = [], set()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        letters += re.findall(r"^## \((\w)\) ", cell.source, re.M)
        linked |= set(REPORT_LINK.findall(cell.source))
        assert not MEASURED.search(cell.source), \
            f"a measured number in a markdown cell:\n{cell.source}"
    assert letters == list(SECTIONS), "the notebook's (x) headings, in the report's order"
    for letter in SECTIONS:
        assert anchors[letter] in linked, f"no link to report section ({letter})"
    assert linked <= set(anchors.values()), "a link to a heading the report does not have"


@pytest.mark.slow  # executes the whole walkthrough in a Jupyter kernel
def test_walkthrough_notebook_runs(tmp_path):
    if not (DATA / "ytf").is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ.setdefault("REVSEARCH_DATA", str(DATA))
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a code cell did not run"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    outputs = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    for step in ("baseline top hits:", "faces    top hits:",  # (b)
                 "decided at FAR 0.001",  # (c)
                 "pwij3p.mpg", "Colin_Powell/",  # (d)
                 "re-ranked on the visible part: True",  # (e)
                 "FAR 0.01:", "FAR 0.0001:",  # (f)
                 "GRID speaker: "):  # (g)
        assert step in outputs, f"the walkthrough no longer prints {step!r}"
