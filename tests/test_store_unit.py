"""The store on its own: a real Milvus Lite file, tiny random vectors, no models.

Rows round-trip through the schema; writes put the marker last and the integrity checks
catch what a killed write or a damaged file leaves; grouped search gives one hit per
photo or video, the same whether Milvus groups or the client does (servers before 2.4);
a second process gets a clear lock error; milvus_lite's private API is what we use.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from revsearch.errors import DatabaseError, DatabaseLockedError
from revsearch.store import (
    FaceRow,
    MediaRow,
    SpaceCollections,
    Store,
    TrackRow,
    copy_space,
    face_id_for,
    image_id_for,
    lite,
    track_row_id,
)
from revsearch.store.backend import (
    LegacyServerBackend,
    LiteBackend,
    ServerBackend,
    group_client_side,
    server_backend,
)
from revsearch.store.schema import FACES, MEDIA, TRACKS
from revsearch.store.search import FACE_SEARCH, TRACK_SEARCH, Searcher

DIM = 8
RNG = np.random.default_rng(7)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def photo(name: str, vectors: np.ndarray, label: str = "") -> tuple[MediaRow, list[FaceRow]]:
    image_id = image_id_for(name)
    faces = [FaceRow(face_id=face_id_for(image_id, i), image_id=image_id, path=name,
                     content_hash=f"h{image_id[:8]}", face_index=i, box=[i, 2.0, 30.0, 40.0],
                     landmarks=[float(j) for j in range(10)], score=0.9, label=label,
                     embedding=v)
             for i, v in enumerate(vectors)]
    media = MediaRow(image_id=image_id, path=name, content_hash=f"h{image_id[:8]}", size=100,
                     mtime_ns=5, width=64, height=48, n_faces=len(faces), label=label)
    return media, faces


def video(name: str, vectors: np.ndarray) -> tuple[MediaRow, list[TrackRow]]:
    video_id = image_id_for(name)
    tracks = [TrackRow(row_id=track_row_id(video_id, i, 0), video_id=video_id, path=name,
                       content_hash=f"v{video_id[:8]}", track_index=i, proto_index=0,
                       n_frames=12, start=0.5 * i, end=0.5 * i + 2.0, frame=3 + i,
                       box=[1.0, 2.0, 3.0, 4.0], score=0.8, label="", embedding=v)
              for i, v in enumerate(vectors)]
    media = MediaRow(image_id=video_id, path=name, content_hash=f"v{video_id[:8]}", size=9,
                     mtime_ns=7, width=320, height=240, n_faces=len(tracks), media_type="video")
    return media, tracks


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    with Store(str(tmp_path_factory.mktemp("store") / "unit.db")) as opened:
        yield opened


@pytest.fixture
def space(store, request) -> SpaceCollections:
    """A fresh space (its own collections) in the module's database."""
    return store.space(request.node.name.replace("[", "_").strip("]").lower()[:40], DIM)


def equal_rows(a, b) -> bool:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "embedding":
            if not np.allclose(np.asarray(x), np.asarray(y), atol=1e-6):
                return False
        elif isinstance(x, list | tuple):
            if list(x) != pytest.approx(list(y)):
                return False
        elif isinstance(x, float):
            if x != pytest.approx(y):
                return False
        elif x != y:
            return False
    return True


def test_schema_tables_declare_each_field_once():
    """The collection schema is the row type plus only the media collection's filler."""
    for table, extra in ((FACES, []), (TRACKS, []), (MEDIA, ["unused"])):
        schema = table.schema(DIM)
        assert [f.name for f in schema.fields] == table.names + extra
        assert sorted(table.to_db(_example(table.row))) == sorted(table.names + extra)
    assert (FACES.primary, TRACKS.primary, MEDIA.primary) == ("face_id", "row_id", "image_id")
    assert (FACES.name("k"), TRACKS.name("k"), MEDIA.name("k")) == (
        "faces_k", "tracks_k", "images_k")  # the names on disk predate this package


def _example(row_type):
    if row_type is FaceRow:
        return photo("a.jpg", unit(RNG.normal(size=(1, DIM))))[1][0]
    if row_type is TrackRow:
        return video("a.mp4", unit(RNG.normal(size=(1, DIM))))[1][0]
    return photo("a.jpg", unit(RNG.normal(size=(1, DIM))))[0]


def test_to_db_gives_plain_python_values():
    row = _example(FaceRow)
    row.face_index, row.score = np.int64(3), np.float32(0.5)
    row.box = np.array([1, 2, 3, 4], dtype=np.int32)
    stored = FACES.to_db(row)
    assert type(stored["face_index"]) is int and type(stored["score"]) is float
    assert stored["box"] == [1.0, 2.0, 3.0, 4.0] and type(stored["box"][0]) is float
    assert type(stored["embedding"]) is list and len(stored["embedding"]) == DIM


