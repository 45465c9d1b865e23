"""The query object and the model-level and collection verbs, on real LFW photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, lfw, run_cli
from PIL import Image

import revsearch
from revsearch.errors import MediaError, NoFaceError, NotFoundError

# Every test here loads the real models (and most an indexed LFW subset).
pytestmark = pytest.mark.slow

GRID = DATA / "videos" / "grid"


@pytest.fixture
def rs(indexed):
    with revsearch.connect(indexed["db"], home=indexed["home"], workers=2) as handle:
        yield handle


@pytest.fixture
def private(indexed, tmp_path):
    """A copy of the indexed subset that a test may change."""
    db = tmp_path / "private.db"
    shutil.copytree(indexed["db"], db)
    with revsearch.connect(str(db), home=indexed["home"], workers=2) as handle:
        yield handle


@pytest.fixture
def blank(tmp_path) -> Path:
    path = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (90, 120, 150)).save(path)
    return path


class CountingDetector:
    """The real detector, counting its calls."""

    def __init__(self, detector) -> None:
        self.detector, self.calls = detector, 0

    def detect(self, image):
        self.calls += 1
        return self.detector.detect(image)


# -- the query object ------------------------------------------------------------------
def test_query_detects_once_for_many_searches(rs, collage):
    counting = CountingDetector(rs.pipeline.detector)
    rs.pipeline.detector = counting
    try:
        with rs.query(collage) as q:
            assert q.kind == "image" and q.name == str(collage) and len(q.digest) == 32
            assert q.image.dtype == np.uint8 and q.image.shape[2] == 3
            assert [f.default for f in q.faces] == [True, False]
            [powell] = rs.search(q, k=3)
            [blair] = rs.search(q, k=3, face=1)
            both = rs.search(q, k=3, all_faces=True)
            assert rs.detect(q) == q.faces and rs.embed(q).shape == (2, 128)
        assert counting.calls == 1
    finally:
        rs.pipeline.detector = counting.detector
    assert powell.face == q.faces[0] and blair.face == q.faces[1]
    assert [h.label for h in powell.hits] == ["Colin_Powell"] * 3
    assert [h.label for h in blair.hits] == ["Tony_Blair"] * 3
    assert [r.hits for r in both] == [powell.hits, blair.hits]
    assert rs.search(collage, k=3, face=1)[0].hits == blair.hits  # a path: same answer


def test_query_of_bytes_and_a_name(rs, indexed):
    path = indexed["dir"] / "Tony_Blair" / "Tony_Blair_0002.jpg"
    with rs.query(path.read_bytes(), name="blair.jpg") as q:
        assert q.name == "blair.jpg" and q.faces
        [result] = rs.search(q, k=3)
    assert result.query == "blair.jpg"
    assert all(h.path != str(path) for h in result.hits)  # left out: same content hash


def test_rgb_array_given_as_rgb_embeds_as_the_file(rs):
    path = lfw("Tony_Blair", 1)
    from_file = rs.embed(path)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    as_rgb = rs.embed(rs.query(rgb, colour="rgb"))
    np.testing.assert_allclose(as_rgb, from_file, atol=1e-6)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_allclose(rs.embed(rs.query(rgba, colour="rgb")), from_file, atol=1e-6)
    # The same array taken for BGR: the face is still found, its vector is another.
    assert rs.verify(rgb, path).similarity < 0.9


def test_grayscale_arrays_are_converted(rs):
    gray = np.asarray(Image.open(lfw("Tony_Blair", 1)).convert("L"))
    assert gray.ndim == 2
    two_d, one_channel = rs.detect(gray), rs.detect(gray[:, :, None])
    assert two_d and two_d == one_channel


@pytest.mark.parametrize(("array", "words"), [
    (np.zeros((100, 100, 3), np.float32), "must be uint8"),
    (np.zeros((100, 100, 3), np.uint16), "must be uint8"),
    (np.zeros((100, 100, 2), np.uint8), "expected .H, W, 3. BGR"),
    (np.zeros((4, 100, 100, 3), np.uint8), "expected .H, W, 3. BGR"),
    (np.zeros((0, 100, 3), np.uint8), "empty image"),
])
def test_arrays_that_cannot_be_right_are_refused(rs, array, words):
    with pytest.raises(MediaError, match=words):
        rs.query(array)
    with pytest.raises(MediaError, match=words):
        rs.search(array)


def test_colour_keyword(rs):
    with pytest.raises(ValueError, match="unknown colour"):
        rs.query(np.zeros((10, 10, 3), np.uint8), colour="hsv")
    with pytest.raises(ValueError, match="arrays only"):
        rs.query(lfw("Tony_Blair", 1), colour="rgb")


def test_video_bytes_live_in_a_temporary_file_until_closed(rs):
    clip = GRID / "pwij3p.mpg"
    if not clip.is_file():
        pytest.skip("GRID clips not found")
    with rs.query(clip.read_bytes()) as q:
        assert q.kind == "video" and q.video.is_file() and q.video != clip
        assert q.faces == [] and len(q.tracks) == 1 and q.tracks[0].default
        assert rs.faces(q) == q.tracks
        with pytest.raises(MediaError, match="takes a photo"):
            rs.embed(q)
    assert not q.video.exists()
    from_path = rs.query(clip)
    assert from_path.digest == q.digest and from_path.video == clip
    from_path.close()
    assert clip.is_file()  # a file of the caller's is never removed


# -- model-level verbs -----------------------------------------------------------------
def test_detect(rs, collage, blank):
    faces = rs.detect(collage)
    assert len(faces) == 2 and faces[0].box[0] < faces[1].box[0] and faces[0].default
    assert all(len(f.landmarks) == 10 and 0 < f.score <= 1 for f in faces)
    assert rs.detect(blank) == []


def test_embed(rs, collage, blank):
    vectors = rs.embed(collage)
    assert vectors.shape == (2, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(rs.embed(collage, face=1), vectors[1:], atol=1e-6)
    assert rs.embed(blank).shape == (0, 128)
    with pytest.raises(NoFaceError, match="no face 5"):
        rs.embed(collage, face=5)
    with pytest.raises(NoFaceError, match="no face found"):
        rs.embed(blank, face=0)


def test_verify(rs, collage, blank):
    same = rs.verify(lfw("Tony_Blair", 1), lfw("Tony_Blair", 2))
    assert same.match is True and same.similarity >= same.threshold > 0
    assert same.face_a.default and same.face_b.default  # the largest face of each
    assert same.a == str(lfw("Tony_Blair", 1))
    other = rs.verify(lfw("Tony_Blair", 1), lfw("George_W_Bush", 2))
    assert other.match is False and other.similarity < other.threshold
    # The collage's second face is Blair; its default (largest) is Powell.
    assert rs.verify(collage, lfw("Tony_Blair", 2), face_a=1).match is True
    assert rs.verify(collage, lfw("Tony_Blair", 2)).match is False
    both = rs.verify(rs.query(collage), collage)
    assert both.similarity == pytest.approx(1.0, abs=1e-4) and both.face_a == both.face_b
    with pytest.raises(NoFaceError, match="no face found"):
        rs.verify(lfw("Tony_Blair", 1), blank)
    with pytest.raises(NoFaceError, match="no face found"):
        rs.verify(blank, lfw("Tony_Blair", 1))


# -- collection verbs ------------------------------------------------------------------
def test_media_listing_and_get(rs, indexed):
    page = rs.media(limit=5)
    assert len(page) == 5 and all(isinstance(m, revsearch.MediaItem) for m in page)
    assert rs.media(offset=5, limit=5)[0].image_id not in {m.image_id for m in page}
    blair = rs.media(limit=100, label="Tony_Blair")
    assert len(blair) == 8 and all(m.label == "Tony_Blair" for m in blair)
    with pytest.raises(ValueError, match="label filter"):
        rs.media(label='x" or 1==1')
    item = rs.get(blair[0].image_id)
    assert item.path == blair[0].path and item.media_type == "image"
    assert [f.index for f in item.faces] == list(range(item.n_faces)) and item.tracks is None
    assert item.width == 250 and len(item.faces[0].box) == 4
    [hit] = rs.search(item.path, k=1, include_query=True)[0].hits
    assert hit.image_id == item.image_id


@pytest.mark.parametrize("media_id", ["0" * 32, "not-an-id", "../../etc/passwd", ""])
def test_get_unknown_media(rs, media_id):
    with pytest.raises(NotFoundError, match="no such media"):
        rs.get(media_id)
    with pytest.raises(KeyError):  # what a mapping lookup would raise
        rs.get(media_id)


def test_remove_files_and_folders(private, indexed):
    folder = indexed["dir"] / "Colin_Powell"
    first = private.media(limit=200, label="Colin_Powell")
    assert len(first) == 8
    before = private.stats()
    one = next(m for m in first if m.path.endswith("_0001.jpg"))
    assert private.remove([one.path]) == one.n_faces + 1
    with pytest.raises(NotFoundError):
        private.get(one.image_id)
    rest = sum(m.n_faces + 1 for m in first if m is not one)
    assert private.remove([folder]) == rest
    assert private.media(limit=200, label="Colin_Powell") == []
    after = private.stats()
    assert after["images"] == before["images"] - 8
    assert after["faces"] == before["faces"] - sum(m.n_faces for m in first)
    assert private.remove([folder, "/no/such/path.jpg"]) == 0
    [result] = private.search(lfw("Colin_Powell", 50), k=5)
    assert "Colin_Powell" not in [h.label for h in result.hits]
    private.collection.check()  # the index is consistent after removals


# -- the CLI ---------------------------------------------------------------------------
def test_cli_verify(tmp_path, collage):
    env = {"REVSEARCH_HOME": str(tmp_path)}
    done = run_cli("verify", str(lfw("Tony_Blair", 1)), str(lfw("Tony_Blair", 2)), env=env)
    assert done.returncode == 0, done.stderr
    assert "same person" in done.stdout
    done = run_cli("verify", str(collage), str(lfw("Tony_Blair", 2)), "--face-a", "1",
                   "--json", env=env)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["match"] is True and body["face_a"]["index"] == 1
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64)).save(blank)
    done = run_cli("verify", str(blank), str(collage), env=env)
    assert done.returncode == 5 and "no face found" in done.stderr


def test_cli_remove(indexed, tmp_path):
    db = tmp_path / "cli.db"
    shutil.copytree(indexed["db"], db)
    env = {"REVSEARCH_HOME": str(tmp_path), "REVSEARCH_DB": str(db)}
    folder = indexed["dir"] / "Tony_Blair"
    done = run_cli("remove", str(folder), "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert rows >= 16  # 8 photos, each its own row and at least one face
    again = run_cli("remove", str(folder), env=env)
    assert again.returncode == 0 and "removed 0 rows" in again.stdout
