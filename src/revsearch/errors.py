"""The exceptions revsearch raises on purpose; each message is meant for the user."""

from __future__ import annotations


class RevsearchError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero, without a traceback."""

    exit_code = 1


class SettingsError(RevsearchError, ValueError):
    """A setting (environment variable or keyword) has a value it cannot take."""

    exit_code = 2


class ModelFileError(RevsearchError):
    """A model file is missing or its SHA-256 does not match the expected one."""

    exit_code = 3


class MediaError(RevsearchError):
    """A file could not be read as an image or video; the message says why."""

    exit_code = 4


class NoFaceError(RevsearchError):
    """The query holds no detectable face."""

    exit_code = 5


class DatabaseLockedError(RevsearchError):
    """A Milvus Lite database is open in another process."""

    exit_code = 6


class DatabaseError(RevsearchError):
    """The database cannot be reached, or holds data this version cannot use."""

    exit_code = 7


class NotFoundError(RevsearchError, KeyError):
    """No indexed file (or face, track, query) has this id; a KeyError too, so code
    written for a mapping's lookups catches it."""

    exit_code = 8

    def __str__(self) -> str:
        # KeyError quotes its argument ("'no such media'"); the message is for people.
        return str(self.args[0]) if self.args else ""


class PeopleError(RevsearchError, ValueError):
    """A people command that cannot be done as asked (a name taken, a merge of a person
    with itself, ...); nothing was changed."""

    exit_code = 9
