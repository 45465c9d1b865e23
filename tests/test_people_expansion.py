"""Person query expansion: the LFW measurement (`revsearch eval people --expansion`) on a
small real LFW subset, and the search option it shipped (`person_expansion`)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import mini_dev_lfw

from revsearch.config import load_settings


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> dict:
    """Eight development and eight other LFW people, four photos each, indexed once."""
    root = mini_dev_lfw(tmp_path_factory.mktemp("mini_lfw"), people=8, per_person=4)
    home = root / "home"
    settings = load_settings(home=home, workers=2, progress=False)
    return {"root": root, "settings": settings, "db": str(home / "lfw.db")}


def test_expansion_measurement_on_real_faces(mini):
    from revsearch.eval import lfw, people

    result = people.evaluate_expansion(mini["root"], mini["settings"], mini["db"], seed=1)
    # The plain rule is exactly `revsearch eval lfw`'s retrieval on the same gallery.
    g = lfw.build_gallery(mini["root"] / "lfw-deepfunneled", mini["settings"], mini["db"])
    plain = lfw.retrieval(g)
    case = result["cases"]["in_collection"]
    both = (case["rules"]["plain"]["dev"]["mAP"] * result["dev_queries"]
            + case["rules"]["plain"]["test"]["mAP"] * result["test_queries"])
    assert both / result["queries"] == pytest.approx(plain["mAP"], abs=1e-9)
    assert result["queries"] == plain["queries"] == 64
    assert result["dev_people"] == result["test_people"] == 8
    # Four photos per person, well apart: the persons hold them, so the query's
    # person has other faces, and querying with them loses nothing here.
    assert case["expanded_queries_test"] >= 28
    for name, rule in case["rules"].items():
        assert rule["test"]["rank1"] >= case["rules"]["plain"]["test"]["rank1"] - 0.1, name
    assert case["rules"][case["chosen"]]["dev"]["mAP"] == max(
        r["dev"]["mAP"] for n, r in case["rules"].items() if n != "plain")
    lo, hi = case["difference_test"]["mAP_ci95_people"]
    assert lo <= case["difference_test"]["mAP"] <= hi
    assert set(result["cases"]) == {"in_collection", "not_in_collection"}
    assert np.isfinite(result["cases"]["not_in_collection"]["difference_test"]["rank1"])
