"""The request schema: one set of rules for every way a request arrives.

The official input JSON (``multitalk generate INPUT.json``), the CLI's flags, an HTTP job and a
Python pipeline call all pass through these pydantic models, so a value refused in one place is
refused in all of them, with the same one line naming the field and the fix. The numbers are
strict (``true`` is not a step count, ``"7"`` is not a shift) because a request that means
something else than it says should fail, not run.

Limits that depend on the machine (how many frames one clip may have) are not part of the
schema: ``memory.check_clip_memory`` derives them from the memory there is, once the size is known.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, ValidationInfo, field_validator

from .constants import OLD_SETTING_NAMES
from .errors import MultiTalkInputError

MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes
MAX_PROMPT_CHARS = 4000  # the text encoder reads 512 tokens; more text is a mistake or an attack
MAX_STEPS = 1000  # the default cap on denoising steps (time, not memory); --max-steps raises it
MAX_VIDEO_FRAMES = 25 * 3600  # an hour of video: the most --max-frames may ask for
MAX_JSON_BYTES = 1_000_000  # an input file names files, it does not hold them
MAX_JSON_DEPTH = 20  # the official files are three levels deep

Int = Annotated[int, Strict()]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Box = Annotated[list[Number], Field(min_length=4, max_length=4)]
PersonKey = Annotated[str, Field(pattern=r"^person[1-9][0-9]?$")]

# The fix for each field, said after what is wrong with it.
FIXES = {
    "prompt": f"give the scene as one string of at most {MAX_PROMPT_CHARS} characters",
    "negative_prompt": f"give one string of at most {MAX_PROMPT_CHARS} characters, or leave it out",
    "audio_type": "use para (the voices play together) or add (one after the other)",
    "cond_image": "give the reference image's file name",
    "cond_video": "give the file name of a video to dub (or of an image)",
    "cond_audio": "map person1, person2, ... to audio file names",
    "bbox": "give one [top, left, bottom, right] of four numbers (pixels) per person: {person1: [...], ...}",
    "bboxes": "give one [top, left, bottom, right] of four numbers (pixels) per person",
    "tts_audio": 'give {"text": "(s1) ... (s2) ...", "human1_voice": "en+m3", ...}',
    "num_inference_steps": "give a whole number of denoising steps (the official 40; 4 or 8 with a distilled LoRA)",
    "num_frames": "give frames per clip of the form 4k+1 (the official 81)",
    "motion_frames": "give the frames carried into the next clip (the official 25; InfiniteTalk 9)",
    "mode": "use clip (one clip) or streaming (as long as the audio)",
    "seed": f"give a whole number in 0..{MAX_SEED}",
    "text_guidance": "give a finite number >= 0 (the official 5; 1 turns text guidance off)",
    "audio_guidance": "give a finite number >= 0 (the official 4)",
    "shift": "give a finite number > 0 (the official 7 at 480p, 11 at 720p), or leave it out",
    "color_correction": "give a strength in 0..1 (1 = the official full correction)",
    "max_frames": f"give the longest video in frames, 1..{MAX_VIDEO_FRAMES} (an hour)",
    "fit_clips": "give true or false",
}
# How the CLI spells a field, so its messages name the flag the user typed.
FLAGS = {
    "num_inference_steps": "--num-inference-steps",
    "num_frames": "--num-frames",
    "motion_frames": "--motion-frames",
    "text_guidance": "--text-guidance",
    "audio_guidance": "--audio-guidance",
    "color_correction": "--color-correction",
    "max_frames": "--max-frames",
    "audio_type": "--audio-type",
}


class Settings(BaseModel):
    """How a video is sampled. Every field has its rule here; none has a default, because the defaults
    belong to the model (``pipeline.sampling_settings``) and the caller fills them in first."""

    model_config = ConfigDict(extra="forbid")

    num_inference_steps: Int = Field(ge=1)
    num_frames: Int = Field(ge=1)
    mode: Literal["clip", "streaming"] = "clip"
    motion_frames: Int = Field(ge=1)
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    text_guidance: Number = Field(ge=0)
    audio_guidance: Number = Field(ge=0)
    shift: Number | None = Field(None, gt=0)
    color_correction: Number | None = Field(None, ge=0, le=1)
    max_frames: Int = Field(1000, ge=1, le=MAX_VIDEO_FRAMES)
    fit_clips: Annotated[bool, Strict()] = False

    @field_validator("num_frames")
    @classmethod
    def _four_k_plus_one(cls, value: int) -> int:
        if (value - 1) % 4:
            raise ValueError(f"must be of the form 4k+1 (e.g. 81), got {value}")
        return value

    @field_validator("num_inference_steps")
    @classmethod
    def _within_step_limit(cls, value: int, info: ValidationInfo) -> int:
        most = (info.context or {}).get("max_steps", MAX_STEPS)
        if most is not None and value > most:
            raise ValueError(f"{value} is over the limit of {most} (--max-steps raises it)")
        return value

    @field_validator("motion_frames")
    @classmethod
    def _fewer_than_a_clip(cls, value: int, info: ValidationInfo) -> int:
        frames = info.data.get("num_frames")
        if info.data.get("mode") == "streaming" and frames is not None and value >= frames:
            raise ValueError(f"must be fewer than the clip's {frames} frames, got {value}")
        return value


class TextToSpeech(BaseModel):
    """The official ``tts_audio`` form: turns marked ``(s1)``, ``(s2)``, ... and a voice per speaker."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    human1_voice: str | None = None
    human2_voice: str | None = None
    human3_voice: str | None = None
    human4_voice: str | None = None
    human5_voice: str | None = None
    human6_voice: str | None = None
    human7_voice: str | None = None
    human8_voice: str | None = None


