"""Handing an ingest to the `revsearch serve` that holds a Milvus Lite database.

Milvus Lite lets one process open a database. While a server has it, `revsearch index`
cannot; instead it finds where that server listens, in a small file the server writes
beside the database at start (and removes at exit), submits the folders as a job over
REST and follows the job's progress. The file is readable by its owner only and holds a
token: a client that can read it may ask the server to index any folder it names (it
could read those folders itself), where other clients are held to the server's watched
and allowed folders.

Standard library only: the CLI does not need the server's dependencies to talk to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from revsearch.config import Settings
from revsearch.errors import RevsearchError
from revsearch.ingest.records import IngestReport, Problem
from revsearch.store.backend import is_server_uri

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Revsearch-Token"


@dataclass(frozen=True)
class ServerInfo:
    """Where a running server listens, and the token that lets a local client in."""

    pid: int
    host: str
    port: int
    token: str
    db: str

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def server_file(settings: Settings) -> Path | None:
    """The file a server of this Lite database writes; None for a Milvus server URI
    (any number of processes may use that at once)."""
    if is_server_uri(settings.db_uri):
        return None
    db = Path(settings.db_uri).expanduser().resolve()
    return db.with_name(db.name + ".server.json")


def announce(settings: Settings, host: str, port: int) -> ServerInfo | None:
    """Record that this process serves the database at host:port (owner-only file)."""
    path = server_file(settings)
    if path is None:
        return None
    info = ServerInfo(os.getpid(), host, port, secrets.token_hex(16), settings.db_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info.__dict__, fh)
    os.replace(tmp, path)
    return info


def withdraw(settings: Settings) -> None:
    """Remove the file `announce` wrote, if it is still this process's."""
    path = server_file(settings)
    found = read_info(path) if path else None
    if path and found and found.pid == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def read_info(path: Path) -> ServerInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServerInfo(int(data["pid"]), str(data["host"]), int(data["port"]),
                          str(data["token"]), str(data["db"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_server(settings: Settings) -> ServerInfo | None:
    """The server that holds this Lite database, if one announced itself and lives."""
    path = server_file(settings)
    info = read_info(path) if path else None
    if info is None:
        return None
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None  # a server killed without cleaning up
    except PermissionError:
        pass  # alive, another user's
    return info


class Client:
    """The few REST calls a job needs, with the server's token."""

    def __init__(self, info: ServerInfo, timeout: float = 30.0) -> None:
        self.info, self.timeout = info, timeout

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.info.url + path, data=data, method=method,
            headers={"Content-Type": "application/json", TOKEN_HEADER: self.info.token})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RevsearchError(f"the server at {self.info.url} refused the job: "
                                 f"{_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RevsearchError(
                f"the revsearch server at {self.info.url} (pid {self.info.pid}) holds the "
                f"database but cannot be reached ({exc}); if it went away during a job, "
                f"run the command again: an ingest resumes where it stopped") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    return detail if isinstance(detail, str) else f"HTTP {exc.code} {json.dumps(detail)}"


def run_remote(info: ServerInfo, paths: Sequence[str | os.PathLike], *, labels: str,
               sync: bool, on_progress: Callable[[int, int], None] | None = None,
               poll: float = 0.5) -> IngestReport:
    """Submit `paths` as a job to the server and wait for it; Ctrl-C cancels the job."""
    client = Client(info)
    absolute = [str(Path(p).expanduser().absolute()) for p in paths]
    job = client.call("POST", "/api/jobs", {"paths": absolute, "labels": labels,
                                            "sync": sync})
    log.info("job %s submitted to %s", job["id"], info.url)
    try:
        while job["state"] in ("queued", "running"):
            if on_progress and job["total"] is not None:
                on_progress(job["done"], job["total"])
            time.sleep(poll)
            job = client.call("GET", f"/api/jobs/{job['id']}")
    except KeyboardInterrupt:
        with contextlib.suppress(RevsearchError):
            client.call("POST", f"/api/jobs/{job['id']}/cancel")
        raise
    if on_progress and job["total"] is not None:
        on_progress(job["done"], job["total"])
    if job["state"] != "done" or job["report"] is None:
        raise RevsearchError(f"the server's job {job['id']} ended {job['state']}: "
                             f"{job['error'] or 'no report'}")
    report = dict(job["report"])
    report["problems"] = [Problem(p["path"], p["reason"]) for p in report["problems"]]
    return IngestReport(**{k: v for k, v in report.items()
                           if k in IngestReport.__dataclass_fields__})
