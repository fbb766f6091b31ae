"""How good is a VAE for the synthetic world? The ceiling of every model built on it.

    python benchmarks/vae_eval.py runs/demo/vae/final
    python benchmarks/vae_eval.py runs/demo/vae/checkpoints/step_0001200 --like configs/recipes/demo/02_vae.yaml
    python benchmarks/vae_eval.py --smoke         # the bundled VAE, one 17-frame scene (run by the tests)

Held-out scenes (seeds from 900000, never in training) are encoded and decoded, 2 s each
(49 frames: the causal cache runs through 12 chunks, as in 81-frame generation), or, with
`--clip-frames N`, in independent N-frame windows as a model with N-frame clips decodes
them (the demo model: `--clip-frames 17 --frames 51`). Reported: PSNR of the first frame,
of frames 1-8 and of the rest (positions within a window); lip-sync and binding accuracy of the
reconstructions (the metrics of `multitalk eval-sync`) — a DiT cannot make mouths its VAE
cannot draw; and how noisy the posterior is (std against the spread of its means).
`--baselines` adds what two plain losses of detail leave of lip-sync: every latent frame's 4 video
frames replaced by their mean (what a VAE that only averages time would give), and 8×8 pixel
blocks replaced by their mean (only averaging space) — a VAE below both is short of training,
not of latent room.
`--round-trips N` sends the last 5 frames of every scene's first window through the VAE N times
(decode, encode again: what streaming does to the frames a clip hands to the next, once per
clip) and reports PSNR after 1 and N trips and the mean colour shift.
`--strip PNG` writes frames 6-13 of the first scene (a mouth opening), the originals above the
reconstructions, 3× enlarged.
A checkpoint folder (accelerate's `model.safetensors`) needs `--like`: the training config
(YAML) or a VAE folder that gives its shape.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from report import Report, add_arguments
from safetensors.torch import load_file

from multitalk.evaluation import evaluate_sync
from multitalk.media import frame_strip, frames_from_uint8, frames_to_uint8, write_image
from multitalk.synthetic import make_sample, random_scene
from multitalk.synthetic.splits import HELD_OUT_START
from multitalk.training import load_config
from multitalk.training.vae import new_vae

HELD_OUT = HELD_OUT_START


def load(path: Path, like: Path | None) -> AutoencoderKLWan:
    if (path / "config.json").is_file():
        return AutoencoderKLWan.from_pretrained(path).eval()
    if like is None:
        raise SystemExit(f"{path} has no config.json; pass --like CONFIG.yaml (or a VAE folder) for its shape")
    if like.suffix in (".yaml", ".yml"):  # the run's config: a new VAE of its shape, or the VAE it started from
        config = load_config(like)
        like = Path(config.init.model) if Path(config.init.model).is_dir() else None
        vae = new_vae(config.vae.base_dim, config.vae.residual) if like is None else None
    if like is not None:
        vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(like))
    vae.load_state_dict(load_file(path / "model.safetensors"))
    return vae.eval()


def average_time(video: np.ndarray, window: int, stride: int = 4) -> np.ndarray:
    """Each window's frame 0 kept, every following group of ``stride`` frames replaced by its mean."""
    out = video.astype(np.float32)
    for first in range(0, len(video), window):
        for group in range(first + 1, first + window, stride):
            out[group : group + stride] = out[group : group + stride].mean(0)
    return np.round(out).astype(np.uint8)


def average_space(video: np.ndarray, block: int = 8) -> np.ndarray:
    """Each ``block``×``block`` square of pixels replaced by its mean (height and width multiples of ``block``)."""
    frames, height, width, _ = video.shape
    blocks = video.astype(np.float32).reshape(frames, height // block, block, width // block, block, 3)
    means = blocks.mean((2, 4), keepdims=True)
    return np.round(np.broadcast_to(means, blocks.shape).reshape(video.shape)).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-9)))


