"""The MultiTalk video transformer: diffusers' Wan2.1 I2V DiT plus audio layers.

Everything of the base model comes from diffusers (patch embedding, 3-D RoPE, condition
embedder, attention, FFN, output head); what is added here is what MultiTalk adds, plus one
thing of ours (the RoPE's time axis squeezed for clips longer than the training ones, off for
the official weights: ``time_rope.py``):

* per block, ``norm_x`` and an audio cross-attention after the text/image cross-attention;
* a self-attention processor that also reports how much each video token attends to each
  person's region of the reference (first latent) frame — the input of Label-RoPE;
* a model-level audio adapter (``audio_proj``) turning per-video-frame audio windows into
  per-latent-frame audio tokens.

Key names follow the official MultiTalk weights for the audio parts (``blocks.N.norm_x``,
``blocks.N.audio_cross_attn.{q_linear,kv_linear,proj}``, ``audio_proj.*``) and diffusers'
Wan names for the rest, so either layout loads with a plain rename.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers' pipeline loader looks ModelMixin up in the module a saved component comes from
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanAttnProcessor,
    WanTransformer3DModel,
    WanTransformerBlock,
    _get_qkv_projections,
)
from torch import nn

from .audio_adapter import AudioAdapter
from .audio_attention import BINDING_MODES, AudioCrossAttention
from .context_parallel import Shard, gather_reference_keys, shard_of
from .lrope import LabelLayout, assign_labels, audio_labels, masks_to_tokens, reference_attention_map, rotate_pairs
from .presets import PRESETS
from .time_rope import TimeSqueezedRotaryPosEmbed


def is_audio_key(key: str) -> bool:
    """Whether a parameter belongs to MultiTalk's audio layers (the ``multitalk.safetensors`` part)."""
    return key.startswith("audio_proj.") or ".norm_x." in key or ".audio_cross_attn." in key


class MultiTalkSelfAttnProcessor(WanAttnProcessor):
    """Wan self-attention that can also return the reference-frame attention map.

    The map must be computed from the very queries and keys the self-attention uses (after
    qk-norm and 3-D RoPE), so it lives here rather than in a second pass over the block.
    """

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        reference: "AudioContext | None" = None,
    ):
        if encoder_hidden_states is not None:
            raise ValueError("MultiTalkSelfAttnProcessor is for self-attention only")
        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))  # B, S, H, D
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            cos, sin = rotary_emb[0][..., 0::2], rotary_emb[1][..., 1::2]
            query = rotate_pairs(query, cos, sin).type_as(query)
            key = rotate_pairs(key, cos, sin).type_as(key)

        out = dispatch_attention_fn(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )
        out = out.flatten(2, 3).type_as(query)
        out = attn.to_out[1](attn.to_out[0](out))
        if reference is None or not reference.needs_reference_map:
            return out, None
        with torch.no_grad():
            ref_map = reference_attention_map(
                query,
                gather_reference_keys(key, reference.tokens_per_frame, reference.shard),
                reference.token_masks,
                reference.tokens_per_frame,
                reference.head_chunks,
                backend=self._attention_backend,
            )
        return out, ref_map


@dataclass
class AudioContext:
    """What every block needs to bind audio streams to people; built once per forward."""

    num_people: int
    binding: str
    layout: LabelLayout
    tokens_per_frame: int
    head_chunks: int = 2
    token_masks: torch.Tensor | None = None  # B|1, people+1, tokens_per_frame
    audio_token_labels: torch.Tensor | None = None  # people * context_tokens
    token_person: torch.Tensor | None = None  # B|1, tokens_per_frame (-1 = background)
    shard: Shard | None = None  # this process's slice of the tokens under context parallelism

    @property
    def needs_reference_map(self) -> bool:
        return self.num_people > 1 and self.binding == "lrope"


