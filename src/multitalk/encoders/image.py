"""Image encoder: the reference frame -> CLIP tokens for the decoupled image cross-attention.

Wan uses the penultimate hidden state of a CLIP ViT-H/14 (257 tokens x 1280); any
transformers ``CLIPVisionModel`` folder works the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch


class CLIPImageEncoder:
    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor
        self.dim = model.config.hidden_size

    @classmethod
    def from_pretrained(cls, path: str | Path, device="cpu", torch_dtype=None):
        from transformers import CLIPImageProcessor, CLIPVisionModel

        model = CLIPVisionModel.from_pretrained(path, torch_dtype=torch_dtype).to(device)
        return cls(model, CLIPImageProcessor.from_pretrained(path))

    @torch.no_grad()
    def __call__(self, images) -> torch.Tensor:
        """PIL images or uint8 arrays -> ``[B, tokens, hidden]`` (penultimate layer)."""
        device = next(self.model.parameters()).device
        pixels = self.processor(images=images, return_tensors="pt").pixel_values.to(device, self.model.dtype)
        return self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
