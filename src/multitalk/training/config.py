"""Training configuration: the paper's recipe is settings, not code branches."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import MultiTalkInputError

TRAINABLE = {"dit": ("audio", "all", "base"), "vae": ("all", "decoder")}  # per stage; the first is the default
STAGES = ("dit", "vae")


@dataclass
class TrainConfig:
    output: str  # run folder: checkpoints, loss curve, the final pipeline folder
    data: str | Path | list[str | Path]  # a `multitalk synth` folder, or a list (mixed; sample names must differ)
    stage: str = "dit"  # dit: the transformer (base or audio stages); vae: the video autoencoder
    vae: str | None = None  # dit stages: a trained VAE folder to use instead of the preset's random one or
    #                         the init folder's own
    vae_base_dim: int = 16  # vae stage: width of a new AutoencoderKLWan
    vae_residual: bool = True  # vae stage: Wan2.2-style residual down/up-sampling in a new VAE
    vae_inflate: bool = False  # vae stage: start the init VAE's time axis as "each frame on its own" (an
    #                            image-trained VAE as a video VAE; training/vae.py, inflate_to_video)
    posterior_std_init: float | None = 0.05  # vae stage: a new VAE's initial posterior noise (None: ~1)
    kl_weight: float = 1e-6  # vae stage: weight of the KL term
    chroma_weight: float = 0.0  # vae stage: extra weight on colour (each pixel minus its grey) in the loss
    face_weight: float = 0.0  # vae stage: extra loss weight on the heads' pixels (synthetic samples)
    mouth_weight: float = 0.0  # extra loss weight on the mouths (vae: the boxes the sync metric reads; dit: their
    #                            latent cells) — synthetic samples only
    mover_weight: float = 0.0  # dit: extra loss weight on the latent cells a walking (or swapping) person crosses
    #                            in the clip, so action words have something to explain — synthetic samples only
    init: str = "tiny"  # a preset name (random weights) or a pipeline folder to start from
    text_encoder: str = "random"  # random | minilm (only used when init is a preset)
    people: list[int] = field(default_factory=lambda: [1, 4])  # stage 1: [1, 1]; stage 2: [2, 4]
    frames: int = 17  # video frames per training clip (4k+1)
    cache: str | None = None  # dit stages: encoded clips (default: the run folder's cache/); stages may share one
    clips_per_sample: int = 1  # dit stages: back-to-back clips cut from each sample video
    motion_frames: int = 0  # dit stages: also learn streaming continuations with this many given frames
    motion_share: float = 0.0  # share of batches conditioned on motion frames instead of one image
    size: int = 64  # frame width and height of the training clips (square)
    steps: int = 100  # optimiser steps of the run
    batch_size: int = 2  # clips per step
    lr: float = 1e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    trainable: str | None = None  # dit: audio (adapter + norm_x + audio cross-attention only, the default), all, or
    #                               base (everything but those: the base learns on, a trained model's audio layers
    #                               stay); vae: all (the default) or decoder (the latents, and the DiTs on them, stay)
    i2v_share: float = 0.0  # multi-task: share of batches that are image->video (audio zeroed)
    image_dropout: float = 0.0  # share of batches with no frame given (condition zeroed): the clip must come from the
    #                             prompt alone, so the text is read (Wan's I2V starts from a text-to-video model)
    audio_dropout: float = 0.1  # for audio guidance
    text_dropout: float = 0.1  # for text guidance
    shift: float = 3.0  # timestep shift of the training noise levels
    checkpoint_every: int = 50  # steps between resumable checkpoints
    sample_every: int = 0  # dit stages: write a sample video every N steps (0: never)
    sample_steps: int = 10  # sampling steps of those videos
    sample_text_guidance: float | None = None  # guidance scales of those videos (None: the pipeline's defaults,
    sample_audio_guidance: float | None = None  # which suit the official weights, not a small model in training)
    log_every: int = 10  # steps between loss lines (and loss-curve points)
    seed: int = 0  # the run's seed: batches, noise, dropout
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise MultiTalkInputError(f"stage must be one of {STAGES}, got {self.stage!r}")
        choices = TRAINABLE[self.stage]
        self.trainable = choices[0] if self.trainable is None else self.trainable
        if self.trainable not in choices:
            raise MultiTalkInputError(
                f"trainable must be one of {choices} for the {self.stage} stage, got {self.trainable!r}"
            )
        if not (
            isinstance(self.data, (str, Path))
            or (isinstance(self.data, list) and self.data and all(isinstance(d, (str, Path)) for d in self.data))
        ):
            raise MultiTalkInputError(f"data must be a folder or a list of folders, got {self.data!r}")
        if (self.frames - 1) % 4:
            raise MultiTalkInputError(f"frames must be of the form 4k+1, got {self.frames}")
        if self.motion_share and not 1 <= self.motion_frames < self.frames:
            raise MultiTalkInputError(f"motion_share needs motion_frames in 1..{self.frames - 1}")
        if self.vae_inflate and (self.stage != "vae" or self.init == "new"):  # the folder may not exist yet
            raise MultiTalkInputError("vae_inflate needs the vae stage and an init VAE folder (an image-trained VAE)")
        if self.posterior_std_init is not None and self.posterior_std_init <= 0:
            raise MultiTalkInputError(f"posterior_std_init must be positive, got {self.posterior_std_init}")
        for name in (
            "i2v_share",
            "audio_dropout",
            "text_dropout",
            "image_dropout",
            "motion_share",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise MultiTalkInputError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: str | Path, **overrides) -> TrainConfig:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MultiTalkInputError(f"training config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - known
    if unknown:
        raise MultiTalkInputError(f"unknown keys in {path}: {sorted(unknown)}; known: {sorted(known)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**data)
    except TypeError as err:
        raise MultiTalkInputError(f"{path}: {err}") from None


def reference_markdown() -> str:
    """``docs/training.md``: every TrainConfig field with its type, default and the comment beside it
    in this file (``python -m multitalk.training.config > docs/training.md``)."""
    import inspect
    import re

    lines = inspect.getsource(TrainConfig).splitlines()
    rows, current = [], None
    for line in lines:
        m = re.match(r"    (\w+): ([^=#]+?)(?: = ([^#]+?))?\s*(?:#\s?(.*))?$", line)
        if m and not line.strip().startswith("def "):
            current = [m[1], m[2].strip(), (m[3] or "required").strip(), (m[4] or "").strip()]
            rows.append(current)
        elif current and re.match(r"\s+#", line):
            current[3] += " " + line.strip().lstrip("#").strip()
        elif line.strip().startswith("def "):
            break
    out = [
        "# Training configuration",
        "",
        "Every field of a `multitalk train` YAML file (`multitalk.training.TrainConfig`), generated from the",
        "comments beside the fields by `python -m multitalk.training.config > docs/training.md`. The demo",
        "model's recipe (`configs/recipes/demo/`) shows them in use; `docs/demo-model.md` explains each step.",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, kind, default, text in rows:
        kind = kind.replace(" | ", " or ")
        out.append(f"| `{name}` | `{kind}` | `{default}` | {text.replace('|', '/')} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
