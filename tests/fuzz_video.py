"""Mutation fuzzing of the video reader, run as a child process by test_fuzz.py so that a
crash in FFmpeg shows up as a failed test instead of killing the test run.

    python tests/fuzz_video.py CASES SEED SEED_FILE...

Each case takes a seed file, overwrites a few random bytes (headers included) and cuts
it at a random length, then reads it with `read_frames`. Every case must either give
frames or raise MediaError. Prints one JSON line: counts and the slowest case.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from revsearch.errors import MediaError
from revsearch.video.frames import Sampling, read_frames


def main() -> None:
    cases, seed = int(sys.argv[1]), int(sys.argv[2])
    seeds = [Path(p).read_bytes() for p in sys.argv[3:]]
    rng = np.random.default_rng(seed)
    outcome = {"cases": 0, "frames": 0, "media_errors": 0, "slowest_s": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(cases):
            data = bytearray(seeds[n % len(seeds)])
            for _ in range(int(rng.integers(1, 12))):
                pos = int(rng.integers(0, 512)) if rng.random() < 0.5 else \
                    int(rng.integers(0, len(data)))
                data[pos] = int(rng.integers(0, 256))
            data = data[:int(rng.integers(1, len(data) + 1))] if rng.random() < 0.5 else data
            path = Path(tmp) / f"case{n}"
            path.write_bytes(bytes(data))
            print(n, flush=True, file=sys.stderr)  # the last line names a crashing case
            started = time.monotonic()
            try:
                frames = sum(1 for _ in read_frames(path, Sampling(fps=5, max_frames=50)))
                outcome["frames"] += frames > 0
            except MediaError:
                outcome["media_errors"] += 1
            outcome["slowest_s"] = max(outcome["slowest_s"], time.monotonic() - started)
            outcome["cases"] += 1
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
