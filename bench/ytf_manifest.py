"""Write the manifest of the YouTube Faces subset: one row per video (person, video, frames).

    .venv/bin/python bench/ytf_manifest.py [--ytf DIR] [--out FILE]

Reads the folder tree of YTF's `aligned_images_DB` layout
(`<DIR>/aligned_images_DB/<Person_Name>/<video_no>/aligned_detect_<video_no>.<frame>.jpg`)
by path and lists it; no image is opened or copied. The published manifest,
`docs/data/ytf_manifest.csv`, lets anyone holding YouTube Faces (or the Udacity frames it
was taken from, see docs/data.md) check that their copy is the same subset: the same
347 people, the same 1,154 videos, the same number of frames per video.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_YTF = ROOT.parent / "shared" / "data" / "ytf"
DEFAULT_OUT = ROOT / "docs" / "data" / "ytf_manifest.csv"
FIELDS = ("person", "video", "frames")


def _video_key(path: Path) -> tuple[int, str]:
    """Numeric video folders in numeric order (2 before 10), anything else after."""
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


def manifest(ytf: Path) -> list[dict[str, str | int]]:
    """One row per video folder that holds at least one JPEG frame, sorted."""
    db = ytf / "aligned_images_DB"
    if not db.is_dir():
        raise FileNotFoundError(f"no aligned_images_DB under {ytf}")
    rows: list[dict[str, str | int]] = []
    for person in sorted(p for p in db.iterdir() if p.is_dir()):
        for video in sorted((v for v in person.iterdir() if v.is_dir()), key=_video_key):
            frames = sum(1 for f in video.iterdir() if f.suffix.lower() == ".jpg")
            if frames:
                rows.append({"person": person.name, "video": video.name, "frames": frames})
    return rows


def write(rows: list[dict[str, str | int]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ytf", type=Path, default=DEFAULT_YTF,
                        help="folder holding aligned_images_DB/ (default: ../shared/data/ytf)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV file to write")
    args = parser.parse_args(argv)
    rows = manifest(args.ytf)
    write(rows, args.out)
    people = len({r["person"] for r in rows})
    frames = sum(int(r["frames"]) for r in rows)
    print(f"{len(rows)} videos of {people} people, {frames} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
