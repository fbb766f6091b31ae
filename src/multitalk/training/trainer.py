"""The trainer: flow matching on cached latents, on accelerate (1 CPU, 1 GPU or many).

With several processes (``accelerate launch --num_processes N``) each draws its own batches and
noise (seeded from the run's seed and its process index), gradients are averaged by accelerate,
the clip cache is built once by the main process, and only the main process writes checkpoints'
trainer state, loss curve, samples, the final model and the progress lines.

Partial-parameter training freezes everything but the audio adapter, ``norm_x`` and the
audio cross-attention; a digest of the frozen weights is checked at every checkpoint, so a
frozen parameter that moves stops the run. Multi-task mixing turns a configured share of
batches into image->video batches (audio zeroed); audio and text dropout teach the model
the "no audio" and "no text" predictions that guidance needs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import MultiTalkError
from ..media import atomic_output
from .config import TrainConfig
from .data import CachedClips, build_cache
from .digest import weights_digest

KINDS = ("audio", "i2v", "audio_dropout")


def batch_kind(rng: np.random.Generator, config: TrainConfig) -> str:
    """audio+image->video, image->video (multi-task), or audio dropped for guidance."""
    draw = rng.random()
    if draw < config.loss.i2v_share:
        return "i2v"
    if draw < config.loss.i2v_share + (1 - config.loss.i2v_share) * config.loss.audio_dropout:
        return "audio_dropout"
    return "audio"


def model_condition(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """What the model is conditioned on: the mask channels and the given frames' latents."""
    return batch["condition"]


