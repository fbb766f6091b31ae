"""How closely our transformer reproduces the literal model of the official forward pass.

Writes the reference model's random weights in the official sharded layout, loads them with
``multitalk.checkpoints.load_transformer`` and prints the largest output difference, float32,
CPU. (``tests/test_checkpoints_reference.py`` asserts the same at rtol 1e-5 / atol 5e-5.)

    python research/scripts/reference_match.py
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from multitalk.checkpoints import load_transformer  # noqa: E402
from reference_multitalk import ReferenceMultiTalk  # noqa: E402
from test_checkpoints_reference import AUDIO_SHAPE, OFFICIAL_CONFIG, run_both, write_official_layout  # noqa: E402


def main():
    print("| people | CLIP branch | max abs diff | max abs output |")
    print("|---|---|---|---|")
    for people, clip_dim in [(1, None), (2, None), (2, 12)]:
        with tempfile.TemporaryDirectory() as folder:
            ref = ReferenceMultiTalk.randomize(ReferenceMultiTalk(clip_dim=clip_dim)).eval()
            write_official_layout(ref, Path(folder) / "ckpt")
            model = load_transformer(Path(folder) / "ckpt", config={**OFFICIAL_CONFIG, **AUDIO_SHAPE})
        expected, got = run_both(ref, model, people, clip_dim)
        diff = (got - expected).abs().max().item()
        print(f"| {people} | {'yes' if clip_dim else 'no'} | {diff:.1e} | {expected.abs().max().item():.2f} |")


if __name__ == "__main__":
    main()
