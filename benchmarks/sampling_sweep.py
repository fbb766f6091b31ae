"""Which sampling settings suit a model? Lip-sync, binding and colour drift of held-out 2-person
scenes (`add` and `para`, the scenes of `demo_eval.py`) for each setting given.

    python benchmarks/sampling_sweep.py 17,5,10,1,2 81,5,10,5,4 [--model M] [--scenes 2] [--seconds 3]
    python benchmarks/sampling_sweep.py --smoke   # one 1-s scene per audio type, 2 steps (run by the tests)

A setting is FRAMES,MOTION_FRAMES,STEPS,TEXT_GUIDANCE,AUDIO_GUIDANCE (shift: the model's own).
Text guidance 1 samples with 2 passes per step (cond, no audio), otherwise 3.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from held_out import HELD_OUT, generate
from report import Report, add_arguments

from multitalk.checkpoints import default_model, load_pipeline
from multitalk.evaluation import evaluate_sync
from multitalk.synthetic import make_sample, random_scene


def setting(text: str) -> argparse.Namespace:
    try:
        frames, motion, steps, text_guidance, audio_guidance = text.split(",")
        return argparse.Namespace(
            frames=int(frames),
            motion_frames=int(motion),
            steps=int(steps),
            text_guidance=float(text_guidance),
            audio_guidance=float(audio_guidance),
        )
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want FRAMES,MOTION_FRAMES,STEPS,TEXT_GUIDANCE,AUDIO_GUIDANCE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", type=setting, nargs="*")
    parser.add_argument("--model", help="pipeline folder (default: the bundled demo model)")
    parser.add_argument("--scenes", type=int, default=2, help="scenes per audio type")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=42)
    add_arguments(parser, "one 1-s scene per audio type and the setting 17,5,2,5,4")
    args = parser.parse_args()
    if args.smoke:
        args.settings, args.scenes, args.seconds = args.settings or [setting("17,5,2,5,4")], 1, 1.0
    if not args.settings:
        parser.error("give at least one FRAMES,MOTION_FRAMES,STEPS,TEXT_GUIDANCE,AUDIO_GUIDANCE setting")
    pipe = load_pipeline(args.model or default_model())
    pipe.set_progress_bar_config(disable=True)
    size = pipe.config.buckets[0][0]
    samples = [
        make_sample(random_scene(HELD_OUT + 200 + k, 2, args.seconds, mode, size, size, action=None))
        for mode in ("add", "para")
        for k in range(args.scenes)
    ]
    rows = []
    for chosen in args.settings:
        chosen.seed, chosen.color_correction, chosen.shift, chosen.apg = args.seed, 0.0, None, False
        start = time.perf_counter()
        reports = [evaluate_sync(generate(pipe, s, s.tracks, chosen), s.scene, s.openings) for s in samples]
        sync = [v for r in reports for v in r.lip_sync if v is not None]
        binding = [r.binding_accuracy for r in reports if r.binding_accuracy is not None]
        rows.append(
            [
                chosen.frames,
                chosen.motion_frames,
                chosen.steps,
                f"{chosen.text_guidance:g} / {chosen.audio_guidance:g}",
                f"{np.mean(sync):.3f}",
                f"{np.mean(binding):.2f}",
                f"{np.mean([np.mean(r.color_drift) for r in reports]):.1f}",
                f"{time.perf_counter() - start:.0f} s",
            ]
        )
    report = Report(
        "sampling_sweep",
        "Sampling settings of the demo model",
        f"{args.model or 'the bundled demo model'}; {len(samples)} held-out 2-person scenes ({args.scenes} `add`, "
        f"{args.scenes} `para`, {args.seconds:g} s each). A setting is clip frames, frames carried over, steps, text "
        "and audio guidance; the shift is the model's own.",
    )
    report.table(
        [
            "clip frames",
            "carried over",
            "steps",
            "guidance text / audio",
            "lip-sync",
            "binding acc.",
            "colour drift",
            "time",
        ],
        rows,
    )
    report.finish(args)


if __name__ == "__main__":
    main()
