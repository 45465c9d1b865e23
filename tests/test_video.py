"""Video: real GRID clips, the street scene, YouTube Faces frame folders, damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, LFW, run_cli

import revsearch
from revsearch.errors import MediaError, NoFaceError
from revsearch.eval.datasets import read_ytf_splits, ytf_videos
from revsearch.faces.detect import Face
from revsearch.video.frames import Sampling, read_frame, read_frames
from revsearch.video.track import Detection, aggregate, link, set_similarity

VIDEOS = DATA / "videos"
GRID = VIDEOS / "grid"
STREET = VIDEOS / "street" / "street.mp4"
YTF = DATA / "ytf"
SAME_MAN = ("pwij3p.mpg", "id2_vcd_swwp2s.mpg")


def _require(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not found (set REVSEARCH_DATA)")


@pytest.fixture(scope="module")
def grid_index(tmp_path_factory) -> dict:
    """The 11 GRID clips and street.mp4 indexed once (real Milvus Lite)."""
    _require(GRID)
    home = tmp_path_factory.mktemp("video_home")
    videos = tmp_path_factory.mktemp("videos")
    shutil.copytree(GRID, videos / "grid")
    shutil.copytree(STREET.parent, videos / "street")
    db = str(home / "videos.db")
    with revsearch.connect(db, home=home, workers=2, progress=False) as rs:
        report = rs.index([videos])
    return {"db": db, "home": home, "dir": videos, "report": report}


@pytest.fixture
def rs(grid_index):
    with revsearch.connect(grid_index["db"], home=grid_index["home"], workers=2) as handle:
        yield handle


# -- reading ---------------------------------------------------------------------------
def test_sampling_caps_frame_rate_count_and_step():
    _require(GRID)
    clip = GRID / SAME_MAN[0]  # 75 frames at 25 fps
    at5 = list(read_frames(clip, Sampling(fps=5)))
    assert [f.index for f in at5] == list(range(0, 75, 5))
    assert at5[1].time == pytest.approx(0.2)
    assert len(list(read_frames(clip, Sampling(fps=0, every=10)))) == 8
    assert len(list(read_frames(clip, Sampling(fps=0, max_frames=3)))) == 3
    every = list(read_frames(clip, Sampling(fps=0)))
    assert len(every) == 75
    assert np.array_equal(read_frame(clip, 40), every[40].image)


def test_damaged_videos_raise_media_error(tmp_path):
    _require(GRID)
    data = (GRID / SAME_MAN[0]).read_bytes()
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(data[:len(data) // 2 + 1001])  # inside a packet
    street = STREET.read_bytes()
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(street[:len(street) // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    for path, words in ((cut, "truncated"), (cut_mp4, "truncated"), (garbage, "damaged")):
        with pytest.raises(MediaError, match=words):
            list(read_frames(path))


@pytest.mark.slow
def test_ingest_reports_and_skips_damaged_videos(tmp_path, home):
    _require(GRID)
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy2(GRID / SAME_MAN[0], folder)
    data = (GRID / SAME_MAN[1]).read_bytes()
    (folder / "cut.mpg").write_bytes(data[:len(data) // 3 + 777])
    (folder / "cut.mp4").write_bytes(STREET.read_bytes()[:200_000])
    (folder / "empty.webm").write_bytes(b"")
    done = run_cli("index", str(folder), "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["indexed"] == 1 and report["videos"] == 1
    reasons = {Path(p["path"]).name: p["reason"] for p in report["problems"]}
    assert set(reasons) == {"cut.mpg", "cut.mp4", "empty.webm"}
    assert "truncated" in reasons["cut.mpg"] and "empty" in reasons["empty.webm"]
    assert "Traceback" not in done.stderr


# -- tracking and aggregation ------------------------------------------------------------
def _det(frame: int, x: float, vector: np.ndarray, quality: float = 1.0) -> Detection:
    face = Face((x, 100.0, 60.0, 60.0), np.zeros((5, 2), np.float32), 0.9)
    return Detection(frame, frame / 5.0, face, vector / np.linalg.norm(vector), quality)


def test_link_keeps_two_people_apart_and_bridges_a_gap():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=128), rng.normal(size=128)
    frames = []
    for i in range(10):
        dets = [_det(i, 100 + 5 * i, a + 0.3 * rng.normal(size=128))]
        if i not in (4, 5):  # b is missed for two frames, then reappears
            dets.append(_det(i, 400 - 5 * i, b + 0.3 * rng.normal(size=128)))
        frames.append(dets)
    tracks = link(frames)
    assert len(tracks) == 2
    assert [len(t.detections) for t in tracks] == [10, 8]
    for t, ref in zip(tracks, (a, b), strict=True):
        assert all(np.dot(d.embedding, ref) > 0 for d in t.detections)


def test_link_splits_a_new_person_in_the_same_place():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=128), rng.normal(size=128)
    frames = [[_det(i, 100, a if i < 5 else b)] for i in range(10)]  # a cut between people
    assert [len(t.detections) for t in link(frames)] == [5, 5]


def test_aggregation_methods():
    rng = np.random.default_rng(2)
    person = rng.normal(size=128)
    good = np.stack([person + 0.5 * rng.normal(size=128) for _ in range(6)])
    bad = rng.normal(size=(2, 128))  # frames of something else (occluded, mis-detected)
    emb = np.concatenate([good, bad])
    quality = np.array([1.0] * 6 + [0.1, 0.1])
    unit = person / np.linalg.norm(person)
    mean = aggregate(emb, quality, "mean")
    weighted = aggregate(emb, quality, "quality")
    assert mean.shape == weighted.shape == (1, 128)
    assert np.allclose(np.linalg.norm(weighted, axis=1), 1.0, atol=1e-5)
    assert float(weighted[0] @ unit) > float(mean[0] @ unit)
    protos = aggregate(emb, quality, "prototypes", k=3)
    assert protos.shape == (3, 128)
    assert set_similarity(protos, unit[None]) >= float(mean[0] @ unit)
    single = aggregate(emb, quality, "single")
    assert np.allclose(single[0], emb[0] / np.linalg.norm(emb[0]), atol=1e-6)
    with pytest.raises(ValueError):
        aggregate(emb, quality, "median")


# -- indexing and searching real videos ------------------------------------------------
@pytest.mark.slow
def test_grid_same_man_finds_the_other_clip_first(rs):
    for query, other in (SAME_MAN, SAME_MAN[::-1]):
        result = rs.search(GRID / query, k=5)[0]
        top = result.hits[0]
        assert Path(top.path).name == other
        assert top.media_type == "video" and top.match
        assert all(Path(h.path).name != query for h in result.hits)  # the query itself
        assert top.start == 0.0 and top.end == pytest.approx(2.8)
        assert not any(h.match for h in result.hits[1:])  # nine other speakers


@pytest.mark.slow
def test_every_street_track_is_indexed(rs, grid_index):
    analysis = rs.track(grid_index["dir"] / "street" / "street.mp4")
    assert len(analysis.tracks) >= 5  # several small faces
    rows = [r for r in rs.collection.all_tracks() if r["path"].endswith("street.mp4")]
    assert sorted({r["track_index"] for r in rows}) == list(range(len(analysis.tracks)))
    for r in rows:
        assert 0 <= r["start"] <= r["end"] <= 105 / 25
        assert 0 <= r["frame"] < 105 and r["n_frames"] >= 1
        assert min(r["box"][2:]) >= 15  # small faces kept
    stats = rs.stats()
    assert stats["videos"] == 12 and stats["tracks"] == len(rows) + 11


@pytest.mark.slow
def test_video_query_tracks_and_track_choice(rs, grid_index):
    street = grid_index["dir"] / "street" / "street.mp4"
    tracks = rs.faces(street)
    assert sum(t.default for t in tracks) == 1
    chosen = rs.search(street, k=3, track=1)
    assert chosen[0].track.index == 1
    with pytest.raises(NoFaceError, match="no track 99"):
        rs.search(street, track=99)
    everyone = rs.search(street, k=3, all_tracks=True, target="videos")
    assert len(everyone) == len(tracks)
    # The street video is itself indexed, so it is excluded from its own results.
    assert all(not h.path.endswith("street.mp4") for r in everyone for h in r.hits)


@pytest.mark.slow
def test_image_to_video(rs, tmp_path):
    frame = read_frame(GRID / SAME_MAN[1], 40)
    still = tmp_path / "still.jpg"
    cv2.imwrite(str(still), frame)
    hits = rs.search(still, k=3, target="videos")[0].hits
    assert {Path(h.path).name for h in hits[:2]} == set(SAME_MAN)
    assert hits[0].match and hits[1].match and not hits[2].match
    assert rs.search(still, k=3, target="images")[0].hits == []  # no photos indexed


@pytest.mark.slow
def test_cli_video_search_and_faces(grid_index):
    env = {"REVSEARCH_HOME": str(grid_index["home"]), "REVSEARCH_DB": grid_index["db"]}
    done = run_cli("search", str(GRID / SAME_MAN[0]), "-k", "2", env=env)
    assert done.returncode == 0, done.stderr
    assert SAME_MAN[1] in done.stdout.splitlines()[1] and "track 0 at 0.0-2.8 s" in done.stdout
    listed = run_cli("faces", str(STREET), env=env)
    assert listed.returncode == 0 and "most prominent" in listed.stdout


# -- YouTube Faces ---------------------------------------------------------------------
def test_ytf_loader():
    _require(YTF)
    videos = ytf_videos(YTF)
    assert len(videos) == 1154 and len({v.name for v in videos}) == 347
    keys = {v.key for v in videos}
    pairs = read_ytf_splits(YTF / "splits.txt")
    assert len(pairs) == 5000
    present = [p for p in pairs if p.first in keys and p.second in keys]
    assert len(present) == 1426 and sum(p.same for p in present) == 1150


@pytest.mark.slow
def test_ytf_frame_folders_video_to_images(tmp_path, home):
    """YTF frame folders are indexed as labelled videos; a video query finds the same
    person's LFW photos, and a photo finds the videos."""
    _require(YTF)
    people = ["Adam_Sandler", "Colin_Powell", "Laura_Bush", "Bill_Clinton"]
    ytf = tmp_path / "ytf" / "aligned_images_DB"
    lfw = tmp_path / "lfw"
    for name in people:
        shutil.copytree(YTF / "aligned_images_DB" / name, ytf / name)
        for photo in sorted((LFW / name).glob("*.jpg"))[:3]:
            (lfw / name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(photo, lfw / name)
    with revsearch.connect(workers=2, progress=False) as rs:
        report = rs.index([ytf.parent, lfw])
        assert report.videos == sum(len(list((ytf / n).iterdir())) for n in people)
        labels = {r["label"] for r in rs.collection.all_tracks() if r["label"]}
        assert labels == set(people)
        query = next((ytf / "Adam_Sandler").iterdir())
        photos = rs.search(query, k=3, target="images")[0].hits
        assert [h.label for h in photos] == ["Adam_Sandler"] * 3
        videos = rs.search(query, k=2, target="videos")[0].hits
        assert all("Adam_Sandler" in h.path and h.path != str(query) for h in videos)
        back = rs.search(lfw / "Laura_Bush" / "Laura_Bush_0001.jpg", k=3,
                         target="videos")[0].hits
        assert all("/Laura_Bush/" in h.path for h in back[:2])
        # Unchanged on a second run: frame folders are compared like files.
        again = rs.index([ytf.parent, lfw])
        assert again.indexed == 0 and again.unchanged == report.indexed


@pytest.mark.slow
def test_eval_ytf_small(tmp_path):
    _require(YTF)
    out = tmp_path / "out"
    done = run_cli("eval", "ytf", "--people", "25", "--out", str(out), "--workers", "2",
                   timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "ytf_sface.json").read_text())
    methods = result["runs"]["clean"]["methods"]
    assert set(methods) == {"single_frame", "best_frame", "mean", "quality", "prototypes"}
    assert result["videos"] == sum(len(list((YTF / "aligned_images_DB" / n).iterdir()))
                                   for n in sorted(p.name for p in
                                                   (YTF / "aligned_images_DB").iterdir())[:25])
    assert methods["quality"]["retrieval"]["mAP"] > methods["single_frame"]["retrieval"]["mAP"]
    assert methods["quality"]["verification"]["pairs"] > 0
    assert (out / "ytf_sface.md").is_file() and (out / "ytf_sface_clean_cmc.png").is_file()
