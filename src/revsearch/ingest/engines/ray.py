"""The Ray engine: the mapper on the actors of a Ray cluster, for more than one machine.

The driver (the process running `revsearch index`) lists the files and writes the rows
exactly as with the local engine; here each actor loads the space's models once and
analyses the files it is sent, a few photos per call (a video alone). Every node must
see the files at the paths the driver lists (shared storage) and have revsearch
installed. A worker that dies (a decoder crash, a lost node, an operator's kill) loses
only the files it held: they are retried one by one on a fresh actor and reported if
they fail again, and the run goes on.

Ray is an optional extra (`pip install 'revsearch[distributed]'`) imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from revsearch.config import Settings
from revsearch.faces.pipeline import Pipeline
from revsearch.ingest.mapper import analyze_file, worker_pipeline
from revsearch.ingest.records import IngestError, Outcome, Problem, Task
from revsearch.spaces import Space, space_for

log = logging.getLogger(__name__)

INSTALL = "pip install 'revsearch[distributed]'"
START_TIMEOUT = 600.0  # seconds for the actors to start and load their models
IN_FLIGHT = 2  # calls queued per actor, so an actor never waits for the driver
MAX_BATCH = 16  # photos per call: fewer round trips, yet small losses when a worker dies


class Mapper:
    """One Ray actor: the space's models, loaded once, and `analyze_file` on request."""

    def __init__(self, settings: Settings, space: Space) -> None:
        self.pipeline = worker_pipeline(settings, space)

    def ready(self) -> str:
        return socket.gethostname()

    def analyze(self, tasks: list[Task]) -> list[Outcome]:
        return [analyze_file(task, self.pipeline) for task in tasks]


class RayEngine:
    """Maps files on Ray actors (see the module docstring).

    Joins the cluster at `settings.ray_address`, or starts Ray on this machine with
    `settings.workers` CPUs; a connection the caller opened (`ray.init`) is used as is.
    One actor per worker, at most one per CPU of the cluster.
    """

    def __init__(self, settings: Settings, *, lite: bool) -> None:
        _require_ray()
        address = settings.ray_address
        if lite and address and not on_this_machine(address):
            raise IngestError(_lite_refused(settings, address))
        self.settings, self.lite = settings, lite

    def map(self, tasks: Sequence[Task], pipeline: Pipeline | None = None) -> Iterator[Outcome]:
        if not tasks:
            return
        space = pipeline.space if pipeline is not None else space_for(self.settings)
        with _connected(self.settings) as ray:
            if self.lite:
                _check_single_machine(ray, self.settings)
            pool = _Pool(ray, self.settings, space)
            try:
                yield from pool.run(tasks)
            finally:
                pool.close()


@dataclass
class _Call:
    slot: int
    actor: Any
    tasks: list[Task]
    retry: bool  # one file that was in flight when its worker died


