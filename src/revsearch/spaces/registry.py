"""The registry of embedding spaces: the built-in ones and those a user registered.

Adding a model is declaring it: `revsearch models add NAME --path model.onnx` (or
`Registry.add_onnx`) writes one entry to `$REVSEARCH_HOME/models.json`; from then on
`--space NAME` indexes, searches, calibrates and evaluates with it like a built-in.
A fusion of spaces is declared the same way (`--fuse sface,NAME`).

`resolve(settings)` is the one place that turns settings into a space, including the
older flags (`--pipeline baseline`, `--embedder`, `--model-path`, `--flip`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from revsearch.errors import RevsearchError
from revsearch.faces.models import sha256_file, verify_file
from revsearch.spaces.builtin import BUILTIN, baseline_space
from revsearch.spaces.space import OnnxInput, Space, user_file

if TYPE_CHECKING:
    from revsearch.config import Settings

log = logging.getLogger(__name__)

REGISTRY_FILE = "models.json"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class UnknownSpaceError(RevsearchError):
    """No embedding space of that name is registered."""

    exit_code = 2


class Registry:
    """Built-in spaces plus the user's, from `home/models.json`."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / REGISTRY_FILE
        self._spaces: dict[str, Space] = {s.name: s for s in BUILTIN}
        self._entries: dict[str, dict] = self._read()
        for name, entry in self._entries.items():
            try:
                self._spaces[name] = self._from_entry(name, entry)
            except (KeyError, TypeError, ValueError, UnknownSpaceError) as exc:
                log.warning("ignoring the registered model %r in %s: %s", name, self.path, exc)

    # -- reading -------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._spaces)

    def spaces(self) -> list[Space]:
        return list(self._spaces.values())

    def get(self, name: str) -> Space:
        """The space called `name` (`NAME_flip` is NAME with flip test-time augmentation)."""
        base = name.removesuffix("_flip")
        if base not in self._spaces:
            raise UnknownSpaceError(
                f"no embedding space {name!r}; registered: {', '.join(self.names())}. "
                f"Add your own with `revsearch models add NAME --path model.onnx`.")
        space = self._spaces[base]
        return space.flipped() if name.endswith("_flip") and base != name else space

    def find_key(self, key: str) -> Space | None:
        """The space whose collections are named `key`, if it is registered."""
        try:
            return self.get(key)
        except UnknownSpaceError:
            return None

    def resolve(self, settings: Settings) -> Space:
        """The space the settings ask for: `space` by name, else the older flags."""
        if settings.pipeline not in ("face", "baseline"):
            raise ValueError(f"unknown pipeline {settings.pipeline!r}; choose face or baseline")
        if settings.pipeline == "baseline":
            space = self._baseline(settings)
        elif settings.space:
            space = self.get(settings.space)
        elif settings.embedder == "onnx":
            space = _unregistered_onnx(settings)
        else:
            space = self.get(settings.embedder)
        return space.flipped() if settings.flip else space

    def _baseline(self, settings: Settings) -> Space:
        if settings.backbone != "onnx":
            return self.get(f"baseline_{settings.backbone}")
        if not settings.model_path:
            raise ValueError("backbone 'onnx' needs model_path (REVSEARCH_MODEL_PATH)")
        digest = settings.model_sha256 or "unverified"
        return baseline_space("onnx", None, (user_file("baseline_onnx", settings.model_path,
                                                       settings.model_sha256),),
                              name=f"baseline_onnx_{digest[:12]}")

    # -- changing ------------------------------------------------------------------
    def add_onnx(self, name: str, path: str | os.PathLike, sha256: str = "", *,
                 onnx_input: OnnxInput | None = None, licence: str = "",
                 description: str = "") -> Space:
        """Register an ArcFace-style ONNX model (aligned square crops in, one vector out).

        The file's SHA-256 is checked against `sha256` when given, and pinned either way:
        if the file changes later, loading it fails instead of giving other vectors. The
        model is loaded once here to learn its vector size.
        """
        self._check_new_name(name)
        file = Path(path).expanduser().resolve()
        if sha256:
            verify_file(file, sha256, name)
        elif not file.is_file():
            raise RevsearchError(f"no model file at {file}")
        digest = sha256.lower() or sha256_file(file)
        entry = {"kind": "face", "embedder": "onnx", "path": str(file), "sha256": digest,
                 "input": asdict(onnx_input or OnnxInput()), "licence": licence,
                 "description": description or f"ONNX model {file.name}"}
        probe = self._from_entry(name, {**entry, "dim": None})
        from revsearch.config import load_settings

        entry["dim"] = probe.create_embedder(load_settings(home=self.home), threads=1).dim
        return self._save_entry(name, entry)

    def add_fusion(self, name: str, members: list[str], description: str = "") -> Space:
        """Register a fusion: the members' unit vectors joined, each scaled by
        1/sqrt(n), so the cosine of two fused vectors is the mean of the members'."""
        self._check_new_name(name)
        if len(members) < 2:
            raise RevsearchError("a fusion needs at least two spaces")
        spaces = [self.get(m) for m in members]
        if any(s.kind != "face" for s in spaces):
            raise RevsearchError("only face spaces can be fused")
        entry = {"kind": "face", "embedder": "fusion", "members": list(members),
                 "description": description or "fusion of " + " + ".join(members)}
        return self._save_entry(name, entry)

    def remove(self, name: str) -> None:
        """Forget a registered model (its collections in databases are left alone)."""
        if name in {s.name for s in BUILTIN}:
            raise RevsearchError(f"{name} is built in and cannot be removed")
        if name not in self._entries:
            raise UnknownSpaceError(f"no registered model {name!r}")
        users = [n for n, e in self._entries.items() if name in e.get("members", ())]
        if users:
            raise RevsearchError(f"{name} is part of the fusion(s) {', '.join(users)}: "
                                 f"remove those first")
        del self._entries[name]
        self._spaces.pop(name, None)
        self._write()

    # -- storage -------------------------------------------------------------------
    def _check_new_name(self, name: str) -> None:
        if not _NAME.match(name) or name.endswith("_flip") or name.startswith("baseline_"):
            raise RevsearchError(
                f"invalid name {name!r}: lower-case letters, digits and '_', starting with "
                f"a letter, at most 40 characters, not ending in _flip nor starting with "
                f"baseline_")
        if name in self._spaces:
            raise RevsearchError(f"{name} is already registered (remove it first)")

    def _from_entry(self, name: str, entry: dict) -> Space:
        if entry["embedder"] == "fusion":
            members = tuple(self.get(m) for m in entry["members"])
            return Space(name, "face", "fusion", sum(m.dim or 0 for m in members) or None,
                         members=members, description=entry.get("description", ""),
                         licence=" + ".join(m.licence or "?" for m in members),
                         builtin=False)
        if entry["embedder"] != "onnx":
            raise ValueError(f"unknown embedder kind {entry['embedder']!r}")
        return Space(name, "face", "onnx", entry.get("dim"),
                     files=(user_file(name, entry["path"], entry["sha256"]),),
                     onnx_input=OnnxInput(**entry.get("input", {})),
                     description=entry.get("description", ""),
                     licence=entry.get("licence", ""), builtin=False)

    def _save_entry(self, name: str, entry: dict) -> Space:
        space = self._from_entry(name, entry)
        self._entries[name] = entry
        self._spaces[name] = space
        self._write()
        return space

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RevsearchError(f"cannot read the model registry {self.path}: {exc}") from exc
        return dict(data.get("spaces", {}))

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "spaces": self._entries}, indent=2) + "\n")
        tmp.replace(self.path)  # atomic: a crash never leaves half a registry


def _unregistered_onnx(settings: Settings) -> Space:
    """`--embedder onnx --model-path F`: a model file used without registering it."""
    if not settings.model_path:
        raise ValueError("the 'onnx' embedder needs model_path (REVSEARCH_MODEL_PATH), or "
                         "register the model: revsearch models add NAME --path FILE")
    digest = settings.model_sha256 or "unverified"
    return Space(f"onnx_{digest[:12]}", "face", "onnx", None,
                 files=(user_file("onnx", settings.model_path, settings.model_sha256),),
                 onnx_input=OnnxInput(), builtin=False,
                 description=f"ONNX model {Path(settings.model_path).name} (unregistered)")
