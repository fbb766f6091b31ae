"""MultiTalkPipeline: reference image + one voice per person + prompt -> video frames.

Clip mode makes one clip of ``num_frames``. Streaming mode chains clips: the last
``motion_frames`` decoded frames of a clip condition the next one (their latents are also
re-noised to the current noise level and written over the first latent frames before every
step), and the audio window moves on by ``num_frames − motion_frames`` — docs/design.md §1, §2a.
The sampling setting ``fit_clips`` cuts the last clip to what the audio needs.

With ``work_dir`` every finished clip is saved with the state needed to go on (conditioning
frames, audio position, random generator); ``resume=True`` continues from there and gives
the same video as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput
from tqdm.auto import tqdm

from .conditioning.audio import check_audio_type, combine_voices
from .conditioning.people import bucket_table, nearest_bucket, person_masks
from .constants import NUM_TRAIN_TIMESTEPS, OLD_SETTING_NAMES, SAMPLE_RATE
from .encoders.audio import MelAudioEncoder, Wav2Vec2AudioEncoder
from .encoders.image import CLIPImageEncoder
from .encoders.text import TextEncoder
from .encoders.wan_original import CLIP_MEAN, CLIP_STD, clip_pixels
from .errors import MultiTalkInputError
from .guidance import MomentumBuffer, three_pass, three_pass_apg, two_pass
from .media import FrameWindow, atomic_output, frames_to_uint8
from .memory import check_clip_memory
from .models.audio_adapter import frame_windows
from .models.context_parallel import is_first_rank
from .models.transformer import MultiTalkTransformer3DModel
from .processing import Processing, clean_prompt, color_correct, resize_image, resize_masks, to_uint8
from .schema import check_settings

# MultiTalk's own default negative prompt (its config's sample_neg_prompt; Wan's is in Chinese).
MULTITALK_NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)


@dataclass
class MultiTalkOutput(BaseOutput):
    """frames: uint8 ``(F, H, W, 3)``; audio: the mix of everyone's voice, float32 16 kHz, as long as the
    video; fps; steps_run: denoising steps run in this call, over all clips (resumed clips not counted)."""

    frames: np.ndarray
    audio: np.ndarray
    fps: int
    steps_run: int = 0


@dataclass
class _Clip:
    """What a clip needs besides the model: shared by every clip of one request."""

    text: torch.Tensor  # [1, n, D]
    negative: torch.Tensor  # [1, m, D]
    masks: torch.Tensor | None  # [1, P+1, lat_h, lat_w]
    height: int
    width: int


class MultiTalkPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->image_encoder->transformer->vae"
    _optional_components = ["feature_extractor", "image_encoder", "image_processor"]

    @classmethod
    def from_wan(
        cls,
        folder: str | Path,
        audio_encoder: str | Path | None = None,
        *,
        torch_dtype: torch.dtype | None = None,
        multitalk_weights: str | Path | None = None,
        device: str = "cpu",
        variant: str | None = None,
    ) -> "MultiTalkPipeline":
        """The pipeline of a model folder as users download it: the original Wan2.1-I2V layout with
        ``multitalk.safetensors`` / ``infinitetalk.safetensors``, a diffusers layout, or a folder
        this package wrote. ``audio_encoder``: the wav2vec2 folder (``chinese-wav2vec2-base``);
        ``variant``: ``multitalk`` or ``infinitetalk`` when the file names do not say it.

        Example:
            >>> pipe = MultiTalkPipeline.from_wan(
            ...     "weights/Wan2.1-I2V-14B-480P", "weights/chinese-wav2vec2-base", torch_dtype=torch.bfloat16
            ... )
        """
        from .checkpoints import load_pipeline

        return load_pipeline(
            folder,
            audio_encoder,
            torch_dtype=torch_dtype,
            multitalk_weights=multitalk_weights,
            device=device,
            variant=variant,
        )

    @classmethod
    def from_preset(cls, preset: str = "tiny", seed: int = 0, **options) -> "MultiTalkPipeline":
        """A pipeline of a transformer preset with random weights (``tiny``, ``small``, or an official
        shape such as ``wan2.1-i2v-14b-480p``): for tests, benchmarks and training from scratch."""
        from .random_pipeline import random_pipeline

        return random_pipeline(preset, seed=seed, **options)

    def __init__(
        self,
        vae: AutoencoderKLWan,
        transformer: MultiTalkTransformer3DModel,
        text_encoder,
        tokenizer,
        audio_encoder,  # transformers Wav2Vec2Model (+ feature_extractor) or MelAudioEncoder
        scheduler: FlowMatchEulerDiscreteScheduler,
        feature_extractor=None,
        image_encoder=None,
        image_processor=None,
        buckets: list | str | None = None,
        fps: int = 25,
        negative_prompt: str = MULTITALK_NEGATIVE_PROMPT,
        sampling: dict | None = None,
        processing: dict | None = None,
        variant: str = "multitalk",
        model_version: str | None = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            transformer=transformer,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            audio_encoder=audio_encoder,
            scheduler=scheduler,
            feature_extractor=feature_extractor,
            image_encoder=image_encoder,
            image_processor=image_processor,
        )
        # buckets: a size table's name (multitalk-480 / multitalk-720) or [height, width] pairs
        # negative_prompt: what no --negative-prompt means for this model (MultiTalk: its English default)
        # sampling: the settings this model was made for (a small demo model wants short clips, few steps)
        # processing: how pixels and prompts reach the model and frames come back (processing.py)
        # model_version: a bundled model's version (CHANGELOG.md), None for others
        # variant: the clip scheme the audio weights were trained for (VARIANTS); the files cannot tell
        check_sampling(sampling)
        self.set_variant(variant)
        buckets = buckets or "multitalk-480"
        bucket_table(buckets)  # a bad table name fails here, not at the first request
        self.processing = Processing.from_config(processing)
        self.register_to_config(
            buckets=buckets if isinstance(buckets, str) else [list(b) for b in buckets],
            fps=fps,
            negative_prompt=negative_prompt,
            sampling=dict(sampling or {}),
            processing=self.processing.to_config(),
            model_version=model_version,
        )
        self.vae_scale_temporal = 2 ** sum(vae.config.temperal_downsample)
        self.vae_scale_spatial = 2 ** len(vae.config.temperal_downsample)

    def set_variant(self, variant: str) -> None:
        """``multitalk`` or ``infinitetalk``: which clip scheme and defaults the audio weights need."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
        self.transformer.audio_proj.norm_in_float32 = variant == "infinitetalk"  # as InfiniteTalk runs it
        self.register_to_config(variant=variant)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """As diffusers', plus slim folders (the bundled demo model): their ``shared.json`` names an
        installed text encoder instead of carrying it, and their float16 weights load as float32."""
        from .loading import shared_components

        folder = Path(pretrained_model_name_or_path)
        if (folder / "shared.json").is_file():
            kwargs = {"dtype": torch.float32, **shared_components(folder), **kwargs}
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ------------------------------------------------------------------ encoders

    def encode_prompt(self, prompts: list[str]) -> list[torch.Tensor]:
        text_len = self.transformer.config.text_len
        # the official wrapper asks for text_len positions whatever the tokenizer's own limit says
        max_length = text_len if self.processing.pad_prompt else min(text_len, self.tokenizer.model_max_length)
        if self.processing.clean_prompt:
            prompts = [clean_prompt(p) for p in prompts]
        return TextEncoder(
            self.text_encoder, self.tokenizer, max_length=max_length, pad_to_max=self.processing.pad_prompt
        )(prompts)

    def encode_audio(self, waveform: np.ndarray) -> torch.Tensor:
        """``[frames, layers, channels]`` at the video frame rate."""
        if isinstance(self.audio_encoder, MelAudioEncoder):
            return self.audio_encoder(waveform)
        return Wav2Vec2AudioEncoder(self.audio_encoder, self.feature_extractor, fps=self.config.fps)(waveform)

    def encode_image(self, frame: torch.Tensor) -> torch.Tensor | None:
        """CLIP tokens of one ``[3, H, W]`` frame in [-1, 1], or None for models without the image branch."""
        if self.image_encoder is None:
            return None
        if self.processing.clip_input == "processor":
            pixels = frames_to_uint8(frame[:, None])[0]
            return CLIPImageEncoder(self.image_encoder, self.image_processor)([pixels])
        processor = self.image_processor
        mean = getattr(processor, "image_mean", None) or CLIP_MEAN
        std = getattr(processor, "image_std", None) or CLIP_STD
        pixels = clip_pixels(frame, self.image_encoder.config.image_size, mean, std)
        model = self.image_encoder
        pixels = pixels.to(model.device, model.dtype)
        return model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]

    def _latent_stats(self, device, dtype):
        mean = torch.tensor(self.vae.config.latents_mean, device=device, dtype=dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.vae.config.latents_std, device=device, dtype=dtype).view(1, -1, 1, 1, 1)
        return mean, std

    def vae_encode(self, video: torch.Tensor) -> torch.Tensor:
        """``[1, 3, F, H, W]`` in [-1, 1] -> normalised latents (the distribution's mean, as the reference).

        Normalised as Wan does it, ``(z - mean) * (1 / std)`` and back ``z / (1 / std) + mean``."""
        video = video.to(self.vae.device, self.vae.dtype)
        mean, std = self._latent_stats(video.device, video.dtype)
        return (self.vae.encode(video).latent_dist.mode() - mean) * (1.0 / std)

    def vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents.to(self.vae.device, self.vae.dtype)
        mean, std = self._latent_stats(latents.device, latents.dtype)
        return self.vae.decode(latents / (1.0 / std) + mean).sample.float().clamp(-1, 1)

    def encode_condition(self, given_frames: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What a clip is conditioned on: the ``[3, n, H, W]`` given frames followed by zeros, VAE-encoded
        -> (mask channels + latents ``[1, 4 + C, T, h, w]``, the latents alone ``[1, C, T, h, w]``)."""
        n = given_frames.shape[1]
        padded = torch.cat([given_frames, given_frames.new_zeros(3, num_frames - n, *given_frames.shape[2:])], 1)
        latents = self.vae_encode(padded[None]).float()
        mask = condition_mask(num_frames, n, latents.shape[-2:], self.vae_scale_temporal).to(latents.device)
        return torch.cat([mask[None], latents], dim=1), latents

    # ------------------------------------------------------------------ one clip

    def _predict(self, latents, condition, t, clip: _Clip, audio, image_tokens, text, name, cache, step=None):
        model_input = torch.cat([latents, condition], dim=1).to(self.transformer.dtype)
        kwargs = dict(
            hidden_states=model_input,
            timestep=t.expand(1).to(latents.device),
            encoder_hidden_states=text,
            audio=audio.to(self.transformer.dtype),
            encoder_hidden_states_image=image_tokens,
            reference_masks=clip.masks if audio.shape[1] > 1 else None,
            return_dict=False,
        )
        if cache:
            with self.transformer.cache_context(name, step_index=step):
                return self.transformer(**kwargs)[0].float()
        return self.transformer(**kwargs)[0].float()

    @torch.no_grad()
    def generate_clip(
        self,
        cond_frames: torch.Tensor,
        audio: torch.Tensor,
        clip: _Clip,
        num_frames: int,
        steps: int,
        text_guidance: float,
        audio_guidance: float,
        shift: float,
        generator: torch.Generator,
        is_first: bool,
        apg: bool = False,
        on_step=None,
        reference_frame: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One clip: ``cond_frames`` ``[3, n, H, W]`` in [-1, 1] and windowed ``audio``
        ``[1, P, num_frames, window, L, C]`` -> decoded frames ``[3, num_frames, H, W]``.
        ``on_step(i, t, latents) -> latents`` after every step.

        MultiTalk scheme (``reference_frame`` None): the ``cond_frames`` are the given frames (mask 1)
        of the conditioning video and CLIP sees the last of them; their latents, re-noised to the
        current level, are written over the first latent frames before every step.
        InfiniteTalk scheme (``reference_frame`` ``[3, H, W]``): only that frame is given (mask on
        frame 0) and CLIP sees it; the ``cond_frames`` (the previous clip's last frames, or the
        reference itself in the first clip) are VAE-encoded on their own and written clean over the
        first latent frames before every model call and after every step. The re-noised write of
        the MultiTalk scheme still happens (and is overwritten) so the noise drawn stays the
        official run's."""
        device = self._execution_device
        n_cond = cond_frames.shape[1]
        lat_t = (num_frames - 1) // self.vae_scale_temporal + 1
        lat_h, lat_w = clip.height // self.vae_scale_spatial, clip.width // self.vae_scale_spatial
        channels = self.transformer.config.out_channels
        noise = torch.randn(1, channels, lat_t, lat_h, lat_w, generator=generator).to(device)

        clean = reference_frame is not None
        if clean:
            condition, _ = self.encode_condition(reference_frame[:, None], num_frames)
            motion_latents = self.vae_encode(cond_frames[None]).float()
            image_tokens = self.encode_image(reference_frame)
        else:
            condition, given = self.encode_condition(cond_frames, num_frames)
            motion_latents = given[:, :, : 1 + (n_cond - 1) // self.vae_scale_temporal]
            image_tokens = self.encode_image(cond_frames[:, -1])
        motion_latents = motion_latents.to(device)

        timesteps = shifted_timesteps(steps, shift)
        self.scheduler.set_shift(1.0)  # the schedule arrives shifted
        self.scheduler.set_timesteps(sigmas=(timesteps[:-1] / NUM_TRAIN_TIMESTEPS).numpy(), device=device)
        sigmas = timesteps / NUM_TRAIN_TIMESTEPS

        def inject_motion(latents, sigma):
            if not is_first:  # the given frames at the current noise level
                motion_noise = torch.randn(motion_latents.shape, generator=generator).to(device)
                latents[:, :, : motion_latents.shape[2]] = (1 - sigma) * motion_latents + sigma * motion_noise
            if clean:
                latents[:, :, : motion_latents.shape[2]] = motion_latents
            return latents

        latents = inject_motion(noise, sigmas[0])  # (clean: the same state the official loop starts each step from)
        silent = torch.zeros_like(audio[:, :1])  # "no audio": one all-zero stream
        buffers = (MomentumBuffer(), MomentumBuffer()) if apg else None
        teacache = getattr(self.transformer, "_teacache", None)
        if teacache is not None:  # one skip schedule per clip, from the timesteps alone, for every pass
            from .teacache import COEFFICIENTS, reset_teacache, teacache_schedule

            resolution = "720" if clip.height * clip.width >= HD_AREA else "480"
            teacache.compute = teacache_schedule(
                self.transformer, timesteps[:-1], teacache, teacache.coefficients or COEFFICIENTS[resolution]
            )
            reset_teacache(self.transformer)
        cache = getattr(self.transformer, "is_cache_enabled", False) or teacache is not None
        for i, t in enumerate(timesteps[:-1].to(device)):
            args = (latents, condition, t, clip)
            if math.isclose(text_guidance, 1.0):  # the official test: 2 passes
                cond = self._predict(*args, audio, image_tokens, clip.text, "cond", cache, step=i)
                no_audio = self._predict(*args, silent, image_tokens, clip.text, "no_audio", cache, step=i)
                velocity = two_pass(cond, no_audio, audio_guidance)
            else:
                cond = self._predict(*args, audio, image_tokens, clip.text, "cond", cache, step=i)
                no_text = self._predict(*args, audio, image_tokens, clip.negative, "no_text", cache, step=i)
                uncond = self._predict(*args, silent, image_tokens, clip.negative, "uncond", cache, step=i)
                velocity = (
                    three_pass_apg(cond, no_text, uncond, text_guidance, audio_guidance, buffers)
                    if apg
                    else three_pass(cond, no_text, uncond, text_guidance, audio_guidance)
                )
            latents = self.scheduler.step(velocity, self.scheduler.timesteps[i], latents, return_dict=False)[0]
            latents = inject_motion(latents, sigmas[i + 1])
            if on_step is not None:
                latents = on_step(i, t, latents)
        return self.vae_decode(latents)[0]  # 3, F, H, W

    # ------------------------------------------------------------------ the request

    def resolve_size(self, height: int, width: int, size=None) -> tuple[int, int]:
        """The frame size for an image: ``size`` as ``(H, W)``, a size table's name (``480``, ``720``,
        ``multitalk-480``...) whose nearest bucket is taken, or None for the model's own table."""
        if size is None or isinstance(size, str):
            size = nearest_bucket(height, width, size or self.config.buckets)
        try:
            size = (int(size[0]), int(size[1]))
        except (TypeError, ValueError, IndexError):
            raise MultiTalkInputError(f"size must be (height, width), 480, 720 or WxH, got {size!r}") from None
        multiple = self.vae_scale_spatial * self.transformer.config.patch_size[1]
        if min(size) < multiple or size[0] % multiple or size[1] % multiple:
            raise MultiTalkInputError(
                f"size {size[1]}x{size[0]} must be a positive multiple of {multiple} on both sides"
            )
        return size

    def prepare(
        self,
        image: np.ndarray,
        voices: list[np.ndarray],
        audio_type: str = "para",
        bboxes=None,
        bbox_format: str = "tlbr",
        mask_image: np.ndarray | None = None,
        size=None,
    ):
        """Validate and bring inputs to the model's grid; cheap, so errors come before model work."""
        masks = check_request(image, voices, audio_type, bboxes, bbox_format, mask_image, self.config.fps)
        size = self.resolve_size(*image.shape[:2], size)
        how = self.processing.resize
        return resize_image(image, size, how), resize_masks(masks, size, how), combine_voices(voices, audio_type), size

    @torch.no_grad()
    def __call__(
        self,
        image: np.ndarray | None = None,
        audio: list[np.ndarray] | None = None,
        prompt: str = "",
        negative_prompt: str | None = None,
        audio_type: str = "para",
        bboxes: list | None = None,
        bbox_format: str = "tlbr",
        mask_image: np.ndarray | None = None,
        video=None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        text_guidance: float | None = None,
        audio_guidance: float | None = None,
        shift: float | None = None,
        generator: torch.Generator | None = None,
        mode: str = "clip",
        motion_frames: int | None = None,
        max_frames: int = 1000,
        fit_clips: bool | None = None,
        apg: bool = False,
        color_correction: float | None = None,
        size: tuple[int, int] | str | None = None,
        work_dir: str | Path | None = None,
        resume: bool = False,
        callback_on_step_end: Callable | None = None,
        shots: list[int] | None = None,
        **deprecated,
    ) -> MultiTalkOutput:
        r"""Make a video of the people in ``image`` (or ``video``) speaking ``audio``.

        Args:
            image: the reference picture, uint8 RGB ``(H, W, 3)``.
            audio: one 16 kHz mono float waveform per person, in person order (any length).
            prompt: what the scene shows and does.
            negative_prompt: for text guidance; None takes the model's (MultiTalk's English default).
            audio_type: ``para`` (the voices play together) or ``add`` (person 1, then person 2, ...).
            bboxes: one box per person, ``[top, left, bottom, right]`` pixels (``bbox_format="xyxy"``:
                ``[left, top, right, bottom]``); or ``mask_image`` (0 background, i person i); neither:
                an N-way split.
            video: instead of ``image``, for dubbing: uint8 frames ``[F, H, W, 3]`` at 25 fps (or any
                sequence of frames with ``len``). The InfiniteTalk variant takes clip k's reference from
                frame ``k·(num_frames − motion_frames)`` (the last past the end); size, boxes and masks
                come from frame 0, which is all the MultiTalk variant uses.
            num_frames: frames per clip, 4k+1. num_inference_steps: denoising steps per clip.
            text_guidance, audio_guidance, shift: sampling; text guidance 1 runs 2 passes per step.
            generator: a CPU ``torch.Generator`` (its draws are the official run's); default seed 42.
            mode: ``clip`` (one clip) or ``streaming`` (as long as the audio, up to ``max_frames``),
                carrying ``motion_frames`` frames into the next clip.
            fit_clips: cut the last clip to what the audio needs.
            apg: adaptive projected guidance.
            color_correction: strength in [0, 1] of the Lab colour transfer to the reference applied to
                every decoded clip (official default 1.0).
            size: ``(height, width)``, a size table (``"480"``, ``"720"``) or None for the model's table.
            work_dir, resume: finished clips are kept in ``work_dir``; ``resume`` goes on from there.
            callback_on_step_end: ``fn(pipe, step, timestep, callback_kwargs) -> dict`` after every step;
                ``callback_kwargs`` holds ``latents``, ``clip`` and ``clips``; a returned ``latents`` replaces them.
            shots: for a ``video`` cut into shots, the first frame of each shot after the first (25 fps
                indices; ``media.detect_shots`` finds them): each shot is dubbed as a request of its own
                (a fresh first clip from its first frame, the audio of its own time span, the same boxes),
                so no clip carries motion across a cut; one generator runs through them all.

        Sampling settings left at None take the model's own (``config.sampling``), else the official
        ones (``SAMPLING_DEFAULTS``; shift 7 at 480p, 11 at 720p). The progress bar follows
        ``set_progress_bar_config``. Old names still accepted, with a warning: ``steps``, ``seed``,
        ``callback(clip, clips, step, steps)``, ``progress``.

        Examples:
            >>> from multitalk.checkpoints import load_pipeline
            >>> pipe = load_pipeline("weights/Wan2.1-I2V-14B-480P", audio_encoder="weights/chinese-wav2vec2-base")
            >>> out = pipe(image, [voice1, voice2], "Two friends chat in a cafe", mode="streaming")
            >>> out.frames.shape  # (F, H, W, 3) uint8, F = the audio's length at 25 fps
        """
        num_inference_steps, generator, callback_on_step_end, progress = _old_names(
            deprecated, num_inference_steps, generator, callback_on_step_end
        )
        if shots:
            same = dict(
                prompt=prompt,
                negative_prompt=negative_prompt,
                bboxes=bboxes,
                bbox_format=bbox_format,
                mask_image=mask_image,
                num_frames=num_frames,
                num_inference_steps=num_inference_steps,
                text_guidance=text_guidance,
                audio_guidance=audio_guidance,
                shift=shift,
                motion_frames=motion_frames,
                fit_clips=fit_clips,
                apg=apg,
                color_correction=color_correction,
                size=size,
                resume=resume,
                callback_on_step_end=callback_on_step_end,
            )
            return self._dub_shots(shots, video, audio, audio_type, mode, max_frames, generator, work_dir, same)
        image = self._reference_image(image, video, audio, prompt)
        variant = self.config.get("variant", "multitalk")
        chosen = sampling_settings(
            {**VARIANT_SAMPLING[variant], **self.config.sampling},
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            text_guidance=text_guidance,
            audio_guidance=audio_guidance,
            shift=shift,
            motion_frames=motion_frames,
            fit_clips=fit_clips,
            color_correction=color_correction,
        )
        num_frames, steps, motion_frames = chosen["num_frames"], chosen["num_inference_steps"], chosen["motion_frames"]
        check_settings({**chosen, "mode": mode, "max_frames": max_frames}, max_steps=None)  # no cap in the library
        self._num_timesteps = steps
        reference, masks, voices, (height, width) = self.prepare(
            image, audio, audio_type, bboxes, bbox_format, mask_image, size
        )
        audio_frames = math.ceil(max(v.size for v in voices) * self.config.fps / SAMPLE_RATE)
        check_clip_memory(num_frames, num_frames if mode == "clip" else min(audio_frames, max_frames), height, width)
        chosen["shift"] = chosen["shift"] if chosen["shift"] is not None else default_shift(height, width)
        device = self._execution_device
        feats = [self.encode_audio(v) for v in voices]  # P x [frames, L, C]
        wanted = num_frames if mode == "clip" else min(feats[0].shape[0], max_frames)
        lengths = clip_lengths(wanted, num_frames, motion_frames, chosen["fit_clips"], self.vae_scale_temporal)
        feats = pad_audio(feats, lengths, num_frames - motion_frames, mode == "streaming", chosen["fit_clips"])

        if negative_prompt is None:
            negative_prompt = self.config.negative_prompt
        text, negative = self.encode_prompt([prompt, negative_prompt])
        lat = (height // self.vae_scale_spatial, width // self.vae_scale_spatial)
        token_masks = torch.nn.functional.interpolate(masks[None], size=lat, mode="nearest").to(device)
        clip = _Clip(text[None].to(device), negative[None].to(device), token_masks, height, width)

        seed = deprecated.get("seed", 42)
        generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        source = image[None] if video is None else video
        store = (
            _WorkDir(
                work_dir,
                _fingerprint(
                    source,
                    voices,
                    prompt,
                    negative_prompt,
                    masks,
                    _plain(
                        *[chosen[k] for k in sorted(chosen)],
                        mode,
                        max_frames,
                        apg,
                        height,
                        width,
                        variant,
                        self.processing.to_config(),
                        generator.initial_seed(),
                    ),
                ),
                writer=is_first_rank(self.transformer._parallel_config),
            )
            if work_dir
            else None
        )
        pieces, first_clip, cond = [], 0, reference[:, None]  # cond: [3, n, H, W]
        if store and resume and store.exists():
            pieces, cond, generator_state = store.load()
            generator.set_state(generator_state)
            first_clip = len(pieces)

        def reference_of(k: int) -> torch.Tensor:
            """Clip k's reference frame (InfiniteTalk): the source frame where the clip starts."""
            if video is None or k == 0:
                return reference
            index = min(k * (num_frames - motion_frames), len(video) - 1)
            return resize_image(np.asarray(video[index]), (height, width), self.processing.resize)

        config = dict(getattr(self, "_progress_bar_config", {}))
        if progress is False:
            config["disable"] = True
        bar = tqdm(total=len(lengths) * steps, **{"desc": "generating", "unit": "step", **config})
        bar.update(first_clip * steps)
        try:
            for k in range(first_clip, len(lengths)):
                start = k * (num_frames - motion_frames)
                windows = torch.stack([frame_windows(f, start, start + lengths[k]) for f in feats])[None].to(device)

                def on_step(i, t, latents, k=k):
                    bar.update(1)
                    bar.set_postfix(clip=f"{k + 1}/{len(lengths)}", refresh=False)
                    if callback_on_step_end is None:
                        return latents
                    out = callback_on_step_end(self, i, t, {"latents": latents, "clip": k, "clips": len(lengths)})
                    return (out or {}).get("latents", latents)

                frames_k = self.generate_clip(
                    cond.to(device),
                    windows,
                    clip,
                    lengths[k],
                    steps,
                    chosen["text_guidance"],
                    chosen["audio_guidance"],
                    chosen["shift"],
                    generator,
                    k == 0,
                    apg,
                    on_step,
                    reference_of(k).to(device) if variant == "infinitetalk" else None,
                ).cpu()
                # the whole clip, the first included, before its last frames condition the next one;
                # always against the first reference
                frames_k = color_correct(frames_k, reference, chosen["color_correction"])
                pieces.append(to_uint8(frames_k if k == 0 else frames_k[:, motion_frames:], self.processing.to_uint8))
                cond = frames_k[:, -motion_frames:]
                if store:
                    store.save(pieces, cond, generator.get_state())
        finally:  # an interrupted run leaves a closed bar (its finished clips are on disk)
            bar.close()
        frames = np.concatenate(pieces)[:wanted]
        mix = np.sum(voices, axis=0).astype(np.float32)
        return MultiTalkOutput(
            frames=frames,
            audio=mix[: round(frames.shape[0] / self.config.fps * SAMPLE_RATE)],
            fps=self.config.fps,
            steps_run=(len(lengths) - first_clip) * steps,
        )

    def load_lora(self, path: str | Path, scale: float = 1.0, preset: str | None = None) -> int:
        """Fuse a LoRA file into the transformer (``multitalk.lora``: the official loader's arithmetic);
        ``preset`` (``lightx2v``, ``fusionix``) also sets the sampling the LoRA was distilled for.
        Returns how many weights changed."""
        from .lora import PRESETS, fuse_lora

        if preset is not None:
            if preset not in PRESETS:
                raise MultiTalkInputError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
            self.register_to_config(sampling={**self.config.sampling, **PRESETS[preset]})
        return fuse_lora(self.transformer, path, scale)

    @property
    def num_timesteps(self) -> int:
        """Denoising steps per clip of the current (or last) call."""
        return self._num_timesteps

    def _dub_shots(self, shots, video, audio, audio_type, mode, max_frames, generator, work_dir, same: dict):
        """A video cut into shots, dubbed shot by shot and joined; the voices cut at the same frames."""
        if video is None or mode != "streaming":
            raise MultiTalkInputError("shots= cuts a video to dub: give video= and mode='streaming'")
        if not audio:
            raise MultiTalkInputError("no audio: give one audio track per person")
        starts = [int(s) for s in shots]
        if starts != sorted(set(starts)) or not all(0 < s < len(video) for s in starts):
            raise MultiTalkInputError(
                f"shots must be increasing frame indices inside the video (1..{len(video) - 1}), got {shots}"
            )
        voices = combine_voices([np.asarray(v, np.float32) for v in audio], audio_type)
        per_frame = SAMPLE_RATE // self.config.fps
        total = min(math.ceil(voices[0].size / per_frame), max_frames)
        starts = [0] + [s for s in starts if s < total]
        generator = generator if generator is not None else torch.Generator().manual_seed(42)
        pieces, steps = [], 0
        for i, (start, stop) in enumerate(zip(starts, starts[1:] + [total])):
            cut = [v[start * per_frame : stop * per_frame] for v in voices]
            segment = [np.pad(v, (0, (stop - start) * per_frame - v.size)) for v in cut]  # the audio may end early
            out = self(
                video=FrameWindow(video, start, len(video)),  # the last shot's clips past the end take its last frame
                audio=segment,
                audio_type="para",
                mode="streaming",
                max_frames=stop - start,
                generator=generator,
                work_dir=Path(work_dir) / f"shot_{i:03d}" if work_dir else None,
                **same,
            )
            pieces.append(out.frames[: stop - start])
            steps += out.steps_run
        frames = np.concatenate(pieces)
        mix = np.sum(voices, axis=0).astype(np.float32)
        audio = mix[: frames.shape[0] * per_frame]
        return MultiTalkOutput(frames=frames, audio=audio, fps=self.config.fps, steps_run=steps)

    def _reference_image(self, image, video, audio, prompt) -> np.ndarray:
        """The request's reference picture (frame 0 of a video); the checks that need no model."""
        if (image is None) == (video is None):
            raise MultiTalkInputError("give the reference as image= or as video= (for dubbing), one of them")
        if video is not None:
            if len(video) < 1:
                raise MultiTalkInputError("the video has no frames; give a video with at least one frame")
            image = np.asarray(video[0])
        if not audio:
            raise MultiTalkInputError("no audio: give one audio track per person")
        if not isinstance(prompt, str) or not prompt.strip():
            raise MultiTalkInputError("no prompt: give a text prompt describing the scene")
        return image


_WARNED: set[str] = set()
OLD_NAMES = {
    "steps": "num_inference_steps",
    "seed": "generator=torch.Generator().manual_seed(seed)",
    "callback": "callback_on_step_end",
    "progress": "set_progress_bar_config(disable=True)",
}


def _old_names(given: dict, num_inference_steps, generator, callback_on_step_end):
    """The call's pre-diffusers names, still accepted for one release (each warns once)."""
    unknown = set(given) - set(OLD_NAMES)
    if unknown:
        raise TypeError(f"MultiTalkPipeline got unexpected arguments {sorted(unknown)}")
    for name in given:
        if name not in _WARNED:
            _WARNED.add(name)
            warnings.warn(
                f"`{name}` is deprecated; use `{OLD_NAMES[name]}` (the old name goes in the next release)",
                FutureWarning,
                stacklevel=3,
            )
    if num_inference_steps is None:
        num_inference_steps = given.get("steps")
    callback = given.get("callback")
    if callback is not None and callback_on_step_end is None:

        def callback_on_step_end(pipe, step, t, kwargs):
            callback(kwargs["clip"], kwargs["clips"], step + 1, pipe.num_timesteps)
            return {}

    return num_inference_steps, generator, callback_on_step_end, given.get("progress")


def pad_audio(feats: list[torch.Tensor], lengths: list[int], step: int, streaming: bool, fit: bool):
    """Audio that runs out is extended with its own reversed tail, as the reference does: it pads
    whenever its last clip reaches the end, with 3 frames to spare (a fitted last clip pads only when
    it runs past the end)."""
    needed, have = (len(lengths) - 1) * step + lengths[-1], feats[0].shape[0]
    if not streaming or (needed <= have if fit else needed < have):
        return feats
    missing = needed - have + 3
    return [
        torch.cat([f, f[-missing:].flip(0)])
        if missing <= f.shape[0]
        else torch.cat([f, f[-1:].expand(missing, *f.shape[1:])])
        for f in feats
    ]


HD_AREA = 600_000  # between the 480p buckets (~410k pixels) and the 720p ones (~920k)


def default_shift(height: int, width: int) -> float:
    """The official default timestep shift: 7 at 480p, 11 at 720p."""
    return 11.0 if height * width >= HD_AREA else 7.0


def shifted_timesteps(steps: int, shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """The official schedule, ``steps + 1`` values ending in 0: ``linspace(1000, 1, steps)`` in float32,
    then ``shift·s / (1 + (shift − 1)·s)`` on ``s = t / 1000``, in float32 as the official code computes it."""
    t = torch.from_numpy(np.append(np.linspace(num_train_timesteps, 1, steps, dtype=np.float32), np.float32(0)))
    s = t / num_train_timesteps
    return shift * s / (1 + (shift - 1) * s) * num_train_timesteps


def condition_mask(num_frames: int, given: int, grid: tuple[int, int], vae_scale: int = 4) -> torch.Tensor:
    """The mask channels ``[vae_scale, T, h, w]``: 1 where a frame is given, frame 0's mask
    repeated to fill its own latent frame."""
    mask = torch.zeros(num_frames, *grid)
    mask[:given] = 1
    mask = torch.cat([mask[:1].repeat(vae_scale - 1, 1, 1), mask])  # 4T, h, w
    return mask.view(-1, vae_scale, *grid).transpose(0, 1)


def check_request(
    image: np.ndarray,
    voices: list[np.ndarray],
    audio_type: str = "para",
    bboxes=None,
    bbox_format: str = "tlbr",
    mask_image: np.ndarray | None = None,
    fps: int = 25,
) -> torch.Tensor:
    """Everything about the inputs that can be wrong, checked without a model; returns the
    ``(people + 1, H, W)`` masks at the image's size."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise MultiTalkInputError(f"the reference image must be RGB (H, W, 3), got shape {image.shape}")
    if not voices:
        raise MultiTalkInputError("no audio: give one audio track per person")
    check_audio_type(audio_type)
    for i, voice in enumerate(voices):
        if voice.size < SAMPLE_RATE // fps:
            raise MultiTalkInputError(f"audio {i + 1} is shorter than one video frame; give a longer recording")
        if not np.isfinite(voice).all():
            raise MultiTalkInputError(f"audio {i + 1} contains NaN or infinite samples; re-export it")
    return person_masks(len(voices), *image.shape[:2], bboxes, bbox_format, mask_image)


VARIANTS = ("multitalk", "infinitetalk")
# What differs in a variant's official defaults (InfiniteTalk carries 9 frames into the next clip).
VARIANT_SAMPLING = {"multitalk": {}, "infinitetalk": {"motion_frames": 9}}
# The official settings. shift None: by resolution (default_shift). color_correction: Lab strength.
SAMPLING_DEFAULTS = {
    "num_frames": 81,
    "motion_frames": 25,
    "num_inference_steps": 40,
    "text_guidance": 5.0,
    "audio_guidance": 4.0,
    "shift": None,
    "fit_clips": False,
    "color_correction": 1.0,
}


def clip_lengths(wanted: int, num_frames: int, motion_frames: int, fit: bool = False, vae_scale: int = 4) -> list[int]:
    """Frames of each clip a video of ``wanted`` frames is made of (clip k starts at k x (num_frames - motion_frames)).

    The reference makes every clip ``num_frames`` long and cuts what runs past the audio; ``fit``
    makes the last clip only as long as the audio needs (rounded up to ``vae_scale``k+1), so a model
    whose clips are long (the demo model's last 20 s) does not pay for frames it throws away.
    """
    step = num_frames - motion_frames
    clips = 1 if wanted <= num_frames else 1 + math.ceil((wanted - num_frames) / step)
    lengths = [num_frames] * clips
    if fit:
        left = wanted - (clips - 1) * step  # > motion_frames whenever clips > 1
        lengths[-1] = min(num_frames, vae_scale * math.ceil((left - 1) / vae_scale) + 1)
    return lengths


def current_names(settings: dict | None) -> dict:
    """Settings stored under an old name (``steps``, ``frames``) under today's (``num_inference_steps``,
    ``num_frames``): model folders and queued jobs written before the rename keep working."""
    return {OLD_SETTING_NAMES.get(k, k): v for k, v in (settings or {}).items()}


def check_sampling(sampling: dict | None) -> None:
    """A model's own sampling settings may only name the settings there are."""
    unknown = set(current_names(sampling)) - set(SAMPLING_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown sampling settings {sorted(unknown)}; known: {sorted(SAMPLING_DEFAULTS)}")


def sampling_settings(model_sampling: dict | None, **given) -> dict:
    """Each sampling setting: what the caller gave, else the model's own, else the official default."""
    chosen = {**SAMPLING_DEFAULTS, **current_names(model_sampling)}
    chosen.update({k: v for k, v in given.items() if v is not None})
    return chosen


def _plain(*values) -> list:
    return [v if isinstance(v, (int, float, str, bool)) else str(v) for v in values]


def _fingerprint(source, voices, prompt, negative, masks, settings) -> str:
    """``source``: the image as ``[1, H, W, 3]``, a video array, or a frame sequence (its ``indices`` are hashed)."""
    digest = hashlib.sha256()
    frames = (
        [source]
        if isinstance(source, np.ndarray)
        else [np.asarray(source[i]) for i in getattr(source, "indices", range(len(source)))]
    )
    for array in (*frames, *voices, masks.numpy()):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps([prompt, negative, settings]).encode())
    return digest.hexdigest()


class _WorkDir:
    """Finished clips of one request, so an interrupted run goes on where it stopped.

    Under context parallelism every process makes the same clips: the first one writes them and
    all of them resume from what it wrote, so they go on from the same clip."""

    def __init__(self, folder: str | Path, fingerprint: str, writer: bool = True):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.state_path = self.folder / "state.pt"
        self.writer = writer

    def exists(self) -> bool:
        return self.state_path.is_file()

    def save(self, pieces: list[np.ndarray], cond: torch.Tensor, generator_state: torch.Tensor) -> None:
        if not self.writer:
            return
        k = len(pieces) - 1
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.folder / f"clip_{k:04d}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, pieces[-1])
        with atomic_output(self.state_path) as tmp:  # written last: the clip is complete
            torch.save(
                {"fingerprint": self.fingerprint, "clips": k + 1, "cond": cond.clone(), "generator": generator_state},
                tmp,
            )

    def load(self):
        state = torch.load(self.state_path, weights_only=True)
        if state["fingerprint"] != self.fingerprint:
            raise MultiTalkInputError(
                f"{self.folder} holds a different request (other inputs or settings); "
                "use a new work folder or drop --resume"
            )
        pieces = [np.load(self.folder / f"clip_{k:04d}.npy") for k in range(state["clips"])]
        return pieces, state["cond"], state["generator"]
