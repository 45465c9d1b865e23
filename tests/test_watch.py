"""A server that keeps the collection current: watched folders, background jobs, handoff.

The slow tests run the real `revsearch serve` in a subprocess on 127.0.0.1 over a real
Milvus Lite file, and compare what it indexed with a fresh `revsearch index --sync`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import copy_people, lfw, run_cli
from test_ingest import _assert_gone, _assert_same_rows, _children, _rows

from revsearch.serve.jobs import Job, Jobs, PathMissing, PathRefused, Roots
from revsearch.serve.watch import Watcher

# A change in a watched folder must show in search results within this many seconds:
# one second of quiet after the last event, then the ingest of the changed files (a
# worker pool starting and loading its models, on a shared two-core machine).
BOUND = 45.0


# -- without a server --------------------------------------------------------------------
def test_roots_refuse_outside_escaping_missing_and_relative(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    (inside / "sub").mkdir(parents=True)
    outside.mkdir()
    (inside / "escape").symlink_to(outside)
    (inside / "stay").symlink_to(inside / "sub")
    roots = Roots.of([str(inside)])
    assert roots.check(str(inside / "sub")) == str(inside / "sub")
    assert roots.check(str(inside / "stay")) == str(inside / "sub")  # resolved, inside
    for refused in (outside, inside / "escape", inside / ".." / "outside", Path("/etc")):
        with pytest.raises(PathRefused, match="outside the server's watched"):
            roots.check(str(refused))
    with pytest.raises(PathMissing, match="no such file or folder"):
        roots.check(str(inside / "gone"))
    with pytest.raises(PathRefused):  # outside and missing: no hint that it is missing
        roots.check(str(outside / "gone"))
    with pytest.raises(ValueError, match="absolute"):
        roots.check("inside/sub")
    assert roots.check(str(outside), trusted=True) == str(outside)
    with pytest.raises(PathRefused, match="without --watch or --allow"):
        Roots.of([]).check(str(inside))


def test_jobs_run_in_order_report_progress_and_cancel():
    started, release = threading.Event(), threading.Event()

    def run(job: Job):
        from revsearch.ingest import IngestReport, Problem

        job.progress(0, 3)
        started.set()
        release.wait(10)
        for done in (1, 2, 3):
            job.progress(done, 3)
        job.problems.append(Problem("/x/2", "bad"))
        return IngestReport(indexed=2)

    jobs = Jobs(run)
    first = jobs.submit(["/a"])
    assert started.wait(10) and first.state == "running" and first.total == 3
    queued = jobs.submit(["/b"])
    assert jobs.submit(["/b"]) is queued  # the same job is not queued twice
    third = jobs.submit(["/c"])
    jobs.cancel(third.id)
    assert third.state == "cancelled"
    release.set()
    deadline = time.monotonic() + 10
    while not jobs.idle():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (first.state, queued.state, third.state) == ("done", "done", "cancelled")
    assert first.done == 3 and first.report.indexed == 2 and len(first.problems) == 1
    assert [j.id for j in jobs.list()] == [third.id, queued.id, first.id]
    started.clear(), release.clear()
    running = jobs.submit(["/d"])
    assert started.wait(10)
    jobs.cancel(running.id)
    release.set()
    while running.active:
        time.sleep(0.05)
    assert running.state == "cancelled" and running.done == 0
    with pytest.raises(KeyError):
        jobs.get("0" * 32)
    jobs.close()


def test_watcher_submits_changed_folders_then_rescans(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    submitted: list[list[str]] = []
    watcher = Watcher([root], submitted.append, interval=0, quiet=0.2)
    watcher.start()
    try:
        assert submitted == [[str(root)]]  # indexed at start
        (root / "a" / "deep" / "new.jpg").write_bytes(b"x")
        (root / "a" / "deep" / "other.jpg").write_bytes(b"y")
        _until(lambda: len(submitted) > 1, 5)
        assert submitted[1] == [str(root / "a" / "deep")]  # one job for the burst
        shutil.rmtree(root / "b")
        _until(lambda: len(submitted) > 2, 5)
        assert submitted[2] == [str(root)]  # a deleted folder: its parent is rescanned
        with open(root / "a" / "deep" / "new.jpg", "rb") as fh:  # reading is no change
            fh.read()
        time.sleep(0.5)
        assert len(submitted) == 3
    finally:
        watcher.stop()
    rescans: list[list[str]] = []
    watcher = Watcher([root], rescans.append, interval=0.2, quiet=0.2)
    watcher.start()
    try:
        _until(lambda: len(rescans) >= 2, 5)  # the safety net, without any event
        assert all(r == [str(root)] for r in rescans)
    finally:
        watcher.stop()


def _until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- with the real server ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`revsearch serve` in a subprocess, and the calls the tests make to it."""

    def __init__(self, db: str, home: Path, *flags: str) -> None:
        self.db, self.home, self.port = db, home, _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(home.parent / f"serve-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "revsearch", "serve", "--db", db, "--home", str(home),
             "--port", str(self.port), "--workers", "2", *flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, Path(self.log.name).read_text()
            try:
                if httpx.get(self.base + "/api/stats", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)

    def get(self, path: str) -> dict:
        r = httpx.get(self.base + path, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    def post_job(self, paths: list[str], **options) -> httpx.Response:
        return httpx.post(self.base + "/api/jobs", json={"paths": paths, **options},
                          timeout=60)

    def idle(self, timeout: float = 180) -> list[dict]:
        """Wait until no job is queued or running (and the watcher's first job exists)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.get("/api/jobs")["jobs"]
            if jobs and not any(j["state"] in ("queued", "running") for j in jobs):
                return jobs
            assert time.monotonic() < deadline, f"jobs still running: {jobs}"
            time.sleep(0.3)

    def hits(self, query: Path, k: int = 20) -> list[str]:
        r = httpx.post(self.base + "/api/search", files={"file": (query.name,
                                                                  query.read_bytes())},
                       data={"k": str(k), "target": "images"}, timeout=60)
        assert r.status_code == 200, r.text
        return [h["path"] for h in r.json()["results"][0]["hits"] if h["match"]]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)
        self.log.close()


def _within(seconds: float, condition) -> float:
    """Seconds until `condition()` holds; fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not reflected within {seconds} s"
        time.sleep(0.3)
    return time.monotonic() - started


def _fresh_sync_rows(photos: Path, tmp_path: Path, home: Path) -> list[dict]:
    fresh = str(tmp_path / "fresh.db")
    done = run_cli("index", str(photos), "--sync", "--db", fresh, "--home", str(home),
                   "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    return _rows(fresh, home)


@pytest.mark.slow
def test_watched_folder_follows_adds_changes_and_deletes(tmp_path):
    photos = copy_people(tmp_path / "photos", ["George_W_Bush", "Colin_Powell"], 3)
    home = tmp_path / "home"
    db = str(tmp_path / "watched.db")
    blair = lfw("Tony_Blair", 20)  # the query: not in the folder
    server = Served(db, home, "--watch", str(photos), "--watch-interval", "0")
    try:
        assert Path(db + ".server.json").is_file()
        [first] = server.idle()
        assert first["origin"] == "watch" and first["report"]["indexed"] == 6
        assert server.hits(blair) == []
        (photos / "Tony_Blair").mkdir()
        for i in (1, 2, 3):
            shutil.copy2(lfw("Tony_Blair", i), photos / "Tony_Blair")
        new = {str(photos / "Tony_Blair" / f"Tony_Blair_000{i}.jpg") for i in (1, 2, 3)}
        added = _within(BOUND, lambda: new <= set(server.hits(blair)))
        changed_file = photos / "George_W_Bush" / "George_W_Bush_0001.jpg"
        shutil.copyfile(lfw("Tony_Blair", 4), changed_file)  # same path, now Blair
        changed = _within(BOUND, lambda: str(changed_file) in server.hits(blair))
        gone = photos / "Tony_Blair" / "Tony_Blair_0002.jpg"
        gone.unlink()
        deleted = _within(BOUND, lambda: str(gone) not in server.hits(blair))
        print(f"reflected in search after: added {added:.1f} s, changed {changed:.1f} s, "
              f"deleted {deleted:.1f} s")
        server.idle()
    finally:
        server.stop()
    assert not Path(db + ".server.json").exists()  # removed at a clean exit
    _assert_same_rows(_rows(db, home), _fresh_sync_rows(photos, tmp_path, home))


@pytest.mark.slow
def test_killed_server_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path):
    photos = copy_people(tmp_path / "photos", ["George_W_Bush", "Colin_Powell",
                                                "Tony_Blair"], 10)
    home = tmp_path / "home"
    expected = _fresh_sync_rows(photos, tmp_path, home)
    db = str(tmp_path / "killed.db")
    server = Served(db, home, "--watch", str(photos))
    try:
        deadline = time.monotonic() + 180
        while True:
            [job] = server.get("/api/jobs")["jobs"]
            if job["total"] and job["done"] >= job["total"] // 3:
                workers = _children(server.proc.pid)  # before they are re-parented
                break
            assert job["state"] in ("queued", "running"), f"ended before it could be killed: {job}"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop(signal.SIGKILL)
    assert server.proc.returncode == -signal.SIGKILL and 0 < job["done"] < job["total"]
    assert workers, "the server ran its ingest without worker processes"
    _assert_gone(workers)  # the killed server's ingest workers do not linger
    # What was committed before the kill (files with their marker row): how much that is
    # depends on the machine's speed, so it is read rather than assumed.
    kept = [r for r in _rows(db, home) if "n_faces" in r]
    server = Served(db, home, "--watch", str(photos))
    try:
        [job] = server.idle()
        assert job["state"] == "done" and not job["problems"]
        assert job["report"]["unchanged"] == len(kept)  # what was written stays
    finally:
        server.stop()
    _assert_same_rows(_rows(db, home), expected)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server watching a small folder, allowed another, never told about a third."""
    work = tmp_path_factory.mktemp("served")
    watched = copy_people(work / "watched", ["Colin_Powell"], 2)
    allowed = copy_people(work / "allowed", ["Tony_Blair"], 3)
    (allowed / "Tony_Blair" / "truncated.jpg").write_bytes(lfw("Tony_Blair", 9)
                                                           .read_bytes()[:300])
    outside = copy_people(work / "outside", ["George_W_Bush"], 2)
    (watched / "escape").symlink_to(outside)
    server = Served(str(work / "served.db"), work / "home", "--watch", str(watched),
                    "--allow", str(allowed))
    server.idle()
    yield {"server": server, "watched": watched, "allowed": allowed, "outside": outside,
           "work": work}
    server.stop()


@pytest.mark.slow
def test_jobs_refuse_paths_outside_the_roots_and_change_nothing(served):
    server, watched = served["server"], served["watched"]
    before = server.get("/api/stats"), server.get("/api/jobs")
    refusals = {
        str(served["outside"]): 403,
        str(watched / "escape"): 403,  # a symlink leading out
        str(watched / ".." / "outside"): 403,
        "/etc": 403,
        str(watched / "no_such_folder"): 404,
        "watched/Colin_Powell": 400,
    }
    for path, status in refusals.items():
        r = server.post_job([path])
        assert r.status_code == status, (path, r.text)
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    # One bad path among good ones refuses the whole job.
    r = server.post_job([str(served["allowed"]), str(served["outside"])])
    assert r.status_code == 403
    r = httpx.post(server.base + "/api/jobs", json={"paths": [str(served["outside"])]},
                   headers={"X-Revsearch-Token": "0" * 32})
    assert r.status_code == 403  # a wrong token is no token
    assert server.post_job([]).status_code == 422
    assert (server.get("/api/stats"), server.get("/api/jobs")) == before


@pytest.mark.slow
def test_job_progress_problems_report_and_cancel(served):
    server, allowed = served["server"], served["allowed"]
    r = server.post_job([str(allowed)], labels="parent")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and job["origin"] == "api"
    seen = []
    while job["state"] in ("queued", "running"):
        seen.append((job["done"], job["total"]))
        time.sleep(0.2)
        job = server.get(f"/api/jobs/{job['id']}")
    assert job["state"] == "done" and job["done"] == job["total"] == 4
    assert job["rate"] > 0 and job["eta"] is None
    assert [p["path"] for p in job["problems"]] == [str(allowed / "Tony_Blair" /
                                                        "truncated.jpg")]
    assert job["report"]["indexed"] == 3 and len(job["report"]["problems"]) == 1
    assert all(total in (None, 4) for _, total in seen)
    hits = server.hits(lfw("Tony_Blair", 20))
    assert {str(allowed / "Tony_Blair" / f"Tony_Blair_000{i}.jpg") for i in (1, 2, 3)} \
        <= set(hits)
    # Cancel: a job stops (queued: never starts); its id stays readable.
    ids = [server.post_job([str(allowed)], sync=True).json()["id"],
           server.post_job([str(served["watched"])]).json()["id"]]
    for method, job_id in zip(("post", "delete"), ids, strict=True):
        url = f"{server.base}/api/jobs/{job_id}" + ("/cancel" if method == "post" else "")
        r = httpx.request(method.upper(), url, timeout=60)
        assert r.status_code == 200 and r.json()["id"] == job_id
    server.idle()
    assert all(server.get(f"/api/jobs/{i}")["state"] in ("cancelled", "done") for i in ids)
    assert httpx.get(f"{server.base}/api/jobs/{'0' * 32}").status_code == 404


@pytest.mark.slow
def test_cli_index_hands_its_job_to_the_server(served):
    server, work = served["server"], served["work"]
    before = server.get("/api/stats")["images"]
    # The CLI may name a folder outside the roots: it proved it can read the server's
    # owner-only file, so it could read the folder itself.
    out = run_cli("index", str(served["outside"]), "--db", server.db, "--home",
                  str(work / "home"), "--json")
    assert out.returncode == 0, out.stderr
    assert "held by the revsearch server" in out.stderr and server.base in out.stderr
    report = json.loads(out.stdout)
    assert report["indexed"] == 2 and report["problems"] == []
    assert server.get("/api/stats")["images"] == before + 2
    missing = run_cli("index", str(work / "missing"), "--db", server.db, "--home",
                      str(work / "home"))
    assert missing.returncode != 0 and "no such file or folder" in missing.stderr
    other_space = run_cli("index", str(served["outside"]), "--db", server.db, "--home",
                          str(work / "home"), "--flip")
    assert other_space.returncode != 0 and "not sface_flip" in other_space.stderr
    info = json.loads(Path(server.db + ".server.json").read_text())
    assert info["port"] == server.port and info["pid"] == server.proc.pid
    assert os.stat(server.db + ".server.json").st_mode & 0o077 == 0  # owner only
