"""Write twin scenes that differ only in which way the person walks: can the text path carry direction at all?

    python benchmarks/walk_pairs.py --out data/walk_pairs --pairs 8   # 1-s one-person scenes
    python benchmarks/walk_pairs.py --out data/walk_pairs_2_3 --pairs 60 --people 2-3
    multitalk train configs/experiments/walk_pairs.yaml
    python benchmarks/prompt_use.py runs/experiments/walk_pairs/final --like configs/experiments/walk_pairs.yaml

Each pair is one silent scene in which one person walks (the others stand), written twice: as drawn, and with the walk
mirrored (the same distance the other way; the prompt says "left" instead of "right"). Both start
from the same first frame, so in an image->video clip of either the prompt's direction word is the
only thing that tells the two apart. A model trained (even overfitted) on such pairs that still
shows no "direction" gap in `prompt_use.py` cannot read the word at all — a fault or a limit of
the text path, not of the data.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from multitalk.synthetic import make_sample, random_scene, write_sample
from multitalk.synthetic.scene import describe

FIRST_SEED = 30_000  # apart from the demo's data (0-399), the walking sets (10000-10299, 20000-20299) and held-out


def mirrored(scene):
    """The scene with its walk going the same distance the other way (and the prompt saying so)."""
    (walk,) = scene.actions
    twin = dataclasses.replace(scene, actions=[dataclasses.replace(walk, dx=-walk.dx)])
    twin.prompt = describe(twin)
    return twin


def fits(scene) -> bool:
    """Both ways stay inside the frame (the scene generator only checks the way it drew)."""
    (walk,) = scene.actions
    person = scene.people[walk.person]
    margin = person.radius * scene.height / scene.width + 0.02
    return walk.kind == "walk" and margin <= person.x - abs(walk.dx) and person.x + abs(walk.dx) <= 1 - margin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="scene length (1 s: the walk fits inside the first 17-frame clip)"
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--people", default="1", help="people per scene, N or a range LOW-HIGH (one of them walks)")
    args = parser.parse_args()
    low, _, high = args.people.partition("-")
    low, high = int(low), int(high or low)
    seed, written = FIRST_SEED, 0
    while written < args.pairs:
        people = low + seed % (high - low + 1)
        scene = random_scene(seed, people, args.seconds, "silent", args.size, args.size, action="walk")
        seed += 1
        if not fits(scene):
            continue
        for k, version in enumerate((scene, mirrored(scene))):
            folder = args.out / f"{scene.seed:06d}_{k}"
            if not (folder / "scene.json").is_file():
                write_sample(make_sample(version), folder)
        written += 1
    print(f"wrote {written} pairs to {args.out} (seeds {FIRST_SEED}-{seed - 1}, some skipped: no room both ways)")


if __name__ == "__main__":
    main()
