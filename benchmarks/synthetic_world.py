"""Synthetic world: how fast it is made, and what the metrics say on known videos.

    python benchmarks/synthetic_world.py [--count 100] [--scenes 20] [--strip docs/img/synthetic-duet.png]
    python benchmarks/synthetic_world.py --smoke  # 2 samples, 1 scene of 1 s per table (run by the tests)

Part 1 times ``write_dataset`` (the work behind ``multitalk synth``): audio, ground truth,
frames, mp4 with sound, wavs and JSON per sample. Part 2 scores videos whose truth is known —
ground truth (raw and after an H.264 round trip), blurred, mouths swapped between two
people, frozen mouths — so the metric's range is on record next to model results.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from report import Report, add_arguments
from scipy.ndimage import gaussian_filter

from multitalk import media
from multitalk.evaluation import evaluate_sync
from multitalk.media import read_video, write_image, write_video
from multitalk.synthetic import make_sample, random_scene, render, write_dataset


def time_dataset(count: int, seconds: float, size: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_dataset(Path(folder) / "data", count, (1, 3), seconds, size, first_seed=10_000, progress=False)
        return time.perf_counter() - start


def blur(video: np.ndarray, sigma: float) -> np.ndarray:
    return (
        np.stack([gaussian_filter(frame.astype(np.float32), (sigma, sigma, 0)) for frame in video])
        .round()
        .clip(0, 255)
        .astype(np.uint8)
    )


def mp4_round_trip(video: np.ndarray, folder: str) -> np.ndarray:
    path = os.path.join(folder, "v.mp4")
    write_video(path, video, 25)
    return read_video(path)[0]


def score_conditions(num_scenes: int, people: int, seconds: float) -> dict[str, list]:
    rows: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as folder:
        for k in range(num_scenes):
            mode = "add" if k % 2 == 0 else "para"
            sample = make_sample(random_scene(20_000 + k, people, seconds, mode))
            scene, truth = sample.scene, sample.openings
            videos = {
                "ground truth": sample.video,
                "ground truth, mp4 (H.264 crf 18)": mp4_round_trip(sample.video, folder),
                "blurred (sigma 1 px)": blur(sample.video, 1.0),
                "blurred (sigma 2 px)": blur(sample.video, 2.0),
                "mouths rotated between people": render(scene, np.roll(truth, 1, axis=0)),
                "frozen mouths": render(scene, np.full_like(truth, 0.4)),
            }
            for name, video in videos.items():
                rows.setdefault(name, []).append(evaluate_sync(video, scene, truth))
    return rows


COLUMNS = ["video", "lip-sync mean", "lip-sync min", "binding acc.", "cross-talk", "still mouth", "colour drift"]


def table(rows: dict[str, list]) -> list[list[str]]:
    lines = []
    for name, reports in rows.items():
        sync = [v for r in reports for v in r.lip_sync if v is not None]
        binding = [r.binding_accuracy for r in reports if r.binding_accuracy is not None]
        cross = [v for r in reports for v in r.cross_talk]
        still = [v for r in reports for v in r.still_mouth if v is not None]
        drift = [v for r in reports for v in r.color_drift]
        lines.append(
            [
                name,
                f"{np.mean(sync):.3f}",
                f"{np.min(sync):.3f}",
                f"{np.mean(binding):.3f}",
                f"{np.mean(cross):.3f}",
                f"{np.mean(still):.3f}",
                f"{np.mean(drift):.1f}",
            ]
        )
    return lines


def write_frame_strip(path: str, seconds: float = 4.0, frames: int = 8) -> None:
    """A row of frames of one two-person scene where the people swap places while talking."""
    sample = make_sample(random_scene(7, 2, seconds, "add", width=192, height=128, action="swap"))
    write_image(path, media.frame_strip(sample.video, frames))
    print(f"wrote {path}: {frames} frames of '{sample.scene.prompt}'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="samples to synthesise for the timing")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--scenes", type=int, default=20, help="scenes per people count for the metric table")
    parser.add_argument("--strip", help="also write a frame strip PNG of a two-person scene here")
    add_arguments(parser, "2 samples, 1 one-second scene per table")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.seconds, args.scenes = 2, 1.0, 1
    elapsed = time_dataset(args.count, args.seconds, args.size)
    report = Report(
        "synthetic_world",
        "Synthetic world",
        f"`write_dataset` ({args.count} samples × {args.seconds:g} s at {args.size}×{args.size}, 1–3 people, mp4 + "
        f"wavs + JSON): {elapsed:.1f} s ({elapsed / args.count:.2f} s per sample). Metrics: "
        '`multitalk.evaluation.evaluate_sync` against the true mouth openings. "Mouths rotated" renders person '
        "*i*'s mouth with person *i−1*'s opening (for two people: swapped); frozen mouths are held half open, so "
        'their "still mouth" share is 0 by construction.',
    )
    for people in (2, 3):
        report.table(
            COLUMNS,
            table(score_conditions(args.scenes, people, args.seconds)),
            title=f"metrics on {args.scenes} {people}-person scenes (add and para, random actions), "
            f"{args.seconds:g} s each:",
        )
    if args.strip:
        write_frame_strip(args.strip)
    report.finish(args)


if __name__ == "__main__":
    main()
