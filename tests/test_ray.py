"""The Ray engine on a real Ray cluster on 127.0.0.1 and a real Milvus server: the same rows
as the local engine, incremental and --sync alike, and a killed driver or worker costs
nothing but a re-run (or, for a worker, nothing at all)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, ROOT, copy_people, empty_milvus, lfw, run_cli

import revsearch
from revsearch.ingest.engines.ray import _batches, on_this_machine
from revsearch.ingest.records import Task
from revsearch.store.schema import MEDIA

GRID = DATA / "videos" / "grid"
VIDEOS = ("bbaf2n.mpg", "lbax4n.mpg")


# -- without a cluster ---------------------------------------------------------------
def test_videos_are_whole_file_tasks_and_photos_go_in_batches():
    tasks = [Task(f"/p/{i}.jpg", "") for i in range(5)]
    tasks.insert(2, Task("/v/a.mp4", "", "video"))
    assert [[t.path for t in b] for b in _batches(tasks, 2)] == [
        ["/p/0.jpg", "/p/1.jpg"], ["/v/a.mp4"], ["/p/2.jpg", "/p/3.jpg"], ["/p/4.jpg"]]


def test_addresses_of_this_machine():
    assert on_this_machine("127.0.0.1:6379") and on_this_machine("ray://localhost:10001")
    assert on_this_machine(f"{socket.gethostname()}:6379") and on_this_machine("auto")
    assert not on_this_machine("198.51.100.1:6379")  # TEST-NET-2: never this machine


@pytest.mark.slow
def test_lite_database_with_a_remote_cluster_is_refused(tmp_path):
    copy_people(tmp_path / "photos", ["Colin_Powell"], 2)
    db = tmp_path / "lite.db"
    out = run_cli("index", str(tmp_path / "photos"), "--db", str(db), "--home",
                  str(tmp_path / "home"), "--engine", "ray", "--ray-address", "198.51.100.1:6379")
    assert out.returncode != 0
    assert "needs a Milvus server" in out.stderr and "--db http://" in out.stderr, out.stderr
    with revsearch.connect(str(db), home=tmp_path / "home") as rs:
        assert rs.stats()["images"] == 0  # refused before any file was read


@pytest.mark.slow
def test_without_ray_the_error_says_how_to_install_it(tmp_path):
    copy_people(tmp_path / "photos", ["Colin_Powell"], 1)
    code = ("import sys; sys.modules['ray'] = None  # as if not installed\n"
            "from revsearch.cli import main\n"
            f"sys.exit(main(['index', {str(tmp_path / 'photos')!r}, '--engine', 'ray', "
            f"'--db', {str(tmp_path / 'x.db')!r}, '--home', {str(tmp_path / 'h')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "pip install 'revsearch[distributed]'" in done.stderr, done.stderr


# -- on a cluster ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A two-CPU Ray head on this machine, shared by this module's tests; stopped through
    its own process group (`ray stop` would stop every cluster on the machine)."""
    # `ray start` turns on token authentication, and a driver sends the token only if
    # token mode was on when *it* first imported Ray, which in a long test session may
    # have happened long before. This short-lived cluster on one machine runs without it
    # (docs/deploy.md says how a real cluster keeps it on).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        pytest.importorskip("ray")
        port = _free_port()
        ray_cli = Path(sys.executable).parent / "ray"
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
        log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")  # noqa: SIM115
        head = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for_port(port, head)
            yield f"127.0.0.1:{port}"
        finally:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
            log.close()


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError("the Ray head did not come up")


def _rows(db: str, home: Path) -> dict[str, list[dict]]:
    """Every face, track and media row, sorted, embeddings included."""
    with revsearch.connect(db, home=home) as rs:
        c = rs.collection
        rows = {"faces": sorted(c.all_faces(with_embeddings=True), key=lambda r: r["face_id"]),
                "tracks": sorted(c.all_tracks(with_embeddings=True), key=lambda r: r["row_id"]),
                "media": sorted(c.media(), key=lambda r: r["image_id"])}
    return rows


def _assert_same_rows(a: dict[str, list[dict]], b: dict[str, list[dict]]) -> None:
    for kind in ("faces", "tracks", "media"):
        assert len(a[kind]) == len(b[kind]), kind
        for x, y in zip(a[kind], b[kind], strict=True):
            assert x.keys() == y.keys()
            for key in x:
                if key == "embedding":
                    np.testing.assert_allclose(np.asarray(x[key], np.float32),
                                               np.asarray(y[key], np.float32), atol=1e-5)
                elif key in ("box", "landmarks", "score", "start", "end"):
                    np.testing.assert_allclose(x[key], y[key], atol=1e-4)
                else:
                    assert x[key] == y[key], (kind, key)


