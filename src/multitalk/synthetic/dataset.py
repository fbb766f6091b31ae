"""Samples of the synthetic world and the dataset writer behind ``multitalk synth``.

A sample folder is self-describing and ready to feed ``multitalk generate``:

    video.mp4        ground-truth video with every person's voice mixed in
    frame0.png       the reference image (frame 0)
    person1.wav ...  one 16 kHz track per person
    scene.json       the scene spec, boxes, and the true mouth opening per person and frame
    regions.npz      where every head, body and mouth is in every frame (training/regions.py: loss weights)
    input.json       the official MultiTalk input format (prompt, cond_image, cond_audio, bbox)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..constants import REGIONS_FILE
from ..media import atomic_output, write_image, write_video, write_wav
from .render import MOUTH_BOX, mouth_openings, render
from .scene import Scene, random_scene
from .speech import conversation

BBOX_FORMAT = "[top, left, bottom, right] pixels, rows first (the official MultiTalk reading)"


@dataclass
class Sample:
    scene: Scene
    tracks: list[np.ndarray]  # float32 16 kHz, one per person
    openings: np.ndarray  # (P, F) true mouth openings
    video: np.ndarray  # uint8 (F, H, W, 3)

    @property
    def mix(self) -> np.ndarray:
        return np.sum(self.tracks, axis=0).astype(np.float32)


def make_sample(scene: Scene) -> Sample:
    """Audio, ground truth and frames for a scene (deterministic from its seed)."""
    tracks = conversation(scene.num_people, scene.seconds, scene.mode, scene.seed, scene.speech).tracks
    openings = mouth_openings(tracks, scene.fps)
    return Sample(scene, tracks, openings, render(scene, openings))


def person_key(index: int) -> str:
    """Official input JSON keys are 1-based: person1, person2, ..."""
    return f"person{index + 1}"


def scene_record(sample: Sample) -> dict:
    scene = sample.scene
    return {
        "scene": scene.to_dict(),
        "num_frames": int(sample.video.shape[0]),
        "fps": scene.fps,
        "bbox_format": BBOX_FORMAT,
        "bbox": {person_key(i): box for i, box in enumerate(scene.bboxes())},
        "audio": {person_key(i): f"{person_key(i)}.wav" for i in range(scene.num_people)},
        "mouth_opening": {person_key(i): [round(float(v), 4) for v in row] for i, row in enumerate(sample.openings)},
    }


def official_input(sample: Sample) -> dict:
    """The official input JSON for this sample; paths are relative to the sample folder.

    The tracks already hold each person's turns on one shared timeline, so they play at the
    same time: ``audio_type`` is ``para`` (``add`` would play them one after the other).
    """
    scene = sample.scene
    record = {
        "prompt": scene.prompt,
        "cond_image": "frame0.png",
        "cond_audio": {person_key(i): f"{person_key(i)}.wav" for i in range(scene.num_people)},
    }
    if scene.num_people > 1:
        record["audio_type"] = "para"
        record["bbox"] = {person_key(i): box for i, box in enumerate(scene.bboxes())}
    return record


def scene_regions(scene: Scene) -> dict[str, np.ndarray]:
    """The scene's geometry per frame, in the layout of ``regions.npz`` (``training/regions.py``), so
    training weighs heads, mouths and walkers without knowing how the world is drawn."""
    head, body = scene.tracks()
    return {
        "size": np.array([scene.width, scene.height]),
        "heads": head,
        "bodies": body,
        "radii": scene.radii(),
        "boxes": np.array([scene.bboxes(f) for f in range(scene.num_frames)], np.int64),
        "mouth_box": np.array(MOUTH_BOX),
    }


def write_regions(scene: Scene, folder: Path) -> None:
    with atomic_output(folder / REGIONS_FILE) as tmp:
        np.savez(tmp, **scene_regions(scene))


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    # keep number lists (boxes, opening tracks) on one line each
    text = re.sub(
        r"\[\s+([-0-9.eE,\s]+?)\s+\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text
    )
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n")


def write_sample(sample: Sample, folder: str | Path, with_video: bool = True) -> Path:
    """Write one sample folder; ``scene.json`` is written last and marks it complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, track in enumerate(sample.tracks):
        write_wav(folder / f"{person_key(i)}.wav", track)
    write_image(folder / "frame0.png", sample.video[0])
    if with_video:
        write_video(folder / "video.mp4", sample.video, sample.scene.fps, audio=sample.mix)
    _write_json(folder / "input.json", official_input(sample))
    write_regions(sample.scene, folder)
    _write_json(folder / "scene.json", scene_record(sample))
    return folder


def load_scene_record(path: str | Path) -> dict:
    """Read a ``scene.json`` (or the folder holding one); the scene comes back as a Scene."""
    path = Path(path)
    if path.is_dir():
        path = path / "scene.json"
    record = json.loads(path.read_text())
    record["scene"] = Scene.from_dict(record["scene"])
    record["mouth_opening"] = np.array(
        [record["mouth_opening"][person_key(i)] for i in range(record["scene"].num_people)], np.float32
    )
    return record


def sample_scene(
    seed: int,
    people: tuple[int, int] = (1, 3),
    seconds: float = 5.0,
    size: int = 128,
    modes: tuple[str, ...] = ("add", "para", "silent"),
    mode_weights=(0.45, 0.45, 0.1),
    speech: str = "tone",
    action: str | None = "random",
) -> Scene:
    """The scene of dataset item ``seed``: people count and conversation mode drawn from the seed;
    ``action`` as in ``random_scene`` (a set of walks alone, say, to teach what "walks to the left" means)."""
    rng = np.random.default_rng([seed, 2])
    num_people = int(rng.integers(people[0], people[1] + 1))
    weights = np.array([w for m, w in zip(("add", "para", "silent"), mode_weights) if m in modes])
    mode = str(rng.choice([m for m in ("add", "para", "silent") if m in modes], p=weights / weights.sum()))
    return random_scene(seed, num_people, seconds, mode, size, size, action=action, speech=speech)


def write_dataset(
    out: str | Path,
    count: int,
    people: tuple[int, int] = (1, 3),
    seconds: float = 5.0,
    size: int = 128,
    first_seed: int = 0,
    with_video: bool = True,
    progress: bool = True,
    speech: str = "tone",
    action: str | None = "random",
) -> list[Path]:
    """Write ``count`` samples as ``out/000000`` ...; complete samples are kept, so a rerun resumes."""
    out = Path(out)
    folders = []
    for k in tqdm(range(count), desc="synth", unit="sample", disable=not progress):
        folder = out / f"{first_seed + k:06d}"
        if not (folder / "scene.json").is_file():
            scene = sample_scene(first_seed + k, people, seconds, size, speech=speech, action=action)
            write_sample(make_sample(scene), folder, with_video)
        elif not (folder / REGIONS_FILE).is_file():  # a folder written before samples carried their regions
            write_regions(load_scene_record(folder)["scene"], folder)
        folders.append(folder)
    return folders
