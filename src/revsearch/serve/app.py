"""`revsearch serve`: a REST API and a web page over the same API the CLI uses.

    revsearch serve [--host 127.0.0.1] [--port 8000] [--db ...]

Endpoints (OpenAPI docs at /docs, Swagger UI served by this app itself, so offline too):

- `POST /api/queries`: upload a photo or video (or name an indexed one with `media`);
  returns a query id and the faces (photo) or face tracks (video) found in it.
- `GET /api/faces?query=ID`: those faces or tracks again.
- `POST /api/search`: search with an upload (`file`), a query id (`query`) or an indexed
  file (`media`); `k`, `face` or `box` (photo), `track` (video), `target`, `pipeline`.
- `POST /api/index`: add an uploaded photo or video to the collection.
- `GET /api/media/{id}`, `GET /api/thumb/{id}`: indexed files and thumbnails, looked up
  by id in the index (never by a path from the client).
- `GET /api/collection`: a page of indexed files; `GET /api/stats`.

Safety: binds 127.0.0.1 unless told otherwise; uploads over `max_upload_bytes` get 413
(checked on the declared length and on the bytes actually received); uploads that are
not an image or a video *by content* get 415; media ids must be 32 hex digits and exist;
the page is sent with a Content-Security-Policy that allows no inline or foreign script.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from revsearch.api import RevSearch
from revsearch.config import Settings, load_settings
from revsearch.errors import DatabaseError, MediaError, NoFaceError, RevsearchError
from revsearch.faces.detect import Face
from revsearch.faces.pipeline import VideoAnalysis
from revsearch.media import content_hash, decode_image, sniff
from revsearch.search import (
    QueryTrack,
    SearchResult,
    describe_faces,
    describe_tracks,
    search_faces,
    search_tracks,
)
from revsearch.store import face_id_for
from revsearch.video.frames import read_frame
from revsearch.video.track import iou

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
_EXTENSIONS = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png", b"GIF8": ".gif", b"BM": ".bmp",
               b"RIFF": ".webp", b"II*\x00": ".tif", b"MM\x00*": ".tif"}


class UploadTooLarge(Exception):
    pass


@dataclass
class PendingQuery:
    """An uploaded (or picked) query, kept so a click on a face needs no new upload."""

    id: str
    kind: str  # "image" or "video"
    name: str
    data: bytes
    image: np.ndarray | None = None
    video_path: str | None = None
    analysis: VideoAnalysis | None = None
    faces: list = field(default_factory=list)  # as shown to the client
    detected: list[Face] | None = None  # the face pipeline's detections, reused by search


class QueryCache:
    """The last `size` queries, by content hash; their temporary video files with them."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[str, PendingQuery] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, qid: str) -> PendingQuery | None:
        with self._lock:
            q = self._items.get(qid)
            if q:
                self._items.move_to_end(qid)
            return q

    def put(self, query: PendingQuery) -> None:
        with self._lock:
            self._items[query.id] = query
            self._items.move_to_end(query.id)
            while len(self._items) > self.size:
                _, old = self._items.popitem(last=False)
                _remove(old.video_path)

    def clear(self) -> None:
        with self._lock:
            for q in self._items.values():
                _remove(q.video_path)
            self._items.clear()


