"""Twin scenes that differ only in which way one person walks: data for teaching the prompt's direction word.

Each pair is one silent scene in which one person walks (the others stand), written twice: as drawn,
and with the walk mirrored (the same distance the other way; the prompt says "left" instead of
"right"). Both start from the same first frame, so in an image->video clip of either the prompt's
direction word is the only thing that tells the two apart.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm.auto import tqdm

from ..constants import REGIONS_FILE
from .dataset import make_sample, write_regions, write_sample
from .scene import Scene, describe, random_scene

FIRST_SEED = 30_000  # apart from the demo's data (0-399), the walking sets (10000-10299, 20000-20299) and held-out


def mirrored(scene: Scene) -> Scene:
    """The scene with its walk going the same distance the other way (and the prompt saying so)."""
    (walk,) = scene.actions
    twin = dataclasses.replace(scene, actions=[dataclasses.replace(walk, dx=-walk.dx)])
    twin.prompt = describe(twin)
    return twin


def fits(scene: Scene) -> bool:
    """Both ways stay inside the frame (the scene generator only checks the way it drew)."""
    (walk,) = scene.actions
    person = scene.people[walk.person]
    margin = person.radius * scene.height / scene.width + 0.02
    return walk.kind == "walk" and margin <= person.x - abs(walk.dx) and person.x + abs(walk.dx) <= 1 - margin


def write_twins(
    out: str | Path,
    pairs: int,
    people: tuple[int, int] = (1, 1),
    seconds: float = 1.0,
    size: int = 64,
    first_seed: int = FIRST_SEED,
    with_video: bool = True,
    progress: bool = True,
) -> tuple[list[Path], int]:
    """Write ``pairs`` twin pairs as ``out/SEED_0`` (as drawn) and ``out/SEED_1`` (mirrored); scenes
    with no room to walk both ways are skipped. Complete samples are kept, so a rerun resumes.
    Returns the folders and the next unused seed."""
    out = Path(out)
    low, high = people
    seed, folders = first_seed, []
    bar = tqdm(total=pairs, desc="twins", unit="pair", disable=not progress)
    while len(folders) < 2 * pairs:
        count = low + seed % (high - low + 1)
        scene = random_scene(seed, count, seconds, "silent", size, size, action="walk")
        seed += 1
        if not fits(scene):
            continue
        for k, version in enumerate((scene, mirrored(scene))):
            folder = out / f"{scene.seed:06d}_{k}"
            if not (folder / "scene.json").is_file():
                write_sample(make_sample(version), folder, with_video)
            elif not (folder / REGIONS_FILE).is_file():  # written before samples carried their regions
                write_regions(version, folder)
            folders.append(folder)
        bar.update(1)
    bar.close()
    return folders, seed
