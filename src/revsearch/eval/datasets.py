"""Dataset layouts: LFW's folders and pairs files; YouTube Faces' folders and splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    name1: str
    num1: int
    name2: str
    num2: int

    @property
    def same(self) -> bool:
        return self.name1 == self.name2


def lfw_image(root: str | Path, name: str, num: int) -> Path:
    return Path(root) / name / f"{name}_{num:04d}.jpg"


def read_pairs(path: str | Path) -> list[list[Pair]]:
    """LFW pairs file -> folds of pairs.

    `pairs.txt` starts with "10 300": 10 folds of 300 same then 300 different pairs.
    `pairsDevTrain.txt` / `pairsDevTest.txt` start with "N": one fold, N same then N
    different.
    """
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    header, body = lines[0], lines[1:]
    folds, per = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))
    pairs = []
    for tokens in body:
        if len(tokens) == 3:
            pairs.append(Pair(tokens[0], int(tokens[1]), tokens[0], int(tokens[2])))
        elif len(tokens) == 4:
            pairs.append(Pair(tokens[0], int(tokens[1]), tokens[2], int(tokens[3])))
        else:
            raise ValueError(f"{path}: bad pairs line {' '.join(tokens)!r}")
    if len(pairs) != folds * per * 2:
        raise ValueError(f"{path}: expected {folds * per * 2} pairs, found {len(pairs)}")
    size = 2 * per
    return [pairs[i * size:(i + 1) * size] for i in range(folds)]


def default_lfw_root() -> Path:
    """`../shared/data/lfw` beside a checkout, else REVSEARCH_LFW (see README)."""
    return _default_root("lfw", "REVSEARCH_LFW")


def default_ytf_root() -> Path:
    """`../shared/data/ytf` beside a checkout, else REVSEARCH_YTF."""
    return _default_root("ytf", "REVSEARCH_YTF")


def _default_root(name: str, env_var: str) -> Path:
    import os

    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data" / name
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data" / name


@dataclass(frozen=True)
class YtfVideo:
    """One YouTube Faces video: `<root>/aligned_images_DB/<name>/<number>/` frames."""

    name: str
    number: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.name}/{self.number}"


@dataclass(frozen=True)
class YtfPair:
    split: int
    first: str  # "Name/number", as in splits.txt
    second: str
    same: bool


def ytf_videos(root: str | Path, layout: str = "aligned_images_DB") -> list[YtfVideo]:
    """Every video folder present under `root/<layout>`, sorted by name then number."""
    base = Path(root) / layout
    if not base.is_dir():
        raise FileNotFoundError(f"no YouTube Faces {layout} folder at {base}")
    videos = [YtfVideo(person.name, video.name, video)
              for person in sorted(base.iterdir()) if person.is_dir()
              for video in sorted(person.iterdir(), key=lambda p: (len(p.name), p.name))
              if video.is_dir()]
    return videos


def read_ytf_splits(path: str | Path) -> list[YtfPair]:
    """YTF's `splits.txt`: "split, pair, first, second, same" lines after a header."""
    pairs = []
    for line in Path(path).read_text().splitlines()[1:]:
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5:
            raise ValueError(f"{path}: bad splits line {line!r}")
        pairs.append(YtfPair(int(fields[0]), fields[2], fields[3], fields[4] == "1"))
    return pairs