def _remove(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


class Service:
    """What the endpoints share: one open index per pipeline, the query cache."""

    def __init__(self, settings: Settings) -> None:
        # Requests run side by side on the server's threads, so each model call gets one
        # thread: two-thread calls from four requests at once only fight over 2 cores
        # (measured: 13.0 -> 16.0 requests/s with 4 clients, bench/bench_api.py).
        self.settings = replace(settings, workers=1)
        self._indexes: dict[str, RevSearch] = {}
        self._open_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self.queries = QueryCache()
        self.face = self.index_for("face")

    def index_for(self, pipeline: str) -> RevSearch:
        if pipeline not in ("face", "baseline"):
            raise ValueError("pipeline must be face or baseline")
        with self._open_lock:
            if pipeline not in self._indexes:
                self._indexes[pipeline] = RevSearch(replace(self.settings, pipeline=pipeline,
                                                            progress=False))
            return self._indexes[pipeline]

    def close(self) -> None:
        self.queries.clear()
        for rs in reversed(list(self._indexes.values())):
            with contextlib.suppress(Exception):
                rs.close()

    # -- queries ---------------------------------------------------------------------
    def add_query(self, data: bytes, name: str) -> PendingQuery:
        kind = sniff(data[:16])
        if kind not in ("image", "video"):
            raise UnsupportedType("not an image or a video (the content was checked, not "
                                  "the file name); send JPEG, PNG, BMP, GIF, TIFF, WebP, "
                                  "MP4, AVI, MPEG, MKV or WebM")
        qid = content_hash(data)
        found = self.queries.get(qid)
        if found:
            return found
        query = PendingQuery(qid, kind, name, data)
        rs = self.face
        if kind == "image":
            query.image = decode_image(data, self.settings.max_pixels)
            query.detected = rs.pipeline.detect(query.image)
            query.faces = describe_faces(query.detected)
        else:
            fd, path = tempfile.mkstemp(suffix=".video", prefix="revsearch-query-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            query.video_path = path
            try:
                query.analysis = rs.track(path)
            except Exception:
                _remove(path)
                raise
            query.faces = describe_tracks(query.analysis.tracks)
        self.queries.put(query)
        return query

    def query_from_media(self, media_id: str) -> PendingQuery:
        row = self.media_row(media_id)
        path = Path(row["path"])
        if path.is_dir():
            raise MediaError("frame folders cannot be used as a web query; use the CLI")
        return self.add_query(path.read_bytes(), path.name)

    def media_row(self, media_id: str) -> dict:
        if not _ID.match(media_id):
            raise NotFound("no such media")
        row = self.face.collection.get_image(media_id)
        if row is None:
            raise NotFound("no such media in the index")
        return row

    # -- search ----------------------------------------------------------------------
    def search(self, query: PendingQuery, *, k: int, face: int | None, box: list[float] | None,
               track: int | None, target: str, pipeline: str) -> list[SearchResult]:
        rs = self.index_for(pipeline)
        rs.check()
        threshold = rs.threshold()
        if query.kind == "video":
            if pipeline != "face":
                raise MediaError("video queries use the face pipeline")
            assert query.analysis is not None
            return search_tracks(rs.collection, rs.pipeline, query.analysis.tracks, k=k,
                                 track=track, target=target, exclude_hash=query.id,
                                 threshold=threshold, query_name=query.name)
        assert query.image is not None
        if box is not None and pipeline == "face":
            face = _face_at(query.faces, box)
        return search_faces(rs.collection, rs.pipeline, query.image, k=k, face=face,
                            target=target, exclude_hash=query.id, threshold=threshold,
                            query_name=query.name,
                            detected=query.detected if pipeline == "face" else None)

    # -- thumbnails ------------------------------------------------------------------
    def thumbnail(self, media_id: str, face: int | None, track: int | None,
                  size: int = 320) -> bytes:
        row = self.media_row(media_id)
        coll = self.face.collection
        box = None
        if row["media_type"] == "video":
            t = coll.get_track(media_id, track or 0)
            if t is None:
                raise NotFound("no such track")
            image = read_frame(row["path"], int(t["frame"]))
            box = t["box"]
        else:
            image = decode_image(Path(row["path"]).read_bytes(), self.settings.max_pixels)
            if face is not None:
                f = coll.get_face(face_id_for(media_id, face))
                if f is None:
                    raise NotFound("no such face")
                box = f["box"]
        return render_thumbnail(image, box, size)

    def query_track_thumbnail(self, qid: str, track: int, size: int = 200) -> bytes:
        query = self.queries.get(qid)
        if query is None or query.kind != "video" or query.analysis is None:
            raise NotFound("no such video query (queries are kept for a while only)")
        tracks = query.analysis.tracks
        if not 0 <= track < len(tracks):
            raise NotFound("no such track")
        best = tracks[track].best
        image = read_frame(query.video_path, best.frame)
        return render_thumbnail(image, list(best.face.box), size, crop=True)

    def index_upload(self, data: bytes, name: str) -> dict:
        kind = sniff(data[:16])
        if kind not in ("image", "video"):
            raise UnsupportedType("not an image or a video (the content was checked)")
        folder = self.settings.home / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        ext = next((e for magic, e in _EXTENSIONS.items() if data.startswith(magic)),
                   ".video" if kind == "video" else ".img")
        path = folder / f"{content_hash(data)}{ext}"
        if not path.exists():
            path.write_bytes(data)
        with self._index_lock:
            report = self.face.index([path], labels="none")
        return {"path": str(path), "original_name": name, **asdict(report)}


class NotFound(RevsearchError):
    pass


class UnsupportedType(RevsearchError):
    pass


def _face_at(faces: list, box: list[float]) -> int:
    if not faces:
        raise NoFaceError("no face found in the query")
    overlaps = [iou(f.box, box) for f in faces]
    best = int(np.argmax(overlaps))
    if overlaps[best] <= 0.0:
        raise NoFaceError("no detected face overlaps the given box")
    return best


def render_thumbnail(image: np.ndarray, box: list[float] | None, size: int,
                     crop: bool = False) -> bytes:
    """JPEG bytes: the image (or a crop around `box`) at most `size` px, box drawn."""
    if box is not None and crop:
        x, y, w, h = box
        pad = 0.4 * max(w, h)
        x0, y0 = int(max(0, x - pad)), int(max(0, y - pad))
        x1 = int(min(image.shape[1], x + w + pad))
        y1 = int(min(image.shape[0], y + h + pad))
        image = image[y0:y1, x0:x1]
        box = [x - x0, y - y0, w, h]
    scale = min(1.0, size / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)),
                                   max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    else:
        image = image.copy()
    if box is not None:
        x, y, w, h = (v * scale for v in box)
        thickness = max(2, round(max(image.shape[:2]) / 160))
        cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), (0, 200, 0),
                      thickness)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise MediaError("cannot encode the thumbnail")
    return buf.tobytes()


