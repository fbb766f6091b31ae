"""LoRA files as MultiTalk users run them, fused into the transformer's weights.

The few-step LoRAs (lightx2v's CFG-step-distill, FusioniX) are published in the ComfyUI/Kijai
key format on Wan's original names: ``diffusion_model.blocks.N.self_attn.q.lora_down.weight`` /
``.lora_up.weight`` pairs, ``.diff_b`` bias deltas and ``.diff`` deltas of norms and other weights.
diffusers/peft files (``lora_A``/``lora_B``, diffusers or Wan names) load too.

The arithmetic is the official MultiTalk loader's, so results match it: ``W += scale · up @ down``
computed in float32 and cast to the weight's dtype, ``diff``/``diff_b`` added times ``scale``,
``.alpha`` entries ignored (with a warning when alpha ≠ rank, since other tools scale by
alpha/rank). diffusers' own Wan LoRA converter scales by alpha/rank and refuses keys it does not
know (MultiTalk's audio layers), so it is not used. Audio layers change only if the file names them.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from safetensors import safe_open

from .errors import CheckpointError
from .models.transformer import is_audio_key

PREFIXES = ("diffusion_model.", "model.diffusion_model.", "transformer.", "base_model.model.")
PRESETS = {  # the sampling the LoRA was distilled for (what their authors run)
    "lightx2v": {"num_inference_steps": 4, "text_guidance": 1.0, "audio_guidance": 2.0, "shift": 2.0},
    "fusionix": {"num_inference_steps": 8, "text_guidance": 1.0, "audio_guidance": 2.0, "shift": 2.0},
}


def parse_lora_argument(text: str) -> tuple[Path, float]:
    """``FILE`` or ``FILE:SCALE`` (the scale defaults to 1.0)."""
    path, sep, scale = text.rpartition(":")
    if sep and path and re.fullmatch(r"-?\d+(\.\d*)?|-?\.\d+", scale):
        return Path(path), float(scale)
    return Path(text), 1.0


def _our_name(name: str, ours: set[str]) -> str | None:
    """A LoRA target (Wan original or diffusers name, ``.weight``/``.bias``) -> our parameter name."""
    if name in ours:
        return name
    if is_audio_key(name):  # our audio layers carry the official names: not there, not anywhere
        return None
    renamed = next(iter(convert_wan_transformer_to_diffusers({name: None})))
    return renamed if renamed in ours else None


def read_lora(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"LoRA file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors' own error for a file that is not safetensors
        raise CheckpointError(f"{path} is not a readable safetensors LoRA file ({exc})") from None


def lora_deltas(state: dict[str, torch.Tensor], ours: set[str], source: str = "LoRA") -> dict[str, tuple]:
    """Our parameter name -> ("pair", up, down) or ("diff", delta); every key accounted for."""
    stripped = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        stripped[key] = value
    deltas, unknown, alphas = {}, [], {}
    for key, value in stripped.items():
        if key.endswith(".alpha"):
            alphas[key[: -len(".alpha")]] = float(value)
            continue
        for down_tag, up_tag in ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight")):
            if key.endswith(down_tag):
                base = key[: -len(down_tag)]
                up = stripped.get(base + up_tag)
                target = _our_name(base + ".weight", ours)
                if up is None or target is None:
                    unknown.append(key)
                else:
                    deltas[target] = ("pair", up, value, base)
                break
            if key.endswith(up_tag):
                break  # taken with its down half
        else:
            if key.endswith(".diff_b") or key.endswith(".diff"):
                base = key.rsplit(".", 1)[0]
                target = _our_name(base + (".bias" if key.endswith(".diff_b") else ".weight"), ours)
                if target is None:
                    unknown.append(key)
                else:
                    deltas[target] = ("diff", value)
            else:
                unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f", ... ({len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise CheckpointError(f"{source}: {len(unknown)} keys match no weight of this model: {shown}")
    for target, entry in deltas.items():
        if entry[0] == "pair" and entry[3] in alphas and alphas[entry[3]] != entry[2].shape[0]:
            warnings.warn(
                f"{source}: alpha {alphas[entry[3]]:g} differs from rank {entry[2].shape[0]} for "
                f"{entry[3]}; applied as the official loader does, without alpha/rank",
                stacklevel=3,
            )
            break
    return deltas


@torch.no_grad()
def fuse_lora(transformer: torch.nn.Module, path: str | Path, scale: float = 1.0) -> int:
    """Add a LoRA file's deltas to ``transformer``'s weights (the official arithmetic); returns how
    many weights changed. Checked in full before any weight changes."""
    params = dict(transformer.named_parameters())
    deltas = lora_deltas(read_lora(path), set(params), source=str(path))
    for target, entry in deltas.items():
        param = params[target]
        if entry[0] == "pair":
            given = (entry[1].shape[0], entry[2].shape[1])
            if param.ndim != 2 or given != tuple(param.shape):
                raise CheckpointError(f"{path}: {target} is {tuple(param.shape)}, the LoRA gives {given}")
    for target, entry in deltas.items():
        param = params[target]
        # as the official loader: the file's tensors in the weights' dtype first, the product in float32
        if entry[0] == "pair":
            up, down = (t.to(param.device, param.dtype).float() for t in entry[1:3])
            delta = torch.matmul(up, down)
        else:
            delta = entry[1].to(param.device, param.dtype).float().reshape(param.shape)
        param.add_((delta * scale).to(param.dtype))
    return len(deltas)
