"""Held-out evaluation of a model on the synthetic world (the demo model's report card).

    python benchmarks/demo_eval.py --model runs/demo/stage2/final [--scenes 10] [--steps 20] [--parts prompt]
    python benchmarks/demo_eval.py --smoke        # 1 scene of 1 s per row, 2 steps (run by the tests)

Scenes use seeds from 900000 on, which the training data (`multitalk synth --seed 0`,
a few hundred samples) never uses. Reported, as tables:
  * lip-sync and binding accuracy for 2-person `add` and `para` scenes and 3-person scenes;
  * the same scenes with the voices swapped between the people: do the mouths swap too?
    (binding measured against the swapped voices);
  * prompt following: scenes where one person walks; the prompt says which way; the share
    of videos where that person's head moves that way (audio silent: image->video), and the
    mean move with the prompt's direction word flipped (do the words steer at all?);
  * colour drift over a long streaming video, and a frame strip of it (--strip PNG).
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
from held_out import HELD_OUT, describe_sampling, generate, resolve_sampling, sampling_arguments
from report import Report, add_arguments

from multitalk.checkpoints import default_model, load_pipeline
from multitalk.evaluation import evaluate_sync
from multitalk.media import frame_strip, write_image
from multitalk.synthetic import make_sample, mouth_openings, random_scene

PARTS = ("sync", "prompt", "long")
FLIP = {"right": "left", "left": "right"}


def flipped(prompt: str) -> str:
    """The prompt with every walk's direction the other way."""
    return re.sub(r"walks to the (right|left)", lambda m: f"walks to the {FLIP[m.group(1)]}", prompt)


def sync_rows(pipe, args) -> list[list]:
    rows = []
    for people, mode in ((2, "add"), (2, "para"), (3, "add"), (3, "para")):
        plain, swapped = [], []
        for k in range(args.first_scene, args.first_scene + args.scenes):
            sample = make_sample(
                random_scene(HELD_OUT + 100 * people + k, people, args.seconds, mode, args.size, args.size, action=None)
            )
            video = generate(pipe, sample, sample.tracks, args)
            plain.append(evaluate_sync(video, sample.scene, sample.openings))
            order = np.roll(np.arange(people), 1)  # everyone gets the next person's voice
            voices = [sample.tracks[i] for i in order]
            video = generate(pipe, sample, voices, args)
            swapped.append(evaluate_sync(video, sample.scene, mouth_openings(voices)))
        for label, reports in (("own voices", plain), ("voices rotated", swapped)):
            sync = [v for r in reports for v in r.lip_sync if v is not None]
            binding = [r.binding_accuracy for r in reports if r.binding_accuracy is not None]
            rows.append(
                [
                    people,
                    mode,
                    label,
                    f"{np.mean(sync):.3f}",
                    f"{np.mean(binding):.3f}",
                    f"{np.mean([np.mean(r.color_drift) for r in reports]):.1f}",
                    f"{np.mean([r.measurement.found.mean() for r in reports]):.0%}",
                ]
            )
    return rows


def walked(pipe, sample, prompt, args) -> tuple[float, bool]:
    """How far (px) the walking person's head moved along the scene's walk, and whether it stayed found."""
    scene = sample.scene
    (action,) = scene.actions
    video = generate(pipe, sample, sample.tracks, args, prompt=prompt)
    measurement = evaluate_sync(video, scene, sample.openings).measurement
    moved = measurement.heads[-1, action.person, 0] - measurement.heads[0, action.person, 0]
    return float(moved * np.sign(action.dx)), measurement.found[action.person].mean() > 0.8


def prompt_following(pipe, args) -> tuple[int, int, float, float, float]:
    """Walkers moving the prompt's way (> 2 px, head tracked), and the mean move along the walk with
    the prompt as it is and with its direction word flipped (if the words steer, the two differ),
    against the scenes' own walks."""
    right, along, against, walks = 0, [], [], []
    for k in range(args.first_scene, args.first_scene + args.scenes):
        scene = random_scene(HELD_OUT + 50_000 + k, 2, args.seconds, "silent", args.size, args.size, action="walk")
        sample = make_sample(scene)
        moved, tracked = walked(pipe, sample, scene.prompt, args)  # a head lost in noise proves nothing
        right += int(tracked and moved > 2)
        along.append(moved)
        walks.append(abs(scene.actions[0].dx) * args.size)  # dx: a share of the width
        against.append(walked(pipe, sample, flipped(scene.prompt), args)[0])
    return right, args.scenes, float(np.mean(along)), float(np.mean(against)), float(np.mean(walks))


def long_video(pipe, args) -> tuple[float, float, np.ndarray]:
    sample = make_sample(
        random_scene(HELD_OUT + 70_000, 2, args.long_seconds, "add", args.size, args.size, action=None)
    )
    video = generate(pipe, sample, sample.tracks, args)
    report = evaluate_sync(video, sample.scene, sample.openings)
    return float(np.mean(report.color_drift)), float(report.measurement.found.mean()), frame_strip(video)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pipeline folder (default: the bundled demo model)")
    parser.add_argument("--scenes", type=int, default=10, help="scenes per row")
    parser.add_argument(
        "--first-scene",
        type=int,
        default=0,
        help="start at this scene of each row (fresh scenes for a setting chosen on the first ones)",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--long-seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, help="scene size (default: the model's first bucket)")
    sampling_arguments(parser)
    parser.add_argument("--strip", help="write the long video's frame strip here (PNG)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure (default: all)")
    add_arguments(parser, "1 scene of 1 s per row, a 2-s long video, 2 steps")
    args = parser.parse_args()
    if args.smoke:
        args.scenes, args.seconds, args.long_seconds, args.steps = 1, 1.0, 2.0, 2
    args.model = args.model or default_model()
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    resolve_sampling(pipe, args)
    args.size = args.size or pipe.config.buckets[0][0]
    start = time.perf_counter()
    report = Report("demo_eval", "The bundled demo model, held out")
    if "sync" in args.parts:
        report.table(
            ["people", "audio", "voices", "lip-sync", "binding acc.", "colour drift", "heads found"],
            sync_rows(pipe, args),
        )
    if "prompt" in args.parts:
        right, total, along, against, walks = prompt_following(pipe, args)
        report.note(
            f"Prompt following (a walking person, silent audio): {right}/{total} move the way the prompt says; "
            f"mean move along the walk {along:+.1f} px, {against:+.1f} px with the prompt's direction flipped "
            f"(the scenes walk {walks:.1f} px)."
        )
    if "long" in args.parts:
        drift, found, strip = long_video(pipe, args)
        report.note(
            f"{args.long_seconds:g}-second streaming video: mean colour drift {drift:.1f} (0-255 RGB), heads "
            f"found in {found:.0%} of frames."
        )
        if args.strip:
            write_image(args.strip, strip)
    model = "the bundled demo model" if args.model == default_model() else f"`{args.model}`"
    report.about = (
        f"{model}; scenes {args.first_scene}–{args.first_scene + args.scenes - 1} of each row, {args.seconds:g} s "
        f"each at {args.size}px; {describe_sampling(args)}; {time.perf_counter() - start:.0f} s in all. "
        "Reading: docs/demo-model.md."
    )
    report.finish(args)


if __name__ == "__main__":
    main()
