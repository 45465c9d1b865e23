"""Shared fixtures: real LFW data from ../shared/data, a real Milvus Lite per test, a real
Milvus server for the tests that ask for one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REVSEARCH_DATA", ROOT.parent / "shared" / "data"))
LFW_ROOT = DATA / "lfw"
LFW = LFW_ROOT / "lfw-deepfunneled"

# A few dozen people: three with many photos, the rest with 2-4 (a realistic mix).
MANY = {"George_W_Bush": 12, "Colin_Powell": 8, "Tony_Blair": 8}


def pytest_sessionstart(session: pytest.Session) -> None:
    if not LFW.is_dir() and os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(f"CI=true but the LFW data is missing at {LFW}")


def require_data() -> None:
    if not LFW.is_dir():
        pytest.skip(f"LFW not found at {LFW} (set REVSEARCH_DATA)")


def lfw(name: str, num: int) -> Path:
    return LFW / name / f"{name}_{num:04d}.jpg"


def _few_image_people(count: int) -> list[str]:
    people = sorted(p.name for p in LFW.iterdir() if p.is_dir())
    chosen = []
    for name in people[::13]:
        n = len(list((LFW / name).glob("*.jpg")))
        if 2 <= n <= 4 and name not in MANY:
            chosen.append(name)
        if len(chosen) == count:
            break
    return chosen


def copy_people(images: Path, people: list[str] | tuple[str, ...], per_person: int) -> Path:
    """Copy the first `per_person` photos of each person into `images`, LFW layout kept."""
    require_data()
    for name in people:
        (images / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, per_person + 1):
            shutil.copy2(lfw(name, i), images / name)
    return images


def mini_dev_lfw(dest: Path, people: int = 24, per_person: int = 4) -> Path:
    """An LFW-shaped root with the first `per_person` photos of `people` DevTrain and
    `people` DevTest people (those with enough photos), and dev pairs files over them:
    every genuine pair of consecutive photos, as many impostor pairs."""
    require_data()
    from revsearch.eval.datasets import read_pairs

    for split in ("DevTrain", "DevTest"):
        [pairs] = read_pairs(LFW_ROOT / f"pairs{split}.txt")
        names = sorted({n for p in pairs for n in (p.name1, p.name2)
                        if len(list((LFW / n).glob("*.jpg"))) >= per_person})[:people]
        copy_people(dest / "lfw-deepfunneled", names, per_person)
        same = [f"{n}\t{i}\t{i + 1}" for n in names for i in range(1, per_person)]
        diff = [f"{a}\t1\t{b}\t2" for a, b in zip(names, names[1:] + names[:1], strict=True)]
        diff = (diff * (len(same) // len(diff) + 1))[:len(same)]
        (dest / f"pairs{split}.txt").write_text(f"{len(same)}\n" + "\n".join(same + diff) + "\n")
    return dest


def mini_ytf(dest: Path, people: int = 8) -> Path:
    """A YouTube Faces root (no splits.txt) linking the videos of `people` people."""
    source = DATA / "ytf" / "aligned_images_DB"
    if not source.is_dir():
        pytest.skip(f"YouTube Faces not found at {source}")
    (dest / "aligned_images_DB").mkdir(parents=True)
    for person in sorted(p for p in source.iterdir() if p.is_dir())[:people]:
        (dest / "aligned_images_DB" / person.name).symlink_to(person)
    return dest


def build_subset(dest: Path, extra_people: int = 30) -> Path:
    """Copy a fixed LFW subset (about 100 images) into `dest`, LFW layout kept."""
    for name, n in MANY.items():
        copy_people(dest, [name], n)
    for name in _few_image_people(extra_people):
        shutil.copytree(LFW / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def subset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_subset(tmp_path_factory.mktemp("lfw_subset"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh REVSEARCH_HOME (and so a fresh default database) for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("REVSEARCH_HOME", str(h))
    monkeypatch.setenv("REVSEARCH_WORKERS", "2")
    return h


@pytest.fixture(scope="session")
def server_uri(tmp_path_factory: pytest.TempPathFactory):
    """A Milvus standalone server (the `milvus` test dependency: a server binary) on
    127.0.0.1, started once for the session (it takes seconds); a test module that
    writes to it leaves it empty."""
    from milvus import MilvusServer

    server = MilvusServer()
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus_server")))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


def empty_milvus(uri: str) -> str:
    """Drop every collection of the Milvus server at `uri`; return the URI."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    for name in client.list_collections():
        client.drop_collection(name)
    client.close()
    return uri


@pytest.fixture
def server(server_uri):
    """The session's Milvus server, empty before and after the test."""
    yield empty_milvus(server_uri)
    empty_milvus(server_uri)


@pytest.fixture(scope="session")
def collage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Colin Powell (larger, left) beside Tony Blair (right), from photos not in the
    indexed subset: a query with two people."""
    from PIL import Image

    require_data()
    left = Image.open(lfw("Colin_Powell", 50)).resize((320, 320))
    right = Image.open(lfw("Tony_Blair", 50))
    canvas = Image.new("RGB", (320 + 250, 320), (200, 200, 200))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (320, 35))
    path = tmp_path_factory.mktemp("collage") / "powell_and_blair.jpg"
    canvas.save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def indexed(tmp_path_factory: pytest.TempPathFactory, subset_dir: Path) -> dict:
    """The subset indexed once into its own database; tests open it read-only."""
    import revsearch

    home = tmp_path_factory.mktemp("indexed_home")
    db = str(home / "subset.db")
    with revsearch.connect(db, home=home, workers=2, progress=False) as rs:
        report = rs.index([subset_dir])
    return {"db": db, "home": home, "report": report, "dir": subset_dir}


def run_cli(*args: str, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "revsearch", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
