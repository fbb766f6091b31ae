"""LoRA files in the published (ComfyUI/Kijai) and diffusers formats, fused with the official arithmetic."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from multitalk.checkpoints import load_transformer
from multitalk.errors import CheckpointError
from multitalk.lora import fuse_lora, parse_lora_argument
from reference_multitalk import ReferenceMultiTalk
from test_checkpoints_reference import AUDIO_SHAPE, OFFICIAL_CONFIG, run_both, write_official_layout


@pytest.fixture()
def models(tmp_path):
    torch.manual_seed(0)
    ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk(clip_dim=12)).eval()
    write_official_layout(ref, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"_class_name": "WanModel", **OFFICIAL_CONFIG}))
    return ref, load_transformer(tmp_path / "ckpt", config=AUDIO_SHAPE)


def kijai_lora(rank=3, seed=1):
    """Keys as the lightx2v / FusioniX files have them (Wan's original names)."""
    g = torch.Generator().manual_seed(seed)
    dim, ffn = OFFICIAL_CONFIG["dim"], OFFICIAL_CONFIG["ffn_dim"]
    lora = {}
    for name, (out_f, in_f) in {
        "blocks.0.self_attn.q": (dim, dim),
        "blocks.1.cross_attn.k_img": (dim, dim),
        "blocks.0.ffn.0": (ffn, dim),
        "blocks.1.ffn.2": (dim, ffn),
    }.items():
        lora[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(rank, in_f, generator=g) * 0.2
        lora[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_f, rank, generator=g) * 0.2
        lora[f"diffusion_model.{name}.alpha"] = torch.tensor(float(rank))
    lora["diffusion_model.blocks.0.self_attn.q.diff_b"] = torch.randn(dim, generator=g) * 0.1
    lora["diffusion_model.blocks.1.norm3.diff"] = torch.randn(dim, generator=g) * 0.1
    lora["diffusion_model.blocks.0.cross_attn.norm_k_img.diff"] = torch.randn(dim, generator=g) * 0.1
    return lora


def apply_literally(ref, lora, scale):
    """The official arithmetic on the reference's own (original) names."""
    params = dict(ref.named_parameters())
    with torch.no_grad():
        for key, value in lora.items():
            name = key.removeprefix("diffusion_model.")
            if name.endswith(".lora_down.weight"):
                base = name[: -len(".lora_down.weight")]
                up = lora[key.replace("lora_down", "lora_up")]
                params[base + ".weight"] += scale * (up.float() @ value.float())
            elif name.endswith(".diff_b"):
                params[name[: -len(".diff_b")] + ".bias"] += scale * value
            elif name.endswith(".diff"):
                params[name[: -len(".diff")] + ".weight"] += scale * value


def test_kijai_format_matches_the_official_arithmetic(models, tmp_path):
    ref, model = models
    lora = kijai_lora()
    save_file(lora, str(tmp_path / "lora.safetensors"))
    audio_before = {k: v.clone() for k, v in model.state_dict().items() if "audio" in k or "norm_x" in k}
    assert fuse_lora(model, tmp_path / "lora.safetensors", scale=0.7) == 7
    apply_literally(ref, lora, 0.7)
    expected, got = run_both(ref, model, people=2, clip_dim=12)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=5e-5)
    for key, value in audio_before.items():  # the audio layers are not named: untouched
        assert torch.equal(model.state_dict()[key], value)


def test_diffusers_lora_a_b_format_gives_the_same_weights(models, tmp_path):
    _, model = models
    lora = kijai_lora()
    save_file(lora, str(tmp_path / "kijai.safetensors"))
    peft = {}
    for key, value in lora.items():
        if key.endswith(".lora_down.weight") or key.endswith(".lora_up.weight"):
            peft[
                "transformer."
                + key.removeprefix("diffusion_model.").replace("lora_down", "lora_A").replace("lora_up", "lora_B")
            ] = value
        elif not key.endswith(".alpha"):
            peft[key] = value
    save_file(peft, str(tmp_path / "peft.safetensors"))
    other = load_transformer(tmp_path / "ckpt", config=AUDIO_SHAPE)
    fuse_lora(model, tmp_path / "kijai.safetensors")
    fuse_lora(other, tmp_path / "peft.safetensors")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0)


def test_unknown_keys_fail_before_any_weight_changes_and_alpha_warns(models, tmp_path):
    _, model = models
    lora = kijai_lora()
    lora["diffusion_model.blocks.9.self_attn.q.lora_down.weight"] = torch.zeros(3, 24)
    lora["diffusion_model.blocks.9.self_attn.q.lora_up.weight"] = torch.zeros(24, 3)
    save_file(lora, str(tmp_path / "bad.safetensors"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="match no weight"):
        fuse_lora(model, tmp_path / "bad.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    lora = kijai_lora()
    lora["diffusion_model.blocks.0.self_attn.q.alpha"] = torch.tensor(8.0)
    save_file(lora, str(tmp_path / "alpha.safetensors"))
    with pytest.warns(UserWarning, match="alpha 8 differs from rank 3"):
        fuse_lora(model, tmp_path / "alpha.safetensors")


def test_audio_layers_change_when_the_lora_names_them(models, tmp_path):
    _, model = models
    w = model.state_dict()["blocks.0.audio_cross_attn.q_linear.weight"].clone()
    save_file(
        {
            "diffusion_model.blocks.0.audio_cross_attn.q_linear.lora_down.weight": torch.ones(1, 24),
            "diffusion_model.blocks.0.audio_cross_attn.q_linear.lora_up.weight": torch.ones(24, 1),
        },
        str(tmp_path / "audio.safetensors"),
    )
    fuse_lora(model, tmp_path / "audio.safetensors", scale=0.5)
    torch.testing.assert_close(model.state_dict()["blocks.0.audio_cross_attn.q_linear.weight"], w + 0.5)


def test_lora_argument_and_the_cli(tmp_path, monkeypatch):
    assert parse_lora_argument("a/b.safetensors:0.5") == (Path("a/b.safetensors"), 0.5)
    assert parse_lora_argument("C:/x.safetensors")[1] == 1.0
    from multitalk.cli import main
    from multitalk.random_pipeline import random_pipeline

    pipe = random_pipeline("tiny", seed=0)
    pipe.save_pretrained(tmp_path / "model")
    dim = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, dim) * 0.1,
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(dim, 2) * 0.1,
        },
        str(tmp_path / "l.safetensors"),
    )
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    code = main(
        [
            "generate",
            "examples/solo.json",
            "--model",
            str(tmp_path / "model"),
            "--lora",
            f"{tmp_path / 'l.safetensors'}:0.5",
            "--preset",
            "lightx2v",
            "--mode",
            "clip",
            "--num-frames",
            "5",
            "--quiet",
            "-o",
            str(tmp_path / "o.mp4"),
        ]
    )
    assert code == 0 and (tmp_path / "o.mp4").is_file()
    assert (
        main(
            [
                "generate",
                "examples/solo.json",
                "--model",
                str(tmp_path / "model"),
                "--lora",
                str(tmp_path / "missing.safetensors"),
                "-o",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