def predict_velocity(
    model,
    batch: dict[str, torch.Tensor],
    sigmas: torch.Tensor,
    noise: torch.Tensor,
    use_audio: bool,
    clean_frames: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clips' latents noised to ``sigmas`` and the model's velocity for them (both ``B, C, T, h, w``);
    without audio the model gets one all-zero stream, the sampler's "no audio". ``clean_frames``: the first
    latent frames go in without noise, as InfiniteTalk's sampler writes its motion latents."""
    s = sigmas.view(-1, 1, 1, 1, 1)
    noisy = (1 - s) * batch["latents"] + s * noise
    if clean_frames:
        noisy = torch.cat([batch["latents"][:, :, :clean_frames], noisy[:, :, clean_frames:]], dim=2)
    audio = batch["audio"] if use_audio else torch.zeros_like(batch["audio"][:, :1])  # no audio: one zero stream
    pred = model(
        hidden_states=torch.cat([noisy, model_condition(model, batch)], dim=1),
        timestep=sigmas * 1000,
        encoder_hidden_states=batch["text"],
        audio=audio,
        reference_masks=batch["masks"] if use_audio else None,
        return_dict=False,
    )[0]
    return noisy, pred


def velocity_error(
    model,
    batch: dict[str, torch.Tensor],
    sigmas: torch.Tensor,
    noise: torch.Tensor,
    use_audio: bool,
    clean_frames: int = 0,
) -> torch.Tensor:
    """Squared error ``B, C, T', h, w`` of the predicted velocity against the true ``noise − x0``, on the
    latent frames that were noised (the ``clean_frames`` given ones have nothing to predict)."""
    _, pred = predict_velocity(model, batch, sigmas, noise, use_audio, clean_frames)
    return (pred.float() - (noise - batch["latents"]).float())[:, :, clean_frames:] ** 2


def flow_matching_loss(
    model,
    batch: dict[str, torch.Tensor],
    sigmas: torch.Tensor,
    noise: torch.Tensor,
    use_audio: bool,
    mouth_weight: float = 0.0,
    mover_weight: float = 0.0,
    clean_frames: int = 0,
) -> torch.Tensor:
    """Mean ``velocity_error``, some latent cells counting more.

    ``mouth_weight``: the cells holding a mouth (``batch["mouths"]``) count that much more — at 64 px
    each mouth lies in one or two of the 64 cells of a latent frame: too little of the loss for the
    audio layers to learn from in a short run. ``mover_weight``: the same for the cells a walking
    person crosses (``batch["movers"]``): a walk moves a few pixels in a training clip, and it is
    what the prompt's action words are about.
    """
    error = velocity_error(model, batch, sigmas, noise, use_audio, clean_frames)  # B, C, T', h, w
    if mouth_weight or mover_weight:
        mouths, movers = batch["mouths"][:, None, clean_frames:], batch["movers"][:, None, clean_frames:]
        error = error * (1 + mouth_weight * mouths + mover_weight * movers)
    return error.mean()


class TrainingLoop:
    """What every training stage shares: the step loop, progress, checkpoints, resume, loss curve.

    A stage sets ``self.model`` and ``self.optimizer`` (prepared by accelerate) and implements
    ``train_step() -> (loss, kind)`` and ``save_final()``; ``write_sample()`` if it can show progress.
    """

    def write_sample(self) -> None:
        return None

    def __init__(self, config: TrainConfig, progress: bool = True):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config, self.progress = config, progress
        self.output = Path(config.output)
        from accelerate.utils import DistributedDataParallelKwargs

        try:
            self.accelerator = Accelerator(
                mixed_precision=config.optim.mixed_precision,
                # partial training and dropped audio leave some trainable weights without a gradient in a step
                kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
            )
        except ValueError as err:  # accelerate keeps one state per process
            if "already been initialized" not in str(err):
                raise
            raise MultiTalkError(
                f"this process already trained with another mixed_precision than "
                f"{config.optim.mixed_precision!r}; run this config in its own process "
                "(`multitalk train` does)"
            ) from None
        started = int(os.environ.get("WORLD_SIZE", "1"))
        if started > self.accelerator.num_processes:
            raise MultiTalkError(
                f"{started} processes were started but accelerate sees {self.accelerator.num_processes}: on the CPU "
                "start them with ACCELERATE_USE_CPU=true torchrun --nproc_per_node N -m multitalk.cli train ..."
            )
        set_seed(config.seed)
        rank, self.main = self.accelerator.process_index, self.accelerator.is_main_process
        # each process its own batches and noise; one process draws exactly what a single-process run draws
        self.rng = np.random.default_rng(config.seed if rank == 0 else [config.seed, rank])
        self.noise = torch.Generator().manual_seed(config.seed + 1_000_003 * rank)
        self.step, self.history = 0, []
        self.digest = None  # frozen-weight digest, for stages that freeze weights

    def _prepare(self, model, params) -> None:
        self.trainable_count = sum(p.numel() for p in params)
        self.total_count = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(params, lr=self.config.optim.lr, weight_decay=self.config.optim.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)

    def describe(self) -> str:
        return f"training {self.trainable_count:,} of {self.total_count:,} parameters"

    def run(self, resume: bool = False) -> list[dict]:
        if resume:
            self.load_latest()
        if self.main:
            print(self.describe())
        bar = tqdm(
            total=self.config.schedule.steps,
            initial=self.step,
            desc="training",
            disable=not (self.progress and self.main),
        )
        start, first = time.perf_counter(), self.step
        while self.step < self.config.schedule.steps:
            loss, kind = self.train_step()
            if self.accelerator.num_processes > 1:  # the logged loss is the mean over the processes
                loss = float(self.accelerator.reduce(torch.tensor(loss, device=self.accelerator.device), "mean"))
            self.history.append({"step": self.step, "loss": loss, "kind": kind})
            bar.update(1)
            if self.step % self.config.schedule.log_every == 0:
                recent = [h["loss"] for h in self.history[-self.config.schedule.log_every :]]
                bar.set_postfix(
                    loss=f"{np.mean(recent):.4f}",
                    steps_per_s=f"{(self.step - first) / (time.perf_counter() - start):.2f}",
                )
            if self.step % self.config.schedule.checkpoint_every == 0 or self.step == self.config.schedule.steps:
                self.save_checkpoint()
            if self.main and self.config.schedule.sample_every and self.step % self.config.schedule.sample_every == 0:
                self.write_sample()
        bar.close()
        self.accelerator.wait_for_everyone()
        if self.main:
            self.save_final()
        self.accelerator.wait_for_everyone()
        return self.history

    def _checkpoints(self) -> list[Path]:
        return sorted((self.output / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))

    def save_checkpoint(self) -> Path:
        if self.digest and weights_digest(self.accelerator.unwrap_model(self.model), frozen_only=True) != self.digest:
            raise MultiTalkError("a frozen parameter changed during partial training; stopping")
        folder = self.output / "checkpoints" / f"step_{self.step:07d}"
        self.accelerator.save_state(str(folder))  # every process: accelerate writes the shared parts once
        draws = {"rng": self.rng.bit_generator.state, "noise": self.noise.get_state().tolist()}
        rank = self.accelerator.process_index
        if rank:  # the other processes' own draws, beside the main one's trainer.json
            with atomic_output(folder / f"draws_{rank}.json") as tmp:
                tmp.write_text(json.dumps(draws))
        self.accelerator.wait_for_everyone()
        if self.main:
            with atomic_output(folder / "trainer.json") as tmp:  # written last: the checkpoint is complete
                tmp.write_text(json.dumps({"step": self.step, "history": self.history, **draws}))
            write_loss_curve(self.history, self.output / "loss.png")
        self.accelerator.wait_for_everyone()
        return folder

    def load_latest(self) -> bool:
        complete = [c for c in self._checkpoints() if (c / "trainer.json").is_file()]
        if not complete:
            return False
        folder = complete[-1]
        self.accelerator.load_state(str(folder))
        state = json.loads((folder / "trainer.json").read_text())
        self.step, self.history = state["step"], state["history"]
        rank = self.accelerator.process_index
        draws = folder / f"draws_{rank}.json"
        if rank and draws.is_file():
            state = json.loads(draws.read_text())
        elif rank:  # saved by fewer processes: this one draws from a fresh stream of its own from here
            state = {
                "rng": np.random.default_rng([self.config.seed, rank, self.step]).bit_generator.state,
                "noise": torch.Generator().manual_seed(self.config.seed + rank + self.step).get_state().tolist(),
            }
        self.rng.bit_generator.state = state["rng"]
        self.noise.set_state(torch.tensor(state["noise"], dtype=torch.uint8))
        return True


class Trainer(TrainingLoop):
    """The DiT stages: image->video base training and the audio stages (partial parameters)."""

    def __init__(self, config: TrainConfig, progress: bool = True):
        super().__init__(config, progress)
        self.pipe = self._initial_pipeline()
        if config.data.variant != self.pipe.config.get("variant", "multitalk"):
            self.pipe.set_variant(config.data.variant)  # saved with the model: it samples the way it learned
            if config.data.motion_frames:
                self.pipe.register_to_config(
                    sampling={**self.pipe.config.sampling, "motion_frames": config.data.motion_frames}
                )
        model = self.pipe.transformer
        if not Path(config.init.model).is_dir() or model.config.trained_frames is not None:
            # a model started here knows the longest clips it was trained on, so that sampling longer
            # ones can squeeze time into that span (models/time_rope.py); others keep Wan's positions
            model.set_trained_frames(max(model.config.trained_frames or 0, config.data.frames))
        model.train()
        for name, param in model.named_parameters():
            param.requires_grad_(config.init.trainable in ("all", "base"))
        if config.init.trainable in ("audio", "base"):  # the audio layers alone, or everything but them
            for _, param in model.trainable_audio_parameters():
                param.requires_grad_(config.init.trainable == "audio")
        self.digest = weights_digest(model, frozen_only=True)
        self._prepare(model, [p for p in model.parameters() if p.requires_grad])
        cache = Path(config.data.cache) if config.data.cache else self.output / "cache"
        with self.accelerator.main_process_first():  # the main process encodes; the others then find every clip
            files = build_cache(
                self.pipe,
                config.data.folders,
                cache,
                config.data.frames,
                config.data.size,
                tuple(config.data.people),
                progress and self.main,
                config.data.clips_per_sample,
                config.data.motion_frames,
            )
        self.clips = CachedClips(files, cache)

    def describe(self) -> str:
        return f"{super().describe()} ({self.config.init.trainable}); {len(self.clips)} clips"

    def _initial_pipeline(self):
        from ..checkpoints import load_pipeline
        from ..processing import TRAINED_HERE
        from ..random_pipeline import random_pipeline

        if Path(self.config.init.model).is_dir():
            pipe = load_pipeline(self.config.init.model)
            if self.config.init.vae:  # a model goes on with a retrained VAE: its latents are the ones to learn now
                from diffusers import AutoencoderKLWan

                pipe.vae = AutoencoderKLWan.from_pretrained(self.config.init.vae)
            return pipe
        # a model made here samples the way its training clips were made (processing.TRAINED_HERE), with no
        # colour transfer: the official Lab correction is for the official weights
        return random_pipeline(
            self.config.init.model,
            seed=self.config.seed,
            text_encoder=self.config.init.text_encoder,
            buckets=[[self.config.data.size, self.config.data.size]],
            vae=self.config.init.vae,
            processing=TRAINED_HERE.to_config(),
            sampling={"color_correction": 0.0},
        )

    # ------------------------------------------------------------------ steps

    def train_step(self) -> tuple[float, str]:
        config = self.config
        kind = batch_kind(self.rng, config)
        motion = self.rng.random() < config.loss.motion_share
        clean = 0
        if config.data.variant == "infinitetalk":
            # InfiniteTalk's clips: the reference frame alone marked as given (the image condition), and the
            # motion frames' latents (a first clip: the reference's one latent) put clean into the input
            clean = (config.data.motion_frames - 1) // 4 + 1 if motion else 1
            motion = False
        batch = self.clips.batch(self.rng, config.optim.batch_size, motion=motion)
        if (
            config.loss.image_dropout and self.rng.random() < config.loss.image_dropout
        ):  # nothing given: masks and latents 0
            batch["condition"] = torch.zeros_like(batch["condition"])
            batch["reference"] = torch.zeros_like(batch["reference"])
        if self.rng.random() < config.loss.text_dropout:
            batch["text"] = self.clips.empty_text[None].expand(config.optim.batch_size, -1, -1)
        u = torch.rand(config.optim.batch_size, generator=self.noise)
        sigmas = config.loss.shift * u / (1 + (config.loss.shift - 1) * u)  # the sampler's shifted noise levels
        noise = torch.randn(batch["latents"].shape, generator=self.noise)
        device = self.accelerator.device
        batch = {k: v.to(device) for k, v in batch.items()}
        with self.accelerator.autocast():
            loss = flow_matching_loss(
                self.model,
                batch,
                sigmas.to(device),
                noise.to(device),
                kind == "audio",
                config.loss.mouth_weight,
                config.loss.mover_weight,
                clean,
            )
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(loss.detach()), kind

    def write_sample(self) -> None:
        """A short video from the first training sample's image, voices and prompt (progress you can watch)."""
        from ..media import read_audio, read_image, write_video
        from .data import read_sample_input, sample_folders

        spec = read_sample_input(sample_folders(self.config.data.folders, tuple(self.config.data.people))[0])
        model = self.accelerator.unwrap_model(self.model)
        self.pipe.transformer = model.eval()
        try:
            out = self.pipe(
                read_image(spec["image"]),
                [read_audio(path) for path in spec["audio"]],
                spec["prompt"],
                audio_type=spec["audio_type"],
                bboxes=spec["bboxes"],
                mode="clip",
                num_frames=self.config.data.frames,
                num_inference_steps=self.config.schedule.sample_steps,
                text_guidance=self.config.schedule.sample_text_guidance,
                audio_guidance=self.config.schedule.sample_audio_guidance,
                size=(self.config.data.size, self.config.data.size),
                generator=torch.Generator().manual_seed(self.config.seed),
            )
        finally:
            model.train()
        write_video(self.output / "samples" / f"step_{self.step:07d}.mp4", out.frames, out.fps, audio=out.audio)

    def save_final(self) -> Path:
        self.pipe.transformer = self.accelerator.unwrap_model(self.model).eval()
        target = self.output / "final"
        self.pipe.save_pretrained(target)
        return target


def write_loss_curve(history: list[dict], path: Path, width: int = 640, height: int = 320) -> None:
    """A plain PNG line chart of the loss (raw and smoothed), no plotting library needed."""
    from PIL import Image, ImageDraw

    from ..media import write_image

    if len(history) < 2:
        return
    loss = np.array([h["loss"] for h in history])
    smooth = np.convolve(loss, np.ones(min(20, len(loss))) / min(20, len(loss)), mode="valid")
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    lo, hi = float(loss.min()), float(np.percentile(loss, 98)) + 1e-9
    margin = 40

    def points(values, offset):
        xs = margin + (np.arange(values.size) + offset) / max(len(loss) - 1, 1) * (width - 2 * margin)
        ys = height - margin - (np.clip(values, lo, hi) - lo) / (hi - lo) * (height - 2 * margin)
        return list(zip(xs.tolist(), ys.tolist()))

    draw.line(points(loss, 0), fill=(180, 200, 230), width=1)
    draw.line(points(smooth, len(loss) - smooth.size), fill=(20, 60, 160), width=2)
    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    draw.text((margin, 10), f"loss: {loss[0]:.4f} -> {smooth[-1]:.4f} over {len(loss)} steps", fill="black")
    draw.text((margin, height - margin + 8), f"min {lo:.4f}  max {hi:.4f}", fill="black")
    write_image(path, np.asarray(image))
