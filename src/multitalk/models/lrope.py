"""Label-RoPE: the piece of MultiTalk that binds each audio stream to one person.

Every video token gets a scalar *label* from how strongly it attends to each person's
region of the reference frame; every audio token gets its person's label. A 1-D rotary
embedding of those labels on the audio cross-attention's Q (video) and K (audio) makes a
token prefer the audio whose label is close to its own, because RoPE scores depend only
on the label difference.

Label layout for N people (generalising the official two-person layout):

* person ``i`` (0-based) owns the range ``[i * spacing, i * spacing + width]``;
* its audio tokens get the centre of that range, ``i * spacing + width / 2``;
* background tokens get ``background = width + (spacing - width) / 2``, i.e. the middle
  of the gap between person 0 and person 1 — outside every range.

With the official ``width=4, spacing=20`` this gives exactly person 1 ``[0, 4]``, person 2
``[20, 24]``, background ``12`` and audio labels ``2`` and ``22`` (class_range 24,
class_interval 4 in the original code); a third person gets ``[40, 44]`` / ``42``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .context_parallel import global_min_max


@dataclass(frozen=True)
class LabelLayout:
    """Where each person's label range sits on the 1-D RoPE axis."""

    width: float = 4.0
    spacing: float = 20.0

    def __post_init__(self):
        if not 0 < self.width < self.spacing:
            raise ValueError(f"label width must be in (0, spacing); got width={self.width}, spacing={self.spacing}")

    def person_range(self, person: int) -> tuple[float, float]:
        low = person * self.spacing
        return low, low + self.width

    def audio_label(self, person: int) -> float:
        low, high = self.person_range(person)
        return (low + high) / 2

    @property
    def background(self) -> float:
        return self.width + (self.spacing - self.width) / 2


def masks_to_tokens(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Person/background masks at any resolution -> ``[B, classes, h*w]`` 0/1 token masks.

    Nearest-neighbour resize to the patch grid and ``> 0``, as the reference does.
    ``masks``: ``[classes, H, W]`` or ``[B, classes, H, W]``.
    """
    if masks.ndim == 3:
        masks = masks.unsqueeze(0)
    tokens = F.interpolate(masks.float(), size=grid, mode="nearest") > 0  # B, classes, h, w
    return tokens.flatten(2)


def reference_attention_map(
    query: torch.Tensor,
    key: torch.Tensor,
    token_masks: torch.Tensor,
    tokens_per_frame: int,
    head_chunks: int = 2,
    backend=None,
) -> torch.Tensor:
    """How much each video token attends to each person's region of the reference frame.

    ``query``/``key``: ``[B, S, H, D]`` after qk-norm and 3-D RoPE (the self-attention's own).
    ``token_masks``: ``[B or 1, classes, tokens_per_frame]`` (persons..., background).
    Returns ``[B, classes, S]``: per class, the softmax attention over the first latent frame's
    tokens averaged over the class's mask, averaged over heads (the reference averages within two
    head chunks, then over the chunks: with chunks of equal size, the same mean).

    Averaging ``softmax(q·kᵀ/√d)`` over a mask is ``softmax(q·kᵀ/√d) @ M`` with ``M`` the masks divided
    by their sizes: attention with ``M`` as the values. So it runs as one attention call through
    diffusers' dispatch (flash, cuDNN, sage... apply; ``backend`` as the self-attention's), and no
    ``S × tokens_per_frame`` score tensor is ever made here. The values are zero-padded to the head
    width, which every backend accepts.
    """
    from diffusers.models.attention_dispatch import dispatch_attention_fn

    batch, _, heads, dim = query.shape
    masks = token_masks.to(query.dtype)  # B|1, C, R
    classes = masks.shape[1]
    mask_sizes = masks.sum(-1, keepdim=True).clamp_min(1)  # empty mask -> map 0, not NaN
    values = (masks / mask_sizes).transpose(1, 2).expand(batch, -1, -1)  # B, R, C
    width = max(dim, classes)
    values = torch.nn.functional.pad(values, (0, width - classes))[:, :, None].expand(-1, -1, heads, -1)
    ref_key = key[:, :tokens_per_frame]
    if width != dim:  # more classes than the head is wide: the math path takes any value width
        backend = None
    out = dispatch_attention_fn(query, ref_key, values.contiguous(), backend=backend)  # B, S, H, width
    return out[..., :classes].float().mean(2).transpose(1, 2).to(query.dtype)  # B, C, S


def assign_labels(reference_map: torch.Tensor, layout: LabelLayout, shard=None) -> torch.Tensor:
    """``[B, people + 1, S]`` reference map -> ``[B, S]`` token labels.

    Each person's map is min-max normalised over all tokens into its label range; a token
    takes the value of the class (person or background) with the largest raw map. Under context
    parallelism (``shard``) the min and max are over every process's tokens.
    """
    people = reference_map.shape[1] - 1
    person_maps = reference_map[:, :people]  # B, P, S
    low, high = global_min_max(person_maps.amin(-1, keepdim=True), person_maps.amax(-1, keepdim=True), shard)
    ranges = torch.tensor(
        [layout.person_range(i) for i in range(people)], dtype=reference_map.dtype, device=reference_map.device
    )  # P, 2
    new_low, new_high = ranges[:, 0, None], ranges[:, 1, None]  # P, 1
    scaled = (person_maps - low) / (high - low + 1e-8) * (new_high - new_low) + new_low  # B, P, S
    background = torch.full_like(reference_map[:, :1], layout.background)
    candidates = torch.cat([scaled, background], dim=1)  # B, P+1, S
    winner = reference_map.argmax(dim=1, keepdim=True)  # B, 1, S
    return candidates.gather(1, winner).squeeze(1)


def audio_labels(people: int, tokens_per_person: int, layout: LabelLayout, device=None) -> torch.Tensor:
    """Labels of one latent frame's audio tokens (people stacked on the token axis)."""
    per_person = torch.tensor([layout.audio_label(i) for i in range(people)], device=device)
    return per_person.repeat_interleave(tokens_per_person)


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs: ``(x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos)``.

    ``cos``/``sin`` hold one angle per pair (``[..., D/2]``, broadcastable to ``x``'s pairs).
    """
    x0, x1 = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def rotate_by_labels(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1-D RoPE with (fractional) positions ``labels``.

    ``x``: ``[..., S, H, D]``; ``labels``: broadcastable to ``[..., S]``. Base 10000 over the
    head dim, one frequency per adjacent channel pair; computed in float32, cast back.
    """
    head_dim = x.shape[-1]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=x.device).float() / head_dim))
    angles = (labels.float()[..., None] * inv_freq)[..., None, :]  # ..., S, 1, D/2
    return rotate_pairs(x.float(), angles.cos(), angles.sin()).type_as(x)
