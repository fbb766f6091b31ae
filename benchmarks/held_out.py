"""What the model benchmarks share: held-out scenes, the sampling flags, and one way to generate.

Scenes use seeds from ``HELD_OUT`` on (``multitalk.synthetic.splits``), which no training set
made by ``multitalk synth`` may use.
"""

from __future__ import annotations

import argparse

import torch

from multitalk.pipeline import sampling_settings
from multitalk.synthetic.splits import HELD_OUT_START

HELD_OUT = HELD_OUT_START


def sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The sampling flags every model benchmark shares; left out, the model's own settings hold."""
    for flags, kind in (
        (("--num-inference-steps", "--steps"), int),
        (("--num-frames", "--frames"), int),
        (("--motion-frames",), int),
        (("--text-guidance",), float),
        (("--audio-guidance",), float),
        (("--shift",), float),
    ):
        dest = flags[-1].removeprefix("--").replace("-", "_")
        parser.add_argument(*flags, dest=dest, type=kind, help="default: the model's own sampling settings")
    parser.add_argument(
        "--color-correction",
        type=float,
        default=0.0,
        help="Lab colour correction strength 0-1 against the image (default 0: off)",
    )
    parser.add_argument("--apg", action="store_true", help="adaptive projected guidance")
    parser.add_argument(
        "--trained-frames",
        type=int,
        help="squeeze time in longer clips into this span; 0: Wan's positions (default: the model's)",
    )
    parser.add_argument("--seed", type=int, default=42)


def resolve_sampling(pipe, args: argparse.Namespace) -> None:
    """Fill the sampling flags left out with the model's own settings (or the pipeline's defaults)."""
    chosen = sampling_settings(
        pipe.config.sampling,
        num_frames=args.frames,
        motion_frames=args.motion_frames,
        num_inference_steps=args.steps,
        text_guidance=args.text_guidance,
        audio_guidance=args.audio_guidance,
        shift=args.shift,
    )
    args.frames, args.motion_frames, args.steps = (
        chosen["num_frames"],
        chosen["motion_frames"],
        chosen["num_inference_steps"],
    )
    args.shift = chosen["shift"] if chosen["shift"] is not None else 7.0  # the official 480p default
    args.text_guidance, args.audio_guidance = chosen["text_guidance"], chosen["audio_guidance"]
    if args.trained_frames is not None:
        pipe.transformer.set_trained_frames(args.trained_frames or None)
    args.trained_frames = pipe.transformer.config.trained_frames


def describe_sampling(args: argparse.Namespace) -> str:
    """The sampling settings a table was made with, for its header."""
    return (
        f"clips of {args.frames} frames ({args.motion_frames} carried over), {args.steps} steps, guidance text "
        f"{args.text_guidance:g} / audio {args.audio_guidance:g}, shift {args.shift:g}{', APG' * args.apg}"
        f"{f', colour correction {args.color_correction:g}' * bool(args.color_correction)}, "
        + (f"time squeezed into {args.trained_frames} frames" if args.trained_frames else "time not squeezed")
    )


def generate(pipe, sample, tracks, args, prompt: str | None = None):
    scene = sample.scene
    return pipe(
        sample.video[0],
        tracks,
        scene.prompt if prompt is None else prompt,
        bboxes=scene.bboxes(),
        mode="streaming",
        num_frames=args.frames,
        motion_frames=args.motion_frames,
        num_inference_steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
        text_guidance=args.text_guidance,
        audio_guidance=args.audio_guidance,
        shift=args.shift,
        color_correction=args.color_correction,
        apg=args.apg,
    ).frames
