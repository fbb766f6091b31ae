"""Training configuration: the paper's recipe is settings, not code branches.

A run's YAML file has a few top-level fields and one section per concern::

    stage: dit            # or vae
    output: runs/demo/stage1
    data:     {folders: data/synth, people: [1, 1], frames: 17, size: 64}
    init:     {model: runs/demo/base/final, trainable: audio}
    optim:    {lr: 1.0e-4, batch_size: 4}
    schedule: {steps: 1000, checkpoint_every: 100}
    loss:     {mouth_weight: 20.0}
    vae:      {...}       # only in a vae stage: the autoencoder's own settings

Every field has one line of documentation beside it; ``docs/training.md`` is generated from
them (``python -m multitalk.training.config > docs/training.md``). Files written before the
sections existed (every field at the top level) still load, with a deprecation warning.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import MultiTalkInputError

TRAINABLE = {"dit": ("audio", "all", "base"), "vae": ("all", "decoder")}  # per stage; the first is the default
STAGES = ("dit", "vae")


@dataclass
class DataConfig:
    """What the training clips are cut from, and their shape."""

    folders: str | Path | list[str | Path] = ""  # a `multitalk synth` folder, or a list (mixed; names must differ)
    people: list[int] = field(default_factory=lambda: [1, 4])  # samples with this many people, [least, most]
    frames: int = 17  # video frames per training clip (4k+1)
    size: int = 64  # frame width and height of the training clips (square)
    clips_per_sample: int = 1  # dit: clips spread over each sample video
    motion_frames: int = 0  # dit: also encode each clip as a streaming continuation with this many given frames
    variant: str = "multitalk"  # dit: the clip scheme the model learns, saved with it: multitalk (a
    # continuation gets its motion frames as given frames in the condition) or infinitetalk (only frame 0 is
    # marked as given; the motion frames' latents, on a first clip the reference's one latent, go in clean)
    cache: str | None = None  # dit: folder of encoded clips (default: the run folder's cache/); stages may share one


@dataclass
class InitConfig:
    """Where the weights start and which of them learn."""

    model: str = "tiny"  # a preset name (random weights), a pipeline folder, or (vae stage) new / a VAE folder
    text_encoder: str = "random"  # random | minilm (a preset's text encoder)
    vae: str | None = None  # dit: a trained VAE folder to use instead of the preset's or the init folder's own
    trainable: str | None = None  # dit: audio (adapter, norm_x, audio cross-attention; default), all, or base
    #                               (all but those); vae: all (default) or decoder (the latents stay as they are)


@dataclass
class OptimConfig:
    """The optimiser (AdamW) and the batch."""

    lr: float = 1e-4  # learning rate
    weight_decay: float = 0.0  # weight decay
    batch_size: int = 2  # clips per step
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)


@dataclass
class ScheduleConfig:
    """How long the run is and what it writes on the way."""

    steps: int = 100  # optimiser steps of the run
    checkpoint_every: int = 50  # steps between resumable checkpoints
    log_every: int = 10  # steps between loss lines (and loss-curve points)
    sample_every: int = 0  # dit: write a sample video every N steps (0: never)
    sample_steps: int = 10  # sampling steps of those videos
    sample_text_guidance: float | None = None  # their text guidance (None: the pipeline's default)
    sample_audio_guidance: float | None = None  # their audio guidance (None: the pipeline's default)


@dataclass
class LossConfig:
    """What the loss sees: noise levels, the mix of tasks, and the regions that count more."""

    shift: float = 3.0  # dit: timestep shift of the training noise levels
    i2v_share: float = 0.0  # dit: share of batches that are image->video (audio zeroed)
    image_dropout: float = 0.0  # dit: share of batches with no frame given: the clip comes from the prompt alone
    audio_dropout: float = 0.1  # dit: share of audio batches with the audio dropped (audio guidance needs it)
    text_dropout: float = 0.1  # dit: share of batches with the empty prompt (text guidance needs it)
    motion_share: float = 0.0  # dit: share of batches conditioned on motion frames instead of one image
    mouth_weight: float = 0.0  # extra weight on the mouths (regions.npz; vae: their pixels, dit: their latent cells)
    mover_weight: float = 0.0  # dit: extra weight on the latent cells a walking or swapping person crosses


@dataclass
class VAEConfig:
    """The vae stage's autoencoder and its loss terms (no such section in a dit stage)."""

    base_dim: int = 16  # width of a new AutoencoderKLWan
    residual: bool = True  # Wan2.2-style residual down/up-sampling in a new VAE
    inflate: bool = False  # start an image-trained VAE's time axis as "each frame on its own" (vae.inflate_to_video)
    posterior_std_init: float | None = 0.05  # a new VAE's initial posterior noise (None: about 1)
    kl_weight: float = 1e-6  # weight of the KL term
    chroma_weight: float = 0.0  # extra weight on colour (each pixel minus its grey)
    face_weight: float = 0.0  # extra weight on the heads' pixels (regions.npz)


