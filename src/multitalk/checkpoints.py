"""Whole pipelines from the folders users have: ``load_pipeline``.

The models themselves come from ``multitalk.loading`` (which never imports the pipeline); this
module puts them together, and re-exports the loaders so ``multitalk.checkpoints`` stays the one
place to import weights from.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import CheckpointError
from .loading import (  # noqa: F401  (re-exported)
    AUDIO_WEIGHTS,
    DEMO_MODEL,
    MINILM_PACKAGE,
    ORIGINAL_VAE,
    PIPELINE_CLASS,
    _read_json,
    audio_weights_file,
    build_and_load,
    cast_state,
    check_keys,
    default_model,
    infer_config,
    is_original_layout,
    load_transformer,
    load_vae,
    model_sampling,
    model_variant,
    shared_components,
    translate_config,
    variant_of,
)
from .models.transformer import is_audio_key  # noqa: F401  (re-exported)


def load_pipeline(
    path: str | Path,
    audio_encoder: str | Path | None = None,
    torch_dtype: torch.dtype | None = None,
    multitalk_weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    variant: str | None = None,
):
    """A ``MultiTalkPipeline`` from any of:

    (a) our pipeline folder (``model_index.json`` of MultiTalkPipeline, e.g. from ``multitalk convert``);
    (b) the **original** Wan2.1-I2V folder as the official MultiTalk README lays it out: DiT shards +
        index (the MultiTalk release's index also maps the audio keys to ``multitalk.safetensors``),
        ``config.json``, ``Wan2.1_VAE.pth``, ``models_t5_umt5-xxl-enc-bf16.pth`` with ``google/umt5-xxl/``,
        and ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``;
    (c) a diffusers-layout Wan2.1 I2V folder with ``multitalk.safetensors`` copied in.

    (b) and (c) also need the wav2vec2 folder (``audio_encoder``, e.g. chinese-wav2vec2-base);
    ``multitalk_weights`` names the audio-layer file (``multitalk.safetensors`` or
    ``infinitetalk.safetensors``) when it is not in the folder. ``variant`` (``multitalk`` or
    ``infinitetalk``: the clip scheme and defaults) defaults to what a folder of ours stores, else to
    ``infinitetalk`` when the audio weights' file is named ``infinitetalk*.safetensors``. Large weights
    are streamed straight to ``device`` in ``torch_dtype``; the VAE and wav2vec2 stay in float32, as
    the official code keeps them.
    """
    from .pipeline import MultiTalkPipeline

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path}; pass a multitalk or Wan2.1 folder to --model")
    index = _read_json(path / "model_index.json")
    if index.get("_class_name") == PIPELINE_CLASS:
        if multitalk_weights is not None:
            raise CheckpointError(
                f"{path} is a multitalk folder with its audio weights inside; drop --multitalk-weights"
            )
        pipe = MultiTalkPipeline.from_pretrained(path, **({"dtype": torch_dtype} if torch_dtype else {}))
        if variant is not None:
            pipe.set_variant(variant)
        return pipe.to(device) if str(device) != "cpu" else pipe
    original = is_original_layout(path)
    if not original and not (index and (path / "transformer").is_dir()):
        raise CheckpointError(
            f"{path} is not a model folder (no model_index.json, no Wan2.1 weights); pass a "
            "multitalk pipeline folder, the original Wan2.1-I2V folder or its Diffusers layout"
        )
    if audio_encoder is None:
        raise CheckpointError(f"{path} is a Wan2.1 base; also pass --audio-encoder DIR (chinese-wav2vec2-base)")
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    audio_encoder = Path(audio_encoder)
    if not (audio_encoder / "config.json").is_file():
        raise CheckpointError(f"{audio_encoder} is not a wav2vec2 folder (no config.json)")
    wav2vec = Wav2Vec2Model.from_pretrained(audio_encoder, dtype=torch.float32).to(device).eval()
    # the audio adapter's input width is the wav2vec2 model's layers x channels
    audio_shape = {"audio_layers": wav2vec.config.num_hidden_layers, "audio_channels": wav2vec.config.hidden_size}
    variant = variant or variant_of(path, multitalk_weights)
    common = dict(
        audio_encoder=wav2vec,
        feature_extractor=Wav2Vec2FeatureExtractor.from_pretrained(audio_encoder),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0),
        variant=variant,
    )
    transformer = _audio_checked(path, audio_shape, torch_dtype, device, multitalk_weights)
    if original:
        return MultiTalkPipeline(
            vae=load_vae(path / ORIGINAL_VAE).to(device),
            transformer=transformer,
            **_original_encoders(path, torch_dtype, device),
            **common,
        )
    from transformers import AutoModel, AutoTokenizer, CLIPImageProcessor, CLIPVisionModel, UMT5EncoderModel

    text_class = (
        UMT5EncoderModel
        if _read_json(path / "text_encoder" / "config.json").get("model_type") in ("umt5", "t5", "mt5")
        else AutoModel
    )
    has_image = (path / "image_encoder").is_dir()
    return MultiTalkPipeline(
        vae=load_vae(path).to(device),
        transformer=transformer,
        text_encoder=text_class.from_pretrained(path / "text_encoder", torch_dtype=torch_dtype).to(device),
        tokenizer=AutoTokenizer.from_pretrained(path / "tokenizer"),
        image_encoder=CLIPVisionModel.from_pretrained(path / "image_encoder", torch_dtype=torch_dtype).to(device)
        if has_image
        else None,
        image_processor=CLIPImageProcessor.from_pretrained(path / "image_processor") if has_image else None,
        **common,
    )


def _audio_checked(path: Path, audio_shape: dict, torch_dtype, device, multitalk_weights):
    try:
        return load_transformer(
            path, config=audio_shape, torch_dtype=torch_dtype, device=device, audio_weights=multitalk_weights
        )
    except CheckpointError as err:
        if "audio_proj.proj1" in str(err):
            raise CheckpointError(
                f"{err} — the audio weights do not fit the wav2vec2 model's "
                f"{audio_shape['audio_layers']} layers x {audio_shape['audio_channels']} channels; "
                "pass the audio encoder they were trained with"
            ) from None
        raise


def _original_encoders(path: Path, torch_dtype, device) -> dict:
    """umT5 + tokenizer + CLIP of an original-layout Wan folder, converted to transformers models."""
    from transformers import AutoTokenizer

    from .encoders.wan_original import CLIP_FILE, T5_FILE, T5_TOKENIZER, load_clip_vision, load_umt5

    if not (path / T5_TOKENIZER).is_dir():
        raise CheckpointError(
            f"{path / T5_TOKENIZER} not found: the original Wan folder keeps the umT5 tokenizer "
            "there (download the whole Wan2.1-I2V repository)"
        )
    clip = path / CLIP_FILE
    return dict(
        text_encoder=load_umt5(path / T5_FILE, torch_dtype, device),
        tokenizer=AutoTokenizer.from_pretrained(path / T5_TOKENIZER),
        image_encoder=load_clip_vision(clip, torch_dtype, device) if clip.is_file() else None,
        image_processor=None,
    )