class InputFile(BaseModel):
    """The official input JSON. Fields it does not know are left alone (the official files carry
    their own extras); the ones it knows must be what they claim."""

    model_config = ConfigDict(extra="ignore")

    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    cond_image: str | None = None
    cond_video: str | None = None
    cond_audio: dict[PersonKey, str] | None = None
    audio_type: Literal["para", "add"] = "para"
    bbox: dict[PersonKey, Box] | None = None
    tts_audio: TextToSpeech | None = None


class JobRequest(BaseModel):
    """The ``request`` field of an HTTP job: what the official file says, minus the files (uploaded
    beside it), plus sampling settings (checked by ``Settings`` once the server's defaults are in)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    audio_type: Literal["para", "add"] = "para"
    bbox: dict[PersonKey, Box] | list[Box] | None = None
    bboxes: list[Box] | None = None
    cond_image: str | None = None  # an official file pasted whole: its file names are not used
    cond_audio: dict[PersonKey, str] | None = None

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    def boxes(self) -> list | None:
        """One box per person in person order, whichever form the request used."""
        from .conditioning.people import in_person_order

        if isinstance(self.bbox, dict):
            return in_person_order(self.bbox)
        return self.bbox if self.bbox is not None else self.bboxes


def message(err: ValidationError, flags: bool = False) -> str:
    """The first thing wrong, in one line: the field (as the CLI spells it when ``flags``), what is
    wrong with it and the fix."""
    first = err.errors(include_url=False)[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    where = ".".join(str(part) for part in first["loc"])
    if flags and field in FLAGS:
        where = FLAGS[field]
    elif flags and field in Settings.model_fields:
        where = "--" + field.replace("_", "-")
    text = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("value_error", "missing", "extra_forbidden") and "input" in first:
        text += f", got {json.dumps(first['input'], default=str)[:60]}"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    fix = FIXES.get(field)
    return f"{where}: {text}" + (f"; {fix}" if fix else "")


def check_settings(settings: dict, flags: bool = False, max_steps: int | None = MAX_STEPS) -> Settings:
    """``settings`` (old names accepted) checked, or a ``MultiTalkInputError`` naming the field and the fix.
    ``max_steps`` None: no cap (the library's callers choose their own cost)."""
    given = {OLD_SETTING_NAMES.get(k, k): getattr(v, "item", lambda v=v: v)() for k, v in settings.items()}
    try:
        return Settings.model_validate(given, context={"max_steps": max_steps})
    except ValidationError as err:
        raise MultiTalkInputError(message(err, flags)) from None


def json_depth(data, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep ``data`` nests (stops counting past ``limit``)."""
    depth, level = 0, [data]
    while level and depth <= limit:
        depth += 1
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def parse_json_object(text: str, what: str) -> dict:
    """A JSON object from ``text``, refused with one line when it is too big, too deep or not an object."""
    if len(text) > MAX_JSON_BYTES:
        raise MultiTalkInputError(
            f"{what} is {len(text)} bytes; at most {MAX_JSON_BYTES // 1000} kB (it names files, it does not hold them)"
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)[:100]
        raise MultiTalkInputError(f"{what} is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise MultiTalkInputError(f"{what} must hold a JSON object")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise MultiTalkInputError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels; the official files use three")
    return data


def parse_input_file(data: dict) -> InputFile:
    try:
        return InputFile.model_validate(data)
    except ValidationError as err:
        raise MultiTalkInputError(message(err)) from None


def parse_job_request(data: dict) -> JobRequest:
    try:
        return JobRequest.model_validate(data)
    except ValidationError as err:
        raise MultiTalkInputError(message(err)) from None
