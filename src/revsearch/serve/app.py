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
- `GET /api/people`: the persons (faces grouped by `revsearch.people`, clustered on
  first use); `GET /api/people/{id}`: one with its faces; `POST /api/people/cluster`
  (place new faces, or `recluster`); `POST /api/people/{id}/name`, `.../merge`
  (`other`), `POST /api/people/remove-face` (`item`): feedback, kept across runs.
- `POST /api/jobs`: index folders in the background (only inside the watched and allowed
  folders); `GET /api/jobs`, `GET /api/jobs/{id}`: progress, rate, ETA, problems so far,
  the report at the end; `POST /api/jobs/{id}/cancel` (or `DELETE`) stops one.

With `--watch`, the watched folders are indexed at start and kept current (serve/watch.py).
For a Milvus Lite database, a small owner-only file beside it says where the server
listens, so that `revsearch index` can hand its job over (revsearch/handoff.py).

Safety: binds 127.0.0.1 unless told otherwise; uploads over `max_upload_bytes` get 413
(checked on the declared length and on the bytes actually received); uploads that are
not an image or a video *by content* get 415; media ids must be 32 hex digits and exist;
the page is sent with a Content-Security-Policy that allows no inline or foreign script.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from revsearch import handoff
from revsearch.config import Settings, load_settings
from revsearch.errors import (
    DatabaseError,
    MediaError,
    NoFaceError,
    NotFoundError,
    PeopleError,
    SettingsError,
)
from revsearch.query import Query as SearchQuery
from revsearch.serve.jobs import Jobs, PathMissing, PathRefused, Roots
from revsearch.serve.middleware import LimitUploads, security_headers
from revsearch.serve.models import (
    ClusterOut,
    CollectionOut,
    IndexOut,
    JobIn,
    JobOut,
    JobsOut,
    PeopleOut,
    PersonOut,
    QueryOut,
    SearchOut,
    StatsOut,
    cluster_out,
    job_out,
    media_out,
    person_out,
    query_out,
    result_out,
)
from revsearch.serve.service import Service, UnsupportedType

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, listen: tuple[str, int] | None = None,
               **overrides: object):
    """The FastAPI app; `settings` (or keyword settings) as for `revsearch.connect`.

    `listen` (host, port): where the server listens, recorded beside a Lite database
    while it runs, for `revsearch index` to hand jobs over (revsearch/handoff.py).
    """
    settings = settings or load_settings(**overrides)
    missing = [f for f in settings.watch if not Path(f).expanduser().is_dir()]
    if missing:
        raise SettingsError(f"cannot watch {', '.join(missing)}: no such folder")
    service = Service(settings)
    jobs = Jobs(service.run_job, nice=settings.ingest_nice)
    roots = Roots.of([*settings.watch, *settings.allow])
    watcher = None
    if settings.watch:
        from revsearch.serve.watch import Watcher

        watcher = Watcher(Roots.of(settings.watch).folders,
                          lambda paths: jobs.submit(paths, sync=True, origin="watch"),
                          interval=settings.watch_interval)
    announced: list[handoff.ServerInfo] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if listen is not None:
            info = handoff.announce(settings, *listen)
            announced.extend([info] if info else [])
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            jobs.close()
            if announced:
                handoff.withdraw(settings)
            service.close()

    # The stock /docs and /redoc pages load their scripts from a CDN, which an offline
    # machine cannot reach: /docs is served below from the swagger-ui-bundle-v2 package.
    app = FastAPI(title="revsearch", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Reverse visual search of people in photos and videos.")
    app.state.service = service
    app.state.jobs = jobs
    app.middleware("http")(security_headers)

    errors = {NotFoundError: 404, UnsupportedType: 415, NoFaceError: 422, MediaError: 400,
              DatabaseError: 503, PeopleError: 409, ValueError: 400, PathRefused: 403,
              PathMissing: 404}

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
                      media: str | None) -> SearchQuery:
        if file is not None:
            return service.add_query(await read_upload(file), file.filename or "upload")
        if query:
            return service.cached_query(query)
        if media:
            return service.query_from_media(media)
        raise HTTPException(400, "send a file, a query id or a media id")

    @app.post("/api/queries", summary="Upload a query; get the faces or tracks found")
    async def post_query(file: UploadFile | None = File(None),  # noqa: B008
                         media: str | None = Form(None)) -> QueryOut:
        return query_out(await resolve(file, None, media))

    @app.get("/api/faces", summary="The faces (photo) or tracks (video) of a query")
    def get_faces(query: str = Query(...)) -> QueryOut:
        found = service.queries.get(query)
        if found is None:
            raise NotFoundError("no such query; upload it with POST /api/queries")
        return query_out(found)

    @app.post("/api/search", summary="Find the photos and videos of the person")
    async def post_search(file: UploadFile | None = File(None),  # noqa: B008
                          query: str | None = Form(None), media: str | None = Form(None),
                          k: int = Form(10), face: int | None = Form(None),
                          box: str | None = Form(None), track: int | None = Form(None),
                          target: str = Form("all"), pipeline: str = Form("face"),
                          far: float | None = Form(None, description=(
                              "operating point: 0.01, 0.001 or 0.0001 (default: the "
                              "server's far setting)")),
                          expand: bool | None = Form(None, description=(
                              "person query expansion: a photo query face that belongs "
                              "to a person also searches with the person's faces "
                              "(default: the server's person_expansion setting)"))
                          ) -> SearchOut:
        if not 1 <= k <= 100:
            raise HTTPException(400, "k must be between 1 and 100")
        q = await resolve(file, query, media)
        parsed_box = _parse_box(box) if box else None
        results = service.search(q, k=k, face=face, box=parsed_box, track=track,
                                 target=target, pipeline=pipeline, far=far, expand=expand)
        return SearchOut(query=query_out(q), pipeline=pipeline,
                         results=[result_out(r) for r in results])

    @app.post("/api/index", summary="Add an uploaded photo or video to the collection")
    async def post_index(file: UploadFile = File(...)) -> IndexOut:  # noqa: B008
        return IndexOut(**service.index_upload(await read_upload(file),
                                               file.filename or "upload"))

    @app.get("/api/media/{media_id}", summary="An indexed file, by id",
             response_class=FileResponse, responses=_FILE)
    def get_media(media_id: str):
        item = service.media(media_id)
        path = Path(item.path)
        if not path.is_file():
            raise NotFoundError("the indexed file is no longer on disk (or is a frame folder)")
        return FileResponse(path, media_type=_mime(path, item.media_type))

    @app.get("/api/thumb/{media_id}", summary="A thumbnail, the matching face boxed",
             response_class=Response, responses=_JPEG)
    def get_thumb(media_id: str, face: int | None = None, track: int | None = None):
        return Response(service.thumbnail(media_id, face, track), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/queries/{qid}/tracks/{track}.jpg", summary="A query video track's face",
             response_class=Response, responses=_JPEG)
    def get_query_track(qid: str, track: int):
        return Response(service.query_track_thumbnail(qid, track), media_type="image/jpeg")

    @app.get("/api/collection", summary="A page of indexed files")
    def get_collection(offset: int = 0, limit: int = 48, label: str = "") -> CollectionOut:
        items = service.face.media(max(0, offset), max(1, min(limit, 200)), label)
        return CollectionOut(items=[media_out(i) for i in items if i.n_faces > 0])

    @app.get("/api/stats", summary="What the index holds, and with which model")
    def get_stats() -> StatsOut:
        return StatsOut(**service.face.stats(), max_upload_bytes=settings.max_upload_bytes)

    @app.get("/api/people", summary="The persons, the largest first (clusters if needed)")
    def get_people(offset: int = 0, limit: int = 60, singles: bool = False) -> PeopleOut:
        people = service.people()
        shown = people if singles else [p for p in people if p.faces > 1 or p.name]
        page = shown[max(0, offset):max(0, offset) + max(1, min(limit, 500))]
        return PeopleOut(people=[person_out(p) for p in page], total=len(shown))

    @app.post("/api/people/cluster", summary="Place new faces into persons, or recluster")
    def post_cluster(recluster: bool = Form(False)) -> ClusterOut:
        return cluster_out(service.cluster(recluster))

    @app.post("/api/people/remove-face", summary="Not this person: move a face out")
    def post_remove_face(item: str = Form(...)) -> PersonOut:
        return person_out(service.people_verb("remove_face", item))

    @app.get("/api/people/{ref}", summary="A person (by id or name) and its faces")
    def get_person(ref: str) -> PersonOut:
        return person_out(service.face.person(ref))

    @app.post("/api/people/{ref}/name", summary="Name a person")
    def post_name(ref: str, name: str = Form(...)) -> PersonOut:
        return person_out(service.people_verb("name_person", ref, name))

    @app.post("/api/people/{ref}/merge", summary="Merge person `other` into this one")
    def post_merge(ref: str, other: str = Form(...)) -> PersonOut:
        return person_out(service.people_verb("merge_people", ref, other))

    def trusted(token: str | None) -> bool:
        """A client that read the server's owner-only file (the CLI handing over)."""
        return bool(token and announced
                    and secrets.compare_digest(token, announced[0].token))

    @app.post("/api/jobs", status_code=202, summary="Index folders in the background")
    def post_job(body: JobIn, x_revsearch_token: str | None = Header(None)) -> JobOut:
        # Every path is checked before anything is queued: a refusal changes nothing.
        paths = [roots.check(p, trusted(x_revsearch_token)) for p in body.paths]
        return job_out(jobs.submit(paths, labels=body.labels, sync=body.sync))

    @app.get("/api/jobs", summary="Recent and running background jobs, newest first")
    def list_jobs() -> JobsOut:
        return JobsOut(jobs=[job_out(j) for j in jobs.list()])

    @app.get("/api/jobs/{job_id}", summary="A job's progress, problems and report")
    def get_job(job_id: str) -> JobOut:
        return job_out(jobs.get(job_id))

    @app.post("/api/jobs/{job_id}/cancel", summary="Stop a job (what it wrote stays)")
    def cancel_job(job_id: str) -> JobOut:
        return job_out(jobs.cancel(job_id))

    @app.delete("/api/jobs/{job_id}", summary="Stop a job (same as POST .../cancel)")
    def delete_job(job_id: str) -> JobOut:
        return job_out(jobs.cancel(job_id))

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
            raise NotFoundError("no such file")
        from swagger_ui_bundle import swagger_ui_path

        return Response((swagger_ui_path / name).read_bytes(), media_type=_SWAGGER[name],
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/", include_in_schema=False)
    def index_page():
        return HTMLResponse(_web_file("index.html").decode("utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in _STATIC:
            raise NotFoundError("no such file")
        return Response(_web_file(name), media_type=_STATIC[name])

    return LimitUploads(app, settings.max_upload_bytes + 64 * 1024)


# The routes that answer with a file, not JSON: what /docs should say they send.
_JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG thumbnail"}}
_FILE = {200: {"content": {"image/*": {}, "video/*": {}}, "description": "the file itself"}}
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_SWAGGER = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
            "favicon-32x32.png": "image/png"}


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


def serve(host: str = "127.0.0.1", port: int = 8000, **settings: object) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    from revsearch import logs

    logs.configure()
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can search and add "
                    "to your collection; there is no authentication", host)
    app = create_app(listen=(host, port), **settings)
    uvicorn.run(app, host=host, port=port, log_level="info")


__all__ = ["create_app", "serve"]
