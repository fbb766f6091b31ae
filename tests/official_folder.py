"""A tiny Wan2.1-I2V folder in the exact original layout, as the official MultiTalk README has users
download and link it: DiT shards + the MultiTalk index (base and audio keys) + ``multitalk.safetensors``,
``config.json``, ``Wan2.1_VAE.pth``, ``models_t5_umt5-xxl-enc-bf16.pth`` + ``google/umt5-xxl/``,
``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``; and a tiny wav2vec2 folder beside it.

Every file is written from the literal models of the tests (``reference_multitalk``,
``reference_wan_encoders``) and diffusers' VAE renamed to Wan's keys, never through our loaders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan

from multitalk.encoders.text import minilm_path
from reference_multitalk import ReferenceMultiTalk
from reference_wan_encoders import WanCLIP, WanT5Encoder
from test_checkpoints_reference import OFFICIAL_CONFIG, write_official_layout
from test_vae_loading import to_original_key

CLIP_DIM = 32
W2V = dict(layers=2, channels=8)  # the DiT's audio adapter takes windows of layers x channels


def write_wav2vec2(folder: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(3)
    config = Wav2Vec2Config(
        hidden_size=W2V["channels"],
        num_hidden_layers=W2V["layers"],
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    return folder


def write_original_folder(folder: Path, seed: int = 0) -> dict:
    """Write the folder; returns the literal models whose files it holds."""
    torch.manual_seed(seed)
    dit = ReferenceMultiTalk.randomize(ReferenceMultiTalk(clip_dim=CLIP_DIM)).eval()
    write_official_layout(dit, folder)
    (folder / "config.json").write_text(
        json.dumps({"_class_name": "WanModel", "_diffusers_version": "0.30.0", **OFFICIAL_CONFIG})
    )
    tokenizer = folder / "google" / "umt5-xxl"
    shutil.copytree(minilm_path(), tokenizer, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tokenizer))
    t5 = WanT5Encoder(vocab=vocab, dim=OFFICIAL_CONFIG["text_dim"], dim_attn=16, dim_ffn=24, heads=2, layers=2).eval()
    torch.save(t5.state_dict(), folder / "models_t5_umt5-xxl-enc-bf16.pth")
    clip = WanCLIP(image_size=224, patch=14, dim=CLIP_DIM, heads=16, layers=3, mlp=64).eval()
    torch.save(clip.state_dict(), folder / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    vae = AutoencoderKLWan(base_dim=8, z_dim=16).eval()
    torch.save({to_original_key(k): v for k, v in vae.state_dict().items()}, folder / "Wan2.1_VAE.pth")
    return {"dit": dit, "t5": t5, "clip": clip, "vae": vae}
