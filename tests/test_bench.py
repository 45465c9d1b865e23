"""The benchmark scripts run end to end on small real data, so the commands the docs show
cannot rot between the (long, on-demand) runs that produce the published numbers.

Sizes here are tiny and the numbers they print are not checked against any target:
speed targets live in the benchmarks' own reports, not in timed tests. What is checked
is that each script runs, writes its JSON and Markdown where `--out` says, and that the
figures in them are of the right kind (counts add up, rates are positive, no errors).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, LFW, ROOT, copy_people, require_data

# Each test runs a benchmark script end to end in a subprocess.
pytestmark = pytest.mark.slow

BENCH = ROOT / "bench"


def _run(script: str, *args: str, timeout: float = 600) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _read(out: Path, stem: str) -> dict:
    md = (out / f"{stem}.md").read_text()
    assert "Command: `" in md, f"{stem}.md does not say how it was made"
    return json.loads((out / f"{stem}.json").read_text())


def test_bench_lfw(subset_dir, tmp_path):
    _run("bench_lfw.py", "--lfw", str(subset_dir), "--queries", "8", "--profile", "4",
         "--out", str(tmp_path))
    r = _read(tmp_path, "bench_lfw")
    n_images = len(list(subset_dir.glob("*/*.jpg")))
    assert r["ingest"]["images"] == n_images and r["ingest"]["problems"] == 0
    assert r["ingest"]["images_per_s"] > 0 and r["ingest"]["faces"] >= n_images
    assert r["query"]["end_to_end"]["n"] == 8 - r["query"]["no_face_queries"] > 0
    assert set(r["profile"]["ms_per_image"]) == {"decode", "detect", "embed_onnxruntime",
                                                "embed_openvino"}


def test_bench_lfw_on_a_milvus_server(server, subset_dir, tmp_path):
    _run("bench_lfw.py", "--server", "--db", server, "--lfw", str(subset_dir), "--queries", "5",
         "--profile", "0", "--out", str(tmp_path))
    r = _read(tmp_path, "bench_lfw_server")
    assert r["backend"] == "server" and r["index"]["images"] == r["ingest"]["images"] > 0


def test_bench_norm(indexed, subset_dir, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copytree(indexed["db"], db)
    _run("bench_norm.py", "--db", str(db), "--photos", str(subset_dir), "--queries", "4",
         "--out", str(tmp_path))
    r = _read(tmp_path, "bench_norm")
    assert r["latency"]["none"]["n"] == r["latency"]["asnorm"]["n"] >= 3
    assert r["cohort_faces"] == r["index_faces"] > 100  # a small index: all of it


def test_bench_spaces(subset_dir, tmp_path):
    _run("bench_spaces.py", "--spaces", "sface,sface_flip", "--photos", str(subset_dir),
         "--faces", "6", "--results", str(ROOT / "docs" / "results"), "--out", str(tmp_path))
    r = _read(tmp_path, "spaces_compare")
    assert set(r["spaces"]) == {"sface", "sface_flip"}
    sface = r["spaces"]["sface"]
    assert sface["embed_ms_per_face"]["n"] == 6 and sface["licence"] == "Apache-2.0"
    assert 0.9 < sface["lfw_rank1"] < 1 and 0.9 < sface["ytf_rank1"] < 1


def test_bench_peer(tmp_path):
    _run("bench_peer.py", "--images", "24", "--queries", "4", "--out", str(tmp_path))
    r = _read(tmp_path, "bench_peer")
    assert 0 < r["images"] <= 24 and r["queries"] == 4  # whole people, up to 24 photos
    assert set(r["runs"]) == {"revsearch, 1 worker", "revsearch, all cores",
                              "revsearch sface_dlib, all cores", "face_recognition-style"}
    for run in r["runs"].values():
        assert run["ingest_per_s"] > 0 and 0 <= run["rank1"] <= 1 and 0 <= run["mAP"] <= 1


def test_bench_video(tmp_path):
    if not (DATA / "videos" / "grid").is_dir():
        pytest.skip("no shared videos")
    _run("bench_video.py", "--sets", "grid,ytf", "--ytf-people", "2", "--out", str(tmp_path))
    r = _read(tmp_path, "bench_video")
    grid, ytf = r["runs"]
    assert grid["set"] == "grid" and grid["videos"] == 11 and grid["problems"] == 0
    assert grid["tracks"] >= 11 and grid["frames_per_s"] > 0
    assert ytf["set"] == "ytf" and ytf["videos"] >= 2 and ytf["query"]["n"] == 2


def test_bench_api(indexed, subset_dir, tmp_path):
    db = tmp_path / "api.db"
    shutil.copytree(indexed["db"], db)
    _run("bench_api.py", "--db", str(db), "--lfw", str(subset_dir), "--runs", "2:3",
         "--photos", "10", "--out", str(tmp_path))
    r = _read(tmp_path, "bench_api")
    [run] = r["runs"]
    assert run["clients"] == 2 and run["errors"] == 0 and run["requests"] > 0


def test_bench_watch(tmp_path):
    require_data()
    # Enough photos that the ingest outlasts the measuring window on a quiet machine too.
    _run("bench_watch.py", "--lfw", str(LFW), "--ingest", "300", "--base", "20",
         "--clients", "2", "--seconds", "2", "--settle", "0.5", "--workers", "1",
         "--out", str(tmp_path))
    r = _read(tmp_path, "bench_watch")
    for run in (r["searches_alone"], r["searches_during_ingest"]):
        assert run["clients"] == 2 and run["errors"] == 0 and run["requests"] > 0
    for run in (r["ingest_alone"], r["ingest_during_searches"]):
        assert run["files"] > 0 and run["files_per_s"] > 0
        assert run["whole_job"]["indexed"] == 300 and run["whole_job"]["problems"] == 0
    assert r["index_after"]["images"] == r["index_before"]["images"] + 600


def test_bench_scale(server, subset_dir, tmp_path):
    _run("bench_scale.py", "--db", server, "--lfw", str(subset_dir), "--n", "2000",
         "--lite-sizes", "500", "--queries", "20", "--efs", "16,64", "--tag", "_smoke",
         "--out", str(tmp_path))
    r = _read(tmp_path, "scale_smoke")
    assert r["server"]["vectors"] == sum(r["server"]["segments"]) == 2000
    recalls = [s["recall_at_10"] for s in r["server"]["searches"]]
    assert len(recalls) == 2 and all(0 < x <= 1 for x in recalls)
    assert recalls[1] >= recalls[0]  # a wider search never finds fewer true neighbours
    assert r["lite"][0]["vectors"] == 500


def test_bench_scale_ivf(server, subset_dir, tmp_path):
    _run("bench_scale.py", "--db", server, "--lfw", str(subset_dir), "--n", "2000",
         "--lite-sizes", "", "--queries", "20", "--index", "IVF_PQ", "--nlist", "16",
         "--pq-m", "16", "--nprobes", "1,16", "--tag", "_ivf", "--out", str(tmp_path))
    r = _read(tmp_path, "scale_ivf")
    assert r["server"]["index"] == "IVF_PQ" and r["server"]["build"]["nlist"] == 16
    [few, every] = r["server"]["searches"]
    assert (few["nprobe"], every["nprobe"]) == (1, 16)
    # Probing every list leaves only the quantisation's own error: never fewer true
    # neighbours than probing one list.
    assert 0 < few["recall_at_10"] <= every["recall_at_10"] <= 1
    assert "| nprobe |" in (tmp_path / "scale_ivf.md").read_text()


def test_ytf_variants(tmp_path):
    ytf = DATA / "ytf"
    if not ytf.is_dir():
        pytest.skip("no shared YouTube Faces")
    lfw_dir = tmp_path / "lfw"
    copy_people(lfw_dir, ["Tony_Blair", "Colin_Powell", "Gerhard_Schroeder"], 4)
    _run("ytf_variants.py", "--people", "4", "--lfw", str(lfw_dir), "--out", str(tmp_path))
    r = _read(tmp_path, "ytf_variants")
    rows = r["variants"]
    assert {"mean", "csls k5", "centred", "wccn a1.0", "lfw cohort k10", "flip + mean",
            "jitter + mean"} <= set(rows)
    assert sum(name.startswith("csls, k chosen on LFW") for name in rows) == 1
    for choice in r["csls_k_on_lfw"].values():
        assert choice["chosen"] in {int(k) for k in choice["lfw_rank1_by_k"]}
    for row in rows.values():
        assert row["queries"] == r["queries"] > 0 and 0 <= row["rank1"] <= 100
        assert row["misses"] == round((1 - row["rank1"] / 100) * row["queries"])


def test_ytf_label_audit(tmp_path):
    if not (DATA / "ytf").is_dir():
        pytest.skip("no shared YouTube Faces")
    _run("ytf_label_audit.py", "--people", "6", "--out", str(tmp_path))
    r = _read(tmp_path, "ytf_label_audit")
    assert r["published_labels"]["queries"] == r["videos"] > 0
    assert all(c["best_same_label"] < r["threshold"] for c in r["candidates"])
    judged = sum(bool(c["judged_mislabelled"]) for c in r["candidates"])
    assert r["judged_removed"]["queries"] == r["videos"] - judged
    assert (tmp_path / "ytf_label_audit.jpg").is_file() == bool(r["candidates"])


def test_bench_ray(server, tmp_path):
    pytest.importorskip("ray")
    photos = copy_people(tmp_path / "lfw", ["George_W_Bush", "Colin_Powell", "Tony_Blair"], 4)
    _run("bench_ray.py", "--lfw", str(photos), "--db", server, "--runs", "local:2,ray:2",
         "--transport-images", "16", "--out", str(tmp_path))
    r = _read(tmp_path, "bench_ray")
    assert [(run["engine"], run["images"], run["problems"]) for run in r["runs"]] == \
        [("local", 12, 0), ("ray", 12, 0)]
    assert all(run["rows_vs_first"]["same_face_ids"] for run in r["runs"])
    assert r["insert"]["rows"] == 12 + r["runs"][0]["faces"] and r["insert"]["rows_per_s"] > 0
    assert r["transport"]["ms_per_image"] > 0 and r["scan"]["files"] == 12
    assert [row["machines"] for row in r["model"]["rows"]] == [1, 2, 4, 8, 16, 32, 64]


def test_bench_occlusion(subset_dir, tmp_path):
    _run("bench_occlusion.py", "--lfw", str(subset_dir), "--index", "--db",
         str(tmp_path / "bench.db"), "--queries", "3", "--out", str(tmp_path))
    r = _read(tmp_path, "bench_occlusion")
    assert set(r["cases"]) == {"clean", "sunglasses", "mask", "patch"}
    assert r["cases"]["clean"]["on"]["n"] == r["cases"]["clean"]["off"]["n"] == 3
    assert r["cases"]["sunglasses"]["handled_as_covered"] >= 1
    assert all(c["on"]["p50_ms"] > 0 for c in r["cases"].values())
    prof = r["profile"]["sunglasses"]
    assert prof["crops"]["n"] == prof["rescore_bf16"]["n"] == prof["rescore_f32"]["n"] >= 1
    assert prof["rescore_f32"]["p50_ms"] > 0


def test_occlusion_dev(subset_dir, tmp_path, monkeypatch):
    root = tmp_path / "lfw"
    root.mkdir()
    (root / "lfw-deepfunneled").symlink_to(subset_dir)
    people = sorted(p.name for p in subset_dir.iterdir())[:6]
    (root / "pairsDevTrain.txt").write_text(
        "1\n" + f"{people[0]}\t1\t2\n" + f"{people[1]}\t1\t{people[2]}\t1\n")
    monkeypatch.setenv("REVSEARCH_HOME", str(tmp_path / "home"))
    _run("occlusion_dev.py", "--lfw", str(root), "--queries", "3", "--clean", "6",
         "--reranks", "2,3", "--weights", "0.5", "--precisions", "bf16,f32",
         "--out", str(tmp_path))
    r = _read(tmp_path, "occlusion_dev_sface")
    assert r["queries"] == 3 and r["stage1"] and r["stage2"][0]["config"] == "plain"
    assert [(x["precision"], x["rerank"]) for x in r["stage2"][1:]] == [
        ("bf16", 2), ("bf16", 3), ("f32", 2), ("f32", 3)]
    assert "Chosen at bf16" in (tmp_path / "occlusion_dev_sface.md").read_text()


def test_ytf_manifest(tmp_path):
    """The manifest script lists a YTF-layout tree by path, one row per video."""
    db = tmp_path / "ytf" / "aligned_images_DB"
    for person, video, frames in (("Ann_A", "10", 5), ("Ann_A", "2", 3), ("Bob_B", "0", 5)):
        folder = db / person / video
        folder.mkdir(parents=True)
        for i in range(frames):
            (folder / f"aligned_detect_{video}.{i}.jpg").write_bytes(b"")
    (db / "Bob_B" / "7").mkdir()  # a video folder with no frame is not listed
    out = tmp_path / "manifest.csv"
    _run("ytf_manifest.py", "--ytf", str(tmp_path / "ytf"), "--out", str(out))
    assert out.read_text().splitlines() == [
        "person,video,frames", "Ann_A,2,3", "Ann_A,10,5", "Bob_B,0,5"]


def test_compare_figures(tmp_path):
    """The comparison figures are drawn from the published JSON files alone."""
    out, scale = tmp_path / "compare.png", tmp_path / "scale.png"
    _run("compare_figures.py", "--out", str(out), "--scale-out", str(scale))
    assert out.stat().st_size > 10_000 and scale.stat().st_size > 10_000
