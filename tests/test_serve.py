"""The REST API against a real index of an LFW subset (FastAPI TestClient, real Milvus Lite)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import DATA, lfw
from fastapi.testclient import TestClient
from PIL import Image

from revsearch.serve import create_app

# The app serves a copy of the session's `indexed` subset.
pytestmark = pytest.mark.slow

GRID = DATA / "videos" / "grid"


@pytest.fixture(scope="module")
def client(indexed, tmp_path_factory):
    """A private copy of the indexed subset (this module adds to it), served in-process."""
    work = tmp_path_factory.mktemp("serve")
    db = work / "serve.db"
    shutil.copytree(indexed["db"], db)
    app = create_app(db=str(db), home=work, workers=1, max_upload_bytes=2_000_000)
    with TestClient(app) as c:
        yield c


def _labels(body: dict) -> list[str]:
    return [h["label"] for h in body["results"][0]["hits"]]


def test_stats(client):
    stats = client.get("/api/stats").json()
    assert stats["backend"] == "lite" and stats["pipeline"] == "sface"
    assert stats["images"] >= 100 and stats["faces"] >= stats["images"]
    assert stats["threshold"] == pytest.approx(0.358, abs=0.01)


def test_search_upload_and_pick_a_face(client, collage):
    with open(collage, "rb") as fh:
        first = client.post("/api/search", files={"file": ("c.jpg", fh, "image/jpeg")},
                            data={"k": "5"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["query"]["faces"]) == 2 and body["query"]["faces"][0]["default"]
    assert set(_labels(body)[:5]) == {"Colin_Powell"}
    assert body["results"][0]["occlusion"] == "none"
    assert body["results"][0]["occlusion_handled"] is False
    # The second face, by index and by box, without uploading again.
    qid = body["query"]["id"]
    by_index = client.post("/api/search", data={"query": qid, "face": "1", "k": "5"}).json()
    assert set(_labels(by_index)) == {"Tony_Blair"}
    box = ",".join(str(v) for v in body["query"]["faces"][1]["box"])
    by_box = client.post("/api/search", data={"query": qid, "box": box, "k": "5"}).json()
    assert _labels(by_box) == _labels(by_index)
    hit = by_index["results"][0]["hits"][0]
    assert hit["match"] is True and hit["media_type"] == "image"
    thumb = client.get(hit["thumb_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    media = client.get(hit["media_url"])
    assert media.status_code == 200 and media.content == Path(hit["path"]).read_bytes()


def test_search_states_its_operating_point(client, collage):
    with open(collage, "rb") as fh:
        default = client.post("/api/search", files={"file": ("c.jpg", fh, "image/jpeg")},
                              data={"k": "5"}).json()
    d = default["results"][0]["decision"]
    assert (d["far"], d["score"]) == (0.001, "cosine") and "LFW" in d["source"]
    qid = default["query"]["id"]
    strict = client.post("/api/search", data={"query": qid, "k": "5", "far": "0.0001"}).json()
    s = strict["results"][0]["decision"]
    assert s["far"] == 0.0001 and s["threshold"] > d["threshold"]
    assert strict["results"][0]["threshold"] == s["threshold"]
    bad = client.post("/api/search", data={"query": qid, "far": "0.5"})
    assert bad.status_code == 400 and "not an operating point" in bad.text
    assert client.get("/api/stats").json()["far"] == 0.001


def test_faces_of_an_uploaded_query(client, collage):
    posted = client.post("/api/queries", files={"file": ("c.jpg", collage.read_bytes())}).json()
    again = client.get("/api/faces", params={"query": posted["id"]}).json()
    assert again == posted and posted["kind"] == "image" and len(posted["faces"]) == 2
    assert client.get("/api/faces", params={"query": "0" * 32}).status_code == 404


def test_pick_an_indexed_image_and_browse(client):
    items = client.get("/api/collection", params={"label": "Blair"}).json()["items"]
    assert items and all("Tony_Blair" in i["label"] for i in items)
    body = client.post("/api/search", data={"media": items[0]["image_id"], "k": "3"}).json()
    assert set(_labels(body)) == {"Tony_Blair"}
    # The picked image itself is excluded, as for any query that is in the index.
    assert all(h["image_id"] != items[0]["image_id"] for h in body["results"][0]["hits"])
    bad = client.get("/api/collection", params={"label": 'x" or 1==1'})
    assert bad.status_code == 400


def test_no_face_and_bad_files(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (90, 120, 150)).save(blank)
    r = client.post("/api/search", files={"file": ("blank.png", blank.read_bytes())})
    assert r.status_code == 422 and "no face" in r.json()["detail"]
    r = client.post("/api/search", files={"file": ("photo.jpg", b"just some text, not a photo")})
    assert r.status_code == 415 and "not an image or a video" in r.json()["detail"]
    truncated = lfw("Colin_Powell", 3).read_bytes()[:3000]
    r = client.post("/api/search", files={"file": ("cut.jpg", truncated)})
    assert r.status_code == 400 and "cannot decode" in r.json()["detail"]
    assert client.post("/api/search", data={"k": "3"}).status_code == 400
    assert client.post("/api/search", data={"query": "nope", "k": "500"}).status_code == 400


def test_upload_limit(client):
    big = b"\xff\xd8\xff" + bytes(2_100_000)
    r = client.post("/api/search", files={"file": ("big.jpg", big)})
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it arrives
        yield (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff")
        for _ in range(40):
            yield bytes(100_000)
        yield b"\r\n--x--\r\n"

    r = client.post("/api/index", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413


@pytest.mark.parametrize("path", [
    "/api/media/..%2F..%2F..%2Fetc%2Fpasswd", "/api/media/../../etc/passwd",
    "/api/media/%2Fetc%2Fpasswd", "/api/media/" + "a" * 32, "/api/media/ABCDEF",
    "/api/thumb/..%2Fsecret", "/static/..%2F..%2Fapi.py", "/static/serve.py",
])
def test_no_path_traversal(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert b"root:" not in r.content and b"import" not in r.content


def test_index_upload_then_find_it(client, collage):
    with open(lfw("Tony_Blair", 60), "rb") as fh:
        r = client.post("/api/index", files={"file": ("blair.jpg", fh)})
    assert r.status_code == 200 and r.json()["indexed"] == 1, r.text
    added = Path(r.json()["path"])
    assert added.is_file() and added.read_bytes() == lfw("Tony_Blair", 60).read_bytes()
    hits = client.post("/api/search", files={"file": ("c.jpg", collage.read_bytes())},
                       data={"face": "1", "k": "20"}).json()["results"][0]["hits"]
    assert str(added) in [h["path"] for h in hits]
    r = client.post("/api/index", files={"file": ("notes.txt", b"hello")})
    assert r.status_code == 415


def test_video_query_and_video_results(client):
    if not GRID.is_dir():
        pytest.skip("GRID clips not found")
    with open(GRID / "pwij3p.mpg", "rb") as fh:
        assert client.post("/api/index", files={"file": ("a.mpg", fh)}).json()["videos"] == 1
    with open(GRID / "id2_vcd_swwp2s.mpg", "rb") as fh:
        r = client.post("/api/search", files={"file": ("b.mpg", fh)},
                        data={"target": "videos", "k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["kind"] == "video" and body["query"]["tracks"][0]["default"]
    track_thumb = client.get(body["query"]["tracks"][0]["thumb_url"])
    assert track_thumb.status_code == 200
    top = body["results"][0]["hits"][0]
    assert top["media_type"] == "video" and top["match"] and top["end"] > top["start"]
    assert client.get(top["thumb_url"]).headers["content-type"] == "image/jpeg"
    media = client.get(top["media_url"])
    assert media.status_code == 200 and media.content == (GRID / "pwij3p.mpg").read_bytes()


def test_openapi_docs(client):
    """/docs works offline: its script and style come from this server, not a CDN."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert assets and all(a.startswith("/static/swagger/") for a in assets), assets
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 500, asset
    assert client.get("/static/swagger/..%2F__init__.py").status_code == 404
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/search", "/api/faces", "/api/index", "/api/media/{media_id}",
              "/api/stats", "/api/queries"):
        assert p in paths


