"""How revsearch's programs log. The library only emits records; the CLI and the server
call `configure`, which is the one place that sets handlers and levels."""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"
# Progress lines (when stderr is not a terminal) are INFO records, shown by default.
PROGRESS_LOGGER = "revsearch.progress"


def configure(verbose: bool = False) -> None:
    """Log revsearch's records to stderr (INFO with `verbose`, else WARNING) and keep
    known, harmless third-party noise out of the terminal."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=FORMAT)
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO)
    quiet_third_party()


def quiet_third_party() -> None:
    """Silence third-party log records that only repeat what revsearch reports itself."""
    from revsearch.store.backend import import_pymilvus

    # pymilvus sets up its loggers when imported, resetting levels set on them before.
    import_pymilvus()

    # Milvus Lite and servers before 2.5 lack AllocTimestamp: pymilvus's query iterator
    # then falls back to a client-side timestamp, after grpc (in-process Lite server)
    # logs a traceback and pymilvus a warning. Both are harmless; silence just those.
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    # pymilvus logs every failed call with a traceback; the store re-raises each one as
    # a DatabaseError with its message, so the log would only repeat it.
    logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    # The in-process Lite server logs each failed call with a traceback too.
    logging.getLogger("milvus_lite.adapter.grpc.servicer").setLevel(logging.CRITICAL)
