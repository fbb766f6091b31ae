"""The synthetic talking world (docs/design.md §5): where the truth is known."""

from .dataset import Sample, load_scene_record, make_sample, write_dataset, write_sample
from .render import mouth_openings, render
from .scene import ACTIONS, Scene, random_scene
from .speech import MODES, Conversation, Voice, conversation, loudness_envelope
from .twins import write_twins

__all__ = [
    "ACTIONS",
    "MODES",
    "Conversation",
    "Sample",
    "Scene",
    "Voice",
    "conversation",
    "load_scene_record",
    "loudness_envelope",
    "make_sample",
    "mouth_openings",
    "random_scene",
    "render",
    "write_dataset",
    "write_sample",
    "write_twins",
]
