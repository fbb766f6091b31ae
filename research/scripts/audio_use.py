"""Does a trained model listen? Its flow-matching loss on the mouths with the true voices, with
no audio, and with the voices rotated between the people.

    python research/scripts/audio_use.py runs/demo/stage2/final --like configs/recipes/demo/05_stage2.yaml

A model whose mouths follow the audio predicts the mouth cells of a training clip better with
the true voices than with none (the "listens" gap), and better than with the voices handed to
the wrong people (the "binds" gap). Both gaps near 0 %: the audio layers are ignored, whatever
the sampler's guidance does with them. Faster than generating videos (minutes against tens of
minutes on 2 CPU cores) and free of the VAE's ceiling, so it tells which half of the model to
fix. Clips come from the run's clip cache (`--like`: the stage config that names it; the cache
must fit the model's VAE and encoders, as in training); fixed noise levels and noise draws.

`--pixels` also looks at what the VAE makes of it: the model's one-step predictions of the clean
clip (``noisy − σ·velocity``, the sampler's x0 estimate) are decoded and their mouths read with
the sync metric against the true openings (rotated voices: against the rotated openings), next to
the clean latents decoded (the VAE's ceiling). Only clips that start at a scene's first frame
(where the metric finds the heads), 17-frame lip-sync per person, so noisy; listening that shows
in the loss but not here is lost in the VAE's decoding.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from multitalk.checkpoints import load_pipeline
from multitalk.evaluation import evaluate_sync
from multitalk.media import frames_to_uint8
from multitalk.synthetic.dataset import load_scene_record
from multitalk.training import TrainConfig, load_config
from multitalk.training.data import CachedClips, build_cache, sample_folders
from multitalk.training.trainer import predict_velocity, velocity_error

SIGMAS = (0.3, 0.6, 0.9)


def voiced(batch: dict[str, torch.Tensor], audio: str) -> dict[str, torch.Tensor]:
    """The batch as ``audio`` ("true", "none", "rotated") hands out the voices; "none" is the
    model call's business (``use_audio``)."""
    if audio == "rotated":
        return {**batch, "audio": batch["audio"].roll(1, dims=1)}  # person p hears person p-1
    return batch


def mouth_loss(model, batch: dict[str, torch.Tensor], sigma: float, noise: torch.Tensor, audio: str) -> float:
    """Mean squared velocity error over the latent cells holding a mouth."""
    batch = voiced(batch, audio)
    sigmas = torch.full((batch["latents"].shape[0],), sigma)
    error = velocity_error(model, batch, sigmas, noise, use_audio=audio != "none").mean(1)  # B, T, h, w
    return float((error * batch["mouths"]).sum() / batch["mouths"].sum().clamp_min(1))


def decoded_lip_sync(pipe, latents: torch.Tensor, records: list[dict], rotate: bool = False) -> list[float]:
    """Lip-sync of every speaking person of every clip in ``latents`` (``B, C, T, h, w``) decoded."""
    video = pipe.vae_decode(latents)  # B, 3, F, H, W
    scores = []
    for clip, record in zip(video, records):
        truth = record["mouth_opening"][:, : clip.shape[1]]
        truth = np.roll(truth, 1, axis=0) if rotate else truth  # as the voices: person p hears p-1
        found = [v for v in evaluate_sync(frames_to_uint8(clip), record["scene"], truth).lip_sync if v is not None]
        scores.extend(found)
    return scores


def pixel_table(pipe, model, clips: CachedClips, files: list[Path], folders: dict[str, Path], count: int) -> None:
    """Lip-sync of decoded one-step predictions at ``SIGMAS[1:]`` (see the module docstring)."""
    first = {i for i, f in enumerate(files) if f.stem.endswith("_0")}  # clip 0 of a sample starts at frame 0
    print(f"\n# decoded one-step predictions: lip-sync of up to {count} clips per row (starting at frame 0)\n")
    print("| people | noise level | clean latents (VAE ceiling) | true voices | no audio | voices rotated |")
    print("|---|---|---|---|---|---|")
    for people in sorted(p for p in clips.groups if p > 1):
        picks = [i for i in clips.groups[people] if i in first][:count]
        records = [load_scene_record(folders[clips.samples[i]]) for i in picks]
        batch = clips.stack(picks)
        clean = np.mean(decoded_lip_sync(pipe, batch["latents"], records))
        generator = torch.Generator().manual_seed(0)
        for sigma in SIGMAS[1:]:
            sigmas = torch.full((len(picks),), sigma)
            noise = torch.randn(batch["latents"].shape, generator=generator)
            row = []
            for audio in ("true", "none", "rotated"):
                noisy, velocity = predict_velocity(model, voiced(batch, audio), sigmas, noise, audio != "none")
                x0 = noisy - sigma * velocity
                row.append(np.mean(decoded_lip_sync(pipe, x0, records, rotate=audio == "rotated")))
            print(f"| {people} | {sigma} | {clean:.3f} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |")


def clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and clip-cache arguments the cached-clip benchmarks share."""
    parser.add_argument("model", type=Path, help="a pipeline folder (a run's final/, or the bundled model)")
    parser.add_argument("--like", type=Path, required=True, help="the stage config (YAML) whose clip cache to use")
    parser.add_argument("--cache", type=Path, help="another clip cache folder than the config's")


def cached_clips(
    pipe, like: Path, cache: Path | None = None
) -> tuple[TrainConfig, list[Path], CachedClips, dict[str, Path]]:
    """The clips of the stage config ``like`` (its cache, or ``cache``), checked against ``pipe``'s VAE and
    encoders as training does (encoding what is missing), and the sample folder of each sample name."""
    config = load_config(like)
    cache = cache or (Path(config.data.cache) if config.data.cache else Path(config.output) / "cache")
    files = build_cache(
        pipe,
        config.data.folders,
        cache,
        config.data.frames,
        config.data.size,
        (1, 3),
        False,
        config.data.clips_per_sample,
        config.data.motion_frames,
    )
    folders = {folder.name: folder for folder in sample_folders(config.data.folders, (1, 3))}
    return config, files, CachedClips(files, cache), folders


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    clip_arguments(parser)
    parser.add_argument("--clips", type=int, default=24, help="clips per number of people (default 24)")
    parser.add_argument("--pixels", action="store_true", help="also decode one-step predictions and read the mouths")
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    model = pipe.transformer.eval().float()
    config, files, clips, folders = cached_clips(pipe, args.like, args.cache)
    start = time.perf_counter()
    print(f"# {args.model}: mouth-cell loss on {args.clips} cached clips per row, noise levels {SIGMAS}\n")
    print(
        "| people | true voices | no audio | voices rotated | listens (no audio / true − 1) "
        "| binds (rotated / true − 1) |"
    )
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
    if args.pixels:
        pipe.vae.float()
        pixel_table(pipe, model, clips, files, folders, args.clips)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
