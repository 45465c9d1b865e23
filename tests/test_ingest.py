"""Ingest on real photos into real Milvus Lite: incremental, sync, resumable, bad input."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from badfiles import write_bad_folder
from conftest import build_subset, lfw, require_data, run_cli
from PIL import Image

import revsearch
from revsearch.ingest import label_for, scan
from revsearch.store import image_id_for


def _rows(db: str, home: Path) -> list[dict]:
    """Every face row, sorted, embeddings included: what 'identical index' means."""
    with revsearch.connect(db, home=home) as rs:
        rows = sorted(rs.collection.all_faces(with_embeddings=True), key=lambda r: r["face_id"])
        images = sorted(rs.collection.media(), key=lambda r: r["image_id"])
    for r in rows:
        r["embedding"] = np.asarray(r["embedding"], np.float32)
    return rows + images


def _assert_same_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if key == "embedding":
                np.testing.assert_allclose(x[key], y[key], atol=1e-6)
            elif key in ("box", "landmarks", "score"):
                np.testing.assert_allclose(x[key], y[key], atol=1e-4)
            else:
                assert x[key] == y[key], key


def test_label_modes():
    p = Path("/data/Alice_Smith/Alice_Smith_0003.jpg")
    assert label_for(p, "auto") == "Alice_Smith"
    assert label_for(Path("/photos/party/img_1.jpg"), "auto") == ""
    assert label_for(Path("/photos/party/img_1.jpg"), "parent") == "party"
    assert label_for(p, "none") == ""


@pytest.mark.slow
def test_incremental_and_sync(tmp_path, home):
    require_data()
    photos = tmp_path / "photos"
    for name, num in [("George_W_Bush", 1), ("George_W_Bush", 2), ("Colin_Powell", 1),
                      ("Tony_Blair", 1)]:
        (photos / name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(lfw(name, num), photos / name)
    with revsearch.connect() as rs:
        first = rs.index([photos])
        assert (first.indexed, first.unchanged) == (4, 0)
        assert rs.index([photos]).indexed == 0  # nothing changed: nothing redone

        # A new file is picked up; the others are not touched.
        shutil.copy2(lfw("Colin_Powell", 2), photos / "Colin_Powell")
        again = rs.index([photos])
        assert (again.indexed, again.unchanged) == (1, 4)

        # Same content, new mtime: skipped by content hash.
        os.utime(photos / "Tony_Blair" / "Tony_Blair_0001.jpg", (1e9, 1e9))
        assert rs.index([photos]).indexed == 0

        # Changed content: re-processed and its old faces replaced.
        target = photos / "Tony_Blair" / "Tony_Blair_0001.jpg"
        shutil.copy(lfw("Tony_Blair", 3), target)
        assert rs.index([photos]).indexed == 1
        [result] = rs.search(lfw("Tony_Blair", 3), k=1, include_query=True)
        assert result.hits[0].path == str(target) and result.hits[0].similarity > 0.99

        # A deleted file stays without --sync, goes with it.
        (photos / "George_W_Bush" / "George_W_Bush_0002.jpg").unlink()
        assert rs.index([photos]).removed == 0
        gone = str(photos / "George_W_Bush" / "George_W_Bush_0002.jpg")
        n_gone = sum(r["path"] == gone for r in rs.collection.all_faces())
        assert n_gone >= 1
        before = rs.stats()
        synced = rs.index([photos], sync=True)
        after = rs.stats()
        assert synced.removed == 1
        assert (after["images"], after["faces"]) == (before["images"] - 1,
                                                    before["faces"] - n_gone)
        assert all(r["path"] != gone for r in rs.collection.all_faces())
        # --sync only looks under the folders it is given.
        other = tmp_path / "other"
        other.mkdir()
        assert rs.index([other], sync=True).removed == 0
        assert rs.stats()["images"] == after["images"]


@pytest.mark.slow
def test_bad_inputs_are_reported_and_nothing_is_lost(tmp_path, home):
    require_data()
    good_dir = tmp_path / "good"
    (good_dir / "Colin_Powell").mkdir(parents=True)
    shutil.copy2(lfw("Colin_Powell", 1), good_dir / "Colin_Powell")
    bad_dir = tmp_path / "bad"
    expected = write_bad_folder(bad_dir, lfw("George_W_Bush", 1))
    report_path = tmp_path / "report.jsonl"
    with revsearch.connect() as rs:
        rs.index([good_dir])
        before = rs.stats()
        report = rs.index([bad_dir], report=report_path)
        problems = {Path(p.path).name: p.reason for p in report.problems}
        assert set(problems) == {n for n, v in expected.items() if v == "problem"}
        assert "empty" in problems["empty.jpg"]
        assert "decompression bomb" in problems["bomb.png"]
        assert "cannot decode" in problems["truncated.jpg"]
        assert "cannot decode" in problems["corrupt.jpg"]
        assert "not an image" in problems["not_an_image.jpg"]
        assert "not an image" in problems["notes.txt"]
        assert "cannot read" in problems["dangling.jpg"]
        ok = sorted(n for n, v in expected.items() if v == "ok")
        assert report.indexed == len(ok) and report.no_face == 0
        # Each odd-but-valid format gives Bush's face, upright (eyes level).
        for name in ok:
            faces = [r for r in rs.collection.all_faces() if r["path"] == str(bad_dir / name)]
            main = next(r for r in faces if r["label"] == "" and r["score"] > 0.8)
            lm = np.array(main["landmarks"]).reshape(5, 2)
            assert abs(lm[0, 1] - lm[1, 1]) < 15, name
            [result] = rs.search(bad_dir / name, k=1)
            # Its nearest image is another version of the same photo, a match.
            assert Path(result.hits[0].path).parent == bad_dir and result.hits[0].match
        after = rs.stats()
        assert after["images"] == before["images"] + len(ok)
        assert rs.collection.get_media(image_id_for(
            str(good_dir / "Colin_Powell" / "Colin_Powell_0001.jpg"))) is not None
    lines = [json.loads(line) for line in report_path.read_text().splitlines()]
    logged = {Path(x["path"]).name for x in lines if x["event"] == "problem"}
    assert logged == set(problems)
    assert lines[-1]["event"] == "summary" and lines[-1]["indexed"] == len(ok)


@pytest.mark.slow
def test_empty_folder_and_missing_path(tmp_path, home):
    (tmp_path / "empty").mkdir()
    with revsearch.connect() as rs:
        report = rs.index([tmp_path / "empty"])
        assert (report.scanned, report.indexed) == (0, 0)
        with pytest.raises(revsearch.MediaError, match="no such file or folder"):
            rs.index([tmp_path / "nope"])


def _ingest_cmd(photos: Path, db: str, home: Path) -> list[str]:
    return [sys.executable, "-m", "revsearch", "index", str(photos), "--db", db,
            "--home", str(home), "--workers", "2"]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _assert_gone(pids: list[int], seconds: float = 10.0) -> None:
    """Workers of a killed ingest must not linger holding memory."""
    def running(pid: int) -> bool:
        try:  # a zombie has exited; only its parent has yet to reap it
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if running(p)]
    assert not alive, f"orphaned worker processes still running: {alive}"


@pytest.mark.slow
def test_killed_ingest_resumes_to_identical_rows(tmp_path):
    photos = build_subset(tmp_path / "photos", extra_people=20)
    home = tmp_path / "home"
    reference = str(tmp_path / "reference.db")
    subprocess.run([*_ingest_cmd(photos, reference, home), "--no-progress"], check=True,
                   capture_output=True, timeout=300)
    expected = _rows(reference, home)
    assert len(expected) > 100

    rng = random.Random(7)
    killed = 0
    for trial in range(KILL_TRIALS):
        db = str(tmp_path / f"killed_{trial}.db")
        # Kill at a random point of the progress (the bar prints "done/total"); every
        # third trial kills twice before the re-run.
        for _ in range(1 + (trial % 3 == 2)):
            killed += _kill_ingest_at(photos, db, home, rng.uniform(0.05, 0.95))
        done = subprocess.run([*_ingest_cmd(photos, db, home), "--no-progress"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        _assert_same_rows(_rows(db, home), expected)
    assert killed >= KILL_TRIALS, "most ingests ended before they could be killed"


KILL_TRIALS = 6


def _kill_ingest_at(photos: Path, db: str, home: Path, fraction: float) -> bool:
    """Start an ingest, SIGKILL it once `fraction` of its files are done; True if killed."""
    proc = subprocess.Popen(_ingest_cmd(photos, db, home), stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    buf, deadline, workers = b"", time.monotonic() + 120, []
    while proc.poll() is None and time.monotonic() < deadline:
        buf += os.read(proc.stderr.fileno(), 4096)
        counts = re.findall(rb"(\d+)/(\d+)", buf)
        if counts and int(counts[-1][0]) >= fraction * int(counts[-1][1]):
            # List the workers before the kill: once the parent dies they are
            # re-parented and no longer show up as its children.
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    killed = proc.returncode == -signal.SIGKILL
    if killed:
        assert workers, "the ingest ran no worker processes"
    _assert_gone(workers)
    return killed


@pytest.mark.slow
def test_cli_persists_across_processes_and_prints_json(tmp_path, run_env):
    require_data()
    photos = tmp_path / "photos"
    for name in ("George_W_Bush", "Colin_Powell"):
        (photos / name).mkdir(parents=True)
        for i in (1, 2, 3):
            shutil.copy2(lfw(name, i), photos / name)
    out = run_cli("index", str(photos), "--no-progress", env=run_env)
    assert out.returncode == 0, out.stderr
    assert "indexed 6" in out.stdout
    res = run_cli("search", str(lfw("Colin_Powell", 4)), "-k", "3", "--json", env=run_env)
    assert res.returncode == 0, res.stderr
    [result] = json.loads(res.stdout)
    assert [h["label"] for h in result["hits"]] == ["Colin_Powell"] * 3
    assert all(h["match"] for h in result["hits"])
    assert result["threshold"] > 0
    text = run_cli("search", str(lfw("Colin_Powell", 4)), "-k", "2", env=run_env)
    assert "Colin_Powell" in text.stdout and "match" in text.stdout
    faces = run_cli("faces", str(lfw("Colin_Powell", 4)), env=run_env)
    assert "face 0" in faces.stdout and "default" in faces.stdout


@pytest.mark.slow
def test_cli_faceless_query_fails_clearly(tmp_path, run_env):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (120, 130, 140)).save(blank)
    res = run_cli("search", str(blank), env=run_env)
    assert res.returncode == 5
    assert "no face found" in res.stderr and "Traceback" not in res.stderr
    bad = run_cli("search", str(tmp_path / "missing.jpg"), env=run_env)
    assert bad.returncode == 4 and "cannot read" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_second_process_gets_clear_lock_message(tmp_path, run_env):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import revsearch, sys, time; rs = revsearch.connect(); rs.stats();"
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **run_env})
    try:
        assert holder.stdout.readline().strip() == "ready"
        res = run_cli("stats", env=run_env)
        assert res.returncode == 6
        assert "in use by another process" in res.stderr and "Traceback" not in res.stderr
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("stats", env=run_env).returncode == 0  # free again, nothing corrupted


@pytest.fixture
def run_env(tmp_path) -> dict:
    return {"REVSEARCH_HOME": str(tmp_path / "cli_home"), "REVSEARCH_WORKERS": "2"}


def test_scan_detects_changes_without_reading_unchanged_files(tmp_path):
    require_data()
    (tmp_path / "a").mkdir()
    shutil.copy2(lfw("Tony_Blair", 1), tmp_path / "a")
    plan = scan([tmp_path], {})
    assert [Path(t.path).name for t in plan.todo] == ["Tony_Blair_0001.jpg"]
    assert plan.todo[0].label == ""  # folder 'a' does not name the person


@pytest.mark.slow
def test_unguarded_script_can_index_with_workers(tmp_path):
    """A user script without `if __name__ == "__main__":` must not hang or re-run itself
    in the worker processes."""
    require_data()
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(1, 7):
        shutil.copy2(lfw("Colin_Powell", i), photos)
    script = tmp_path / "script.py"
    script.write_text(
        "import revsearch\n"
        f"report = revsearch.index([{str(photos)!r}], db={str(tmp_path / 'u.db')!r}, "
        f"home={str(tmp_path / 'home')!r}, workers=2, progress=False)\n"
        "print('INDEXED', report.indexed)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("INDEXED") == 1 and "INDEXED 6" in out.stdout


@pytest.mark.slow
def test_touched_file_keeps_its_recorded_size(tmp_path, home):
    """A new mtime with the same content only refreshes the marker; the image's other
    fields (width, height, faces, label) must survive the refresh."""
    require_data()
    photos = tmp_path / "photos" / "Tony_Blair"
    photos.mkdir(parents=True)
    target = photos / "Tony_Blair_0001.jpg"
    shutil.copy2(lfw("Tony_Blair", 1), target)
    with revsearch.connect() as rs:
        rs.index([photos.parent])
        before = rs.collection.get_media(image_id_for(str(target)))
        os.utime(target, (1e9, 1e9))
        assert rs.index([photos.parent]).indexed == 0
        after = rs.collection.get_media(image_id_for(str(target)))
    assert (after["width"], after["height"]) == (250, 250)
    assert {k: after[k] for k in ("n_faces", "label", "content_hash")} == \
        {k: before[k] for k in ("n_faces", "label", "content_hash")}
