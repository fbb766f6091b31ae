from .audio_adapter import AudioAdapter, fold_windows_per_latent_frame, frame_windows
from .audio_attention import BINDING_MODES, AudioCrossAttention
from .lrope import LabelLayout, assign_labels, audio_labels, reference_attention_map, rotate_by_labels
from .presets import PRESETS
from .transformer import MultiTalkTransformer3DModel, MultiTalkTransformerBlock

__all__ = [
    "AudioAdapter",
    "AudioCrossAttention",
    "BINDING_MODES",
    "LabelLayout",
    "MultiTalkTransformer3DModel",
    "MultiTalkTransformerBlock",
    "PRESETS",
    "assign_labels",
    "audio_labels",
    "fold_windows_per_latent_frame",
    "frame_windows",
    "reference_attention_map",
    "rotate_by_labels",
]
