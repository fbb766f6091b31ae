"""Why does a long streaming video fall apart? The same video made twice: as `multitalk generate`
makes it, and with every clip's motion frames taken from the real video instead of the clip before.

    python benchmarks/stream_drift.py [--model M] [--vae VAE_FOLDER] [--seconds 20] [--strip PNG]
                                      [--frames N --motion-frames M --steps S --text-guidance T --audio-guidance A]
    python benchmarks/stream_drift.py --smoke     # 2 s, 2 steps (run by the tests)

If the second stays clean, the model continues well from good frames and the trouble is what the
stream hands on (the generated frames after a trip through the VAE: `vae_eval.py --round-trips`);
if both fall apart, the model cannot continue a clip at all. One held-out 2-person scene
(seed 970000, the `add` audio); colour drift and heads found as in `demo_eval.py`; sampling flags
as there (left out: the model's own settings).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
from held_out import describe_sampling, generate, resolve_sampling, sampling_arguments
from report import Report, add_arguments

from multitalk.checkpoints import default_model, load_pipeline
from multitalk.evaluation import evaluate_sync
from multitalk.media import frame_strip, frames_from_uint8, write_image
from multitalk.synthetic import make_sample, random_scene

SCENE_SEED = 970_000


def teacher_forced(pipe, real: torch.Tensor, step_frames: int, motion_frames: int) -> None:
    """From now on ``pipe`` conditions clip k > 0 on the real frames where it starts (``real``: 3, F, H, W)."""
    generate_clip, calls = pipe.generate_clip, itertools.count()

    def from_real_frames(cond_frames, *args, **kwargs):
        k = next(calls)
        if k:
            cond_frames = real[:, k * step_frames : k * step_frames + motion_frames]
        return generate_clip(cond_frames, *args, **kwargs)

    pipe.generate_clip = from_real_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pipeline folder (default: the bundled demo model)")
    parser.add_argument("--vae", help="use this VAE folder instead of the model's")
    parser.add_argument("--seconds", type=float, default=20.0)
    sampling_arguments(parser)
    parser.add_argument("--strip", help="write both videos' frame strips here (PNG, free above, forced below)")
    add_arguments(parser, "2 s of video, 2 steps")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.steps = 2.0, 2
    pipe = load_pipeline(args.model or default_model())
    pipe.set_progress_bar_config(disable=True)
    if args.vae:
        from diffusers import AutoencoderKLWan

        pipe.vae = AutoencoderKLWan.from_pretrained(args.vae).eval()
    resolve_sampling(pipe, args)
    size = pipe.config.buckets[0][0]
    sample = make_sample(random_scene(SCENE_SEED, 2, args.seconds, "add", size, size, action=None))
    scene, start = sample.scene, time.perf_counter()
    rows, strips = [], []
    for label in ("the clip before (as generate)", "the real video"):
        if label == "the real video":
            real = frames_from_uint8(sample.video)
            teacher_forced(pipe, real, args.frames - args.motion_frames, args.motion_frames)
        video = generate(pipe, sample, sample.tracks, args)
        report = evaluate_sync(video, scene, sample.openings)
        sync = " / ".join("—" if v is None else f"{v:.3f}" for v in report.lip_sync)
        rows.append([label, f"{np.mean(report.color_drift):.1f}", f"{report.measurement.found.mean():.0%}", sync])
        strips.append(frame_strip(video))
    if args.strip:
        write_image(args.strip, np.concatenate([strips[0], np.full_like(strips[0][:4], 255), strips[1]]))
    result = Report(
        "stream_drift",
        "Long-video drift",
        f"{args.model or 'the bundled demo model'}{' with VAE ' + args.vae if args.vae else ''}: one held-out "
        f"2-person scene (seed {SCENE_SEED}, `add`), {args.seconds:g} s, made as `multitalk generate` makes it and "
        f"with each clip's motion frames taken from the real video; {describe_sampling(args)} "
        f"({time.perf_counter() - start:.0f} s).",
    )
    result.table(["motion frames from", "colour drift", "heads found", "lip-sync (per person)"], rows)
    result.finish(args)


if __name__ == "__main__":
    main()
