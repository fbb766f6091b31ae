"""Scoring videos against the synthetic world's ground truth (no pretrained network needed)."""

from .sync import SyncReport, evaluate_sync, measure_mouths, pearson

__all__ = ["SyncReport", "evaluate_sync", "measure_mouths", "pearson"]