# -- the app ---------------------------------------------------------------------------
class LimitUploads:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413, by the declared
    Content-Length before reading anything, and by counting what arrives otherwise."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        received = 0
        exceeded = started = False

        async def counting_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise UploadTooLarge
            return message

        async def guarded_send(message):
            # The app may turn the aborted read into its own error response: replace it.
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if exceeded:
                    await self._too_large(send)
                    return
            elif exceeded:
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except UploadTooLarge:
            if not started:
                started = True
                await self._too_large(send)

    async def _too_large(self, send) -> None:
        body = (b'{"detail":"upload too large: the limit is %d bytes"}' % self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None, **overrides: object):
    """The FastAPI app; `settings` (or keyword settings) as for `revsearch.connect`."""
    settings = settings or load_settings(**overrides)
    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        service.close()

    # The stock /docs and /redoc pages load their scripts from a CDN, which an offline
    # machine cannot reach: /docs is served below from the swagger-ui-bundle-v2 package.
    app = FastAPI(title="revsearch", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Reverse visual search of people in photos and videos.")
    app.state.service = service

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path == "/":
            # File names and labels from the collection end up in the page: even if one
            # slipped through escaping, no inline or foreign script would run.
            response.headers["Content-Security-Policy"] = _PAGE_POLICY
        return response

    errors = {NotFound: 404, UnsupportedType: 415, NoFaceError: 422, MediaError: 400,
              DatabaseError: 503, ValueError: 400}

    for exc_type, status in errors.items():
        def handler(_request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(exc_type, handler)

    async def read_upload(upload: UploadFile) -> bytes:
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"upload too large: the limit is "
                                     f"{settings.max_upload_bytes} bytes")
        if not data:
            raise HTTPException(400, "empty upload")
        return data

    async def resolve(file: UploadFile | None, query: str | None,
                      media: str | None) -> PendingQuery:
        if file is not None:
            return service.add_query(await read_upload(file), file.filename or "upload")
        if query:
            found = service.queries.get(query)
            if found is None:
                raise NotFound("no such query (queries are kept for a while only); upload "
                               "the file again")
            return found
        if media:
            return service.query_from_media(media)
        raise HTTPException(400, "send a file, a query id or a media id")

    def describe(query: PendingQuery) -> dict:
        out = {"id": query.id, "kind": query.kind, "name": query.name,
               "faces": [asdict(f) for f in query.faces]}
        if query.image is not None:
            out["width"], out["height"] = query.image.shape[1], query.image.shape[0]
        if query.kind == "video":
            out["tracks"] = out.pop("faces")
            for t in out["tracks"]:
                t["thumb_url"] = f"/api/queries/{query.id}/tracks/{t['index']}.jpg"
        return out

    @app.post("/api/queries", summary="Upload a query; get the faces or tracks found")
    async def post_query(file: UploadFile | None = File(None),  # noqa: B008
                         media: str | None = Form(None)) -> dict:
        return describe(await resolve(file, None, media))

    @app.get("/api/faces", summary="The faces (photo) or tracks (video) of a query")
    def get_faces(query: str = Query(...)) -> dict:
        found = service.queries.get(query)
        if found is None:
            raise NotFound("no such query; upload it with POST /api/queries")
        return describe(found)

    @app.post("/api/search", summary="Find the photos and videos of the person")
    async def post_search(file: UploadFile | None = File(None),  # noqa: B008
                          query: str | None = Form(None), media: str | None = Form(None),
                          k: int = Form(10), face: int | None = Form(None),
                          box: str | None = Form(None), track: int | None = Form(None),
                          target: str = Form("all"), pipeline: str = Form("face")) -> dict:
        if not 1 <= k <= 100:
            raise HTTPException(400, "k must be between 1 and 100")
        q = await resolve(file, query, media)
        parsed_box = _parse_box(box) if box else None
        results = service.search(q, k=k, face=face, box=parsed_box, track=track,
                                 target=target, pipeline=pipeline)
        return {"query": describe(q), "pipeline": pipeline,
                "results": [_result_json(r) for r in results]}

    @app.post("/api/index", summary="Add an uploaded photo or video to the collection")
    async def post_index(file: UploadFile = File(...)) -> dict:  # noqa: B008
        return service.index_upload(await read_upload(file), file.filename or "upload")

    @app.get("/api/media/{media_id}", summary="An indexed file, by id")
    def get_media(media_id: str):
        row = service.media_row(media_id)
        path = Path(row["path"])
        if not path.is_file():
            raise NotFound("the indexed file is no longer on disk (or is a frame folder)")
        return FileResponse(path, media_type=_mime(path, row["media_type"]))

    @app.get("/api/thumb/{media_id}", summary="A thumbnail, the matching face boxed")
    def get_thumb(media_id: str, face: int | None = None, track: int | None = None):
        return Response(service.thumbnail(media_id, face, track), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/queries/{qid}/tracks/{track}.jpg", summary="A query video track's face")
    def get_query_track(qid: str, track: int):
        return Response(service.query_track_thumbnail(qid, track), media_type="image/jpeg")

    @app.get("/api/collection", summary="A page of indexed files")
    def get_collection(offset: int = 0, limit: int = 48, label: str = "") -> dict:
        limit = max(1, min(limit, 200))
        rows = service.face.collection.list_images(max(0, offset), limit, label)
        return {"items": [{**r, "name": Path(r["path"]).name,
                           "thumb_url": f"/api/thumb/{r['image_id']}"
                           + ("?track=0" if r["media_type"] == "video" else "")}
                          for r in rows if r["n_faces"] > 0]}

    @app.get("/api/stats", summary="What the index holds, and with which model")
    def get_stats() -> dict:
        return {**service.face.stats(), "max_upload_bytes": settings.max_upload_bytes}

    @app.get("/docs", include_in_schema=False)
    def api_docs():
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url=app.openapi_url, title="revsearch API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    @app.get("/static/swagger/{name}", include_in_schema=False)
    def swagger_asset(name: str):
        if name not in _SWAGGER:
            raise NotFound("no such file")
        from swagger_ui_bundle import swagger_ui_path

        return Response((swagger_ui_path / name).read_bytes(), media_type=_SWAGGER[name],
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/", include_in_schema=False)
    def index_page():
        return HTMLResponse(_web_file("index.html").decode("utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in _STATIC:
            raise NotFound("no such file")
        return Response(_web_file(name), media_type=_STATIC[name])

    return LimitUploads(app, settings.max_upload_bytes + 64 * 1024)


_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_SWAGGER = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
            "favicon-32x32.png": "image/png"}
_PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def _web_file(name: str) -> bytes:
    return resources.files("revsearch.serve").joinpath("web", name).read_bytes()


def _mime(path: Path, kind: str) -> str:
    """The type the file name implies, else a generic one of the indexed kind."""
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or f"{kind}/octet-stream"


def _parse_box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        raise ValueError("box must be 'x,y,width,height' in query pixels")
    return values


def _result_json(result: SearchResult) -> dict:
    out = asdict(result)
    for hit in out["hits"]:
        hit["media_url"] = f"/api/media/{hit['image_id']}"
        extra = f"track={hit['face_index']}" if hit["media_type"] == "video" \
            else f"face={hit['face_index']}"
        hit["thumb_url"] = f"/api/thumb/{hit['image_id']}?{extra}"
    if isinstance(result.track, QueryTrack):
        out["track"] = asdict(result.track)
    return out


def serve(host: str = "127.0.0.1", port: int = 8000, **settings: object) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    from revsearch import logs

    logs.configure()
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can search and add "
                    "to your collection; there is no authentication", host)
    app = create_app(**settings)
    uvicorn.run(app, host=host, port=port, log_level="info")


__all__ = ["create_app", "render_thumbnail", "serve"]
