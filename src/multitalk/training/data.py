"""Training clips, precomputed once: VAE latents, conditioning latents, audio windows, text, masks.

Any folder of samples with ``input.json`` (the official input format) and ``video.mp4`` works;
``multitalk synth`` writes exactly that. The DiT stages then never run the VAE or the
encoders again: a cache file per sample holds everything a training step needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..conditioning.audio import combine_voices
from ..conditioning.people import (
    in_person_order,
    person_masks,
    resize_and_center_crop_frames,
    resize_and_center_crop_masks,
)
from ..media import atomic_output, read_audio, read_video
from ..models.audio_adapter import frame_windows
from ..pipeline import condition_mask

EMPTY_PROMPT = "empty_prompt.safetensors"


def sample_folders(root: str | Path, people: tuple[int, int]) -> list[Path]:
    folders = []
    for spec in sorted(Path(root).glob("*/input.json")):
        count = len(json.loads(spec.read_text())["cond_audio"])  # cheap: no paths resolved
        if people[0] <= count <= people[1]:
            folders.append(spec.parent)
    return folders


def read_sample_input(folder: Path) -> dict:
    """A sample folder's official ``input.json``, resolved: image path, voice paths in person order, boxes."""
    spec = json.loads((folder / "input.json").read_text())
    return {"prompt": spec["prompt"], "image": folder / spec["cond_image"],
            "audio": [folder / path for path in in_person_order(spec["cond_audio"])],
            "bboxes": in_person_order(spec["bbox"]) if "bbox" in spec else None,
            "audio_type": spec.get("audio_type", "para")}


@torch.no_grad()
def encode_sample(pipe, folder: Path, frames: int, size: int) -> dict[str, torch.Tensor] | None:
    """The cached tensors of one sample folder, or None when its video is shorter than a clip."""
    spec = read_sample_input(folder)
    video, _ = read_video(folder / "video.mp4")
    if video.shape[0] < frames:
        return None
    clip = resize_and_center_crop_frames(video[:frames], (size, size))  # 3, F, S, S
    latents = pipe.vae_encode(clip[None])[0].float()
    given = torch.cat([clip[:, :1], torch.zeros_like(clip[:, 1:])], dim=1)
    condition = pipe.vae_encode(given[None])[0].float()
    condition = torch.cat([condition_mask(frames, 1, condition.shape[-2:], pipe.vae_scale_temporal), condition])

    voices = combine_voices([read_audio(path) for path in spec["audio"]], spec["audio_type"])
    audio = torch.stack([frame_windows(pipe.encode_audio(v), 0, frames) for v in voices])  # P, F, window, L, C

    masks = person_masks(len(voices), *video.shape[1:3], spec["bboxes"])
    masks = resize_and_center_crop_masks(masks, (size, size))
    grid = latents.shape[-2:]
    masks = torch.nn.functional.interpolate(masks[None], size=grid, mode="nearest")[0]
    text = pipe.encode_prompt([spec["prompt"]])[0].float()
    return {"latents": latents, "condition": condition, "audio": audio.float(), "text": text, "masks": masks}


def build_cache(pipe, root: str | Path, cache: str | Path, frames: int, size: int, people: tuple[int, int],
                progress: bool = True) -> list[Path]:
    """Encode every sample once (kept across runs; a rerun only adds what is missing)."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / EMPTY_PROMPT).exists():
        with atomic_output(cache / EMPTY_PROMPT) as tmp:
            save_file({"text": pipe.encode_prompt([""])[0].float().contiguous()}, tmp)
    files = []
    for folder in tqdm(sample_folders(root, people), desc="encoding clips", disable=not progress):
        target = cache / f"{folder.name}.safetensors"
        if not target.exists():
            tensors = encode_sample(pipe, folder, frames, size)
            if tensors is None:
                continue
            with atomic_output(target) as tmp:
                save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
        files.append(target)
    return files


class CachedClips:
    """Batches of cached clips with the same number of people (their audio stacks)."""

    def __init__(self, files: list[Path], cache: str | Path):
        if not files:
            raise ValueError("no training clips: check the data folder, people range and clip length")
        self.items = [load_file(f) for f in files]
        self.empty_text = load_file(Path(cache) / EMPTY_PROMPT)["text"]
        self.groups: dict[int, list[int]] = {}
        for i, item in enumerate(self.items):
            self.groups.setdefault(item["audio"].shape[0], []).append(i)

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, torch.Tensor]:
        people = sorted(self.groups)
        weights = np.array([len(self.groups[p]) for p in people], dtype=float)
        group = self.groups[people[rng.choice(len(people), p=weights / weights.sum())]]
        picks = [self.items[i] for i in rng.choice(group, size=size)]
        longest = max(item["text"].shape[0] for item in picks)
        text = torch.stack([torch.nn.functional.pad(item["text"], (0, 0, 0, longest - item["text"].shape[0]))
                            for item in picks])
        batch = {k: torch.stack([item[k] for item in picks]) for k in ("latents", "condition", "audio", "masks")}
        return {**batch, "text": text}
