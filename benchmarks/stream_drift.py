"""Why does a long streaming video fall apart? The same video made twice: as `multitalk generate`
makes it, and with every clip's motion frames taken from the real video instead of the clip before.

    python benchmarks/stream_drift.py [--model M] [--vae VAE_FOLDER] [--seconds 20] [--strip PNG] [--label L]
                                      [--frames N --motion-frames M --steps S --text-guidance T --audio-guidance A]
                                      [--variant multitalk|infinitetalk] [--free-only]
    python benchmarks/stream_drift.py --smoke     # 2 s, 2 steps (run by the tests)

If the second stays clean, the model continues well from good frames and the trouble is what the
stream hands on (the generated frames after a trip through the VAE: `vae_eval.py --round-trips`);
if both fall apart, the model cannot continue a clip at all. One held-out 2-person scene
(seed 970000, the `add` audio); colour drift and heads found as in `demo_eval.py`, and both again
over the last third of the video, with its lip-sync, to show what time does; sampling flags as
there (left out: the model's own settings). ``--variant`` samples with the other clip scheme
(MultiTalk's given motion frames, InfiniteTalk's clean motion latents); the model's own by default.
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
from multitalk.evaluation.sync import pearson
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


def late_figures(report, truth: np.ndarray) -> tuple[str, str, str]:
    """Colour drift, heads found and lip-sync over the last third of the video."""
    m = report.measurement
    frames = min(m.openings.shape[1], truth.shape[1])
    start = frames - frames // 3
    seen = m.found[:, start:frames].T  # F, P
    distance = np.linalg.norm(m.colors[start:frames] - m.colors[:1], axis=-1) * 255
    drift = (distance * seen).sum(0) / np.maximum(seen.sum(0), 1)
    sync = [pearson(m.openings[i, start:frames], truth[i, start:frames]) for i in range(truth.shape[0])]
    return f"{drift.mean():.1f}", f"{seen.mean():.0%}", " / ".join(f"{v:.3f}" for v in sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pipeline folder (default: the bundled demo model)")
    parser.add_argument("--vae", help="use this VAE folder instead of the model's")
    parser.add_argument("--seconds", type=float, default=20.0)
    sampling_arguments(parser)
    parser.add_argument("--strip", help="write both videos' frame strips here (PNG, free above, forced below)")
    parser.add_argument("--variant", choices=["multitalk", "infinitetalk"], help="clip scheme (default: the model's)")
    parser.add_argument("--free-only", action="store_true", help="only the video as generate makes it")
    add_arguments(parser, "2 s of video, 2 steps")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.steps = 2.0, 2
    pipe = load_pipeline(args.model or default_model())
    pipe.set_progress_bar_config(disable=True)
    if args.vae:
        from diffusers import AutoencoderKLWan

        pipe.vae = AutoencoderKLWan.from_pretrained(args.vae).eval()
    if args.variant:
        pipe.set_variant(args.variant)
    args.variant = pipe.config.get("variant", "multitalk")
    resolve_sampling(pipe, args)
    size = pipe.config.buckets[0][0]
    sample = make_sample(random_scene(SCENE_SEED, 2, args.seconds, "add", size, size, action=None))
    scene, start = sample.scene, time.perf_counter()
    rows, strips = [], []
    labels = ("the clip before (as generate)",) + (() if args.free_only else ("the real video",))
    for label in labels:
        if label == "the real video":
            real = frames_from_uint8(sample.video)
            teacher_forced(pipe, real, args.frames - args.motion_frames, args.motion_frames)
        video = generate(pipe, sample, sample.tracks, args)
        report = evaluate_sync(video, scene, sample.openings)
        sync = " / ".join("—" if v is None else f"{v:.3f}" for v in report.lip_sync)
        found = f"{report.measurement.found.mean():.0%}"
        rows.append([label, f"{np.mean(report.color_drift):.1f}", found, sync, *late_figures(report, sample.openings)])
        strips.append(frame_strip(video))
    if args.strip:
        gap = np.full_like(strips[0][:4], 255)
        write_image(args.strip, np.concatenate([part for strip in strips for part in (strip, gap)][:-1]))
    forced = "" if args.free_only else " and with each clip's motion frames taken from the real video"
    result = Report(
        "stream_drift",
        "Long-video drift",
        f"{args.model or 'the bundled demo model'}{' with VAE ' + args.vae if args.vae else ''}: one held-out "
        f"2-person scene (seed {SCENE_SEED}, `add`), {args.seconds:g} s, made as `multitalk generate` makes it"
        f"{forced}; "
        f"the {args.variant} clip scheme; {describe_sampling(args)} "
        f"({time.perf_counter() - start:.0f} s).",
    )
    result.table(
        [
            "motion frames from",
            "colour drift",
            "heads found",
            "lip-sync (per person)",
            "last third: colour drift",
            "heads found",
            "lip-sync",
        ],
        rows,
    )
    result.finish(args)


if __name__ == "__main__":
    main()
