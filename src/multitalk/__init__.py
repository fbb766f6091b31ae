"""multitalk: one reference image + one audio track per person + a prompt -> a talking video."""

__version__ = "0.1.0"

import logging

from .errors import CheckpointError, MultiTalkError, MultiTalkInputError  # noqa: E402

# diffusers imports torchao whenever it is installed; on a machine without its GPU kernels torchao logs a
# warning per missing library (and torch one per torchao enum) at every start: not actionable, so quiet
for _noisy in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

# Heavy classes load on first use, so `multitalk --help` stays fast. diffusers' pipeline loader
# also finds saved components here by name (model_index.json says ["multitalk", "<class>"]).
_LAZY = {
    "MultiTalkPipeline": "multitalk.pipeline",
    "MultiTalkTransformer3DModel": "multitalk.models.transformer",
    "MelAudioEncoder": "multitalk.encoders.audio",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'multitalk' has no attribute {name!r}")


__all__ = ["MultiTalkError", "MultiTalkInputError", "CheckpointError", "__version__", *_LAZY]
