"""The official weights as users download them: the original Wan2.1 layout loads end to end, and each
rule of the official pipeline (resize, CLIP input, colour, noise order, schedule, output) holds."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from multitalk.checkpoints import load_pipeline
from multitalk.cli import _size, main
from multitalk.conditioning.people import nearest_bucket
from multitalk.encoders.wan_original import CLIP_MEAN, CLIP_STD, load_clip_vision, load_umt5
from multitalk.errors import CheckpointError
from multitalk.pipeline import MULTITALK_NEGATIVE_PROMPT, default_shift, shifted_timesteps
from multitalk.processing import clean_prompt, color_correct, resize_image_official, resize_masks_official, to_uint8
from official_folder import write_original_folder, write_wav2vec2
from reference_wan_encoders import WanCLIP, WanT5Encoder

SMALL = dict(size=(64, 64), num_frames=5, num_inference_steps=2, mode="clip")


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    models = write_original_folder(root / "Wan2.1-I2V-14B-480P")
    write_wav2vec2(root / "chinese-wav2vec2-base")
    return root, models


@pytest.fixture(scope="module")
def pipe(original):
    root, _ = original
    pipe = load_pipeline(
        root / "Wan2.1-I2V-14B-480P", audio_encoder=root / "chinese-wav2vec2-base", torch_dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_pipeline_class_loads_the_official_folder_and_presets(original, pipe):
    from multitalk.pipeline import MultiTalkPipeline

    root, _ = original
    again = MultiTalkPipeline.from_wan(root / "Wan2.1-I2V-14B-480P", root / "chinese-wav2vec2-base")
    for name, value in pipe.transformer.state_dict().items():
        assert torch.equal(value, again.transformer.state_dict()[name]), name
    tiny = MultiTalkPipeline.from_preset("tiny", seed=3)
    assert isinstance(tiny, MultiTalkPipeline) and tiny.transformer.config.num_layers >= 1


@pytest.fixture(scope="module")
def request_inputs():
    rng = np.random.default_rng(0)
    image = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    voices = [(0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * f)).astype(np.float32) for f in (180, 260)]
    return image, voices


# ------------------------------------------------------------------------------------- encoders


def test_wan_t5_file_converts_to_umt5_with_equal_outputs(tmp_path):
    torch.manual_seed(0)
    ref = WanT5Encoder(vocab=50, dim=16, dim_attn=24, dim_ffn=20, heads=3, layers=3).eval()
    torch.save(ref.state_dict(), tmp_path / "t5.pth")
    model = load_umt5(tmp_path / "t5.pth")
    assert model.config.num_heads == 3 and model.config.d_kv == 8 and model.config.num_layers == 3
    ids = torch.randint(0, 50, (2, 30))
    mask = torch.ones(2, 30, dtype=torch.long)
    mask[1, 11:] = 0
    with torch.no_grad():
        expected, got = ref(ids, mask), model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1, :11], expected[1, :11], rtol=1e-5, atol=1e-5)


def test_wan_clip_file_converts_to_clip_vision_tokens_before_the_last_block(tmp_path):
    torch.manual_seed(0)
    ref = WanCLIP(image_size=56, patch=14, dim=48, heads=16, layers=3, mlp=40).eval()
    torch.save(ref.state_dict(), tmp_path / "clip.pth")
    model = load_clip_vision(tmp_path / "clip.pth")
    assert model.config.image_size == 56 and model.config.num_attention_heads == 16
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        expected = ref.visual(x)
        got = model(pixel_values=x, output_hidden_states=True).hidden_states[-2]
    assert got.shape == (2, 17, 48)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_load_keeps_what_transformers_keeps_in_float32(tmp_path):
    torch.save(WanT5Encoder().state_dict(), tmp_path / "t5.pth")
    model = load_umt5(tmp_path / "t5.pth", torch_dtype=torch.bfloat16)
    assert model.shared.weight.dtype == torch.bfloat16
    assert model.shared.weight is model.encoder.embed_tokens.weight


def test_a_shared_position_bias_t5_is_refused(tmp_path):
    state = WanT5Encoder().state_dict()
    state = {
        k.replace("blocks.0.pos_embedding", "pos_embedding"): v
        for k, v in state.items()
        if "pos_embedding" not in k or k.startswith("blocks.0.")
    }
    torch.save(state, tmp_path / "t5.pth")
    with pytest.raises(CheckpointError, match="one per layer"):
        load_umt5(tmp_path / "t5.pth")


# ------------------------------------------------------------------------------- the whole folder


def test_original_folder_loads_with_every_component_equal_to_its_file(pipe, original):
    _, models = original
    assert type(pipe.text_encoder).__name__ == "UMT5EncoderModel"
    assert type(pipe.image_encoder).__name__ == "CLIPVisionModel"
    assert pipe.config.negative_prompt == MULTITALK_NEGATIVE_PROMPT
    assert pipe.config.buckets == "multitalk-480"
    ids = pipe.tokenizer(["two people talk"], return_tensors="pt")
    with torch.no_grad():
        expected = models["t5"](ids.input_ids, ids.attention_mask)
        got = pipe.text_encoder(input_ids=ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        x = torch.randn(1, 3, 224, 224)
        torch.testing.assert_close(
            pipe.image_encoder(pixel_values=x, output_hidden_states=True).hidden_states[-2],
            models["clip"].visual(x),
            rtol=1e-5,
            atol=1e-5,
        )
    assert pipe.vae.config.base_dim == 8 and pipe.vae.config.z_dim == 16


def test_original_folder_generates(pipe, request_inputs):
    image, voices = request_inputs
    out = pipe(image, voices, "two people talk", **SMALL)
    assert out.frames.shape == (5, 64, 64, 3)


def test_cli_runs_the_original_folder(original, tmp_path, request_inputs):
    root, _ = original
    image, voices = request_inputs
    from multitalk.media import write_image, write_wav

    write_image(tmp_path / "ref.png", image)
    for i, voice in enumerate(voices):
        write_wav(tmp_path / f"v{i}.wav", voice)
    code = main(
        [
            "generate",
            "--model",
            str(root / "Wan2.1-I2V-14B-480P"),
            "--audio-encoder",
            str(root / "chinese-wav2vec2-base"),
            "--image",
            str(tmp_path / "ref.png"),
            "--audio",
            str(tmp_path / "v0.wav"),
            "--audio",
            str(tmp_path / "v1.wav"),
            "--prompt",
            "two people talk",
            "--size",
            "64x64",
            "--frames",
            "5",
            "--steps",
            "1",
            "--mode",
            "clip",
            "--quiet",
            "-o",
            str(tmp_path / "out.mp4"),
        ]
    )
    assert code == 0 and (tmp_path / "out.mp4").stat().st_size > 0


def test_convert_writes_a_folder_that_loads_in_one_call_and_gives_the_same_frames(
    original, pipe, tmp_path, request_inputs
):
    root, _ = original
    out = tmp_path / "converted"
    command = [
        "convert",
        str(root / "Wan2.1-I2V-14B-480P"),
        str(out),
        "--audio-encoder",
        str(root / "chinese-wav2vec2-base"),
    ]
    assert main([*command, "--dtype", "float32"]) == 0
    again = load_pipeline(out)
    assert again.config.processing == pipe.config.processing and again.config.buckets == "multitalk-480"
    image, voices = request_inputs
    assert np.array_equal(
        again(image, voices, "two people talk", **SMALL).frames, pipe(image, voices, "two people talk", **SMALL).frames
    )
    assert main(command) == 2  # never over an existing folder


def _copy_without_audio(original, target):
    root, _ = original
    shutil.copytree(root / "Wan2.1-I2V-14B-480P", target)
    (target / "multitalk.safetensors").rename(target.parent / "audio.safetensors")
    return target


def test_audio_weights_given_separately_or_named_infinitetalk(original, tmp_path):
    root, _ = original
    folder = _copy_without_audio(original, tmp_path / "wan")
    w2v = root / "chinese-wav2vec2-base"
    with pytest.raises(CheckpointError, match="multitalk-weights"):  # the index names a file that is not there
        load_pipeline(folder, audio_encoder=w2v)
    pipe = load_pipeline(folder, audio_encoder=w2v, multitalk_weights=tmp_path / "audio.safetensors")
    assert pipe.transformer.audio_proj is not None

    # the original Wan index (no audio keys) + infinitetalk.safetensors linked into the folder
    index = json.loads((folder / "diffusion_pytorch_model.safetensors.index.json").read_text())
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != "multitalk.safetensors"}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "infinitetalk.safetensors").symlink_to(tmp_path / "audio.safetensors")
    assert load_pipeline(folder, audio_encoder=w2v).transformer is not None


def test_missing_audio_weights_and_tokenizer_are_clear_errors(original, tmp_path):
    root, _ = original
    folder = _copy_without_audio(original, tmp_path / "wan")
    (folder / "diffusion_pytorch_model.safetensors.index.json").unlink()
    with pytest.raises(CheckpointError, match="no MultiTalk audio weights"):
        load_pipeline(folder, audio_encoder=root / "chinese-wav2vec2-base")
    shutil.rmtree(folder / "google")
    with pytest.raises(CheckpointError, match="umt5-xxl"):
        load_pipeline(
            folder, audio_encoder=root / "chinese-wav2vec2-base", multitalk_weights=tmp_path / "audio.safetensors"
        )


# --------------------------------------------------------------------------- the official rules


def test_image_resize_is_pil_bilinear_to_the_rounded_up_size_then_centre_crop():
    rng = np.random.default_rng(1)
    image = (rng.random((40, 53, 3)) * 255).astype(np.uint8)
    target = (32, 48)
    scale = max(32 / 40, 48 / 53)
    size = (math.ceil(scale * 40), math.ceil(scale * 53))
    assert size == (37, 48)  # 36.2 rounded up, not to the nearest
    resized = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
    top = int(round((size[0] - 32) / 2))  # round(2.5) == 2: halves go to the even side
    assert top == 2
    expected = (torch.from_numpy(resized[top : top + 32].copy()).permute(2, 0, 1) / 255 - 0.5) * 2
    got = resize_image_official(image, target)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)

    masks = torch.zeros(2, 40, 53)
    masks[0, 5:20, 3:30] = 1
    masks[1] = 1 - masks[0]
    nearest = F.interpolate(masks[None], size=size, mode="nearest")[0][:, top : top + 32]
    assert torch.equal(resize_masks_official(masks, target), nearest)


def test_bucket_is_the_table_key_nearest_the_image_ratio():
    # 0.52 lies nearer the key 0.50 (448x896) than the key 0.67; the 720 table has its own sizes
    assert nearest_bucket(520, 1000, "multitalk-480") == (448, 896)
    assert nearest_bucket(1000, 1000, "720") == (960, 960)
    # 1.9295 is nearer the key 1.86 than 2.00, though nearer 896/448 = 2 than 832/448 = 1.857: the key decides
    assert nearest_bucket(19295, 10000, "multitalk-480") == (832, 448)


def test_clip_sees_the_frame_squashed_to_its_square(pipe, monkeypatch):
    frame = torch.rand(3, 40, 72) * 2 - 1
    seen = {}
    original_forward = pipe.image_encoder.forward

    def spy(pixel_values=None, **kwargs):
        seen["pixels"] = pixel_values
        return original_forward(pixel_values=pixel_values, **kwargs)

    monkeypatch.setattr(pipe.image_encoder, "forward", spy)
    pipe.encode_image(frame)
    x = F.interpolate(frame[None], size=(224, 224), mode="bicubic", align_corners=False) * 0.5 + 0.5
    expected = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(seen["pixels"], expected, rtol=0, atol=1e-6)


def _official_colour(source, reference, strength):
    """The official rule, re-stated: per frame, Lab mean/std (population) transfer, clip, blend."""
    from skimage import color

    src = np.clip((source.permute(1, 2, 3, 0).numpy() + 1.0) / 2.0, 0, 1).astype(np.float64)
    ref = color.rgb2lab(np.clip((reference.permute(1, 2, 0).numpy() + 1.0) / 2.0, 0, 1).astype(np.float64))
    frames = []
    for frame in src:
        lab = color.rgb2lab(frame)
        new = lab.copy()
        for c in range(3):
            spread = ref[..., c].std() / lab[..., c].std()
            new[..., c] = (lab[..., c] - lab[..., c].mean()) * spread + ref[..., c].mean()
        frames.append((1 - strength) * frame + strength * np.clip(color.lab2rgb(new), 0, 1))
    return torch.from_numpy(np.stack(frames) * 2 - 1).permute(3, 0, 1, 2).float()


def test_lab_colour_correction_matches_the_rule():
    video = torch.rand(3, 2, 8, 8) * 2 - 1
    reference = torch.rand(3, 8, 8) * 1.5 - 0.9
    for strength in (1.0, 0.4):
        torch.testing.assert_close(
            color_correct(video, reference, strength), _official_colour(video, reference, strength)
        )
    assert color_correct(video, reference, 0.0) is video
    with pytest.raises(ValueError):
        color_correct(video, reference, 1.5)


def test_colour_correction_applies_to_the_first_clip_too(pipe, request_inputs, monkeypatch):
    image, voices = request_inputs
    decoded = {}
    original_decode = pipe.vae_decode

    def spy(latents):
        decoded["video"] = original_decode(latents)
        return decoded["video"]

    monkeypatch.setattr(pipe, "vae_decode", spy)
    out = pipe(image, voices, "two people talk", **SMALL)  # clip mode: one clip, the first
    reference = resize_image_official(image, (64, 64))
    expected = to_uint8(_official_colour(decoded["video"][0].cpu(), reference, 1.0))
    assert np.abs(out.frames.astype(int) - expected.astype(int)).max() <= 1
    plain = pipe(image, voices, "two people talk", color_correction=0.0, **SMALL).frames
    assert np.array_equal(plain, to_uint8(decoded["video"][0].cpu()))


def test_output_is_truncated_not_rounded():
    video = torch.tensor([-1.0, 0.999 * 2 - 1, 1.0, 1.5, -2.0]).view(1, 5, 1, 1).expand(3, 5, 1, 1)
    assert to_uint8(video)[:, 0, 0, 0].tolist() == [0, 254, 255, 255, 0]  # 0.999*255 = 254.7 -> 254
    assert to_uint8(video, "round")[1, 0, 0, 0] == 255


def test_schedule_shift_defaults_7_at_480p_and_11_at_720p():
    assert default_shift(640, 640) == 7 and default_shift(448, 896) == 7
    assert default_shift(960, 960) == 11 and default_shift(704, 1280) == 11
    t = shifted_timesteps(4, 7.0)
    s = torch.tensor(np.linspace(1000, 1, 4, dtype=np.float32).tolist() + [0.0]) / 1000
    assert torch.equal(t, 7.0 * s / (1 + 6.0 * s) * 1000) and t[-1] == 0 and t.dtype == torch.float32


def test_noise_draw_order_and_timesteps_as_the_official_sampler(pipe, request_inputs, monkeypatch):
    """Per clip randn(16, T, h, w) first; after the first clip also randn_like(motion latents) before
    step 0 and after every step; all from one CPU generator seeded once; the model sees the shifted
    official timesteps."""
    image, voices = request_inputs
    draws, seen = [], []
    real_randn = torch.randn

    def randn(*size, generator=None, **kwargs):
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        out = real_randn(*size, generator=generator, **kwargs)
        if generator is not None:
            draws.append((shape, out.clone()))
        return out

    monkeypatch.setattr(torch, "randn", randn)
    real_forward = pipe.transformer.forward

    def forward(*args, **kwargs):
        seen.append((kwargs["timestep"].item(), kwargs["hidden_states"][:, :16].clone()))
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", forward)
    steps = 2
    voices_long = [np.tile(v, 1)[: int(16000 * 9 / 25)] for v in voices]  # 9 frames: 5-frame clips, 1 motion
    pipe(
        image,
        voices_long,
        "two people talk",
        size=(64, 64),
        num_frames=5,
        motion_frames=1,
        num_inference_steps=steps,
        mode="streaming",
        generator=torch.Generator().manual_seed(7),
    )
    latent = (16, 2, 8, 8)
    motion = (16, 1, 8, 8)
    clips = 2  # 9 frames = 5 + 4
    expected_shapes = [latent] + ([latent] + [motion] * (steps + 1)) * (clips - 1)
    assert [tuple(s[-4:]) for s, _ in draws] == expected_shapes
    g = torch.Generator().manual_seed(7)
    assert torch.equal(draws[0][1].reshape(latent), torch.randn(latent, generator=g))
    # the first call of the first clip sees the pure noise at t = 1000
    assert seen[0][0] == 1000.0 and torch.equal(seen[0][1][0], draws[0][1].reshape(latent))
    timesteps = shifted_timesteps(steps, 7.0)
    assert [t for t, _ in seen[: 3 * steps : 3]] == timesteps[:-1].tolist()


def test_english_negative_prompt_by_default_and_prompts_cleaned(pipe, request_inputs, monkeypatch):
    image, voices = request_inputs
    seen = []
    real = pipe.encode_prompt

    def spy(prompts):
        seen.append(list(prompts))
        return real(prompts)

    monkeypatch.setattr(pipe, "encode_prompt", spy)
    pipe(image, voices, "two people  talk", **SMALL)
    assert seen[0] == ["two people  talk", MULTITALK_NEGATIVE_PROMPT]
    assert MULTITALK_NEGATIVE_PROMPT.startswith("bright tones, overexposed")
    assert clean_prompt("  two&amp;amp;people \n talk ") == "two&people talk"


def test_cli_size_and_device_flags():
    assert _size("480") == "480" and _size("832x480") == (480, 832) and _size(None) is None
    from multitalk.errors import MultiTalkInputError

    with pytest.raises(MultiTalkInputError, match="WxH"):
        _size("big")
