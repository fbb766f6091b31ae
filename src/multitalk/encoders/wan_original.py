"""The original Wan release's encoder files -> transformers models.

The original Wan2.1 folder ships its text encoder (``models_t5_umt5-xxl-enc-bf16.pth``) and
image encoder (``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``) as plain PyTorch
state dicts of Wan's own modules. Both are standard architectures, so rather than carry Wan's
module code we rename their tensors into transformers' ``UMT5EncoderModel`` and
``CLIPVisionModel`` and let transformers run them:

* umT5 encoder: gated-GELU (tanh) feed-forward, a relative position bias per layer, unscaled
  attention, RMS norms without bias. Wan's ``blocks.N.attn.{q,k,v,o}``, ``blocks.N.ffn.gate.0``
  (the GELU branch), ``ffn.fc1`` (the linear branch), ``ffn.fc2``, ``norm1``/``norm2`` and
  ``blocks.N.pos_embedding.embedding`` ([buckets, heads]) are transformers' ``SelfAttention``,
  ``wi_0``, ``wi_1``, ``wo``, the two ``layer_norm``s and ``relative_attention_bias``.
* CLIP ViT-H/14 (the ``visual.`` half of the file; the XLM-R text tower is never used): Wan's
  ``to_qkv`` is q, k and v stacked on the output axis; ``mlp.0``/``mlp.2`` are ``fc1``/``fc2``;
  ``pre_norm`` and ``post_norm`` are ``pre_layrnorm`` and ``post_layernorm``; the activation
  is exact GELU. Wan reads the tokens after all blocks but the last, without the post-norm,
  which is ``hidden_states[-2]`` of transformers' model.

Shapes are read from the tensors themselves, so the tiny files of the tests load by the same
code as the real ones. The one thing a CLIP state dict does not tell is its head count:
ViT-H/14 has 16 heads, which is what is assumed unless ``heads`` is given.

Tensors are streamed: the model is built on the meta device and each tensor is cast and
placed on its own, so peak memory stays near the loaded model's size.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import CheckpointError

T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
T5_TOKENIZER = "google/umt5-xxl"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
CLIP_HEADS = 16  # ViT-H/14; not recoverable from the weights
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
T5_MAX_DISTANCE = 128


def read_pth(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict, memory-mapped (nothing is read until a tensor is used)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; the original Wan folder holds {path.name}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a pickle that is not a plain state dict, or a corrupt file
        raise CheckpointError(f"{path} is not a readable state dict: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


# ----------------------------------------------------------------------------------- umT5


def umt5_config(state: dict[str, torch.Tensor]):
    """transformers ``UMT5Config`` of a Wan T5 encoder state dict."""
    from transformers import UMT5Config

    try:
        vocab, dim = state["token_embedding.weight"].shape
        dim_attn = state["blocks.0.attn.q.weight"].shape[0]
        dim_ffn = state["blocks.0.ffn.fc1.weight"].shape[0]
        buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape
    except KeyError as exc:
        if "pos_embedding.embedding.weight" in state:
            raise CheckpointError(
                "this T5 shares one position bias across layers (T5, not umT5); Wan's "
                "models_t5_umt5-xxl-enc-bf16.pth has one per layer"
            ) from None
        raise CheckpointError(f"the text encoder file lacks {exc.args[0]}; is it Wan's umT5 encoder?") from None
    layers = 1 + max(int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    return UMT5Config(
        vocab_size=vocab,
        d_model=dim,
        d_kv=dim_attn // heads,
        d_ff=dim_ffn,
        num_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=T5_MAX_DISTANCE,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        is_encoder_decoder=False,
        use_cache=False,
        tie_word_embeddings=False,
    )


def umt5_key(key: str) -> str:
    """Wan T5 encoder key -> ``UMT5EncoderModel`` key."""
    if key == "token_embedding.weight":
        return "shared.weight"
    if key == "norm.weight":
        return "encoder.final_layer_norm.weight"
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
    if m is None:
        raise CheckpointError(f"unexpected key {key} in the T5 encoder file")
    block, rest = m[1], m[2]
    names = {
        "norm1.weight": "layer.0.layer_norm.weight",
        "attn.q.weight": "layer.0.SelfAttention.q.weight",
        "attn.k.weight": "layer.0.SelfAttention.k.weight",
        "attn.v.weight": "layer.0.SelfAttention.v.weight",
        "attn.o.weight": "layer.0.SelfAttention.o.weight",
        "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
        "norm2.weight": "layer.1.layer_norm.weight",
        "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
        "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
        "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
    }
    if rest not in names:
        raise CheckpointError(f"unexpected key {key} in the T5 encoder file")
    return f"encoder.block.{block}.{names[rest]}"


def load_umt5(path: str | Path, torch_dtype: torch.dtype | None = None, device: str | torch.device = "cpu"):
    """``models_t5_umt5-xxl-enc-bf16.pth`` -> ``UMT5EncoderModel`` (eval mode)."""
    from transformers import UMT5EncoderModel

    state = read_pth(path)
    config = umt5_config(state)
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    converted = {umt5_key(k): v for k, v in state.items()}
    converted["encoder.embed_tokens.weight"] = converted["shared.weight"]  # tied in transformers
    assign(model, converted, torch_dtype, device, what=f"{path} (umT5 encoder)")
    model.encoder.embed_tokens = model.shared
    return model.eval()


# ----------------------------------------------------------------------------------- CLIP


def clip_vision_config(state: dict[str, torch.Tensor], heads: int | None = None):
    """transformers ``CLIPVisionConfig`` of the ``visual.`` part of a Wan open-clip state dict."""
    from transformers import CLIPVisionConfig

    try:
        dim, _, patch, _ = state["visual.patch_embedding.weight"].shape
        positions = state["visual.pos_embedding"].shape[1]
        mlp = state["visual.transformer.0.mlp.0.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"the CLIP file lacks {exc.args[0]}; is it Wan's open-clip ViT-H/14?") from None
    grid = round((positions - 1) ** 0.5)
    if grid * grid != positions - 1:
        raise CheckpointError(f"the CLIP position table has {positions} rows, not a square grid plus a class token")
    layers = 1 + max(int(m[1]) for k in state if (m := re.match(r"visual\.transformer\.(\d+)\.", k)))
    heads = heads or (CLIP_HEADS if dim % CLIP_HEADS == 0 else max(1, dim // 80))
    if dim % heads:
        raise CheckpointError(f"CLIP width {dim} does not split into {heads} heads")
    return CLIPVisionConfig(
        hidden_size=dim,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        projection_dim=dim,
    )


def clip_vision_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``visual.`` tensors of a Wan open-clip state dict as ``CLIPVisionModel`` keys."""
    out: dict[str, torch.Tensor] = {}
    root = "vision_model."
    for key, value in state.items():
        if not key.startswith("visual."):
            continue  # the XLM-R text tower, log_scale
        rest = key[len("visual.") :]
        if rest == "patch_embedding.weight":
            out[root + "embeddings.patch_embedding.weight"] = value
        elif rest == "cls_embedding":
            out[root + "embeddings.class_embedding"] = value.reshape(-1)
        elif rest == "pos_embedding":
            out[root + "embeddings.position_embedding.weight"] = value[0]
        elif rest.startswith("pre_norm."):
            out[root + "pre_layrnorm." + rest.split(".", 1)[1]] = value
        elif rest.startswith("post_norm."):
            out[root + "post_layernorm." + rest.split(".", 1)[1]] = value
        elif rest == "head":
            continue  # the projection to the joint embedding; Wan uses the tokens before it
        elif m := re.fullmatch(r"transformer\.(\d+)\.(.+)", rest):
            layer = f"{root}encoder.layers.{m[1]}."
            part = m[2]
            if part.startswith("attn.to_qkv."):
                kind = part.rsplit(".", 1)[1]
                q, k, v = value.chunk(3, dim=0)
                for name, piece in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                    out[f"{layer}self_attn.{name}.{kind}"] = piece
            else:
                names = {
                    "attn.proj.": "self_attn.out_proj.",
                    "norm1.": "layer_norm1.",
                    "norm2.": "layer_norm2.",
                    "mlp.0.": "mlp.fc1.",
                    "mlp.2.": "mlp.fc2.",
                }
                prefix = next((p for p in names if part.startswith(p)), None)
                if prefix is None:
                    raise CheckpointError(f"unexpected key {key} in the CLIP file")
                out[layer + names[prefix] + part[len(prefix) :]] = value
        else:
            raise CheckpointError(f"unexpected key {key} in the CLIP file")
    return out


