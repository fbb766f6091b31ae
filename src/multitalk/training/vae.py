"""The VAE stage: a small ``AutoencoderKLWan`` (stride 4×8×8) trained on the synthetic world.

No pretrained Wan VAE fits a laptop, so the demo model brings its own. Loss: pixel MSE, an
optional extra term on colour, and a small KL term. At the end the per-channel latent mean
and spread are measured and written into the VAE's config (``latents_mean`` /
``latents_std``), which is how the pipeline normalises latents for the transformer —
exactly as for the real Wan VAE.

Why the settings (measured on the demo data, docs/demo-model.md): Wan's VAE normalises every
pixel's feature vector (RMS norm over channels), and from scratch it learns brightness first
and colour very late — our first runs reconstructed grey scenes, so the people's colours,
which binding needs, were gone. Three things helped, each a setting: the residual
down/up-sampling of Wan2.2's VAE (``vae.residual``), a new VAE whose posterior noise starts
small instead of at std 1 (``vae.posterior_std_init``; with a KL weight of 1e-6 nothing pushes
it up), and a loss term on each pixel's colour minus its grey (``vae.chroma_weight``).
Mouths are a few pixels at 64 px: ``vae.face_weight`` weighs the pixels of every head that much
more, and ``loss.mouth_weight`` those of the box where the sync metric reads each mouth
(its ``regions.npz``; see regions.py) — with faces alone the reconstructed mouths stayed faint.
Single frames (``frames: 1``) are ~3× cheaper per step than 9-frame clips, so the recipe
first trains on images, then on clips from that checkpoint — *inflated* first
(``vae.inflate``, ``inflate_to_video``): a causal VAE trained on single frames has only ever
used the last time slice of its 3D kernels and never its temporal down/up-sampling, so those
weights are still random. Started as they were, 1000 clip steps left the mouths of frames
after the first nearly still (lip-sync of the reconstructions 0.28); inflated, the same VAE
with no clip training at all reads 0.62 (research/findings/demo-model-history.md).
With ``init.trainable: decoder`` the latents, and every DiT trained on them, stay.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample

from ..conditioning.people import resize_and_center_crop_frames
from ..errors import MultiTalkInputError
from ..media import frames_from_uint8, frames_to_uint8, read_video
from .config import TrainConfig
from .digest import weights_digest
from .regions import Regions, head_weights
from .trainer import TrainingLoop


def load_frames(root: str | Path, size: int, people: tuple[int, int]) -> list[np.ndarray]:
    """Every sample video as uint8 ``(F, size, size, 3)`` (kept in memory: small videos)."""
    from .data import sample_folders

    videos = []
    for folder in sample_folders(root, people):
        video, _ = read_video(folder / "video.mp4")
        videos.append(frames_to_uint8(resize_and_center_crop_frames(video, (size, size))))
    if not videos:
        raise ValueError(f"no sample videos under {root}")
    return videos


def load_heads(root: str | Path, size: int, people: tuple[int, int]) -> list[tuple | None]:
    """Per sample video (as ``load_frames``): its heads in the resized frames (``Regions.heads_at``), from
    the sample's ``regions.npz`` (None without one)."""
    from .data import sample_folders

    return [
        regions.heads_at(size) if (regions := Regions.load(folder)) else None for folder in sample_folders(root, people)
    ]


def new_vae(base_dim: int, residual: bool = True, posterior_std: float | None = None) -> AutoencoderKLWan:
    """The demo VAE's shape: Wan2.1's stride (4×8×8) and 16 latent channels, narrower.

    ``posterior_std`` sets the initial noise of the posterior through the bias of the
    log-variance half of ``quant_conv`` (weights are the usual random ones).
    """
    vae = AutoencoderKLWan(base_dim=base_dim, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, is_residual=residual)
    if posterior_std is not None:
        with torch.no_grad():
            vae.quant_conv.bias[vae.config.z_dim :] = 2 * float(np.log(posterior_std))
    return vae


@torch.no_grad()
def inflate_to_video(vae: AutoencoderKLWan) -> AutoencoderKLWan:
    """Make an image-trained VAE handle clips as a sequence of images, in place.

    Every causal 3D convolution keeps only its last time slice (the one that sees the current
    frame: all a single frame ever reached); the encoder's temporal down-sampling passes one
    frame of each pair on (the second, then the first: frame 2 of every 4), the decoder's
    up-sampling repeats each latent frame. The latent frame of 4 video frames is then that of one
    of them (plus, in a residual VAE, the time shortcut's average of the 4), held for 4 — a start
    clip training improves on, instead of random mixing in time.
    """
    downsamplings = 0
    for name, module in vae.named_modules():
        if isinstance(module, WanResample) and hasattr(module, "time_conv"):
            weight = module.time_conv.weight  # out, in, 3, 1, 1
            weight.zero_()
            module.time_conv.bias.zero_()
            if module.mode == "downsample3d":  # input [last frame before, f1, f2, ...] -> one of each pair
                take = 2 if downsamplings == 0 else 1  # f2 of (f1, f2), then the first of each pair
                weight[:, :, take, 0, 0] = torch.eye(weight.shape[0])
                downsamplings += 1
            else:  # upsample3d: out = two frames' channels, both the current latent frame
                half = weight.shape[0] // 2
                weight[:half, :, -1, 0, 0] = torch.eye(half)
                weight[half:, :, -1, 0, 0] = torch.eye(half)
        elif isinstance(module, WanCausalConv3d) and not name.endswith("time_conv") and module.weight.shape[2] > 1:
            module.weight[:, :, :-1] = 0  # only the current frame
    return vae


