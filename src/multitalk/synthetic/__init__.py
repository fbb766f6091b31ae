"""The synthetic talking world (DESIGN §5): where the truth is known."""

from .speech import MODES, Conversation, Voice, conversation, loudness_envelope

__all__ = ["MODES", "Conversation", "Voice", "conversation", "loudness_envelope"]