class _Pool:
    """A fixed number of actor slots; a dead actor is replaced in its slot."""

    def __init__(self, ray: Any, settings: Settings, space: Space) -> None:
        self.ray, self.settings, self.space = ray, settings, space
        self.remote = ray.remote(num_cpus=1, max_restarts=0)(Mapper)
        self.actors = [self._start() for _ in range(_pool_size(ray, settings.workers))]
        self._wait_ready()

    def _start(self) -> Any:
        return self.remote.remote(self.settings, self.space)

    def _wait_ready(self) -> None:
        exceptions = self.ray.exceptions
        try:
            hosts = self.ray.get([a.ready.remote() for a in self.actors], timeout=START_TIMEOUT)
        except exceptions.GetTimeoutError:
            self.close()
            raise IngestError(f"the Ray workers did not start within {START_TIMEOUT:.0f} s: "
                              "is the cluster short of free CPUs or memory?") from None
        except exceptions.RayError as exc:
            self.close()
            raise IngestError(f"the Ray workers could not start: {_reason(exc)}. Every node "
                              f"needs revsearch installed ({INSTALL}) and the models' "
                              "files") from exc
        log.info("%d Ray workers on %d machines", len(hosts), len(set(hosts)))

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        batch = _batch_size(sum(t.media == "image" for t in tasks), len(self.actors))
        queue = deque(_batches(tasks, batch))
        retries: deque[Task] = deque()
        running: dict[Any, _Call] = {}
        load = [0] * len(self.actors)
        while queue or retries or running:
            for slot in range(len(self.actors)):
                while load[slot] < IN_FLIGHT and (retries or queue):
                    retry = bool(retries)
                    work = [retries.popleft()] if retry else queue.popleft()
                    ref = self.actors[slot].analyze.remote(work)
                    running[ref] = _Call(slot, self.actors[slot], work, retry)
                    load[slot] += 1
            [ref], _ = self.ray.wait(list(running), num_returns=1)
            call = running.pop(ref)
            load[call.slot] -= 1
            try:
                outcomes = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                yield from self._failed(call, exc, retries)
                continue
            yield from outcomes

    def _failed(self, call: _Call, exc: Exception, retries: deque[Task]) -> Iterator[Outcome]:
        """A call that raised: its worker died, or (rarely) the call itself failed."""
        died = isinstance(exc, self.ray.exceptions.RayActorError) or not isinstance(
            exc, self.ray.exceptions.RayTaskError)
        reason = _reason(exc)
        if died and self.actors[call.slot] is call.actor:
            log.warning("a Ray worker died (%s); retrying its files one by one", reason)
            self._kill(call.actor)
            self.actors[call.slot] = self._start()
        if not call.retry:
            retries.extend(call.tasks)
            return
        why = "a worker died on this file twice" if died else "analysis failed"
        for task in call.tasks:
            yield Outcome(task.path, problem=Problem(task.path, f"{why}: {reason}"))

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(actor, no_restart=True)

    def close(self) -> None:
        for actor in self.actors:
            self._kill(actor)


def _pool_size(ray: Any, workers: int) -> int:
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus and workers > cpus:
        log.warning("--workers %d, but the Ray cluster has %d CPUs: starting %d workers",
                    workers, cpus, cpus)
        return cpus
    if cpus > workers:
        log.info("using %d of the Ray cluster's %d CPUs (--workers)", workers, cpus)
    return max(1, workers)


def _batch_size(images: int, actors: int) -> int:
    """Photos per call: enough calls that every actor gets several (the last ones
    finish together), at most MAX_BATCH."""
    return max(1, min(MAX_BATCH, images // (actors * 4)))


def _batches(tasks: Sequence[Task], size: int) -> Iterator[list[Task]]:
    """Photos in groups of `size`, each video on its own (a whole-file task)."""
    group: list[Task] = []
    for task in tasks:
        if task.media != "image":
            yield [task]
            continue
        group.append(task)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


@contextlib.contextmanager
def _connected(settings: Settings) -> Iterator[Any]:
    import ray

    if ray.is_initialized():  # the caller's own connection: leave it open
        yield ray
        return
    address = settings.ray_address
    # Workers' output stays in the cluster's logs: on the driver it would go to stdout,
    # which `revsearch index --json` keeps for its report. Problems come back as rows.
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            # "local": a new instance, never a cluster some other run left on this machine.
            ray.init(address="local", num_cpus=max(1, settings.workers),
                     include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "Ray on this machine"
        raise IngestError(f"cannot start or reach {where}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise IngestError(f"--engine ray needs Ray, which is not installed: {INSTALL}") from None


def on_this_machine(address: str) -> bool:
    """Whether a Ray address names this machine ('auto' is checked once connected)."""
    if address in ("auto", "local"):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", "::1", ""):
        return True
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        return False
    return ip.startswith("127.") or ip in _local_ips()


def _local_ips() -> set[str]:
    with contextlib.suppress(OSError):
        return set(socket.gethostbyname_ex(socket.gethostname())[2])
    return set()


def _check_single_machine(ray: Any, settings: Settings) -> None:
    """Refuse a joined cluster that has (or is) another machine."""
    if not settings.ray_address:
        return  # started here, by this run
    here = ray.util.get_node_ip_address()
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]
    if any(ip != here and not on_this_machine(ip) for ip in nodes):
        raise IngestError(_lite_refused(settings, settings.ray_address))


def _lite_refused(settings: Settings, address: str) -> str:
    return (f"--engine ray with a cluster beyond this machine ({address}) needs a Milvus "
            f"server as the database, not the Milvus Lite file {settings.db_uri}: use "
            "--db http://HOST:19530 (see docs/deploy.md), or leave out --ray-address to "
            "run Ray on this machine only")