def chroma(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's colour minus its grey level (``B, 3, F, H, W``): what a grey reconstruction misses."""
    return x - x.mean(1, keepdim=True)


class VAETrainer(TrainingLoop):
    def __init__(self, config: TrainConfig, progress: bool = True):
        super().__init__(config, progress)
        if config.vae.inflate and not Path(config.init.model).is_dir():
            raise MultiTalkInputError(
                f"vae.inflate: the image VAE {config.init.model} is not there; train its stage first"
            )
        if Path(config.init.model).is_dir():
            vae = AutoencoderKLWan.from_pretrained(config.init.model)
            if config.vae.inflate:
                inflate_to_video(vae)
        else:
            vae = new_vae(config.vae.base_dim, config.vae.residual, config.vae.posterior_std_init)
        vae.train()
        if config.init.trainable == "decoder":  # the encoder, so the latent space, stays as it is
            vae.encoder.requires_grad_(False)
            vae.quant_conv.requires_grad_(False)
            self.digest = weights_digest(vae, frozen_only=True)
        self.videos = load_frames(config.data.folders, config.data.size, tuple(config.data.people))
        weighted = config.vae.face_weight or config.loss.mouth_weight
        self.heads = load_heads(config.data.folders, config.data.size, tuple(config.data.people)) if weighted else None
        self._prepare(vae, [p for p in vae.parameters() if p.requires_grad])

    def describe(self) -> str:
        return f"{super().describe()} (VAE, {self.config.init.trainable}); {len(self.videos)} videos"

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips ``B, 3, F, S, S`` in [-1, 1] and their per-pixel loss weights ``B, 1, F, S, S``."""
        clips, weights = [], []
        for i in self.rng.integers(len(self.videos), size=self.config.optim.batch_size):
            video = self.videos[i]
            start = int(self.rng.integers(video.shape[0] - self.config.data.frames + 1))
            frames = slice(start, start + self.config.data.frames)
            clips.append(torch.from_numpy(video[frames]))
            heads = self.heads[i] if self.heads else None
            weights.append(
                torch.from_numpy(
                    head_weights(
                        heads, frames, self.config.data.size, self.config.vae.face_weight, self.config.loss.mouth_weight
                    )
                )
            )
        x = torch.stack(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # B, F, S, S, 3 -> B, 3, F, S, S
        return x, torch.stack(weights)[:, None]

    def pixel_loss(self, recon: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (weight * (recon - x) ** 2).mean() + self.config.vae.chroma_weight * (
            weight * (chroma(recon) - chroma(x)) ** 2
        ).mean()

    def train_step(self) -> tuple[float, str]:
        x, weight = (t.to(self.accelerator.device) for t in self._batch())
        config = self.config
        with self.accelerator.autocast():
            with torch.set_grad_enabled(config.init.trainable == "all"):
                posterior = self.model.encode(x).latent_dist
            noise = torch.randn(posterior.mean.shape, generator=self.noise).to(x.device)
            recon = self.model.decode(posterior.mean + posterior.std * noise).sample.float()
            loss = self.pixel_loss(recon, x, weight) + config.vae.kl_weight * posterior.kl().mean()
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(loss.detach()), "vae"

    @torch.no_grad()
    def save_final(self) -> Path:
        vae = self.accelerator.unwrap_model(self.model).eval()
        rng = np.random.default_rng(12345)
        latents = []
        for i in rng.permutation(len(self.videos))[:32]:
            clip = frames_from_uint8(self.videos[i][: self.config.data.frames])
            latents.append(vae.encode(clip[None].to(self.accelerator.device)).latent_dist.mode().cpu())
        stacked = torch.cat([z[0].flatten(1) for z in latents], dim=1)  # C, N
        vae.register_to_config(
            latents_mean=stacked.mean(1).tolist(), latents_std=stacked.std(1).clamp_min(1e-3).tolist()
        )
        target = self.output / "final"
        vae.save_pretrained(target)
        recon = float(np.mean([h["loss"] for h in self.history[-20:]])) if self.history else None
        (target / "training.json").write_text(json.dumps({"steps": self.step, "recent_loss": recon}) + "\n")
        return target
