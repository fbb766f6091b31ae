"""Does a model that takes the reference image (`reference_latents`) read it? Its flow-matching loss
on streaming continuations with the true reference, another sample's, and none.

    python research/scripts/reference_use.py runs/experiments/reference/run/final --like research/configs/reference.yaml

The sibling of `audio_use.py` and `prompt_use.py` for the reference image. A stream's later clips
start from frames the model made; the reference is their only look at the people as they were.
Given frames three ways: as cached (true frames), with colours turned by up to 45 degrees
(`motion_recolor`), and the model's own one-step estimate of them (`motion_own`). A model that
reads the reference predicts the clip better with the true one than with another sample's (the
"reads it" gap, higher is more). Loss on the latent frames after the given ones; clips: the first
`--clips` cached clips per number of people of the stage config `--like`; fixed noise levels and draws.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from audio_use import SIGMAS, cached_clips, clip_arguments

from multitalk.checkpoints import load_pipeline
from multitalk.training.trainer import own_given_latents, recolor_given_frames, velocity_error

GIVEN = ("as cached", "colours turned", "model's own")
REFERENCES = ("true", "another sample's", "none")


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    clip_arguments(parser)
    parser.add_argument("--clips", type=int, default=12, help="clips per number of people (default 12)")
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    model = pipe.transformer.eval().float()
    if not model.takes_reference:
        raise SystemExit(f"{args.model} does not take the reference image (train it with reference_latents: true)")
    config, _, clips, _ = cached_clips(pipe, args.like, args.cache)
    if not config.motion_frames:
        raise SystemExit(f"{args.like} caches no streaming continuations: it needs motion_frames")
    start, generator = time.perf_counter(), torch.Generator().manual_seed(0)
    errors = {(given, sigma, ref): [] for given in GIVEN for sigma in SIGMAS for ref in REFERENCES}
    samples = clips.samples
    batches = []
    for group in clips.groups.values():  # one clip per sample, so "another sample's" reference is one
        group = [i for i in group if samples.index(samples[i]) == i][: args.clips]
        batches += [group[i : i + 6] for i in range(0, len(group), 6)]
    for picks in batches:
        batch = clips.stack(picks, motion=True)
        masks = batch["condition"][:, : -batch["latents"].shape[1]]
        given_frames = int(masks.amax((0, 1, 3, 4)).sum())  # how many latent frames are given
        conditions = {
            "as cached": batch["condition"],
            "colours turned": recolor_given_frames(pipe, batch, config.motion_frames, 45.0, generator),
            "model's own": own_given_latents(model, batch, generator),
        }
        for sigma in SIGMAS:
            noise = torch.randn(batch["latents"].shape, generator=generator)
            sigmas = torch.full((batch["latents"].shape[0],), sigma)
            for given, condition in conditions.items():
                references = (batch["reference"], batch["reference"].roll(1, 0), torch.zeros_like(batch["reference"]))
                for ref, reference in zip(REFERENCES, references, strict=True):
                    error = velocity_error(
                        model, {**batch, "condition": condition, "reference": reference}, sigmas, noise, use_audio=True
                    )
                    errors[given, sigma, ref].append(float(error[:, :, given_frames:].mean()))
    print(
        f"# {args.model}: loss after the given frames, {sum(map(len, batches))} cached continuation clips "
        f"(up to {args.clips} per number of people)\n"
    )
    print("| given frames | noise level | true reference | another sample's | none | reads it (another / true − 1) |")
    print("|---|---|---|---|---|---|")
    for given in GIVEN:
        for sigma in SIGMAS:
            true, other, none = (np.mean(errors[given, sigma, ref]) for ref in REFERENCES)
            print(f"| {given} | {sigma} | {true:.4f} | {other:.4f} | {none:.4f} | {other / true - 1:+.1%} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
