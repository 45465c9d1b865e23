"""Every published result says where it came from (command, date, commit, machine,
package versions, runtime, wall time)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

from revsearch.eval import metrics, provenance
from revsearch.faces.embed import resolve_runtime


def test_write_json_stamps_every_field(tmp_path):
    path = provenance.write_json(tmp_path / "r.json", {"rank1": np.float32(0.5)},
                                 command="revsearch eval lfw", runtime_name="onnxruntime")
    data = json.loads(path.read_text())
    assert data["rank1"] == 0.5
    prov = data["provenance"]
    assert provenance.missing(data) == []
    assert prov["command"] == "revsearch eval lfw" and prov["runtime"] == "onnxruntime"
    assert prov["machine"]["cores"] >= 1 and prov["packages"]["numpy"] == np.__version__
    assert len(prov["git_commit"].split("+")[0]) == 40
    assert prov["wall_seconds"] >= 0


def test_missing_names_what_is_absent():
    assert provenance.missing({}) == ["provenance"]
    gone = provenance.missing({"provenance": {"command": "x", "machine": {"cores": 2}}})
    assert "date" in gone and "machine.cpu" in gone and "command" not in gone


def test_runtime_auto_resolves_and_unknown_is_refused():
    assert resolve_runtime("auto") in ("openvino", "onnxruntime")
    with pytest.raises(ValueError, match="unknown runtime"):
        resolve_runtime("tensorrt")


def test_bootstrap_interval_covers_the_mean_and_narrows_with_queries():
    rng = np.random.default_rng(1)
    small, large = rng.random(100) < 0.9, rng.random(10_000) < 0.9
    lo, hi = metrics.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = metrics.bootstrap_ci(large)
    assert lo2 < large.mean() < hi2 and (hi2 - lo2) < (hi - lo) / 5


def test_every_results_file_records_its_provenance():
    results = {p.name: provenance.missing(json.loads(p.read_text()))
               for p in sorted((ROOT / "docs" / "results").glob("*.json"))}
    assert len(results) > 20
    lacking = {name: gone for name, gone in results.items() if gone}
    assert not lacking, f"results without provenance (rerun their command): {lacking}"