def test_rows_round_trip(space):
    media, faces = photo("p/one.jpg", unit(RNG.normal(size=(2, DIM))), label="Ann")
    clip, tracks = video("v/one.mp4", unit(RNG.normal(size=(3, DIM))))
    space.write([media], faces)
    space.write([clip], [], tracks=tracks)
    read_faces = sorted((FACES.from_db(r) for r in space.all_faces(with_embeddings=True)),
                        key=lambda r: r.face_id)
    read_tracks = sorted((TRACKS.from_db(r) for r in space.all_tracks(with_embeddings=True)),
                         key=lambda r: r.row_id)
    read_media = {r["image_id"]: MEDIA.from_db(r) for r in space.media()}
    assert all(equal_rows(a, b) for a, b in zip(read_faces, faces, strict=True))
    assert all(equal_rows(a, b) for a, b in zip(read_tracks, tracks, strict=True))
    assert read_media == {media.image_id: media, clip.image_id: clip}
    assert space.get_media(clip.image_id)["media_type"] == "video"
    assert space.get_face(faces[1].face_id)["face_index"] == 1
    assert space.get_track(clip.image_id, 2)["frame"] == 5
    assert space.count() == {"faces": 2, "tracks": 3, "images": 1, "videos": 1}
    assert [r["path"] for r in space.list_media(label="An")] == ["p/one.jpg"]


def test_write_replaces_faces_and_marks_last(space):
    media, faces = photo("p/two.jpg", unit(RNG.normal(size=(3, DIM))))
    space.write([media], faces)
    assert space.consistent(space.media())
    space.check()
    fewer = dataclasses.replace(media, n_faces=1)
    space.write([fewer], faces[:1])  # re-indexed: stale face rows go first
    assert [r["face_id"] for r in space.all_faces()] == [faces[0].face_id]
    assert space.consistent(space.media())


def test_a_write_killed_before_its_marker_is_seen_and_undone(space):
    done, done_faces = photo("p/done.jpg", unit(RNG.normal(size=(2, DIM))))
    space.write([done], done_faces)
    killed, killed_faces = photo("p/killed.jpg", unit(RNG.normal(size=(2, DIM))))
    space.client.insert(space.faces_name, [FACES.to_db(f) for f in killed_faces])  # no marker
    assert not space.consistent(space.media())
    assert space.face_counts() == {done.image_id: 2, killed.image_id: 2}
    space.write([killed], killed_faces)  # the re-run
    assert space.consistent(space.media())
    assert space.count()["faces"] == 4


def test_missing_face_rows_fail_the_check(space):
    media, faces = photo("p/lost.jpg", unit(RNG.normal(size=(2, DIM))))
    space.write([media], faces)
    space.client.delete(space.faces_name, ids=[f.face_id for f in faces])
    assert not space.consistent(space.media())
    with pytest.raises(DatabaseError, match="damaged or incomplete"):
        space.check()


def test_remove_forgets_the_file_and_its_rows(space):
    media, faces = photo("p/gone.jpg", unit(RNG.normal(size=(2, DIM))))
    clip, tracks = video("v/gone.mp4", unit(RNG.normal(size=(2, DIM))))
    kept, kept_faces = photo("p/kept.jpg", unit(RNG.normal(size=(1, DIM))))
    space.write([media, clip, kept], faces + kept_faces, tracks=tracks)
    space.remove([media.image_id, clip.image_id])
    assert [r["path"] for r in space.media()] == ["p/kept.jpg"]
    assert space.count() == {"faces": 1, "tracks": 0, "images": 1, "videos": 0}
    assert space.consistent(space.media())


def test_touch_updates_the_marker_only(space):
    media, faces = photo("p/touched.jpg", unit(RNG.normal(size=(2, DIM))))
    space.write([media], faces)
    space.touch([dataclasses.replace(media, size=222, mtime_ns=99)])
    [row] = space.media()
    assert (row["size"], row["mtime_ns"], row["n_faces"]) == (222, 99, 2)
    assert space.count()["faces"] == 2


def _crowded(space, query: np.ndarray, crowd: int) -> None:
    """One photo with `crowd` faces near `query`, ten photos with a face less near, and
    twenty with a random face."""
    rows = [photo("p/crowd.jpg", unit(query + 0.05 * RNG.normal(size=(crowd, DIM))))]
    rows += [photo(f"p/near_{i:02d}.jpg", unit(query + 0.3 * RNG.normal(size=(1, DIM))))
             for i in range(10)]
    rows += [photo(f"p/other_{i:02d}.jpg", unit(RNG.normal(size=(1, DIM)))) for i in range(20)]
    space.write([m for m, _ in rows], [f for _, fs in rows for f in fs])


def test_grouped_search_gives_one_hit_per_photo(space):
    query = unit(RNG.normal(size=(1, DIM)))
    _crowded(space, query[0], crowd=8)
    [hits] = space.search(query, 5)
    assert len(hits) == 5 and len({h.image_id for h in hits}) == 5
    assert hits[0].path == "p/crowd.jpg"
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    [ungrouped] = space.search(query, 5, per_image=False)
    assert {h.path for h in ungrouped} == {"p/crowd.jpg"}
    media = space.get_media(hits[0].image_id)
    [without] = space.search(query, 5, exclude_hash=media["content_hash"])
    assert "p/crowd.jpg" not in {h.path for h in without}


