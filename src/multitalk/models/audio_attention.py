"""Per-latent-frame audio cross-attention, with the ways of binding several voices to people.

Video tokens of latent frame ``t`` attend only to the audio tokens of latent frame ``t``:
frames are folded into the batch, so one ``scaled_dot_product_attention`` call covers all.
The binding modes (``binding``) are the paper's comparison:

* ``lrope`` (default): all streams, Q/K rotated by Label-RoPE labels (see ``lrope.py``);
* ``concat``: all streams, no labels — the model cannot tell whose voice is whose;
* ``sum``: each stream attended separately and the outputs summed;
* ``split``: a token attends only to the stream of the person whose mask it falls in
  (fixed by the reference masks; background tokens get no audio).

One stream (a single person, or the zero "no audio" stream of guidance) is plain attention
in every mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .lrope import rotate_by_labels

BINDING_MODES = ("lrope", "concat", "sum", "split")


class AudioCrossAttention(nn.Module):
    """``audio_cross_attn`` of the reference: ``q_linear``, ``kv_linear`` (k then v), ``proj``."""

    def __init__(self, dim: int, audio_dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(audio_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        audio_tokens: torch.Tensor,
        num_people: int,
        binding: str = "lrope",
        token_labels: torch.Tensor | None = None,
        audio_token_labels: torch.Tensor | None = None,
        token_person: torch.Tensor | None = None,
        token_offset: int = 0,
        tokens_per_frame: int | None = None,
    ) -> torch.Tensor:
        """Attend video tokens to their own latent frame's audio tokens.

        ``hidden_states``: ``[B, T*S, dim]`` (T latent frames of S tokens), or, under context
        parallelism, this process's contiguous slice of them starting at global token ``token_offset``
        (``tokens_per_frame`` = S then says where frames begin).
        ``audio_tokens``: ``[B, T, people*N, audio_dim]`` (always every frame's).
        ``token_labels``: ``[B, tokens]`` and ``audio_token_labels``: ``[people*N]`` for ``lrope``.
        ``token_person``: ``[B, S]`` person index per token (-1 background) for ``split``.
        """
        batch, frames = audio_tokens.shape[:2]
        heads, head_dim = self.num_heads, self.head_dim
        query = self.q_linear(hidden_states).unflatten(-1, (heads, head_dim))  # B, tokens, H, D
        key, value = self.kv_linear(audio_tokens).unflatten(-1, (2, heads, head_dim)).unbind(-3)  # B, T, A, H, D

        if num_people > 1 and binding == "lrope":
            query = rotate_by_labels(query, token_labels)
            key = rotate_by_labels(key, audio_token_labels)

        local = hidden_states.shape[1]
        if tokens_per_frame is None or (token_offset == 0 and local == frames * tokens_per_frame):
            return self.proj(self._frame_attention(query, key, value, num_people, binding, token_person))
        # a slice of the sequence that may start and end mid-frame: pad it out to whole frames, attend frame
        # by frame, cut the slice back out (each query row's attention is its own, so the padding changes nothing)
        first, last = token_offset // tokens_per_frame, (token_offset + local - 1) // tokens_per_frame
        start = token_offset - first * tokens_per_frame
        padded = query.new_zeros(batch, (last - first + 1) * tokens_per_frame, heads, head_dim)
        padded[:, start : start + local] = query
        window = slice(first, last + 1)
        out = self._frame_attention(padded, key[:, window], value[:, window], num_people, binding, token_person)
        return self.proj(out[:, start : start + local])

    def _frame_attention(self, query, key, value, num_people, binding, token_person) -> torch.Tensor:
        """``query`` ``[B, T*S, H, D]`` of whole frames, ``key``/``value`` ``[B, T, A, H, D]`` -> ``[B, T*S, dim]``
        before the output projection."""
        batch, frames = key.shape[:2]

        # Fold latent frames into the batch: (B T), H, S|A, D
        query = query.unflatten(1, (frames, -1)).flatten(0, 1).transpose(1, 2)
        key = key.flatten(0, 1).transpose(1, 2)
        value = value.flatten(0, 1).transpose(1, 2)

        if num_people == 1 or binding in ("lrope", "concat"):
            out = F.scaled_dot_product_attention(query, key, value)
        elif binding == "sum":
            # Each stream on its own: streams become one more batch axis, outputs summed.
            key = key.unflatten(2, (num_people, -1)).transpose(1, 2).flatten(0, 1)
            value = value.unflatten(2, (num_people, -1)).transpose(1, 2).flatten(0, 1)
            query = query.repeat_interleave(num_people, dim=0)
            out = F.scaled_dot_product_attention(query, key, value)
            out = out.unflatten(0, (-1, num_people)).sum(1)
        elif binding == "split":
            out = self._split_attention(query, key, value, num_people, token_person, frames)
        else:
            raise ValueError(f"unknown binding {binding!r}; choose one of {BINDING_MODES}")

        out = out.transpose(1, 2).flatten(2)  # (B T), S, dim
        return out.unflatten(0, (batch, frames)).flatten(1, 2)

    @staticmethod
    def _split_attention(query, key, value, num_people, token_person, frames):
        if token_person is None:
            raise ValueError("binding='split' needs the reference masks (token_person)")
        tokens_per_stream = key.shape[2] // num_people
        stream_person = torch.arange(num_people, device=key.device).repeat_interleave(tokens_per_stream)
        person = token_person.repeat_interleave(frames, dim=0)  # (B T), S
        in_person = person >= 0
        # Background rows may see everything (their output is zeroed below) so no row is empty.
        allowed = (person[:, :, None] == stream_person[None, None, :]) | ~in_person[:, :, None]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed[:, None])
        return out * in_person[:, None, :, None].to(out.dtype)
