"""`multitalk generate` on CPU with the tiny random model: wall time, peak memory, s/step.

    python benchmarks/generate.py [--steps 10] [--seconds 5]

Each row is a separate `multitalk generate` process (model loading, audio and text
encoding, sampling, mp4 writing included); peak memory is that process's max RSS. The
tiny model measures the pipeline's own overhead, not a real model's compute: see
benchmarks/step_time.py for transformer time at larger sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from multitalk.media import write_image, write_wav
from multitalk.random_pipeline import random_pipeline
from multitalk.synthetic import make_sample, random_scene


def write_inputs(folder: Path, people: int, seconds: float) -> list[str]:
    sample = make_sample(random_scene(100 + people, people, seconds, "add", width=64, height=64, action=None))
    write_image(folder / f"ref{people}.png", sample.video[0])
    args = ["--image", str(folder / f"ref{people}.png"), "--prompt", sample.scene.prompt]
    for i, track in enumerate(sample.tracks):
        write_wav(folder / f"p{people}_{i}.wav", track)
        args += ["--audio", str(folder / f"p{people}_{i}.wav")]
    return args


def run(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and the summary line of one `multitalk generate` process."""
    code = (
        "import resource, sys; from multitalk.cli import main; rc = main(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "generate", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr)
    peak = int(re.search(r"PEAK (\d+)", done.stdout).group(1)) / 1024
    summary = next(line for line in done.stdout.splitlines() if line.startswith("wrote"))
    return wall, peak, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(
        f"# generate — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, tiny random "
        f"model, 64×64, {args.steps} steps, {args.seconds:g} s of audio\n"
    )
    print("| people | mode | guidance | cache | wall s | peak MB | frames | s per step (after loading) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "tiny"
        random_pipeline("tiny").save_pretrained(model)
        common = [
            "--model",
            str(model),
            "--steps",
            str(args.steps),
            "--frames",
            "33",
            "--motion-frames",
            "9",
            "--quiet",
            "-o",
            str(folder / "out.mp4"),
        ]
        rows = [(p, m, "3-pass", "none") for p in (1, 2, 3) for m in ("clip", "streaming")]
        rows += [(2, "streaming", "2-pass", "none"), (2, "streaming", "3-pass", "first-block")]
        inputs = {p: write_inputs(folder, p, args.seconds) for p in (1, 2, 3)}
        for people, mode, guidance, cache in rows:
            extra = ["--mode", mode, "--cache", cache, "--text-guidance", "1" if guidance == "2-pass" else "5"]
            wall, peak, summary = run(inputs[people] + common + extra)
            frames = re.search(r"(\d+) frames", summary).group(1)
            per_step = re.search(r"([\d.]+) s/step", summary).group(1)
            print(f"| {people} | {mode} | {guidance} | {cache} | {wall:.1f} | {peak:.0f} | {frames} | {per_step} |")

    sampling_table(args.steps)


def sampling_table(steps: int) -> None:
    """Guidance passes and the cache hook where the transformer dominates: the `small` preset in-process."""
    from diffusers import FirstBlockCacheConfig

    print(
        f"\n`small` preset (12.9M, random weights) in-process, clip mode, 17 frames at 128×128, 2 people, "
        f"{steps} steps, median of 3:\n"
    )
    print("| guidance | cache | s per step | model passes per step |")
    print("|---|---|---|---|")
    sample = make_sample(random_scene(7, 2, 1.0, "add", width=128, height=128, action=None))
    pipe = random_pipeline("small", buckets=[[128, 128]])
    pipe.set_progress_bar_config(disable=True)
    for guidance, cache in [("3-pass", None), ("2-pass", None), ("3-pass", 0.05), ("3-pass", 0.2)]:
        if cache:
            pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=cache))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            pipe(
                sample.video[0],
                sample.tracks,
                sample.scene.prompt,
                bboxes=sample.scene.bboxes(),
                mode="clip",
                num_frames=17,
                num_inference_steps=steps,
                text_guidance=1.0 if guidance == "2-pass" else 5.0,
            )
            times.append((time.perf_counter() - start) / steps)
        if cache:
            pipe.transformer.disable_cache()
        label = f"first-block, threshold {cache}" if cache else "none"
        print(f"| {guidance} | {label} | {sorted(times)[1]:.3f} | {2 if guidance == '2-pass' else 3} |")


if __name__ == "__main__":
    main()
