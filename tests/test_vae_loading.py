"""The Wan VAE loads from the original ``Wan2.1_VAE.pth`` layout and from a diffusers folder."""

import re

import pytest
import torch
from diffusers import AutoencoderKLWan

from multitalk.checkpoints import load_vae
from multitalk.errors import CheckpointError

RESNET = {
    "norm1.gamma": "residual.0.gamma",
    "conv1": "residual.2",
    "norm2.gamma": "residual.3.gamma",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}


def _resnet(rest: str) -> str:
    for new, old in RESNET.items():
        if rest.startswith(new):
            return old + rest[len(new) :]
    return rest


def to_original_key(key: str) -> str:
    """diffusers AutoencoderKLWan key -> the original Wan VAE key (its module tree: conv1,
    downsamples.N.residual.{0,2,3,6}, middle.{0,1,2}, head.{0,2}, upsamples.N with three
    resnets and a resample per stage)."""
    simple = {
        "quant_conv": "conv1",
        "post_quant_conv": "conv2",
        "encoder.conv_in": "encoder.conv1",
        "decoder.conv_in": "decoder.conv1",
        "encoder.norm_out": "encoder.head.0",
        "encoder.conv_out": "encoder.head.2",
        "decoder.norm_out": "decoder.head.0",
        "decoder.conv_out": "decoder.head.2",
    }
    for new, old in simple.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)", key):
        return f"{m[1]}.middle.{2 * int(m[2])}.{_resnet(m[3])}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        return f"{m[1]}.middle.1.{m[2]}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
        return f"encoder.downsamples.{m[1]}.{_resnet(m[2])}"
    if m := re.match(r"decoder\.up_blocks\.(\d)\.resnets\.(\d)\.(.*)", key):
        return f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.{_resnet(m[3])}"
    if m := re.match(r"decoder\.up_blocks\.(\d)\.upsamplers\.0\.(.*)", key):
        return f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
    raise AssertionError(f"unmapped key {key}")


@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=8, z_dim=4).eval()


def test_original_layout_pth_loads(tmp_path, small_vae):
    original = {to_original_key(k): v for k, v in small_vae.state_dict().items()}
    assert "decoder.upsamples.4.shortcut.weight" in original and "encoder.middle.1.to_qkv.weight" in original
    torch.save(original, tmp_path / "Wan2.1_VAE.pth")
    loaded = load_vae(tmp_path, config={"base_dim": 8, "z_dim": 4})
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(video).latent_dist.mean, small_vae.encode(video).latent_dist.mean)


def test_diffusers_layout_loads(tmp_path, small_vae):
    small_vae.save_pretrained(tmp_path / "pipe" / "vae")
    loaded = load_vae(tmp_path / "pipe")
    for key, value in small_vae.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_wrong_vae_size_fails_loudly(tmp_path, small_vae):
    original = {to_original_key(k): v for k, v in small_vae.state_dict().items()}
    torch.save(original, tmp_path / "Wan2.1_VAE.pth")
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_vae(tmp_path / "Wan2.1_VAE.pth", config={"base_dim": 16, "z_dim": 4})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vae(tmp_path / "missing.pth")
