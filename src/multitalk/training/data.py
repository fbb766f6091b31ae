"""Training clips, precomputed once: VAE latents, conditioning latents, audio windows, text, masks.

Any folder of samples with ``input.json`` (the official input format) and ``video.mp4`` works;
``multitalk synth`` writes exactly that. The DiT stages then never run the VAE or the
encoders again: a cache file per sample holds everything a training step needs.
"""

from __future__ import annotations

import json
import warnings
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
from ..errors import MultiTalkInputError
from ..media import atomic_output, read_audio, read_video
from ..models.audio_adapter import frame_windows
from .digest import encoder_digest, weights_digest
from .regions import Regions, mouth_cells, mover_cells

EMPTY_PROMPT = "empty_prompt.safetensors"
CACHE_LAYOUT = 3  # the tensors each clip file holds (2: + "mouths", the latent cells holding a mouth;
#                  3: + "movers", the cells a walking or swapping person crosses)


def sample_folders(data: str | Path | list, people: tuple[int, int]) -> list[Path]:
    """The samples of one data folder or several (``data: [a, b]`` mixes sets) with ``people`` in range.

    The clip cache names clips by sample folder, so two sets may not share a sample name.
    """
    seen: dict[str, Path] = {}  # every sample, in range or not: a cache outlives one stage's people range
    folders = []
    for root in [data] if isinstance(data, (str, Path)) else data:
        for spec in sorted(Path(root).glob("*/input.json")):
            name = spec.parent.name
            if name in seen:
                raise MultiTalkInputError(
                    f"sample {name} is in both {seen[name].parent} and {root}: "
                    "the clip cache names clips by sample; rename one"
                )
            seen[name] = spec.parent
            count = len(json.loads(spec.read_text())["cond_audio"])  # cheap: no paths resolved
            if people[0] <= count <= people[1]:
                folders.append(spec.parent)
    return folders


def read_sample_input(folder: Path) -> dict:
    """A sample folder's official ``input.json``, resolved: image path, voice paths in person order, boxes."""
    spec = json.loads((folder / "input.json").read_text())
    return {
        "prompt": spec["prompt"],
        "image": folder / spec["cond_image"],
        "audio": [folder / path for path in in_person_order(spec["cond_audio"])],
        "bboxes": in_person_order(spec["bbox"]) if "bbox" in spec else None,
        "audio_type": spec.get("audio_type", "para"),
    }


def clip_starts(video_frames: int, frames: int, clips: int) -> list[int]:
    """First frames of ``clips`` clips of ``frames`` spread evenly over a video (fewer if they would repeat)."""
    return np.unique(np.linspace(0, video_frames - frames, clips).round().astype(int)).tolist()


@torch.no_grad()
def encode_sample(
    pipe, folder: Path, frames: int, size: int, clips: int = 1, motion_frames: int = 0
) -> list[dict[str, torch.Tensor]]:
    """The cached tensors of ``clips`` clips spread evenly over one sample's video (fewer if it is short).

    Spread, not back to back: the start, the middle and the end of a scene differ most (someone
    walks in the middle, stands elsewhere at the end). Each clip starts with its own first frame
    as the reference image (``condition``); with ``motion_frames`` it also gets the condition of
    a streaming continuation (``condition_motion``: its first ``motion_frames`` frames given),
    so the model learns both ways of starting a clip.
    """
    spec = read_sample_input(folder)
    video, _ = read_video(folder / "video.mp4")
    voices = combine_voices([read_audio(path) for path in spec["audio"]], spec["audio_type"])
    features = [pipe.encode_audio(v) for v in voices]
    text = pipe.encode_prompt([spec["prompt"]])[0].float()
    regions = Regions.load(folder)
    heads = regions.heads_at(size) if regions else None
    if video.shape[0] < frames:
        return []
    items = []
    for start in clip_starts(video.shape[0], frames, clips):
        clip = resize_and_center_crop_frames(video[start : start + frames], (size, size))  # 3, F, S, S
        latents = pipe.vae_encode(clip[None])[0].float()
        audio = torch.stack([frame_windows(f, start, start + frames) for f in features])  # P, F, window, L, C
        # a sample with regions says where everyone is at the clip's start; otherwise input.json's boxes hold
        boxes = regions.bboxes(start) if regions and start else spec["bboxes"]
        with warnings.catch_warnings():  # people crossing (swaps) overlap for a while: expected here
            warnings.simplefilter("ignore")
            masks = person_masks(len(voices), *video.shape[1:3], boxes)
        masks = resize_and_center_crop_masks(masks, (size, size))
        grid_masks = torch.nn.functional.interpolate(masks[None], size=latents.shape[-2:], mode="nearest")[0]
        item = {
            "latents": latents,
            "condition": pipe.encode_condition(clip[:, :1], frames)[0][0],
            "audio": audio.float(),
            "text": text,
            "masks": grid_masks,
            "mouths": mouth_cells(heads, slice(start, start + frames), size, latents.shape[1:]),
            "movers": mover_cells(regions, slice(start, start + frames), size, latents.shape[1:]),
        }
        if motion_frames:
            item["condition_motion"] = pipe.encode_condition(clip[:, :motion_frames], frames)[0][0]
        items.append(item)
    return items