def _counts(report) -> tuple:
    # Pillow names the in-memory file it could not read by its address: not the reason.
    problems = sorted((Path(p.path).name, re.sub(r" at 0x[0-9a-f]+", "", p.reason))
                      for p in report.problems)
    return (report.scanned, report.indexed, report.unchanged, report.removed, report.faces,
            report.videos, report.tracks, problems)


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A dozen LFW photos, two GRID videos and a file no worker can decode."""
    photos = copy_people(tmp_path / "mixed", ["George_W_Bush", "Colin_Powell", "Tony_Blair"], 4)
    if GRID.is_dir():
        for name in VIDEOS:
            shutil.copy2(GRID / name, photos / name)
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    return photos


@pytest.mark.slow
def test_ray_rows_equal_local_rows_through_incremental_and_sync(ray_address, server, mixed,
                                                                 tmp_path):
    """Each step with both engines: the same report and the same rows, row for row."""
    home = tmp_path / "home"
    lite = str(tmp_path / "local.db")
    steps = [
        ("first run", lambda: None, False),
        ("nothing changed", lambda: None, False),
        ("one photo replaced", lambda: shutil.copy2(lfw("Tony_Blair", 9),
                                                    mixed / "Tony_Blair" / "Tony_Blair_0002.jpg"),
         False),
        ("one photo deleted, --sync", lambda: (mixed / "Colin_Powell" /
                                               "Colin_Powell_0001.jpg").unlink(), True),
    ]
    for step, change, sync in steps:
        change()
        with revsearch.connect(lite, home=home, workers=2, progress=False) as rs:
            local = rs.index([mixed], sync=sync)
        with revsearch.connect(server, home=home, workers=2, progress=False, engine="ray",
                               ray_address=ray_address) as rs:
            remote = rs.index([mixed], sync=sync)
        assert _counts(remote) == _counts(local), step
        _assert_same_rows(_rows(server, home), _rows(lite, home))
        if step == "first run":
            assert remote.indexed == 12 + (len(VIDEOS) if GRID.is_dir() else 0)
            [problem] = remote.problems  # decoded on a worker, reported with its reason
            assert problem.path.endswith("corrupt.jpg")
            assert problem.reason.startswith("cannot decode image")
        if step == "nothing changed":
            assert (remote.indexed, remote.unchanged) == (0, remote.scanned - 1)
    assert (remote.indexed, remote.removed) == (0, 1)


# -- killed mid-run ------------------------------------------------------------------
@pytest.fixture(scope="module")
def many(tmp_path_factory) -> tuple[Path, dict]:
    """Two hundred LFW photos (enough that an ingest writes several batches and lasts
    seconds on a fast machine), and their rows as the local engine writes them."""
    photos = tmp_path_factory.mktemp("many") / "photos"
    for name, n in (("George_W_Bush", 100), ("Colin_Powell", 50), ("Tony_Blair", 50)):
        copy_people(photos, [name], n)
    home = tmp_path_factory.mktemp("many_home")
    db = str(home / "reference.db")
    with revsearch.connect(db, home=home, workers=2, progress=False) as rs:
        assert not rs.index([photos]).problems
    return photos, _rows(db, home)


def _index_cmd(photos: Path, server: str, address: str, home: Path) -> list[str]:
    return [sys.executable, "-m", "revsearch", "index", str(photos), "--db", server,
            "--home", str(home), "--workers", "2", "--engine", "ray", "--ray-address",
            address, "--no-progress", "--verbose"]


def _marked(server: str) -> int:
    """Media rows (files fully written) in the server right now."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    client = MilvusClient(uri=server)
    try:
        # Strong: the rows written so far, not a snapshot that may lag behind them.
        return int(client.query(MEDIA.name("sface"), filter="", output_fields=["count(*)"],
                                consistency_level="Strong")[0]["count(*)"])
    except MilvusException:  # not created, or not loaded, yet
        return 0
    finally:
        client.close()


def _busy_mapper(proc: subprocess.Popen, seconds: float = 30) -> list[int]:
    """Mapper processes analysing files while `proc` still runs (empty if it ended)."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if found := _mappers(busy=True):
            return found
        time.sleep(0.01)
    return []


def _mappers(busy: bool = False) -> list[int]:
    """The pids of Ray actor processes running the mapper (only those analysing files
    right now if `busy`: Ray names the process after the method it runs)."""
    prefix = b"ray::Mapper.analyze" if busy else b"ray::Mapper"
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(prefix):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def _run_until_some_rows(cmd: list[str], server: str, total: int) -> subprocess.Popen | None:
    """Start an ingest; return it once some but not all files are written (None if it
    finished first)."""
    empty_milvus(server)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if 0 < _marked(server) < total:
            return proc
        time.sleep(0.05)
    proc.communicate(timeout=60)
    return None


@pytest.mark.slow
def test_driver_killed_mid_run_then_rerun_gives_identical_rows(ray_address, server, many,
                                                               tmp_path):
    photos, expected = many
    total = len(expected["media"])
    cmd = _index_cmd(photos, server, ray_address, tmp_path / "home")
    for _ in range(3):  # a run that finishes before it can be killed is tried again
        proc = _run_until_some_rows(cmd, server, total)
        if proc is None:
            continue
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if _marked(server) < total:
            break
    else:
        pytest.fail("every ingest finished before it could be killed")
    # The killed driver's actors go with it (Ray ends a dead owner's actors).
    deadline = time.monotonic() + 30
    while _mappers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _mappers(), "the killed driver's Ray workers are still running"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "problems 0" in done.stdout, done.stdout
    _assert_same_rows(_rows(server, tmp_path / "home"), expected)


@pytest.mark.slow
def test_worker_killed_mid_run_the_run_recovers_with_identical_rows(ray_address, server,
                                                                    many, tmp_path):
    photos, expected = many
    total = len(expected["media"])
    cmd = _index_cmd(photos, server, ray_address, tmp_path / "home")
    for _ in range(3):
        proc = _run_until_some_rows(cmd, server, total)
        if proc is None:
            continue
        workers = _busy_mapper(proc)
        if not workers:  # the run was in its last write when we looked
            proc.communicate(timeout=300)
            continue
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        if "a Ray worker died" in err:
            break
    else:
        pytest.fail("every ingest finished before one of its workers could be killed")
    assert proc.returncode == 0, err
    # (Ray itself prints the worker's death to stdout too.)
    assert f"scanned {total} files: indexed {total} (" in out and "problems 0" in out, out
    _assert_same_rows(_rows(server, tmp_path / "home"), expected)