class MultiTalkTransformerBlock(WanTransformerBlock):
    """Wan block + ``norm_x`` + per-frame audio cross-attention (plain residual)."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        added_kv_proj_dim: int | None = None,
        audio_dim: int = 768,
        norm_input_visual: bool = True,
    ):
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        self.attn1.set_processor(MultiTalkSelfAttnProcessor())
        self.norm_x = FP32LayerNorm(dim, eps, elementwise_affine=True) if norm_input_visual else nn.Identity()
        self.audio_cross_attn = AudioCrossAttention(dim, audio_dim, num_heads)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        audio_tokens: torch.Tensor | None = None,
        audio_context: AudioContext | None = None,
    ) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)

        # 1. Self-attention (also yields the reference map for Label-RoPE)
        norm_hidden_states = (self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa).type_as(hidden_states)
        attn_output, ref_map = self.attn1(norm_hidden_states, None, None, rotary_emb, reference=audio_context)
        hidden_states = (hidden_states.float() + attn_output * gate_msa).type_as(hidden_states)

        # 2. Text (+ image) cross-attention
        norm_hidden_states = self.norm2(hidden_states.float()).type_as(hidden_states)
        hidden_states = hidden_states + self.attn2(norm_hidden_states, encoder_hidden_states, None, None)

        # 3. Audio cross-attention, per latent frame
        if audio_tokens is not None:
            token_labels = None
            if ref_map is not None:
                token_labels = assign_labels(ref_map, audio_context.layout, audio_context.shard)
            hidden_states = hidden_states + self.audio_cross_attn(
                self.norm_x(hidden_states.float()).type_as(hidden_states),
                audio_tokens,
                num_people=audio_context.num_people,
                binding=audio_context.binding,
                token_labels=token_labels,
                audio_token_labels=audio_context.audio_token_labels,
                token_person=audio_context.token_person,
                token_offset=audio_context.shard.offset if audio_context.shard else 0,
                tokens_per_frame=audio_context.tokens_per_frame,
            )

        # 4. Feed-forward
        norm_hidden_states = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(
            hidden_states
        )
        ff_output = self.ffn(norm_hidden_states)
        return (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)


# diffusers' cache hooks (FirstBlockCache, MagCache, ...) find blocks by their exact class.
TransformerBlockRegistry.register(
    model_class=MultiTalkTransformerBlock,
    metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
)


class MultiTalkTransformer3DModel(WanTransformer3DModel):
    """Wan2.1 I2V DiT with MultiTalk's audio adapter, audio cross-attention and Label-RoPE.

    Inputs of ``forward`` (shapes with ``B`` batch, ``T`` latent frames, ``P`` people):

    * ``hidden_states`` ``[B, in_channels, T, H, W]``: noisy latents, mask and conditioning
      latents already concatenated on channels (16 + 4 + 16 for Wan I2V);
    * ``timestep`` ``[B]``; ``encoder_hidden_states`` ``[B, L <= text_len, text_dim]``
      (zero-padded to ``text_len`` here, as the reference does);
    * ``audio`` ``[B, P, 4*(T-1)+1, window, audio_layers, audio_channels]``: each video
      frame's window of audio features (see ``audio_adapter.frame_windows``);
    * ``reference_masks`` ``[B or 1, P+1, h, w]``: person masks then background, any
      resolution (nearest-resized to the token grid); needed when ``P > 1`` for ``lrope``
      and ``split`` bindings;
    * ``encoder_hidden_states_image`` ``[B, 257, image_dim]`` when the CLIP branch exists.
    """

    _no_split_modules = ["MultiTalkTransformerBlock"]
    # Context parallelism (diffusers' enable_parallelism): the video tokens and their RoPE split over the
    # processes at the first block, gathered after the output projection. Wan's plan also splits a per-token
    # timestep (Wan2.2), which MultiTalk never has; the audio path's own needs are in context_parallel.py.
    _cp_plan = {
        "rope": {
            0: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
            1: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
        },
        "blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }
    _repeated_blocks = ["MultiTalkTransformerBlock"]
    _keep_in_fp32_modules = WanTransformer3DModel._keep_in_fp32_modules + ["norm_x"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 36,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = 1280,
        added_kv_proj_dim: int | None = 5120,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        text_len: int = 512,
        audio_window: int = 5,
        vae_scale: int = 4,
        audio_layers: int = 12,
        audio_channels: int = 768,
        audio_intermediate_dim: int = 512,
        audio_output_dim: int = 768,
        audio_context_tokens: int = 32,
        norm_input_visual: bool = True,
        norm_output_audio: bool = True,
        label_width: float = 4.0,
        label_spacing: float = 20.0,
        binding: str = "lrope",
        reference_head_chunks: int = 2,
        trained_frames: int | None = None,
    ) -> None:
        if binding not in BINDING_MODES:
            raise ValueError(f"unknown binding {binding!r}; choose one of {BINDING_MODES}")
        if image_dim is not None and text_len != 512:
            # diffusers' Wan attention takes the image tokens as "all but the last 512".
            raise ValueError("with the CLIP image branch, text_len must be 512 (diffusers' Wan attention assumes it)")
        # The parent builds every part but the blocks; ours replace them, so ask it for none
        # (building 40 full-size Wan blocks only to drop them would double peak memory).
        super().__init__(
            patch_size=patch_size,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=0,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim if image_dim is not None else None,
            rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        self.register_to_config(num_layers=num_layers, added_kv_proj_dim=added_kv_proj_dim)
        self.rope = TimeSqueezedRotaryPosEmbed(attention_head_dim, patch_size, rope_max_seq_len)
        self.set_trained_frames(trained_frames)
        inner_dim = num_attention_heads * attention_head_dim
        self.blocks = nn.ModuleList(
            [
                MultiTalkTransformerBlock(
                    inner_dim,
                    ffn_dim,
                    num_attention_heads,
                    qk_norm,
                    cross_attn_norm,
                    eps,
                    added_kv_proj_dim if image_dim is not None else None,
                    audio_dim=audio_output_dim,
                    norm_input_visual=norm_input_visual,
                )
                for _ in range(num_layers)
            ]
        )
        self.audio_proj = AudioAdapter(
            window=audio_window,
            vae_scale=vae_scale,
            layers=audio_layers,
            channels=audio_channels,
            intermediate_dim=audio_intermediate_dim,
            output_dim=audio_output_dim,
            context_tokens=audio_context_tokens,
            norm_output=norm_output_audio,
        )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MultiTalkTransformer3DModel":
        """A randomly initialised model of a named shape (see ``models/presets.py``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def set_trained_frames(self, frames: int | None) -> None:
        """The longest clip (video frames) these weights were trained on: longer clips get their temporal
        positions squeezed into its span (``time_rope.py``). None keeps Wan's positions at any length, as the
        official weights (trained on 81-frame clips and sampled at 81) expect."""
        if frames is not None and (frames < 1 or (frames - 1) % self.config.vae_scale):
            raise ValueError(f"trained_frames must be of the form {self.config.vae_scale}k+1, got {frames}")
        self.rope.trained_latent_frames = None if frames is None else (frames - 1) // self.config.vae_scale + 1
        self.register_to_config(trained_frames=frames)

    @property
    def label_layout(self) -> LabelLayout:
        return LabelLayout(self.config.label_width, self.config.label_spacing)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, P, frames, window, L, C]`` -> ``[B, T, P * context_tokens, audio_output_dim]``."""
        batch, people = audio.shape[:2]
        tokens = self.audio_proj(audio.flatten(0, 1))  # (B P), T, N, C
        tokens = tokens.unflatten(0, (batch, people)).transpose(1, 2)  # B, T, P, N, C
        return tokens.flatten(2, 3)

    def _audio_context(self, people: int, binding: str, reference_masks, grid, device) -> AudioContext:
        context = AudioContext(
            num_people=people,
            binding=binding,
            layout=self.label_layout,
            tokens_per_frame=grid[0] * grid[1],
            head_chunks=self.config.reference_head_chunks,
        )
        if people == 1 or binding in ("concat", "sum"):
            return context
        if reference_masks is None:
            raise ValueError(f"{people} people with binding={binding!r} need reference_masks (people + background)")
        if reference_masks.shape[-3] != people + 1:
            raise ValueError(
                f"reference_masks has {reference_masks.shape[-3]} classes; expected {people + 1} "
                f"({people} people + background)"
            )
        token_masks = masks_to_tokens(reference_masks.to(device), grid)  # B|1, P+1, h*w
        if binding == "lrope":
            context.token_masks = token_masks
            context.audio_token_labels = audio_labels(
                people, self.config.audio_context_tokens, context.layout, device=device
            )
        else:  # split: a token belongs to the first person whose mask covers it
            person_masks = token_masks[:, :people]
            first = person_masks.float().argmax(1)
            context.token_person = torch.where(person_masks.any(1), first, torch.full_like(first, -1))
        return context

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        audio: torch.Tensor | None = None,
        encoder_hidden_states_image: torch.Tensor | None = None,
        reference_masks: torch.Tensor | None = None,
        binding: str | None = None,
        return_dict: bool = True,
    ):
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        grid = (frames // p_t, height // p_h, width // p_w)
        binding = binding or self.config.binding

        text_len = self.config.text_len
        if encoder_hidden_states.shape[1] > text_len:
            raise ValueError(f"text has {encoder_hidden_states.shape[1]} tokens; the model takes at most {text_len}")
        encoder_hidden_states = F.pad(encoder_hidden_states, (0, 0, 0, text_len - encoder_hidden_states.shape[1]))

        audio_tokens, audio_context = None, None
        if audio is not None:
            expected = self.config.vae_scale * (grid[0] - 1) + 1
            if audio.ndim != 6 or audio.shape[2] != expected:
                raise ValueError(
                    f"audio must be [B, people, {expected}, window, layers, channels] for {grid[0]} latent frames; "
                    f"got {tuple(audio.shape)}"
                )
            audio_tokens = self.embed_audio(audio.to(hidden_states.dtype))
            audio_context = self._audio_context(
                audio.shape[1], binding, reference_masks, grid[1:], hidden_states.device
            )
            audio_context.shard = shard_of(self._parallel_config, grid[0] * grid[1] * grid[2])

        rotary_emb = self.rope(hidden_states)
        hidden_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()  # B, T*h*w, dim

        temb, timestep_proj, encoder_hidden_states, image_tokens = self.condition_embedder(
            timestep, encoder_hidden_states, encoder_hidden_states_image
        )
        timestep_proj = timestep_proj.unflatten(1, (6, -1))  # B, 6, dim
        if image_tokens is not None:
            encoder_hidden_states = torch.cat([image_tokens, encoder_hidden_states], dim=1)

        block_args = (encoder_hidden_states, timestep_proj, rotary_emb, audio_tokens, audio_context)
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, hidden_states, *block_args)
            else:
                hidden_states = block(hidden_states, *block_args)

        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)

        # B, T*h*w, (p_t p_h p_w C) -> B, C, T*p_t, h*p_h, w*p_w
        hidden_states = hidden_states.reshape(batch, *grid, p_t, p_h, p_w, -1)
        output = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    def trainable_audio_parameters(self):
        """The parameters MultiTalk trains: audio adapter, ``norm_x`` and audio cross-attention."""
        for name, param in self.named_parameters():
            if is_audio_key(name):
                yield name, param
