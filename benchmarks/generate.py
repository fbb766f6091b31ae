"""`multitalk generate` on CPU with the tiny random model: wall time, peak memory, s/step.

    python benchmarks/generate.py [--steps 10] [--seconds 5]
    python benchmarks/generate.py --smoke         # 1 s, 2 steps, two rows (run by the tests)

Each row is a separate `multitalk generate` process (model loading, audio and text
encoding, sampling, mp4 writing included); peak memory is that process's max RSS. The
tiny model measures the pipeline's own overhead, not a real model's compute: see
benchmarks/step_time.py for transformer time at larger sizes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Report, add_arguments

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
    add_arguments(parser, "1 s of audio, 2 steps, two process rows and two in-process rows")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.seconds = 2, 1.0
    report = Report(
        "generate",
        "`multitalk generate` on CPU",
        "First table: one `multitalk generate` process per row (model load, audio and text encoding, sampling, "
        "VAE, mp4 writing; peak memory = the process's max RSS), the tiny random model at 64×64, "
        f"{args.steps} steps, {args.seconds:g} s of audio. With the tiny model the fixed work dominates, so "
        "2-pass vs 3-pass and the cache barely show there; the second table measures them where the transformer "
        "dominates.",
    )
    report.table(
        ["people", "mode", "guidance", "cache", "wall s", "peak MB", "frames", "s per step (after loading)"],
        process_rows(args.steps, args.seconds, args.smoke),
    )
    sampling_table(report, args.steps, args.smoke)
    report.finish(args)


def process_rows(steps: int, seconds: float, smoke: bool) -> list[list[str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "tiny"
        random_pipeline("tiny").save_pretrained(model)
        common = [
            "--model",
            str(model),
            "--num-inference-steps",
            str(steps),
            "--num-frames",
            "33",
            "--motion-frames",
            "9",
            "--quiet",
            "-o",
            str(folder / "out.mp4"),
        ]
        runs = [(p, m, "3-pass", "none") for p in (1, 2, 3) for m in ("clip", "streaming")]
        runs += [(2, "streaming", "2-pass", "none"), (2, "streaming", "3-pass", "first-block")]
        if smoke:
            runs = runs[3:4]
        inputs = {p: write_inputs(folder, p, seconds) for p in sorted({r[0] for r in runs})}
        for people, mode, guidance, cache in runs:
            extra = ["--mode", mode, "--cache", cache, "--text-guidance", "1" if guidance == "2-pass" else "5"]
            wall, peak, summary = run(inputs[people] + common + extra)
            frames = re.search(r"(\d+) frames", summary).group(1)
            per_step = re.search(r"([\d.]+) s/step", summary).group(1)
            rows.append([people, mode, guidance, cache, f"{wall:.1f}", f"{peak:.0f}", frames, per_step])
    return rows


def sampling_table(report: Report, steps: int, smoke: bool) -> None:
    """Guidance passes and the cache hook where the transformer dominates: the `small` preset in-process."""
    from diffusers import FirstBlockCacheConfig

    preset, size, repeats = ("tiny", 64, 1) if smoke else ("small", 128, 3)
    sample = make_sample(random_scene(7, 2, 1.0, "add", width=size, height=size, action=None))
    pipe = random_pipeline(preset, buckets=[[size, size]])
    pipe.set_progress_bar_config(disable=True)
    rows = []
    settings = [("3-pass", None), ("2-pass", None), ("3-pass", 0.05), ("3-pass", 0.2)]
    for guidance, cache in settings[:2] if smoke else settings:
        if cache:
            pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=cache))
        times = []
        for _ in range(repeats):
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
        rows.append([guidance, label, f"{sorted(times)[len(times) // 2]:.3f}", 2 if guidance == "2-pass" else 3])
    params = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    report.table(
        ["guidance", "cache", "s per step", "model passes per step"],
        rows,
        title=f"`{preset}` preset ({params:.2f}M, random weights) in-process, clip mode, 17 frames at {size}×{size}, "
        f"2 people, {steps} steps, median of {repeats}:",
        notes='"s per step" is the whole `pipe()` call (VAE and encoders included) divided by the steps. The '
        "first-block cache is an approximation: it changes the frames.",
    )


if __name__ == "__main__":
    main()