@torch.no_grad()
def round_trips(vae: AutoencoderKLWan, frames: np.ndarray, trips: int) -> tuple[float, float, np.ndarray]:
    """PSNR after one and after ``trips`` decode-encode trips of ``frames`` ``(F, H, W, 3)``, and the
    colour shift (mean RGB change, 0-255) after the last."""
    x = frames_from_uint8(frames)[None]  # 1, 3, F, H, W
    out = x
    for trip in range(trips):
        out = vae.decode(vae.encode(out).latent_dist.mode()).sample.clamp(-1, 1)
        if trip == 0:
            first = frames_to_uint8(out[0])
    last = frames_to_uint8(out[0])
    shift = last.reshape(-1, 3).astype(np.float32).mean(0) - frames.reshape(-1, 3).mean(0)
    return psnr(first, frames), psnr(last, frames), shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vae", type=Path, nargs="?", help="VAE folder, or a training checkpoint folder with --like")
    parser.add_argument("--like", type=Path, help="a checkpoint's training config (YAML) or a VAE folder")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--clip-frames", type=int, help="decode independent windows of this many frames")
    parser.add_argument("--baselines", action="store_true", help="also the lip-sync left by plain averaging")
    parser.add_argument("--round-trips", type=int, default=0, help="also the last 5 frames sent N times through")
    parser.add_argument("--strip", type=Path, help="write originals over reconstructions of the first scene (PNG)")
    add_arguments(parser, "the bundled demo model's VAE (unless VAE is given), one 17-frame scene")
    args = parser.parse_args()
    if args.smoke:
        from multitalk.loading import DEMO_MODEL

        args.vae = args.vae or Path(DEMO_MODEL) / "vae"
        args.scenes, args.frames, args.clip_frames = 1, 17, None
    if args.vae is None:
        parser.error("give a VAE folder (or --smoke)")
    window = args.clip_frames or args.frames
    if args.frames % window or (window - 1) % 4:
        raise SystemExit(f"--frames {args.frames} must be a multiple of --clip-frames {window}, itself 4k+1")
    vae = load(args.vae, args.like)
    torch.set_grad_enabled(False)  # evaluation only: no autograd graph for the VAE passes
    start = time.perf_counter()
    rows = []
    for k in range(args.scenes):
        people = 2 + k % 2
        sample = make_sample(
            random_scene(HELD_OUT + k, people, args.frames / 25 + 0.1, "para", args.size, args.size, action=None)
        )
        video = sample.video[: args.frames]
        x = torch.from_numpy(video).float().reshape(-1, window, *video.shape[1:]) / 127.5 - 1
        posterior = vae.encode(x.permute(0, 4, 1, 2, 3)).latent_dist  # windows, 3, F, H, W
        out = vae.decode(posterior.mode()).sample.permute(1, 0, 2, 3, 4).flatten(1, 2)  # 3, windows·F, H, W
        recon = frames_to_uint8(out)
        if args.strip and k == 0:
            pair = np.concatenate([frame_strip(v[6:14], count=8) for v in (video, recon)], axis=0)
            write_image(args.strip, pair.repeat(3, axis=0).repeat(3, axis=1))
        position = np.arange(args.frames) % window
        report = evaluate_sync(recon, sample.scene, sample.openings[:, : args.frames])
        truth = evaluate_sync(video, sample.scene, sample.openings[:, : args.frames])
        rows.append(
            {
                "first": psnr(recon[position == 0], video[position == 0]),
                "early": psnr(recon[(position >= 1) & (position < 9)], video[(position >= 1) & (position < 9)]),
                "late": psnr(recon[position >= 9], video[position >= 9]),
                "sync": np.mean([v for v in report.lip_sync if v is not None]),
                "sync_truth": np.mean([v for v in truth.lip_sync if v is not None]),
                "binding": report.binding_accuracy,
                "noise": float(posterior.std.mean() / posterior.mean.std()),
            }
        )
        if args.round_trips:
            rows[-1]["trip1"], rows[-1]["tripN"], shift = round_trips(vae, video[window - 5 : window], args.round_trips)
            rows[-1]["shift"] = float(np.abs(shift).max())
        if args.baselines:
            for name, degraded in (("time", average_time(video, window)), ("space", average_space(video))):
                lip_sync = evaluate_sync(degraded, sample.scene, sample.openings[:, : args.frames]).lip_sync
                rows[-1][name] = np.mean([v for v in lip_sync if v is not None])
    mean = {key: float(np.mean([r[key] for r in rows if r[key] is not None])) for key in rows[0]}
    report = Report(
        "vae_eval",
        "The demo model's VAE",
        f"`{args.vae}`: {args.scenes} held-out synthetic scenes (seeds {HELD_OUT}+, 2–3 people), {args.frames} frames "
        f"at {args.size}×{args.size} in {args.frames // window} independent window(s) of {window}, encoded and decoded "
        f"as generation decodes its clips; PSNR by position in the window ({time.perf_counter() - start:.0f} s).",
    )
    report.table(
        [
            "PSNR frame 0",
            "PSNR 1-8",
            "PSNR 9+",
            "lip-sync (recon.)",
            "lip-sync (original)",
            "binding (recon.)",
            "posterior std / spread of means",
        ],
        [
            [
                f"{mean['first']:.1f} dB",
                f"{mean['early']:.1f} dB",
                f"{mean['late']:.1f} dB",
                f"{mean['sync']:.3f}",
                f"{mean['sync_truth']:.3f}",
                f"{mean['binding']:.2f}",
                f"{mean['noise']:.2f}",
            ]
        ],
    )
    if args.round_trips:
        report.note(
            f"The last 5 frames of a window through the VAE again and again: PSNR {mean['trip1']:.1f} dB after "
            f"1 trip, {mean['tripN']:.1f} dB after {args.round_trips}; largest mean colour shift "
            f"{mean['shift']:.1f} (0-255)."
        )
    if args.baselines:
        report.note(
            f"Lip-sync of the originals with each latent frame's 4 video frames averaged: {mean['time']:.3f}; "
            f"with 8×8 pixel blocks averaged: {mean['space']:.3f}."
        )
    report.finish(args)


if __name__ == "__main__":
    main()