def load_clip_vision(
    path: str | Path,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    heads: int | None = None,
):
    """``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`` -> ``CLIPVisionModel`` (eval mode)."""
    from transformers import CLIPVisionModel

    state = read_pth(path)
    config = clip_vision_config(state, heads)
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    converted = clip_vision_state(state)
    if not any(k.startswith("vision_model.") for k in model.state_dict()):  # transformers 5 drops the prefix
        converted = {k.removeprefix("vision_model."): v for k, v in converted.items()}
    assign(
        model,
        converted,
        torch_dtype,
        device,
        what=f"{path} (CLIP visual tower)",
        skip=("vision_model.embeddings.position_ids", "embeddings.position_ids"),
    )
    embeddings = getattr(model, "vision_model", model).embeddings
    if getattr(embeddings, "position_ids", None) is not None and embeddings.position_ids.is_meta:
        positions = (config.image_size // config.patch_size) ** 2 + 1
        embeddings.register_buffer("position_ids", torch.arange(positions, device=device)[None], persistent=False)
    return model.eval()


def clip_pixels(frame: torch.Tensor, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """One ``[3, H, W]`` frame in [-1, 1] -> CLIP input ``[1, 3, size, size]``, as Wan feeds it: bicubic
    straight to the square (aspect not kept, nothing cropped), back to [0, 1], CLIP mean/std."""
    x = torch.nn.functional.interpolate(frame[None].float(), size=(size, size), mode="bicubic", align_corners=False)
    x = x.mul(0.5).add(0.5)
    mean = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------------- shared


def assign(
    model: torch.nn.Module, state: dict[str, torch.Tensor], torch_dtype, device, what: str, skip: tuple[str, ...] = ()
) -> None:
    """Put every tensor of ``state`` into the meta-initialised ``model``, one at a time, after one check
    that names every missing, unexpected and misshapen key."""
    from ..loading import check_keys, place_tensor

    expected = {k: v for k, v in model.state_dict().items() if k not in skip}
    check_keys(expected, state, f"{what} does not convert cleanly")
    for key, value in state.items():
        place_tensor(model, key, value, torch_dtype, device)
