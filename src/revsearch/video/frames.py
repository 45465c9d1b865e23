"""Reading videos: files (mp4, avi, mpg, mkv, webm, mov through OpenCV's FFmpeg) and frame
folders in the YouTube Faces layout, sampled into timed BGR frames.

A frame folder is a directory of images that together are one video:
`aligned_images_DB/<Name>/<video>/*.jpg` or `frame_images_DB/<Name>/<video>/*.jpg`.
Its frames are ordered by the number in their names and timed at `FOLDER_FPS`; being
stills picked from a video already, they are not thinned by the `fps` cap.

Sampling keeps at most `fps` frames per second (and/or every `every`-th frame) and at
most `max_frames` in all, so a long video costs a bounded amount of work. A video that
cannot be opened, has no decodable frame, or ends well before its stated length
(truncated or corrupt) raises `MediaError` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from revsearch.errors import MediaError
from revsearch.media import decode_image, read_bytes, sniff

FRAME_FOLDER_ROOTS = ("aligned_images_DB", "frame_images_DB")
FOLDER_FPS = 25.0  # YouTube Faces frames carry no timing; its videos are mostly 25 fps
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass(frozen=True)
class Sampling:
    """Which frames to look at: the stricter of `fps` and `every` wins."""

    fps: float = 5.0  # 0: no cap on the sampled frame rate
    every: int = 1  # look at every n-th frame at most
    max_frames: int = 1500  # stop after this many sampled frames


@dataclass
class Frame:
    index: int  # position in the video (0-based), or in the folder's sorted frames
    time: float  # seconds from the start
    image: np.ndarray  # BGR uint8


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # as the container states it (0 if unknown)
    fps: float
    width: int
    height: int


def is_frame_folder(path: Path) -> bool:
    """True for `<root>/<Name>/<video>/` under a YouTube Faces frames root."""
    return path.is_dir() and path.parent.parent.name in FRAME_FOLDER_ROOTS


def is_video(path: Path) -> bool:
    """A video file (by content) or a frame folder."""
    if path.is_dir():
        return is_frame_folder(path)
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16)) == "video"
    except OSError:
        return False


def folder_frames(folder: Path) -> list[Path]:
    """The frame images of a frame folder, in frame order (by the last number in the name)."""
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")]

    def key(p: Path) -> tuple[int, str]:
        numbers = re.findall(r"\d+", p.stem)
        return (int(numbers[-1]) if numbers else -1, p.name)

    return sorted(files, key=key)


def stat_video(path: str | os.PathLike) -> tuple[int, int]:
    """(size, mtime_ns) of a file, or of a frame folder (sum of sizes, newest mtime)."""
    path = Path(path)
    if not path.is_dir():
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    stats = [p.stat() for p in folder_frames(path)]
    return (sum(s.st_size for s in stats),
            max((s.st_mtime_ns for s in stats), default=path.stat().st_mtime_ns))


def video_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash of a video file (streamed) or a frame folder (names and bytes)."""
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if path.is_dir():
        for frame in folder_frames(path):
            h.update(frame.name.encode("utf-8") + b"\0")
            h.update(frame.read_bytes())
        return h.hexdigest()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open(path: Path):
    import cv2

    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc
    if not head:
        raise MediaError("empty file (0 bytes)")
    if sniff(head) != "video":
        raise MediaError("not a video (unrecognised content)")
    if head.startswith(b"\x00\x00\x01\xba") and _program_stream_cut(path):
        raise MediaError("truncated video: the MPEG program stream ends inside a packet")
    # FFmpeg prints its own complaints about damaged files to stderr; the MediaError we
    # raise says what matters, so keep FFmpeg quiet unless the user asked otherwise.
    # OpenCV reads this when it first opens a video, so it is set here, not at import.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # as FFmpeg's
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise MediaError("cannot open video: the container is damaged, truncated or of an "
                         "unsupported kind")
    return cap


