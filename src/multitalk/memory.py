"""Memory tiers: where the weights live while a video is made, from diffusers' and accelerate's pieces.

* ``max`` — every component on the GPU (the 14B needs an 80 GB card).
* ``balanced`` — accelerate's model offload: one component on the GPU at a time (the DiT's 37 GB in
  bf16 plus its activations).
* ``low`` — the DiT's blocks offloaded in groups (one block on the GPU at a time, the next one copied
  on a CUDA stream meanwhile) and stored in float8 (cast up to the compute dtype layer by layer; the
  embeddings, norms, output head and MultiTalk's audio adapter stay in their own dtype); the text
  and image encoders offloaded layer by layer; the VAE decodes in tiles.

Beside the tiers, ``quantize_weights`` stores the DiT's linear weights in int8 or float8 with
torchao's weight-only quantization (computation stays in the model's dtype): about half the bf16
weight memory, with ``max`` or ``balanced``.
"""

from __future__ import annotations

import torch

from .errors import MultiTalkInputError

TIERS = ("max", "balanced", "low")
QUANTIZED = ("int8", "fp8")
# kept out of float8 storage: small, and the precision of embeddings, norms and the adapter matters
FP8_SKIP = ("patch_embedding", "condition_embedder", "norm", "proj_out", "scale_shift_table", "audio_proj")


# Peak host memory one clip adds per output pixel and frame, beyond the weights: the decoded clip
# in float32, its colour-corrected copy and the uint8 frames. Measured with
# `python benchmarks/clip_memory.py` (docs/benchmarks.md); rounded up.
CLIP_BYTES_PER_PIXEL_FRAME = 128
VIDEO_BYTES_PER_PIXEL_FRAME = 3  # the finished video's uint8 frames, kept until it is written


def video_bytes(num_frames: int, total_frames: int, height: int, width: int) -> int:
    """Host memory a video needs beyond the weights: one clip being made, plus the whole video's frames."""
    pixels = height * width
    return pixels * (num_frames * CLIP_BYTES_PER_PIXEL_FRAME + total_frames * VIDEO_BYTES_PER_PIXEL_FRAME)


def free_host_bytes() -> int:
    import psutil

    return psutil.virtual_memory().available


def check_clip_memory(
    num_frames: int, total_frames: int, height: int, width: int, available: int | None = None, flags: bool = False
) -> None:
    """Refuse, before any model work, a clip or video that cannot fit in the memory there is: the
    limit is derived from the size, not a fixed frame count, so a small picture may have long clips."""
    available = free_host_bytes() if available is None else available
    needed = video_bytes(num_frames, total_frames, height, width)
    if needed <= available:
        return
    frames_flag, total_flag = ("--num-frames", "--max-frames") if flags else ("num_frames", "max_frames")
    gib = 2**30
    fits = (available // (height * width) - total_frames * VIDEO_BYTES_PER_PIXEL_FRAME) // CLIP_BYTES_PER_PIXEL_FRAME
    fits = (fits - 1) // 4 * 4 + 1
    if fits >= 5:
        fix = f"the longest clip that fits is {fits} frames: lower {frames_flag}, or shorten the video ({total_flag})"
    else:
        fix = f"shorten the video ({total_flag}) or use a smaller size"
    raise MultiTalkInputError(
        f"a {num_frames}-frame clip of a {total_frames}-frame video at {width}x{height} needs about "
        f"{needed / gib:.1f} GiB, and {available / gib:.1f} GiB are free here; {fix}"
    )


def check_tier(tier: str, device: str) -> None:
    if tier not in TIERS:
        raise MultiTalkInputError(f"unknown --memory {tier!r}; use one of {TIERS}")
    if tier != "max" and torch.device(device).type == "cpu":
        raise MultiTalkInputError(
            f"--memory {tier} moves weights between the CPU and a GPU; on the CPU use --memory max (the default)"
        )


def offload_transformer_blocks(transformer, device, fp8: bool = True) -> None:
    """The DiT's blocks in groups of one, onloaded when needed (on a CUDA stream on a GPU); fp8 storage."""
    if fp8:
        transformer.enable_layerwise_casting(
            storage_dtype=torch.float8_e4m3fn, compute_dtype=transformer.dtype, skip_modules_pattern=FP8_SKIP
        )
    on_gpu = torch.device(device).type == "cuda"
    transformer.enable_group_offload(
        onload_device=torch.device(device),
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=on_gpu,
    )


def apply_memory_tier(pipe, tier: str, device: str) -> None:
    """Put ``pipe``'s components where ``tier`` says (``device``: the GPU the work runs on)."""
    check_tier(tier, device)
    if tier == "max":
        pipe.to(device)
        return
    if tier == "balanced":
        pipe.enable_model_cpu_offload(device=device)
        return
    from diffusers.hooks import apply_group_offloading

    offload_transformer_blocks(pipe.transformer, device)
    for name in ("text_encoder", "image_encoder"):
        module = getattr(pipe, name, None)
        if module is not None:
            apply_group_offloading(module, onload_device=torch.device(device), offload_type="leaf_level")
    pipe.vae.enable_tiling()
    pipe.vae.to(device)
    if isinstance(pipe.audio_encoder, torch.nn.Module):
        pipe.audio_encoder.to(device)


def check_quantize(kind: str | None, tier: str) -> None:
    if kind is None:
        return
    if kind not in QUANTIZED:
        raise MultiTalkInputError(f"unknown --quantize {kind!r}; use one of {QUANTIZED}")
    if tier == "low":
        raise MultiTalkInputError("--memory low already stores the blocks in float8; drop --quantize (or use balanced)")


def quantize_weights(transformer, kind: str) -> int:
    """torchao weight-only quantization of the DiT's linear layers, in place; returns how many.

    The audio adapter, the embeddings and the output head stay as they are (small, and their
    precision matters most), as in float8 storage (``FP8_SKIP``)."""
    try:
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    except ImportError:
        raise MultiTalkInputError("--quantize needs torchao: pip install torchao") from None
    config = Int8WeightOnlyConfig() if kind == "int8" else Float8WeightOnlyConfig()
    chosen = []

    def wanted(module, name: str) -> bool:
        keep = isinstance(module, torch.nn.Linear) and not any(part in name for part in FP8_SKIP)
        if keep:
            chosen.append(name)
        return keep

    quantize_(transformer, config, filter_fn=wanted)
    return len(chosen)
