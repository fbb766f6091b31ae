"""Does a trained model listen? Its flow-matching loss on the mouths with the true voices, with
no audio, and with the voices rotated between the people.

    python benchmarks/audio_use.py runs/demo/stage2/final --like configs/demo/stage2.yaml

A model whose mouths follow the audio predicts the mouth cells of a training clip better with
the true voices than with none (the "listens" gap), and better than with the voices handed to
the wrong people (the "binds" gap). Both gaps near 0 %: the audio layers are ignored, whatever
the sampler's guidance does with them. Faster than generating videos (minutes against tens of
minutes on 2 CPU cores) and free of the VAE's ceiling, so it tells which half of the model to
fix. Clips come from the run's clip cache (`--like`: the stage config that names it; the cache
must fit the model's VAE and encoders, as in training); fixed noise levels and noise draws.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from multitalk.checkpoints import load_pipeline
from multitalk.training import load_config
from multitalk.training.data import CachedClips, build_cache
from multitalk.training.trainer import velocity_error

SIGMAS = (0.3, 0.6, 0.9)


def mouth_loss(model, batch: dict[str, torch.Tensor], sigma: float, noise: torch.Tensor, audio: str) -> float:
    """Mean squared velocity error over the latent cells holding a mouth."""
    if audio == "rotated":
        batch = {**batch, "audio": batch["audio"].roll(1, dims=1)}  # person p hears person p-1
    sigmas = torch.full((batch["latents"].shape[0],), sigma)
    error = velocity_error(model, batch, sigmas, noise, use_audio=audio != "none").mean(1)  # B, T, h, w
    return float((error * batch["mouths"]).sum() / batch["mouths"].sum().clamp_min(1))


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a pipeline folder (a run's final/, or the bundled model)")
    parser.add_argument("--like", type=Path, required=True, help="the stage config (YAML) whose clip cache to use")
    parser.add_argument("--cache", type=Path, help="another clip cache folder than the config's")
    parser.add_argument("--clips", type=int, default=24, help="clips per number of people (default 24)")
    args = parser.parse_args()
    config = load_config(args.like)
    pipe = load_pipeline(args.model)
    model = pipe.transformer.eval().float()
    cache = args.cache or (Path(config.cache) if config.cache else Path(config.output) / "cache")
    files = build_cache(pipe, config.data, cache, config.frames, config.size, (1, 3), False,
                        config.clips_per_sample, config.motion_frames)
    clips = CachedClips(files, cache)
    start = time.perf_counter()
    print(f"# {args.model}: mouth-cell loss on {args.clips} cached clips per row, noise levels {SIGMAS}\n")
    print("| people | true voices | no audio | voices rotated | listens (no audio / true − 1) "
          "| binds (rotated / true − 1) |")
    print("|---|---|---|---|---|---|")
    for people in sorted(clips.groups):
        picks = clips.groups[people][: args.clips]
        losses = {"true": [], "none": [], "rotated": []}
        generator = torch.Generator().manual_seed(0)
        for i in range(0, len(picks), 6):
            batch = clips.stack(picks[i : i + 6])
            for sigma in SIGMAS:
                noise = torch.randn(batch["latents"].shape, generator=generator)
                for audio in losses:
                    if audio == "rotated" and people == 1:
                        continue
                    losses[audio].append(mouth_loss(model, batch, sigma, noise, audio))
        true, none = np.mean(losses["true"]), np.mean(losses["none"])
        rotated = np.mean(losses["rotated"]) if losses["rotated"] else None
        binds = "-" if rotated is None else f"{rotated / true - 1:+.1%}"
        shown = "-" if rotated is None else f"{rotated:.4f}"
        print(f"| {people} | {true:.4f} | {none:.4f} | {shown} | {none / true - 1:+.1%} | {binds} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