def _program_stream_cut(path: Path) -> bool:
    """True when an MPEG-1/2 program stream (.mpg) ends inside a pack or packet.

    Such files have no index or stated length: a cut one plays as a shorter video, so
    the packet structure is the only sign of damage. Unknown structure counts as intact.
    """
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        n, pos = len(data), 0
        while pos + 4 <= n:
            if data[pos:pos + 3] != b"\x00\x00\x01":
                return False  # trailing padding, or a layout not walked here: intact
            code = data[pos + 3]
            if code == 0xBA:  # pack header: MPEG-2 (14 bytes + stuffing) or MPEG-1 (12)
                if pos + 14 > n:
                    return True
                pos += 14 + (data[pos + 13] & 7) if data[pos + 4] >> 6 == 1 else 12
            elif code == 0xB9:  # program end
                pos += 4
            elif code >= 0xBB:  # system header or PES packet: 16-bit length follows
                if pos + 6 > n:
                    return True
                pos += 6 + int.from_bytes(data[pos + 4:pos + 6], "big")
            else:
                return False
        return pos > n or (0 < n - pos < 4 and any(b != 0xFF for b in data[pos:n]))


def _step(native_fps: float, sampling: Sampling) -> int:
    step = max(1, sampling.every)
    if sampling.fps > 0 and native_fps > sampling.fps:
        step = max(step, round(native_fps / sampling.fps))
    return step


def read_frames(path: str | os.PathLike, sampling: Sampling = Sampling(),
                max_pixels: int = 50_000_000) -> Iterator[Frame]:
    """The sampled frames of a video file or frame folder, in order (see module doc)."""
    path = Path(path)
    if path.is_dir():
        yield from _folder_frames(path, sampling, max_pixels)
        return
    import cv2

    cap = _open(path)
    try:
        info = VideoInfo(max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
                         float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if info.width * info.height > max_pixels:
            raise MediaError(f"video frames too large: {info.width}x{info.height} pixels "
                             f"> limit {max_pixels}")
        fps = info.fps if 0 < info.fps < 1000 else 25.0
        step = _step(fps, sampling)
        index = sampled = 0
        while sampled < sampling.max_frames:
            if not cap.grab():
                break
            if index % step == 0:
                ok, image = cap.retrieve()
                if not ok or image is None:
                    break
                sampled += 1
                yield Frame(index, index / fps, image)
            index += 1
        if index == 0:
            raise MediaError("no decodable frame: the video is empty, truncated or corrupt")
        # Containers state their length; stopping well short of it means damage.
        if sampled < sampling.max_frames and info.frames > 0 and \
                index < info.frames - max(2, 0.02 * info.frames):
            raise MediaError(f"truncated or corrupt video: decoding stopped at frame {index} "
                             f"of {info.frames}")
    finally:
        cap.release()


def _folder_frames(folder: Path, sampling: Sampling, max_pixels: int) -> Iterator[Frame]:
    files = folder_frames(folder)
    if not files:
        raise MediaError("frame folder holds no images")
    # The fps cap is not applied: a frame folder is already a sample of its video.
    step = max(1, sampling.every)
    for n, index in enumerate(range(0, len(files), step)):
        if n >= sampling.max_frames:
            break
        image = decode_image(read_bytes(files[index], 50 * 1024 * 1024), max_pixels)
        yield Frame(index, index / FOLDER_FPS, image)


def read_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """One frame by index (e.g. a track's thumbnail frame)."""
    path = Path(path)
    if path.is_dir():
        files = folder_frames(path)
        if not 0 <= index < len(files):
            raise MediaError(f"no frame {index} in {path}")
        return decode_image(read_bytes(files[index], 50 * 1024 * 1024), 50_000_000)

    cap = _open(path)
    try:
        # Seeking is exact for intra-coded streams only; decode from the start otherwise.
        for _ in range(index):
            if not cap.grab():
                raise MediaError(f"no frame {index} in {path}")
        ok, image = cap.read()
        if not ok or image is None:
            raise MediaError(f"no frame {index} in {path}")
        return image
    finally:
        cap.release()
