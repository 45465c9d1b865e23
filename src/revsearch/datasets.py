"""Dataset layouts: LFW's folders and pairs files."""

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
    import os

    env = os.environ.get("REVSEARCH_LFW")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data" / "lfw"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data" / "lfw"