def test_client_side_grouping_agrees_with_group_by(space):
    """The path servers before 2.4 take, run on Lite against its own group_by. The crowd
    fills the first 64 hits, so the client-side path has to fetch more; it stays within
    the 10 k hits Lite groups, so Lite finds k groups."""
    query = unit(RNG.normal(size=(2, DIM)))
    _crowded(space, query[0], crowd=70)
    [first] = space.search(query[:1], 64, per_image=False)
    assert {h.path for h in first} == {"p/crowd.jpg"}
    clips = [video(f"v/clip_{i}.mp4", unit(RNG.normal(size=(4, DIM)))) for i in range(6)]
    space.write([m for m, _ in clips], [], tracks=[t for _, ts in clips for t in ts])
    for kind, k in ((FACE_SEARCH, 8), (TRACK_SEARCH, 4)):
        name = kind.table.name(space.key)
        legacy = Searcher(space.client, LegacyServerBackend((2, 3)), name, kind)
        grouped = Searcher(space.client, space.store.backend, name, kind)
        for exclude in ("", "no such hash"):
            old, new = legacy.search(query, k, exclude), grouped.search(query, k, exclude)
            assert [[h.face_id for h in hits] for hits in old] == [
                [h.face_id for h in hits] for hits in new]
            assert [h.similarity for hits in old for h in hits] == pytest.approx(
                [h.similarity for hits in new for h in hits], abs=1e-6)


def test_client_side_grouping_fetches_more_until_k_groups():
    calls = []

    def search(vectors, limit, **kwargs):
        calls.append(limit)
        hits = [{"entity": {"g": "a"}, "distance": 1.0}] * 100  # a crowd of one group
        hits += [{"entity": {"g": f"b{i}"}, "distance": 0.5} for i in range(10)]
        return [hits[:limit]]

    found = group_client_side(search, np.zeros(DIM), 3, "g")
    assert [h["entity"]["g"] for h in found] == ["a", "b0", "b1"]
    assert calls == [64, 256]


def test_backend_is_chosen_once_from_uri_and_version(store):
    assert isinstance(store.backend, LiteBackend) and store.is_lite
    assert store.backend.vector_index() == {"index_type": "FLAT"}
    assert type(server_backend((2, 3))) is LegacyServerBackend
    assert type(server_backend((2, 4))) is ServerBackend
    assert server_backend((2, 3)).group_index() is None
    assert server_backend((2, 5)).group_index() == {"index_type": "INVERTED"}
    assert server_backend((2, 5)).search_params("COSINE", None, 10)["params"] == {"ef": 64}
    assert server_backend((2, 5)).search_params("L2", 100, 200)["params"] == {"ef": 200}
    assert "params" not in store.backend.search_params("COSINE", None, 10)


def test_a_space_keeps_its_dimension(store, tmp_path):
    store.space("dims", DIM)
    with pytest.raises(DatabaseError, match="8-d vectors"):
        store.space("dims", 2 * DIM)
    reopened = store.open_space("dims")
    assert (reopened.dim, reopened.metric) == (DIM, "COSINE")
    assert "dims" in store.list_spaces()
    with pytest.raises(DatabaseError, match=r"must end in \.db"):
        Store(str(tmp_path / "not_a_database"))


def test_copy_space_copies_every_row(space, tmp_path):
    media, faces = photo("p/copied.jpg", unit(RNG.normal(size=(2, DIM))))
    clip, tracks = video("v/copied.mp4", unit(RNG.normal(size=(3, DIM))))
    space.write([media, clip], faces, tracks=tracks)
    with Store(str(tmp_path / "copy.db")) as other:
        copied = copy_space(space, other.space(space.key, DIM))
        assert copied == {"faces": 2, "tracks": 3, "images": 2}
        assert other.open_space(space.key).count() == space.count()


def test_lite_private_api_is_what_we_use(tmp_path):
    """milvus_lite's server registry: a dict of open paths and `release_server`. If this
    fails, milvus_lite changed its private API: fix revsearch/store/lite.py."""
    registry = lite._servers()
    assert isinstance(registry._servers, dict)
    assert callable(registry.release_server)
    path = tmp_path / "private.db"
    store = Store(str(path))
    assert lite.open_here(path.resolve())
    assert str(path.resolve()) in registry._servers
    again = Store(str(path))  # this process holds it: not a lock conflict
    again.client.close()
    store.close()
    assert not lite.open_here(path.resolve())
    Store(str(path)).close()  # released: it opens again


def test_a_second_process_gets_a_clear_lock_error(tmp_path):
    path = tmp_path / "held.db"
    code = ("import sys, time\nfrom revsearch.store import Store\n"
            f"s = Store({str(path)!r}); s.space('k', {DIM})\n"
            "print('ready', flush=True); time.sleep(60)")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLockedError, match="in use by another process"):
            Store(str(path))
    finally:
        holder.kill()
        holder.wait()
    with Store(str(path)) as store:
        assert store.open_space("k").dim == DIM
