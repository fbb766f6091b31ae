"""multitalk: one reference image + one audio track per person + a prompt -> a talking video."""

__version__ = "0.1.0"

from .errors import CheckpointError, MultiTalkError, MultiTalkInputError  # noqa: E402

__all__ = ["MultiTalkError", "MultiTalkInputError", "CheckpointError", "__version__"]
