"""Does a trained model read the prompt's action words? Its flow-matching loss on the cells a walker
crosses with the prompt as written, with its direction word flipped, and with no prompt.

    python research/scripts/prompt_use.py runs/demo/stage2/final --like research/configs/walks_base.yaml

The sibling of `audio_use.py` for the text: in an image->video clip the first frame shows who
stands where, but not which way the walker will go; only the prompt says that. A model that reads
"walks to the left" predicts the walker's cells better with the prompt as written than with
"left" and "right" swapped (the "direction" gap); both near 0 % and the words are ignored, whatever
text guidance does with them. "Prompt" compares with the empty prompt (what the whole text is
worth), "moves" is how much the predicted velocity changes at all when the direction flips (the
norm of the change over the norm of the prediction). Clips: the cached clips of the stage config
`--like` in which somebody walks (the cache must hold walker cells, layout 3), first frame given,
no audio; fixed noise levels and draws.
"""

from __future__ import annotations

import argparse
import json
import sys  # noqa: E402
import time
from pathlib import Path as _Path  # noqa: E402

import numpy as np
import torch

sys.path.insert(0, str(_Path(__file__).resolve().parents[2] / "benchmarks"))  # demo_eval's helpers
from audio_use import SIGMAS, cached_clips, clip_arguments  # noqa: E402
from demo_eval import flipped  # noqa: E402

from multitalk.checkpoints import load_pipeline
from multitalk.training.trainer import predict_velocity


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    clip_arguments(parser)
    parser.add_argument("--clips", type=int, default=48, help="walking clips to read (default 48)")
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    model = pipe.transformer.eval().float()
    config, _, clips, folders = cached_clips(pipe, args.like, args.cache)
    start = time.perf_counter()
    picks = []
    for i, sample in enumerate(clips.samples):
        prompt = json.loads((folders[sample] / "input.json").read_text())["prompt"]
        if clips.items[i]["movers"].any() and flipped(prompt) != prompt:
            picks.append((i, prompt))
    picks = picks[: args.clips]
    if not picks:
        raise SystemExit(f"no walking clips in {config.data}'s cache: use a cache with walks (layout 3)")
    empty = clips.empty_text
    errors = {sigma: {"written": [], "flipped": [], "empty": [], "moves": []} for sigma in SIGMAS}
    generator = torch.Generator().manual_seed(0)
    for i, prompt in picks:
        batch = clips.stack([i])
        cells = batch["movers"][:, None]  # B, 1, T, h, w
        texts = {
            "written": batch["text"],
            "flipped": pipe.encode_prompt([flipped(prompt)])[0].float()[None],
            "empty": empty[None],
        }
        for sigma in SIGMAS:
            noise = torch.randn(batch["latents"].shape, generator=generator)
            velocity = {}
            for name, text in texts.items():
                _, velocity[name] = predict_velocity(
                    model, {**batch, "text": text}, torch.tensor([sigma]), noise, use_audio=False
                )
                error = (velocity[name] - (noise - batch["latents"])) ** 2
                errors[sigma][name].append(float((error * cells).sum() / (cells.sum() * error.shape[1])))
            change = (velocity["flipped"] - velocity["written"]).norm() / velocity["written"].norm()
            errors[sigma]["moves"].append(float(change))
    print(f"# {args.model}: walker-cell loss on {len(picks)} walking clips, first frame given, no audio\n")
    print(
        "| noise level | prompt as written | direction flipped | no prompt | direction (flipped / written − 1) "
        "| prompt (none / written − 1) | moves |"
    )
    print("|---|---|---|---|---|---|---|")
    for sigma, row in errors.items():
        written, flip, none = (np.mean(row[k]) for k in ("written", "flipped", "empty"))
        print(
            f"| {sigma} | {written:.4f} | {flip:.4f} | {none:.4f} | {flip / written - 1:+.2%} | "
            f"{none / written - 1:+.2%} | {np.mean(row['moves']):.2%} |"
        )
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
