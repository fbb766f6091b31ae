"""How much host memory does one clip take? The number behind the clip-length limit.

`multitalk generate`, the HTTP API and the pipeline refuse a clip (or a whole video) that cannot fit
in the memory free at the time, from an estimate: ``memory.CLIP_BYTES_PER_PIXEL_FRAME`` bytes per
output pixel and frame of the clip, plus 3 per pixel and frame of the finished video. This script
measures it: one clip from a random `tiny` pipeline (its weights are a few kB, so what grows is the
clip: decoded frames in float32, their colour-corrected copy, the uint8 frames), each size and
length in a fresh process, peak resident memory after the call minus before; the slope between
the two lengths at one size is the per-pixel-frame figure.

    python benchmarks/clip_memory.py [--sizes 256 512] [--frames 33 97]
    python benchmarks/clip_memory.py --smoke      # 64 px, 9 and 17 frames (run by the tests)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from report import Report, add_arguments

CHILD = """
import json, resource, sys
import numpy as np
from multitalk.random_pipeline import random_pipeline
frames, size = int(sys.argv[1]), int(sys.argv[2])
pipe = random_pipeline("tiny", buckets=[[size, size]])
pipe.set_progress_bar_config(disable=True)
image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
voice = np.random.default_rng(1).standard_normal(16000 * 8).astype(np.float32) * 0.1
pipe(image, [voice], "warm-up", mode="clip", num_frames=5, num_inference_steps=1, size=(size, size))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
pipe(image, [voice], "a person talks", mode="clip", num_frames=frames, num_inference_steps=1, size=(size, size))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "after": after}))
"""


def peak_growth(frames: int, size: int) -> int:
    """Bytes the peak resident memory grew by during one clip, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(frames), str(size)], capture_output=True, text=True, check=True
    ).stdout
    numbers = json.loads(out.strip().splitlines()[-1])
    return numbers["after"] - numbers["before"]


def main() -> None:
    from multitalk.memory import CLIP_BYTES_PER_PIXEL_FRAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, nargs=2, default=[33, 97], help="the two clip lengths")
    add_arguments(parser, "64 px, 9 and 17 frames")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.frames = [64], [9, 17]
    short, long = args.frames
    rows = []
    for size in args.sizes:
        grown = [peak_growth(frames, size) for frames in (short, long)]
        slope = (grown[1] - grown[0]) / ((long - short) * size * size)
        rows.append(
            [
                f"{size}×{size}",
                f"{grown[0] / 2**20:.0f}",
                f"{grown[1] / 2**20:.0f}",
                f"{slope:.0f}",
                f"{CLIP_BYTES_PER_PIXEL_FRAME}",
            ]
        )
    report = Report(
        "clip_memory",
        "Host memory per clip",
        f"A random `tiny` pipeline, one clip of {short} and of {long} frames per size, 1 step, each in a fresh "
        "process after a 5-frame warm-up; peak resident memory growth during the call.",
    )
    report.table(
        [
            "size",
            f"{short} frames, MiB",
            f"{long} frames, MiB",
            "bytes per pixel and frame (slope)",
            "the limit's estimate",
        ],
        rows,
        notes="The estimate (`memory.CLIP_BYTES_PER_PIXEL_FRAME`) should stay above the measured slope.",
    )
    report.finish(args)


if __name__ == "__main__":
    main()
