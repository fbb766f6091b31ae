"""Encoders behind one small interface each: ``encoder(inputs) -> tensor``."""

from .audio import MelAudioEncoder, Wav2Vec2AudioEncoder, video_frame_count
from .image import CLIPImageEncoder
from .text import TextEncoder, minilm_path

__all__ = [
    "CLIPImageEncoder",
    "MelAudioEncoder",
    "TextEncoder",
    "Wav2Vec2AudioEncoder",
    "minilm_path",
    "video_frame_count",
]
