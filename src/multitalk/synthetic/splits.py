"""Which scene seeds train and which are held out, defined once.

Every synthetic scene is drawn from its seed, so keeping evaluation honest is keeping seed ranges
apart: training data comes from below ``HELD_OUT_START``, evaluation scenes (the report card,
the VAE's reconstructions) from it upward. ``multitalk synth`` refuses to write held-out seeds.
"""

from __future__ import annotations

HELD_OUT_START = 900_000  # the report card's and the VAE evaluation's scenes start here
TRAINING_RANGES = {  # what the demo recipe draws (named for the data folders of `make train-demo`)
    "demo": (0, 400),
    "walks": (10_000, 10_300),
    "walks_2s": (20_000, 20_300),
    "twins": (30_000, 31_000),
}


def check_training_seeds(first: int, count: int) -> None:
    """Raise ``ValueError`` when ``first .. first + count - 1`` reaches the held-out seeds."""
    if first < 0 or first + count > HELD_OUT_START:
        raise ValueError(
            f"seeds {first}..{first + count - 1} reach the held-out range (from {HELD_OUT_START}, "
            "kept for evaluation); choose seeds below it"
        )