SECTIONS = {
    "data": DataConfig,
    "init": InitConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "loss": LossConfig,
    "vae": VAEConfig,
}


@dataclass
class TrainConfig:
    """One training run (one stage of a recipe)."""

    output: str  # run folder: checkpoints, loss curve, sample videos, the final pipeline folder
    stage: str = "dit"  # dit: the transformer (base or audio stages); vae: the video autoencoder
    seed: int = 0  # the run's seed: batches, noise, dropout
    data: DataConfig = field(default_factory=DataConfig)  # what the clips are cut from
    init: InitConfig = field(default_factory=InitConfig)  # where the weights start, which learn
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser and batch
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)  # length, checkpoints, samples
    loss: LossConfig = field(default_factory=LossConfig)  # noise levels, task mix, weighted regions
    vae: VAEConfig | None = None  # vae stage only: the autoencoder's settings

    def __post_init__(self):
        for name, kind in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _section(kind, value, name))
        if self.stage not in STAGES:
            raise MultiTalkInputError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.stage == "vae" and self.vae is None:
            self.vae = VAEConfig()
        if self.stage == "dit" and self.vae is not None:
            raise MultiTalkInputError("a `vae:` section belongs to `stage: vae` only (a dit stage's VAE is `init.vae`)")
        self._check_init()
        self._check_data()
        for name in ("i2v_share", "audio_dropout", "text_dropout", "image_dropout", "motion_share"):
            if not 0 <= getattr(self.loss, name) <= 1:
                raise MultiTalkInputError(f"loss.{name} must lie in [0, 1], got {getattr(self.loss, name)}")
        if self.data.variant not in ("multitalk", "infinitetalk"):
            raise MultiTalkInputError(f"data.variant must be multitalk or infinitetalk, got {self.data.variant!r}")
        if self.loss.motion_share and not 1 <= self.data.motion_frames < self.data.frames:
            raise MultiTalkInputError(f"loss.motion_share needs data.motion_frames in 1..{self.data.frames - 1}")

    def _check_init(self) -> None:
        choices = TRAINABLE[self.stage]
        init = self.init
        init.trainable = choices[0] if init.trainable is None else init.trainable
        if init.trainable not in choices:
            raise MultiTalkInputError(
                f"init.trainable must be one of {choices} for the {self.stage} stage, got {init.trainable!r}"
            )
        if self.vae is not None:
            if self.vae.inflate and init.model == "new":  # the folder may not exist yet
                raise MultiTalkInputError("vae.inflate needs an init VAE folder (an image-trained VAE)")
            if self.vae.posterior_std_init is not None and self.vae.posterior_std_init <= 0:
                raise MultiTalkInputError(f"vae.posterior_std_init must be positive, got {self.vae.posterior_std_init}")

    def _check_data(self) -> None:
        folders = self.data.folders
        if not (
            (isinstance(folders, (str, Path)) and str(folders))
            or (isinstance(folders, list) and folders and all(isinstance(d, (str, Path)) for d in folders))
        ):
            raise MultiTalkInputError(f"data.folders must be a folder or a list of folders, got {folders!r}")
        if (self.data.frames - 1) % 4:
            raise MultiTalkInputError(f"data.frames must be of the form 4k+1, got {self.data.frames}")

    def to_dict(self) -> dict:
        """The nested form a YAML file holds (``load_config`` reads it back)."""
        out = asdict(self)
        if out["vae"] is None:
            del out["vae"]
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "the training config") -> "TrainConfig":
        """A config from its nested form; a flat one (every field at the top level, the old layout)
        is moved into its sections with a deprecation warning."""
        data = dict(data)
        flat = [
            k for k, v in data.items() if k in FLAT_NAMES and not (k in SECTIONS and isinstance(v, (dict, type(None))))
        ]
        if flat and not any(isinstance(data.get(k), dict) for k in SECTIONS):  # a mixed file is an error below
            warnings.warn(
                f"{where}: top-level {sorted(flat)} is the old flat layout; put them in their sections "
                f"({', '.join(f'{k} -> {FLAT_NAMES[k][0]}.{FLAT_NAMES[k][1]}' for k in sorted(flat))})",
                FutureWarning,
                stacklevel=2,
            )
            nested = {k: v for k, v in data.items() if k not in flat}
            for name in flat:
                section, key = FLAT_NAMES[name]
                nested[section] = {**(nested.get(section) or {}), key: data[name]}
            data = nested
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            hints = [f"{k} -> {FLAT_NAMES[k][0]}.{FLAT_NAMES[k][1]}" for k in sorted(unknown) if k in FLAT_NAMES]
            raise MultiTalkInputError(
                f"unknown keys in {where}: {sorted(unknown)}; known: {sorted(known)}"
                + (f" (move {', '.join(hints)})" if hints else "")
            )
        if "output" not in data:
            raise MultiTalkInputError(f"{where} needs `output:` (the run folder)")
        for name in SECTIONS:
            if name in data and data[name] is not None and not isinstance(data[name], dict):
                raise MultiTalkInputError(f"{where}: `{name}:` must be a section of fields, got {data[name]!r}")
        return cls(**data)

    def override(self, dotted: dict) -> "TrainConfig":
        """A copy with ``{"schedule.steps": 5, "output": "x"}``-style settings changed (None: unchanged)."""
        data = self.to_dict()
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, name = key.rpartition(".")
            target = data.setdefault(section, {}) if section else data
            target[name] = value
        return TrainConfig.from_dict(data)


