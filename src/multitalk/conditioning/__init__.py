"""Turning user inputs (audio, masks) into what the encoders and the model take."""

from .audio import loudness_normalize

__all__ = ["loudness_normalize"]