def build_cache(
    pipe,
    root: str | Path,
    cache: str | Path,
    frames: int,
    size: int,
    people: tuple[int, int],
    progress: bool = True,
    clips: int = 1,
    motion_frames: int = 0,
) -> list[Path]:
    """Encode every sample once (kept across runs and stages; a rerun only adds what is missing).

    ``key.json`` records what the clips were encoded with (clip shape, digests of the VAE's encoder
    half and of the text and audio encoders), so a cache shared between stages is never used with
    models it does not fit.
    """
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    key = cache_key(pipe, frames, size, clips, motion_frames)
    if (cache / "key.json").exists():
        found = json.loads((cache / "key.json").read_text())
        if found != key:
            changed = sorted(k for k in key if found.get(k) != key[k])
            raise MultiTalkInputError(
                f"the clip cache {cache} was encoded with other {', '.join(changed)}; "
                "delete it or give this run its own `cache:` folder"
            )
    else:
        with atomic_output(cache / "key.json") as tmp:
            tmp.write_text(json.dumps(key, indent=1) + "\n")
    if not (cache / EMPTY_PROMPT).exists():
        with atomic_output(cache / EMPTY_PROMPT) as tmp:
            save_file({"text": pipe.encode_prompt([""])[0].float().contiguous()}, tmp)
    files = []
    for folder in tqdm(sample_folders(root, people), desc="encoding clips", disable=not progress):
        done = cache / f"{folder.name}.clips"  # written after the sample's clips: a killed run redoes it
        if not done.exists():
            items = encode_sample(pipe, folder, frames, size, clips, motion_frames)
            for k, tensors in enumerate(items):
                with atomic_output(cache / f"{folder.name}_{k}.safetensors") as tmp:
                    save_file({name: v.contiguous() for name, v in tensors.items()}, tmp)
            with atomic_output(done) as tmp:  # a marker cut short would read as no number at all
                tmp.write_text(f"{len(items)}\n")
        files.extend(cache / f"{folder.name}_{k}.safetensors" for k in range(int(done.read_text())))
    return files


def cache_key(pipe, frames: int, size: int, clips: int, motion_frames: int) -> dict:
    models = {name: weights_digest(getattr(pipe, name)) for name in ("text_encoder", "audio_encoder")}
    models["vae_encoder"] = encoder_digest(pipe.vae)
    return {
        "layout": CACHE_LAYOUT,
        "frames": frames,
        "size": size,
        "clips_per_sample": clips,
        "motion_frames": motion_frames,
        **models,
    }


class CachedClips:
    """Batches of cached clips with the same number of people (their audio stacks).

    Each clip also carries its sample's reference image latents (``reference``, ``C, 1, h, w``): the
    first frame of the video, which is where the sample's first clip starts (``clip_starts``), so
    they are that clip's given latents — what a stream's later clips see beside their motion frames.
    """

    def __init__(self, files: list[Path], cache: str | Path):
        if not files:
            raise ValueError("no training clips: check the data folder, people range and clip length")
        self.items = [load_file(f) for f in files]
        # the sample folder each clip was cut from (build_cache names the files SAMPLE_K.safetensors)
        names = [Path(path).stem.rsplit("_", 1) for path in files]
        self.samples = [sample for sample, _ in names]
        first_clips = {sample: item for (sample, k), item in zip(names, self.items, strict=True) if k == "0"}
        for sample, item in zip(self.samples, self.items, strict=True):
            first = first_clips[sample]
            item["reference"] = first["condition"][-first["latents"].shape[0] :, :1]
        self.empty_text = load_file(Path(cache) / EMPTY_PROMPT)["text"]
        self.groups: dict[int, list[int]] = {}
        for i, item in enumerate(self.items):
            self.groups.setdefault(item["audio"].shape[0], []).append(i)

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, rng: np.random.Generator, size: int, motion: bool = False) -> dict[str, torch.Tensor]:
        """``motion``: condition on the clips' motion frames (a streaming continuation) instead of one image."""
        people = sorted(self.groups)
        weights = np.array([len(self.groups[p]) for p in people], dtype=float)
        group = self.groups[people[rng.choice(len(people), p=weights / weights.sum())]]
        return self.stack(rng.choice(group, size=size).tolist(), motion)

    def stack(self, indices: list[int], motion: bool = False) -> dict[str, torch.Tensor]:
        """The batch of these clips (all with the same number of people); prompts padded to the longest."""
        picks = [self.items[i] for i in indices]
        longest = max(item["text"].shape[0] for item in picks)
        text = torch.stack(
            [torch.nn.functional.pad(item["text"], (0, 0, 0, longest - item["text"].shape[0])) for item in picks]
        )
        keys = ("latents", "audio", "masks", "mouths", "movers", "reference")
        batch = {k: torch.stack([item[k] for item in picks]) for k in keys}
        condition = "condition_motion" if motion else "condition"
        return {**batch, "condition": torch.stack([item[condition] for item in picks]), "text": text}