def _section(kind: type, values: dict, name: str):
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise MultiTalkInputError(f"unknown keys in `{name}:` {sorted(unknown)}; known: {sorted(known)}")
    return kind(**values)


# the old flat layout's names -> (section, field), for files written before the sections existed
FLAT_NAMES = {
    "data": ("data", "folders"),
    "init": ("init", "model"),
    "vae": ("init", "vae"),
    **{f.name: ("data", f.name) for f in fields(DataConfig) if f.name != "folders"},
    **{f.name: ("init", f.name) for f in fields(InitConfig) if f.name not in ("model", "vae")},
    **{f.name: ("optim", f.name) for f in fields(OptimConfig)},
    **{f.name: ("schedule", f.name) for f in fields(ScheduleConfig)},
    **{f.name: ("loss", f.name) for f in fields(LossConfig)},
    **{f"vae_{f.name}": ("vae", f.name) for f in fields(VAEConfig) if f.name not in ("kl_weight", "chroma_weight")},
    "kl_weight": ("vae", "kl_weight"),
    "chroma_weight": ("vae", "chroma_weight"),
    "face_weight": ("vae", "face_weight"),
    "posterior_std_init": ("vae", "posterior_std_init"),
}


def load_config(path: str | Path, **overrides) -> TrainConfig:
    """A YAML file's config; ``overrides`` are dotted names (``**{"schedule.steps": 5}``), None ignored."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MultiTalkInputError(f"training config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise MultiTalkInputError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise MultiTalkInputError(f"{path} must hold a mapping of settings")
    try:
        config = TrainConfig.from_dict(data, where=str(path))
    except TypeError as err:
        raise MultiTalkInputError(f"{path}: {err}") from None
    return config.override(overrides) if any(v is not None for v in overrides.values()) else config


def _field_rows(kind: type) -> list[list[str]]:
    """``[name, type, default, comment]`` per field, from the comments beside the fields in this file."""
    import inspect
    import re

    rows, current = [], None
    for line in inspect.getsource(kind).splitlines():
        if line.strip().startswith("def "):
            break
        m = re.match(r"    (\w+): ([^=#]+?)(?: = ([^#]+?))?\s*(?:#\s?(.*))?$", line)
        if m:
            current = [m[1], m[2].strip(), (m[3] or "required").strip(), (m[4] or "").strip()]
            rows.append(current)
        elif current and re.match(r"\s+#", line):
            current[3] += " " + line.strip().lstrip("#").strip()
    return rows


def reference_markdown() -> str:
    """``docs/training.md``: every field with its type, default and the comment beside it in this file."""
    out = [
        "# Training configuration",
        "",
        "Every field of a `multitalk train` YAML file (`multitalk.training.TrainConfig`), generated from the",
        "comments beside the fields by `python -m multitalk.training.config > docs/training.md`. The demo",
        "model's recipe (`configs/recipes/demo/`) shows them in use; `docs/demo-model.md` explains each step.",
        "Fields marked *dit* or *vae* apply to that stage only; the `vae:` section exists only in a vae stage.",
        "",
        "## Top level",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]

    def table(kind: type, prefix: str = "") -> None:
        for name, kind_text, default, text in _field_rows(kind):
            if prefix == "" and name in SECTIONS:
                continue
            default = "see below" if default.startswith("field(") and name in SECTIONS else default
            default = default.replace("field(default_factory=lambda: ", "").removesuffix(")")
            kind_text = kind_text.replace(" | ", " or ")
            out.append(f"| `{prefix}{name}` | `{kind_text}` | `{default}` | {text.replace('|', '/')} |")

    table(TrainConfig)
    for name, kind in SECTIONS.items():
        out += [
            "",
            f"## `{name}:` — {kind.__doc__.strip()}",
            "",
            "| field | type | default | meaning |",
            "|---|---|---|---|",
        ]
        table(kind, f"{name}.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