def test_openapi_response_schemas(client):
    """Every JSON route documents its response body, and the bodies sent follow it."""
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def named(schema: dict) -> list[str]:
        refs = [schema] if "$ref" in schema else schema.get("oneOf", [])
        return [r["$ref"].rsplit("/", 1)[-1] for r in refs]

    for path, method in (("/api/queries", "post"), ("/api/faces", "get"),
                         ("/api/search", "post"), ("/api/index", "post"),
                         ("/api/collection", "get"), ("/api/stats", "get")):
        body = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        names = named(body["schema"])
        assert names, f"{method} {path} has no response schema"
        assert all(schemas[n]["properties"] for n in names)
    hit = schemas["HitOut"]["properties"]
    assert {"similarity", "match", "thumb_url", "media_url", "start", "end"} <= set(hit)
    assert set(schemas["ImageQueryOut"]["properties"]) == {"id", "kind", "name", "faces",
                                                          "width", "height"}
    thumb = doc["paths"]["/api/thumb/{media_id}"]["get"]["responses"]["200"]["content"]
    assert list(thumb) == ["image/jpeg"]


def test_security_headers(client):
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    for r in (page, client.get("/api/stats"), client.get("/api/media/" + "0" * 32)):
        assert r.headers["x-content-type-options"] == "nosniff"


def test_cli_serve_binds_loopback_only(indexed, tmp_path):
    """`revsearch serve` answers on 127.0.0.1 and not on the machine's other addresses."""
    import contextlib
    import socket
    import subprocess
    import sys
    import time

    import httpx

    db = tmp_path / "cli.db"
    shutil.copytree(indexed["db"], db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "revsearch", "serve", "--db", str(db),
                             "--home", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.3)
        assert r.status_code == 200 and r.json()["images"] > 0
        others = set()
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.connect(("192.0.2.1", 9))  # picks the outward interface; sends nothing
            others.add(u.getsockname()[0])
        others |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                       socket.AF_INET)}
        others -= {"127.0.0.1", "0.0.0.0"}
        if not others:
            pytest.skip("this machine has no address besides loopback to try")
        for address in others:
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((address, port))
    finally:
        proc.terminate()
        proc.wait(30)


def test_covered_query_says_occlusion_was_handled(client, tmp_path):
    import numpy as np

    from revsearch.eval.occlusion import occlude
    from revsearch.faces.detect import create_detector
    from revsearch.media import load_image

    image = load_image(lfw("Colin_Powell", 13))
    [face] = create_detector("yunet").detect(image)
    covered = occlude(image, face, "sunglasses", np.random.default_rng(0))
    path = tmp_path / "covered.png"  # lossless: the test's cover stays as drawn
    Image.fromarray(covered[:, :, ::-1]).save(path)
    body = client.post("/api/search", files={"file": ("covered.png", path.read_bytes())},
                       data={"k": "3"}).json()
    result = body["results"][0]
    assert result["occlusion"] == "eyes" and result["occlusion_handled"] is True
    assert _labels(body)[0] == "Colin_Powell"
