"""Official-layout checkpoints load, and our model reproduces the reference forward pass."""

import json

import pytest
import torch
from safetensors.torch import save_file

from multitalk.checkpoints import is_audio_key, load_transformer
from multitalk.errors import CheckpointError
from multitalk.models import MultiTalkTransformer3DModel
from reference_multitalk import ReferenceMultiTalk

# The reference's shape in the official config's own field names (+ our audio widths, which
# the official code hard-codes to wav2vec2-base's 12 x 768).
OFFICIAL_CONFIG = {
    "model_type": "i2v",
    "dim": 24,
    "ffn_dim": 32,
    "freq_dim": 16,
    "num_heads": 2,
    "num_layers": 2,
    "text_dim": 16,
    "text_len": 512,
    "in_dim": 36,
    "out_dim": 16,
    "eps": 1e-6,
    "audio_window": 5,
    "intermediate_dim": 16,
    "output_dim": 16,
    "context_tokens": 4,
    "norm_input_visual": True,
    "norm_output_audio": True,
    "vae_scale": 4,
}
AUDIO_SHAPE = {"audio_layers": 2, "audio_channels": 8}


def write_official_layout(model: torch.nn.Module, folder, shards: int = 2):
    """Wan original-layout shards + index json + multitalk.safetensors, as the official release."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    audio = {k: v for k, v in state.items() if is_audio_key(k)}
    base = [k for k in state if not is_audio_key(k)]
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in base[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    save_file(audio, str(folder / "multitalk.safetensors"))
    weight_map.update({k: "multitalk.safetensors" for k in audio})
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return state


def make_inputs(people, clip_dim=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    T, H, W = 3, 8, 8
    x = torch.randn(36, T, H, W, generator=g)
    text = torch.randn(7, 16, generator=g)
    audio = torch.randn(people, 4 * (T - 1) + 1, 5, 2, 8, generator=g)
    clip = torch.randn(1, 257, clip_dim, generator=g) if clip_dim else None
    masks = torch.zeros(people + 1, H, W)
    masks[0, 1:7, 0:3] = 1
    if people > 1:
        masks[1, 1:7, 5:8] = 1
    masks[-1] = 1 - masks[:-1].amax(0)
    return x, text, audio, clip, masks


def run_both(ref, model, people, clip_dim=None):
    """The reference's and our model's outputs on the same inputs (shared with benchmarks/reference_match.py)."""
    x, text, audio, clip, masks = make_inputs(people, clip_dim)
    t = torch.tensor([731.0])
    with torch.no_grad():
        expected = ref(x, t, text, audio, clip_fea=clip, masks=masks)
        got = model(
            x[None], t, text[None], audio=audio[None], encoder_hidden_states_image=clip, reference_masks=masks
        ).sample[0]
    return expected, got


@pytest.mark.parametrize("people,clip_dim", [(1, None), (2, None), (2, 12)])
def test_official_layout_loads_and_matches_reference(tmp_path, people, clip_dim):
    torch.manual_seed(0)
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk(clip_dim=clip_dim)).eval()
    write_official_layout(ref, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"_class_name": "WanModel", **OFFICIAL_CONFIG}))

    model = load_transformer(tmp_path / "ckpt", config=AUDIO_SHAPE)
    assert model.config.image_dim == clip_dim

    expected, got = run_both(ref, model, people, clip_dim)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=5e-5)


def test_two_people_labels_change_the_output(tmp_path):
    """The reference comparison above is not vacuous: L-RoPE labels matter for 2 people."""
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk()).eval()
    write_official_layout(ref, tmp_path / "ckpt")
    model = load_transformer(tmp_path / "ckpt", config={**OFFICIAL_CONFIG, **AUDIO_SHAPE})
    x, text, audio, _, masks = make_inputs(2)
    t = torch.tensor([500.0])
    with torch.no_grad():
        lrope = model(x[None], t, text[None], audio=audio[None], reference_masks=masks).sample
        concat = model(x[None], t, text[None], audio=audio[None], binding="concat").sample
    assert (lrope - concat).abs().max() > 1e-3


def test_single_safetensors_file_and_index_path(tmp_path):
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk()).eval()
    write_official_layout(ref, tmp_path / "ckpt")
    index = tmp_path / "ckpt" / "diffusion_pytorch_model.safetensors.index.json"
    model = load_transformer(index, config={**OFFICIAL_CONFIG, **AUDIO_SHAPE})
    assert model.config.num_layers == 2 and model.config.attention_head_dim == 12


def test_missing_key_fails_loudly(tmp_path):
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk()).eval()
    state = write_official_layout(ref, tmp_path / "ckpt", shards=1)
    audio = {k: v for k, v in state.items() if is_audio_key(k) and "blocks.1.audio_cross_attn.proj" not in k}
    save_file(audio, str(tmp_path / "ckpt" / "multitalk.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing 2 keys: blocks\.1\.audio_cross_attn\.proj\.bias"):
        load_transformer(tmp_path / "ckpt", config={**OFFICIAL_CONFIG, **AUDIO_SHAPE})


def test_unexpected_and_misshapen_keys_fail_loudly(tmp_path):
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk()).eval()
    state = write_official_layout(ref, tmp_path / "ckpt", shards=1)
    audio = {k: v for k, v in state.items() if is_audio_key(k)}
    audio["blocks.0.audio_cross_attn.extra.weight"] = torch.zeros(2)
    audio["blocks.0.norm_x.weight"] = torch.zeros(5)
    save_file(audio, str(tmp_path / "ckpt" / "multitalk.safetensors"))
    with pytest.raises(CheckpointError) as info:
        load_transformer(tmp_path / "ckpt", config={**OFFICIAL_CONFIG, **AUDIO_SHAPE})
    assert "unexpected 1 keys: blocks.0.audio_cross_attn.extra.weight" in str(info.value)
    assert "blocks.0.norm_x.weight (5,) != (24,)" in str(info.value)


def test_missing_audio_weights_and_unknown_config_fields(tmp_path):
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk()).eval()
    write_official_layout(ref, tmp_path / "ckpt", shards=1)
    with pytest.raises(CheckpointError, match="unknown config fields"):
        load_transformer(tmp_path / "ckpt", config={"dimension": 24})
    (tmp_path / "ckpt" / "multitalk.safetensors").unlink()
    index = tmp_path / "ckpt" / "diffusion_pytorch_model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"] = {k: v for k, v in data["weight_map"].items() if v != "multitalk.safetensors"}
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="no MultiTalk audio weights"):
        load_transformer(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_transformer(tmp_path / "nowhere")


def test_diffusers_layout_plus_multitalk_file(tmp_path):
    """(b): a diffusers WanTransformer3DModel folder beside multitalk.safetensors."""
    torch.manual_seed(0)
    ours = MultiTalkTransformer3DModel.from_preset("tiny").eval()
    state = ours.state_dict()
    base_folder = tmp_path / "pipe" / "transformer"
    base_folder.mkdir(parents=True)
    save_file(
        {k: v for k, v in state.items() if not is_audio_key(k)},
        str(base_folder / "diffusion_pytorch_model.safetensors"),
    )
    save_file({k: v for k, v in state.items() if is_audio_key(k)}, str(tmp_path / "pipe" / "multitalk.safetensors"))
    loaded = load_transformer(tmp_path / "pipe", config={"num_heads": 2, "dim": 24, **AUDIO_SHAPE})
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_our_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MultiTalkTransformer3DModel.from_preset("tiny", binding="sum").eval()
    model.save_pretrained(tmp_path / "ours")
    loaded = load_transformer(tmp_path / "ours")
    assert loaded.config.binding == "sum"
    x, text, audio, _, masks = make_inputs(2)
    with torch.no_grad():
        a = model(x[None], torch.tensor([10.0]), text[None], audio=audio[None], reference_masks=masks).sample
        b = loaded(x[None], torch.tensor([10.0]), text[None], audio=audio[None], reference_masks=masks).sample
    for (name, w), v in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(w, v), name  # the weights come back bit for bit
    # the forward only closely: memory-mapped weights can take other SIMD paths on some CPUs (AMD EPYC: 6e-7 off)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_our_folder_with_a_missing_key_fails_loudly(tmp_path):
    model = MultiTalkTransformer3DModel.from_preset("tiny")
    model.save_pretrained(tmp_path / "ours")
    weights = tmp_path / "ours" / "diffusion_pytorch_model.safetensors"
    state = {k: v for k, v in model.state_dict().items() if k != "audio_proj.proj2.bias"}
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match=r"missing 1 keys: audio_proj\.proj2\.bias"):
        load_transformer(tmp_path / "ours")


def test_bfloat16_load_keeps_fp32_modules(tmp_path):
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk()).eval()
    write_official_layout(ref, tmp_path / "ckpt")
    model = load_transformer(tmp_path / "ckpt", config={**OFFICIAL_CONFIG, **AUDIO_SHAPE}, torch_dtype=torch.bfloat16)
    assert model.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert model.blocks[0].audio_cross_attn.kv_linear.weight.dtype == torch.bfloat16
    assert model.blocks[0].norm_x.weight.dtype == torch.float32
    assert model.blocks[0].scale_shift_table.dtype == torch.float32
    x, text, audio, _, masks = make_inputs(2)
    with torch.no_grad():
        out = model(
            x[None].bfloat16(),
            torch.tensor([500.0]),
            text[None].bfloat16(),
            audio=audio[None].bfloat16(),
            reference_masks=masks,
        ).sample[0]
        expected = ref(x, torch.tensor([500.0]), text, audio, masks=masks)
    assert out.dtype == torch.bfloat16
    assert (out.float() - expected).abs().max() < 0.02 * expected.abs().max()
