"""Pipelines with random weights at any preset size: for tests, benchmarks and speed figures.

Everything is real except the weights: diffusers' Wan VAE, our transformer, a transformers
text encoder (a small BERT with the MiniLM tokenizer that ships offline) and the mel audio
encoder. Same seed, same weights.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler

from .encoders.audio import MelAudioEncoder
from .encoders.text import minilm_path
from .models.transformer import MultiTalkTransformer3DModel
from .pipeline import MultiTalkPipeline


def random_pipeline(
    preset: str = "tiny",
    seed: int = 0,
    buckets: list | None = None,
    vae_base_dim: int = 8,
    text_encoder: str = "random",
    vae: str | None = None,
    processing: dict | None = None,
    sampling: dict | None = None,
) -> MultiTalkPipeline:
    """``text_encoder="minilm"`` uses the pretrained MiniLM (384 wide: the ``small`` preset's text width).
    ``processing``/``sampling``: stored with the pipeline (default: the official choices)."""
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    transformer = MultiTalkTransformer3DModel.from_preset(preset).eval()
    config = transformer.config
    vae = (
        AutoencoderKLWan.from_pretrained(vae).eval()
        if vae
        else AutoencoderKLWan(
            base_dim=vae_base_dim, z_dim=config.out_channels, dim_mult=[1, 1, 1, 1], num_res_blocks=1
        ).eval()
    )
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    if text_encoder == "minilm":
        text_model = AutoModel.from_pretrained(minilm_path()).eval()
        if text_model.config.hidden_size != config.text_dim:
            raise ValueError(f"MiniLM is {text_model.config.hidden_size} wide; {preset!r} takes {config.text_dim}")
    else:
        text_model = BertModel(
            BertConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=config.text_dim,
                num_hidden_layers=1,
                num_attention_heads=1,
                intermediate_size=2 * config.text_dim,
                max_position_embeddings=512,
            )
        ).eval()
    audio_encoder = MelAudioEncoder(layers=config.audio_layers, channels=config.audio_channels)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0)
    return MultiTalkPipeline(
        vae,
        transformer,
        text_model,
        tokenizer,
        audio_encoder,
        scheduler,
        buckets=buckets or [[64, 64], [64, 96], [96, 64]],
        processing=processing,
        sampling=sampling,
    )
