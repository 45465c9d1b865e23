"""Embedding spaces: what each space is (models and their digests, dimension, metric,
index parameters, track aggregation, calibration), and the registry that names them.

    >>> from revsearch.spaces import space_for
    >>> space = space_for(settings)          # from --space, or the older flags
    >>> space.key, space.dim, space.metric   # ('sface', 128, 'COSINE')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from revsearch.spaces.registry import Registry, UnknownSpaceError
from revsearch.spaces.space import IndexPolicy, OnnxInput, Space

if TYPE_CHECKING:
    from revsearch.config import Settings


def registry(settings: Settings) -> Registry:
    """The registry of the settings' home (built-in spaces plus the user's)."""
    return Registry(settings.home)


def space_for(settings: Settings) -> Space:
    """The embedding space the settings ask for."""
    return Registry(settings.home).resolve(settings)


def names() -> list[str]:
    """Every space name under the default home (choices for the `space` setting)."""
    from revsearch.config import load_settings

    return Registry(load_settings().home).names()


__all__ = ["IndexPolicy", "OnnxInput", "Registry", "Space", "UnknownSpaceError", "names",
           "registry", "space_for"]
