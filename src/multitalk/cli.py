"""`multitalk ...`: the command line. Bad input ends in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

from .errors import MultiTalkError, MultiTalkInputError

EXIT_BAD_INPUT = 2


def _people_range(text: str) -> tuple[int, int]:
    try:
        low, _, high = text.partition("-")
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--people wants N or A-B (e.g. 2 or 1-3), got {text!r}") from None
    if not 1 <= lo <= hi <= 4:
        raise argparse.ArgumentTypeError(f"--people must lie within 1-4 with A <= B, got {text!r}")
    return lo, hi


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import write_dataset
    from .synthetic.speech import espeak_available

    if args.size < 64:
        raise MultiTalkInputError(f"--size {args.size} is too small; frames need at least 64 px")
    if args.speech == "espeak" and not espeak_available():
        raise MultiTalkInputError("--speech espeak needs espeak-ng (apt install espeak-ng); or use --speech tone")
    from .synthetic.splits import check_training_seeds

    try:  # twins skip seeds that leave no room to walk both ways: a few per pair at most
        check_training_seeds(args.seed, args.count if not args.twins else 3 * args.twins)
    except ValueError as err:
        raise MultiTalkInputError(str(err)) from None
    start = time.perf_counter()
    if args.twins:
        from .synthetic import write_twins

        folders, next_seed = write_twins(
            args.out, args.twins, args.people, args.seconds, args.size, args.seed, with_video=not args.no_video
        )
        print(
            f"wrote {len(folders) // 2} twin pairs to {args.out} in {time.perf_counter() - start:.1f} s "
            f"(seeds {args.seed}-{next_seed - 1}; scenes with no room to walk both ways skipped)"
        )
        return 0
    folders = write_dataset(
        args.out,
        args.count,
        args.people,
        args.seconds,
        args.size,
        args.seed,
        with_video=not args.no_video,
        speech=args.speech,
        action=None if args.action == "none" else args.action,
    )
    print(f"wrote {len(folders)} samples to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_eval_sync(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_sync
    from .media import read_audio, read_video
    from .synthetic import load_scene_record, mouth_openings

    if not Path(args.scene).exists():
        raise MultiTalkInputError(f"scene file not found: {args.scene} (give the sample's scene.json)")
    try:
        record = load_scene_record(args.scene)
    except (ValueError, KeyError, TypeError) as err:
        raise MultiTalkInputError(f"{args.scene} is not a synthetic-world scene.json ({err})") from None
    scene, truth = record["scene"], record["mouth_opening"]
    if args.audio:
        if len(args.audio) != scene.num_people:
            raise MultiTalkInputError(f"{len(args.audio)} --audio files for {scene.num_people} people; give one each")
        truth = mouth_openings([read_audio(path) for path in args.audio], scene.fps)
    video, _ = read_video(args.video)
    report = evaluate_sync(video, scene, truth)
    print(json.dumps(report.summary(), indent=1) if args.json else report.table())
    return 0


def _bbox(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bbox wants four numbers a,b,c,d, got {text!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"--bbox wants four finite numbers a,b,c,d, got {text!r}")
    return values


def _resolve(value: str, base: Path) -> Path:
    """Official input files name paths relative to where the command runs; ours relative to the JSON."""
    path = Path(value)
    if path.is_absolute() or (base / path).exists() or not path.exists():
        return path if path.is_absolute() else base / path
    return path


def read_request(args: argparse.Namespace, need_audio: bool = True, need_prompt: bool = True) -> dict:
    """The request from an official-format input JSON and/or flags (flags win)."""
    request: dict = {"prompt": None, "image": None, "video": None, "audio": [], "bboxes": None, "audio_type": "para"}
    if args.input:
        request.update(_read_input_json(Path(args.input)))
    flags = {
        "audio": [Path(a) for a in args.audio or []],
        "bboxes": args.bbox,
        "audio_type": args.audio_type,
    }
    request.update({k: v for k, v in flags.items() if v})  # flags win
    if args.prompt is not None:  # even an empty one
        request["prompt"] = args.prompt
    if args.image:
        request["image"], request["video"] = Path(args.image), None
    if args.video:
        _set_reference(request, Path(args.video))
    if request["image"] is None and request["video"] is None:
        raise MultiTalkInputError(
            "no reference image: give INPUT.json with cond_image (or cond_video), or --image (or --video)"
        )
    if need_audio and not request["audio"] and not request.get("tts"):
        raise MultiTalkInputError("no audio: give INPUT.json with cond_audio, or --audio (once per person)")
    if need_prompt and not request["prompt"]:
        raise MultiTalkInputError("no prompt: give INPUT.json with prompt, or --prompt")
    return request


def _load_json_object(source: Path) -> dict:
    from .schema import MAX_JSON_BYTES, parse_json_object

    if not source.is_file():
        raise MultiTalkInputError(f"input file not found: {source}")
    if source.stat().st_size > MAX_JSON_BYTES:
        raise MultiTalkInputError(
            f"{source} is {source.stat().st_size} bytes; an input file is at most "
            f"{MAX_JSON_BYTES // 1000} kB (it names files, it does not hold them)"
        )
    try:
        text = source.read_text()
    except UnicodeDecodeError:
        raise MultiTalkInputError(f"{source} is not a UTF-8 text file; give an input JSON") from None
    return parse_json_object(text, str(source))


def _read_input_json(source: Path) -> dict:
    """An official input file's fields, checked by the shared schema, paths resolved beside it."""
    from .conditioning.people import in_person_order
    from .schema import parse_input_file

    data = parse_input_file(_load_json_object(source))
    tts = data.tts_audio if not data.cond_audio else None
    base = source.parent
    request = {
        "audio": [_resolve(path, base) for path in in_person_order(data.cond_audio or {})],
        "prompt": data.prompt,
        "audio_type": data.audio_type,
    }
    if data.cond_image:
        request["image"] = _resolve(data.cond_image, base)
    if data.cond_video:  # InfiniteTalk's input: a video to dub, or an image
        _set_reference(request, _resolve(data.cond_video, base))
    if data.bbox is not None:
        request["bboxes"] = in_person_order(data.bbox)
    if tts is not None:  # voices spoken from text (conditioning/tts.py), on one timeline
        request["tts"], request["audio_type"] = tts.model_dump(exclude_none=True), "para"
    return request


def check_output_paths(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Everything about where results go, before any model work: a clear error, never a late traceback."""
    import os

    out = args.output
    if out.is_dir():
        raise MultiTalkInputError(f"output {out} is a folder; give a file name ending in .mp4")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise MultiTalkInputError(f"cannot write into {parent}: the folder does not exist or is not writable")
    resolved = out.resolve()
    for path in inputs:
        if path is not None and Path(path).exists() and Path(path).resolve() == resolved:
            raise MultiTalkInputError(f"output {out} is one of the inputs; choose another output file")
    for flag, folder in (("--save-frames", args.save_frames), ("--work-dir", args.work_dir)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise MultiTalkInputError(f"{flag} {folder} is a file; give a folder")


def check_cost(args: argparse.Namespace, settings: dict, image_size: tuple[int, int], model: Path, size) -> None:
    """Every cost knob checked before any model work: the numbers by the shared schema, the clip's
    memory against what this machine has free (the longest clip that fits depends on the size)."""
    from .conditioning.people import nearest_bucket
    from .loading import model_buckets
    from .memory import check_clip_memory
    from .schema import check_settings

    checked = check_settings(
        {**settings, "mode": args.mode, "max_frames": args.max_frames, "seed": args.seed},
        flags=True,
        max_steps=args.max_steps,
    )
    if not isinstance(size, tuple):
        size = nearest_bucket(*image_size, size or model_buckets(model))
    frames = checked.num_frames if checked.mode == "clip" else checked.max_frames
    check_clip_memory(checked.num_frames, frames, *size, flags=True)


def _set_reference(request: dict, path: Path) -> None:
    """``cond_video`` / ``--video`` may name an image (image-to-video) or a video (dubbing)."""
    from .media import IMAGE_SUFFIXES

    if path.suffix.lower() in IMAGE_SUFFIXES:
        request["image"], request["video"] = path, None
    else:
        request["image"], request["video"] = None, path


def resolve_model(model: str | None) -> Path:
    """``--model`` as given, or the bundled demo model."""
    from .checkpoints import default_model
    from .errors import CheckpointError

    if model is not None:
        return Path(model)
    try:
        return default_model()
    except CheckpointError as err:
        raise MultiTalkInputError(str(err)) from None


DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _size(text: str | None):
    """``--size``: a size table (480, 720) whose bucket nearest the image's shape is taken, or WxH."""
    if text is None:
        return None
    if text.lower() in ("480", "480p", "720", "720p", "multitalk-480", "multitalk-720"):
        return text.lower()
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise MultiTalkInputError(f"--size wants 480, 720 or WxH (e.g. 832x480), got {text!r}")
    return int(height), int(width)


def _device_and_dtype(device: str | None, dtype: str | None) -> tuple[str, str]:
    """CUDA when there is one; bfloat16 on a GPU, float32 on the CPU (bfloat16 is slow there)."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise MultiTalkInputError(f"unknown --device {device!r}; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise MultiTalkInputError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
    if kind not in ("cpu", "cuda", "mps", "xpu"):
        raise MultiTalkInputError(f"unsupported --device {device!r}; use cpu or cuda")
    return device, dtype or ("float32" if kind == "cpu" else "bfloat16")


def _generation_inputs(args: argparse.Namespace) -> dict:
    """Everything about the request, read and checked before any model work."""
    import warnings

    from .checkpoints import model_sampling, model_variant
    from .lora import PRESETS as LORA_PRESETS
    from .lora import parse_lora_argument
    from .media import detect_shots, frame_size, read_audio, read_image, read_video_frames
    from .pipeline import VARIANT_SAMPLING, check_request, sampling_settings

    if args.output.suffix.lower() != ".mp4":
        raise MultiTalkInputError(f"output {args.output} must end in .mp4")
    request = read_request(args)
    model = resolve_model(args.model)
    if args.multitalk_weights and not Path(args.multitalk_weights).is_file():
        raise MultiTalkInputError(
            f"--multitalk-weights {args.multitalk_weights} not found; give multitalk.safetensors "
            "or infinitetalk.safetensors"
        )
    size = _size(args.size)
    device, dtype = _device_and_dtype(args.device, args.dtype)
    variant = args.variant or model_variant(model, args.multitalk_weights)
    loras = [parse_lora_argument(text) for text in args.lora or []]
    for path, _ in loras:
        if not path.is_file():
            raise MultiTalkInputError(f"--lora {path} not found; give a LoRA .safetensors file (FILE or FILE:SCALE)")
    preset = LORA_PRESETS[args.preset] if args.preset else {}
    settings = sampling_settings(
        {**VARIANT_SAMPLING[variant], **(model_sampling(model) if args.audio_encoder is None else {}), **preset},
        num_frames=args.num_frames,
        motion_frames=args.motion_frames,
        num_inference_steps=args.num_inference_steps,
        text_guidance=args.text_guidance,
        audio_guidance=args.audio_guidance,
        shift=args.shift,
        color_correction=args.color_correction,
    )
    is_video = request["video"] is not None
    check_cost(args, settings, frame_size(request["video"] if is_video else request["image"], is_video), model, size)
    check_output_paths(args, [request["image"], request["video"], *request["audio"], args.mask_image])
    video, shots = None, None
    if args.scenes is not None and request["video"] is None:
        raise MultiTalkInputError("--scenes cuts a video to dub into its shots: give --video (or cond_video) a video")
    if request["video"] is not None:
        shots = detect_shots(request["video"], threshold=args.scenes) if args.scenes is not None else []
        starts = [0, *shots]
        step = settings["num_frames"] - settings["motion_frames"]

        def keep(j: int) -> bool:
            """Each shot's frame 0 (size, boxes, masks); InfiniteTalk also each clip's first frame."""
            start = max(s for s in starts if s <= j)
            return j == start or (variant == "infinitetalk" and (j - start) % step == 0)

        video = read_video_frames(request["video"], keep=keep)
        image = video[0]
    else:
        image = read_image(request["image"])
    if request.get("tts") and not args.audio:
        from .conditioning.tts import tts_tracks

        voices = tts_tracks(request["tts"])
    else:
        voices = [read_audio(path) for path in request["audio"]]
    if args.auto_boxes and request["bboxes"] is None and len(voices) > 1:  # boxes from the faces in the picture
        from .conditioning.faces import person_boxes

        request["bboxes"], args.bbox_format = person_boxes(image, len(voices)), "tlbr"
    mask_image = read_image(args.mask_image) if args.mask_image else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_request(image, voices, request["audio_type"], request["bboxes"], args.bbox_format, mask_image)
    for warning in caught:
        print(f"multitalk generate: warning: {warning.message}", file=sys.stderr)
    return {
        "request": request,
        "model": model,
        "size": size,
        "device": device,
        "dtype": dtype,
        "loras": loras,
        "settings": settings,
        "image": image,
        "video": video,
        "shots": shots or None,
        "voices": voices,
        "mask_image": mask_image,
    }


def _prepared_pipeline(args: argparse.Namespace, device: str, dtype: str, model: Path, loras: list):
    """The pipeline loaded, with its LoRAs, attention backend, cache, memory tier and compilation."""
    import torch

    from .checkpoints import load_pipeline
    from .errors import CheckpointError
    from .memory import apply_memory_tier, check_quantize, check_tier

    if args.memory and args.offload:
        raise MultiTalkInputError("--offload is --memory balanced; give one of them")
    tier = args.memory or ("balanced" if args.offload and device != "cpu" else "max")
    check_tier(tier, device)
    check_quantize(args.quantize, tier)
    offload = tier != "max"
    try:
        pipe = load_pipeline(
            model,
            args.audio_encoder,
            torch_dtype=getattr(torch, dtype),
            multitalk_weights=args.multitalk_weights,
            device="cpu" if offload else device,
            variant=args.variant,
        )
    except CheckpointError as err:
        raise MultiTalkInputError(str(err)) from None
    for path, scale in loras:
        try:
            changed = pipe.load_lora(path, scale)
        except CheckpointError as err:
            raise MultiTalkInputError(str(err)) from None
        print(f"multitalk generate: LoRA {path.name} x{scale:g}: {changed} weights changed", file=sys.stderr)
    if args.attention_backend:
        try:
            pipe.transformer.set_attention_backend(args.attention_backend)
        except (ValueError, KeyError) as err:
            raise MultiTalkInputError(f"unknown --attention-backend {args.attention_backend!r} ({err})") from None
    if args.cache == "first-block":
        from diffusers import FirstBlockCacheConfig

        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=args.cache_threshold or 0.05))
    elif args.cache == "teacache":
        from .teacache import TeaCacheConfig, apply_teacache

        apply_teacache(
            pipe.transformer, TeaCacheConfig(threshold=0.2 if args.cache_threshold is None else args.cache_threshold)
        )
    if args.quantize:
        from .memory import quantize_weights

        quantize_weights(pipe.transformer, args.quantize)
    apply_memory_tier(pipe, tier, device)
    if args.ulysses * args.ring > 1:
        from .models.context_parallel import enable_context_parallel

        try:
            enable_context_parallel(pipe.transformer, args.ulysses, args.ring)
        except ValueError as err:
            raise MultiTalkInputError(str(err)) from None
    if args.compile:  # each block compiled once and reused: the 40 blocks share one graph
        pipe.transformer.compile_repeated_blocks(fullgraph=False, dynamic=False)
    return pipe


def _start_processes(args: argparse.Namespace, inputs: dict) -> bool:
    """With ``--ulysses``/``--ring``: join torchrun's process group (NCCL on GPUs, gloo on the CPU), one GPU
    per process. Returns whether this process writes the results (the first one does)."""
    import os

    if args.ulysses < 1 or args.ring < 1:
        raise MultiTalkInputError(f"--ulysses and --ring must be at least 1, got {args.ulysses} and {args.ring}")
    if args.ulysses * args.ring == 1:
        return True
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ:
        raise MultiTalkInputError(
            f"--ulysses/--ring split one video over {args.ulysses * args.ring} processes: start them with "
            f"torchrun --nproc_per_node {args.ulysses * args.ring} -m multitalk.cli generate ..."
        )
    if args.memory not in (None, "max") or args.offload or args.cache == "first-block":
        raise MultiTalkInputError(
            "--ulysses/--ring keep the whole model on each GPU and decide cache skips from the timestep only: "
            "drop --memory/--offload and --cache first-block (--cache teacache works)"
        )
    cuda = inputs["device"].startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        inputs["device"] = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank() == 0


def cmd_generate(args: argparse.Namespace) -> int:
    import warnings

    import torch

    from .media import write_image, write_video

    inputs = _generation_inputs(args)
    request, settings, video = inputs["request"], inputs["settings"], inputs["video"]
    writer = _start_processes(args, inputs)  # under torchrun: one process per GPU, the first one writes
    pipe = _prepared_pipeline(args, inputs["device"], inputs["dtype"], inputs["model"], inputs["loras"])
    start = time.perf_counter()
    # finished clips are kept here until the video is written, so --resume can go on after a crash
    work_dir = args.work_dir or args.output.parent / f".{args.output.stem}.work"
    if args.resume and not (work_dir / "state.pt").is_file():
        print(f"multitalk generate: nothing to resume in {work_dir}; starting from the first clip", file=sys.stderr)
    warnings.filterwarnings("ignore", message="person boxes overlap")  # already reported above
    pipe.set_progress_bar_config(disable=args.quiet or not writer)
    out = pipe(
        inputs["image"] if video is None else None,
        inputs["voices"],
        request["prompt"],
        negative_prompt=args.negative_prompt,
        video=video,
        audio_type=request["audio_type"],
        bboxes=request["bboxes"],
        bbox_format=args.bbox_format,
        mask_image=inputs["mask_image"],
        **settings,
        generator=torch.Generator().manual_seed(args.seed),
        mode=args.mode,
        max_frames=args.max_frames,
        apg=args.apg,
        size=inputs["size"],
        work_dir=work_dir,
        resume=args.resume,
        shots=inputs["shots"],
    )
    if not writer:
        return 0
    write_video(args.output, out.frames, out.fps, audio=out.audio)
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.save_frames:
        for i, frame in enumerate(out.frames):
            write_image(Path(args.save_frames) / f"{i:05d}.png", frame)
    elapsed = time.perf_counter() - start
    frames = out.frames.shape[0]
    per_step = f", {elapsed / out.steps_run:.3f} s/step over {out.steps_run} steps" if out.steps_run else ""
    print(
        f"wrote {args.output}: {frames} frames ({frames / out.fps:.2f} s) at {out.frames.shape[2]}x"
        f"{out.frames.shape[1]} in {elapsed:.1f} s{per_step}"
    )
    return 0


def cmd_masks(args: argparse.Namespace) -> int:
    """The reference image as the model will see it, each person's region drawn and labelled."""
    import warnings

    import numpy as np

    from .conditioning.people import nearest_bucket, person_masks
    from .media import read_image, write_image
    from .processing import resize_image_official, resize_masks_official

    for name in ("audio", "prompt", "video", "bbox", "audio_type"):
        setattr(args, name, getattr(args, name, None))
    request = read_request(args, need_audio=False, need_prompt=False)
    if request["image"] is None:
        raise MultiTalkInputError("masks needs a reference image (cond_image, or --image)")
    image = read_image(request["image"])
    if args.auto_boxes and not request["bboxes"]:
        from .conditioning.faces import face_boxes, person_boxes

        request["bboxes"] = person_boxes(image, len(request["audio"]) or len(face_boxes(image)) or 1)
    people = len(request["audio"]) or (len(request["bboxes"]) if request["bboxes"] else 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = person_masks(people, *image.shape[:2], request["bboxes"])
    size = _size(args.size)
    if size is None or isinstance(size, str):
        size = nearest_bucket(*image.shape[:2], size or "multitalk-480")
    frame = ((resize_image_official(image, size).permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
    masks = resize_masks_official(masks, size).numpy() > 0
    colours = np.array([[230, 60, 60], [60, 120, 230], [60, 200, 90], [230, 180, 40], [180, 80, 220]], float)
    notes = [str(w.message) for w in caught]
    total = masks.shape[1] * masks.shape[2]
    for i in range(people):
        region = masks[i]
        frame[region] = 0.55 * frame[region] + 0.45 * colours[i % len(colours)]
        share = region.sum() / total
        rows, cols = np.nonzero(region)
        if share < 0.02:
            notes.append(
                f"person {i + 1}'s region covers {share:.1%} of the frame (boxes are [top, left, bottom, "
                "right], rows first: check the order)"
            )
        if rows.size and (
            rows.min() == 0 or cols.min() == 0 or rows.max() == region.shape[0] - 1 or cols.max() == region.shape[1] - 1
        ):
            notes.append(f"person {i + 1}'s region touches the frame's border after the crop")
        if rows.size:  # outline and a label block in the person's colour
            top, left, bottom, right = rows.min(), cols.min(), rows.max(), cols.max()
            frame[top, left : right + 1] = frame[bottom, left : right + 1] = colours[i % len(colours)]
            frame[top : bottom + 1, left] = frame[top : bottom + 1, right] = colours[i % len(colours)]
            tick = max(4, min(size) // 64)
            for k in range(i + 1):  # person k+1: k+1 white squares inside the box's top-left corner
                y = top + 2 + k * (tick + 2)
                frame[y : y + tick, left + 2 : left + 2 + tick] = 255
    write_image(args.output, frame.astype(np.uint8))
    for note in notes:
        print(f"multitalk masks: warning: {note}", file=sys.stderr)
    print(
        f"wrote {args.output}: {size[1]}x{size[0]}, {people} people (white ticks at each box's corner count the person)"
    )
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """An original-layout (or Diffusers) Wan folder + audio weights -> one multitalk pipeline folder."""
    import tempfile

    import torch

    from .checkpoints import load_pipeline
    from .errors import CheckpointError

    target = Path(args.output)
    if target.exists():
        raise MultiTalkInputError(f"{target} exists; give a new folder to write")
    start = time.perf_counter()
    try:
        pipe = load_pipeline(
            args.model,
            args.audio_encoder,
            torch_dtype=getattr(torch, args.dtype),
            multitalk_weights=args.multitalk_weights,
        )
    except CheckpointError as err:
        raise MultiTalkInputError(str(err)) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        staged = Path(tmp) / "model"
        pipe.save_pretrained(staged)
        staged.rename(target)  # complete or absent, never half-written
    print(f"wrote {target} in {time.perf_counter() - start:.1f} s; use it with --model {target}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training import load_config, trainer_for

    config = load_config(args.config, **{"schedule.steps": args.steps, "output": args.output, "init.model": args.init})
    trainer = trainer_for(config, progress=not args.quiet)
    start = time.perf_counter()
    history = trainer.run(resume=args.resume)
    if not trainer.main:  # with several processes, the main one reports
        return 0
    done = [h["loss"] for h in history[-config.schedule.log_every :]]
    print(
        f"trained to step {trainer.step} in {time.perf_counter() - start:.1f} s; recent loss "
        f"{sum(done) / max(len(done), 1):.4f}; result in {Path(config.output) / 'final'}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import sqlite3

    import uvicorn

    from .app.server import Limits, create_app
    from .checkpoints import load_pipeline, model_sampling
    from .loading import model_buckets

    model = resolve_model(args.model)
    if not Path(model).is_dir():
        raise MultiTalkInputError(f"model folder not found: {model}")
    if args.workers < 0 or (args.workers == 0 and not args.queue):
        raise MultiTalkInputError("--workers must be at least 1 (0 only with a shared --queue that workers serve)")
    token = args.token if args.token is not None else os.environ.get("MULTITALK_TOKEN")
    if token is not None and not token.strip():
        raise MultiTalkInputError("--token is empty; give a secret, or leave it out on a loopback address")
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if token is None and not loopback and not args.no_auth:
        raise MultiTalkInputError(
            f"--host {args.host} lets other machines in: give --token SECRET (or MULTITALK_TOKEN), "
            "or --no-auth if something in front of it checks who may come in"
        )
    limits = Limits(args.max_file_mb, args.max_audio_seconds, args.max_pixels, max_steps=args.max_steps)
    examples = args.examples or (Path("examples") if Path("examples").is_dir() else None)
    try:
        app = create_app(
            args.data,
            lambda: load_pipeline(model),
            token=token,
            limits=limits,
            examples=examples,
            workers=args.workers,
            sampling=model_sampling(model),
            queue=_queue(args.queue),
            buckets=model_buckets(model),
        )
    except (OSError, sqlite3.Error) as err:  # a full disk, an unreadable folder, a refused database
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0]
        raise MultiTalkError(f"cannot open the job queue in {args.data}: {reason}") from None
    print(f"multitalk serve: http://{args.host}:{args.port}/ (API docs at /docs){' — token required' if token else ''}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _queue(url: str | None) -> str | None:
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise MultiTalkInputError(f"--queue {url!r}: give a postgresql://USER@HOST/DB address")
    return url


def cmd_worker(args: argparse.Namespace) -> int:
    """Workers of a shared queue on this machine, until SIGTERM or Ctrl-C (running jobs go back to the queue)."""
    import signal

    from .app.jobs import JobStore
    from .app.worker import Worker
    from .checkpoints import load_pipeline

    model = resolve_model(args.model)
    if not Path(model).is_dir():
        raise MultiTalkInputError(f"model folder not found: {model}")
    if not args.data.is_dir():
        raise MultiTalkInputError(f"--data {args.data} is not a folder; give the jobs folder serve uses")
    try:
        store = JobStore(args.data, queue=_queue(args.queue), dead_after=args.dead_after)
    except Exception as err:  # an unreachable or refused database: one line, not a traceback
        raise MultiTalkInputError(f"--queue {args.queue}: {str(err).strip().splitlines()[0]}") from None
    pool = [Worker(store, lambda: load_pipeline(model), heartbeat=args.heartbeat) for _ in range(args.workers)]
    for worker in pool:
        worker.start()
    signal.signal(signal.SIGTERM, lambda *_: [w.stopping.set() for w in pool])
    while any(w.pipe is None and w.is_alive() for w in pool):  # say "ready" once the models are loaded
        time.sleep(0.1)
    print(f"multitalk worker: {args.workers} worker(s) ready on {args.queue.split('@')[-1]}", flush=True)
    try:
        while any(w.is_alive() for w in pool):
            for worker in pool:
                worker.join(timeout=0.5)
    except KeyboardInterrupt:
        for worker in pool:
            worker.stopping.set()
        for worker in pool:
            worker.join(timeout=30)
    return 0


# `multitalk synth --action`: the scene actions (synthetic.scene.ACTIONS, checked by a test; not imported here so
# that `--help` does not load numpy and torch), plus drawn per scene or none at all
SYNTH_ACTIONS = ("random", "none", "walk", "nod", "swap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multitalk", description="Videos of people talking to each other.")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic-world dataset (videos, voices, ground truth)")
    synth.add_argument("--out", required=True, type=Path, help="folder to write samples into (resumes)")
    synth.add_argument("--count", type=_positive(int), default=10, help="number of samples (default 10)")
    synth.add_argument("--people", type=_people_range, default=(1, 3), help="people per scene: N or A-B (default 1-3)")
    synth.add_argument("--seconds", type=_positive(float), default=5.0, help="length of each sample (default 5)")
    synth.add_argument("--size", type=int, default=128, help="frame width and height in pixels (default 128)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the first sample; sample k uses seed+k")
    synth.add_argument(
        "--speech",
        choices=["tone", "espeak"],
        default="tone",
        help="voices: speech-like tones (default) or espeak-ng speech when it is installed",
    )
    synth.add_argument(
        "--action",
        choices=SYNTH_ACTIONS,
        default="random",
        help="what happens in each scene: drawn per scene (default), nothing, or always this one "
        "(a walk turns into a nod where the walker has no room)",
    )
    synth.add_argument("--no-video", action="store_true", help="skip video.mp4 (frames come from the spec)")
    synth.add_argument(
        "--twins",
        type=_positive(int),
        metavar="PAIRS",
        help="instead: PAIRS silent scenes in which one person walks, each written twice, the walk "
        "mirrored in the twin (data for the prompt's direction words; seeds from --seed)",
    )
    synth.set_defaults(run=cmd_synth)

    gen = commands.add_parser("generate", help="make a talking video from an image, voices and a prompt")
    gen.add_argument("input", nargs="?", help="official MultiTalk input JSON (prompt, cond_image, cond_audio, ...)")
    gen.add_argument("-o", "--output", type=Path, default=Path("out.mp4"), help="mp4 to write (default out.mp4)")
    gen.add_argument("--image", help="reference image (instead of cond_image)")
    gen.add_argument("--video", help="video to dub (instead of cond_video): the people in it follow the new voices")
    gen.add_argument(
        "--scenes",
        nargs="?",
        const=27.0,
        type=float,
        help="dub a video shot by shot: cuts found by PySceneDetect (optional threshold, default 27) start "
        "fresh clips, the audio cut at the same frames (pip install 'multitalk[scenes]')",
    )
    gen.add_argument("--audio", action="append", help="one voice per person, in person order (repeat)")
    gen.add_argument("--prompt", help="text prompt")
    gen.add_argument(
        "--negative-prompt",
        help="negative prompt for text guidance (default: the model's own; "
        "MultiTalk's English default for the official weights)",
    )
    gen.add_argument("--bbox", action="append", type=_bbox, help="a person's box a,b,c,d (repeat, person order)")
    gen.add_argument(
        "--auto-boxes",
        action="store_true",
        help="no bbox given: find the faces and box each person's head and shoulders, left to right "
        "(needs OpenCV: pip install 'multitalk[faces]'; without the flag, the official split into halves)",
    )
    gen.add_argument(
        "--bbox-format",
        choices=["tlbr", "xyxy"],
        default="tlbr",
        help="tlbr = [top, left, bottom, right] as the official code reads boxes (default); "
        "xyxy = [left, top, right, bottom]",
    )
    gen.add_argument("--mask-image", help="label image: 0 background, 1..N the people (instead of boxes)")
    gen.add_argument("--audio-type", choices=None, help="para (voices together) or add (one after another)")
    gen.add_argument(
        "--model",
        help="multitalk pipeline folder, the original Wan2.1-I2V folder of the official "
        "README, or its Diffusers layout (default: the bundled demo model)",
    )
    gen.add_argument("--audio-encoder", help="wav2vec2 folder (needed with a Wan2.1 folder: chinese-wav2vec2-base)")
    gen.add_argument(
        "--multitalk-weights",
        help="audio-layer weights (multitalk.safetensors or infinitetalk.safetensors) when not in the Wan folder",
    )
    gen.add_argument(
        "--variant",
        choices=["multitalk", "infinitetalk"],
        help="the audio weights' clip scheme (default: the model's; infinitetalk when the audio "
        "weights' file is named infinitetalk*.safetensors)",
    )
    gen.add_argument(
        "--size",
        help="480 or 720 (the official size tables; the bucket nearest the image's shape) "
        "or WxH (default: the model's table, 480 for the official weights)",
    )
    gen.add_argument(
        "--lora",
        action="append",
        metavar="FILE[:SCALE]",
        help="fuse a LoRA (ComfyUI/Kijai or diffusers keys, e.g. lightx2v or FusioniX) into the "
        "transformer, scale 1 by default (repeat for several)",
    )
    gen.add_argument(
        "--preset",
        choices=["lightx2v", "fusionix"],
        help="the sampling a few-step LoRA was made for: lightx2v 4 steps, FusioniX 8; both text "
        "guidance 1 (2 passes), audio guidance 2, shift 2 (flags still override)",
    )
    gen.add_argument(
        "--num-inference-steps",
        "--steps",
        dest="num_inference_steps",
        type=int,
        help="sampling steps per clip (default: the model's, else 40)",
    )
    gen.add_argument(
        "--max-steps", type=_positive(int), default=1000, help="refuse more sampling steps than this (default 1000)"
    )
    gen.add_argument(
        "--text-guidance", type=float, help="text guidance scale (default: the model's, else 5; 1 = 2 passes)"
    )
    gen.add_argument("--audio-guidance", type=float, help="audio guidance scale (default: the model's, else 4)")
    gen.add_argument("--shift", type=float, help="timestep shift (default: the model's, else 7 at 480p, 11 at 720p)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--mode", default="streaming", help="clip (one clip) or streaming (as long as the audio)")
    gen.add_argument(
        "--num-frames",
        "--frames",
        dest="num_frames",
        type=int,
        help="frames per clip, 4k+1 (default: the model's, else 81)",
    )
    gen.add_argument(
        "--motion-frames", type=int, help="frames carried into the next clip (default: the model's, else 25)"
    )
    gen.add_argument("--max-frames", type=int, default=1000, help="longest video in streaming mode (default 1000)")
    gen.add_argument("--apg", action="store_true", help="adaptive projected guidance (less colour drift)")
    gen.add_argument(
        "--color-correction",
        type=float,
        help="strength 0-1 of the Lab colour transfer to the reference on every clip (default: the model's, else 1)",
    )
    gen.add_argument("--device", help="torch device (default: cuda when there is a GPU, else cpu)")
    gen.add_argument(
        "--dtype", choices=list(DTYPES), help="weights' precision (default: bfloat16 on a GPU, float32 on the CPU)"
    )
    gen.add_argument(
        "--memory",
        choices=["max", "balanced", "low"],
        help="where weights live (GPU only for balanced/low): max = all on the GPU (default); "
        "balanced = one model on the GPU at a time; low = the DiT's blocks streamed one by one "
        "in float8, encoders offloaded, VAE tiled",
    )
    gen.add_argument("--offload", action="store_true", help="the same as --memory balanced")
    gen.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the transformer's repeated blocks (slow first step, faster after)",
    )
    gen.add_argument(
        "--cache",
        choices=["none", "first-block", "teacache"],
        default="none",
        help="skip work between steps: teacache (MultiTalk's official coefficients, the first 5 "
        "steps always computed) or diffusers' first-block cache",
    )
    gen.add_argument(
        "--cache-threshold",
        type=float,
        help="the cache's threshold (default: teacache 0.2, first-block 0.05; higher skips more)",
    )
    gen.add_argument("--attention-backend", help="diffusers attention backend (e.g. native, flash, sage)")
    gen.add_argument(
        "--quantize",
        choices=["int8", "fp8"],
        help="store the transformer's linear weights in int8 or float8 (torchao, weight-only; about half the memory)",
    )
    gen.add_argument(
        "--ulysses",
        type=int,
        default=1,
        help="split one video's tokens over this many GPUs (Ulysses attention; run under torchrun)",
    )
    gen.add_argument(
        "--ring",
        type=int,
        default=1,
        help="and over this many more with ring attention (needs --attention-backend _native_cudnn or flash)",
    )
    gen.add_argument("--save-frames", help="also write every frame as PNG into this folder")
    gen.add_argument(
        "--work-dir", type=Path, help="where finished clips are kept (default with --resume: next to the output)"
    )
    gen.add_argument("--resume", action="store_true", help="continue an interrupted run from its last clip")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(run=cmd_generate)

    masks = commands.add_parser("masks", help="draw each person's region on the reference as the model sees it")
    masks.add_argument("input", nargs="?", help="official input JSON (cond_image, cond_audio, bbox)")
    masks.add_argument("-o", "--output", type=Path, default=Path("masks.png"), help="PNG to write")
    masks.add_argument("--image", help="reference image (instead of cond_image)")
    masks.add_argument("--bbox", action="append", type=_bbox, help="a person's box a,b,c,d (repeat)")
    masks.add_argument("--size", help="480, 720 or WxH, as for generate (default 480)")
    masks.add_argument("--auto-boxes", action="store_true", help="boxes from the faces found (as generate's flag)")
    masks.set_defaults(run=cmd_masks)

    convert = commands.add_parser(
        "convert",
        help="write the original Wan2.1 folder + audio weights as one multitalk folder (later loads are one call)",
    )
    convert.add_argument("model", help="the original (or Diffusers-layout) Wan2.1-I2V folder")
    convert.add_argument("output", help="folder to write (must not exist)")
    convert.add_argument("--audio-encoder", required=True, help="wav2vec2 folder (chinese-wav2vec2-base)")
    convert.add_argument("--multitalk-weights", help="audio-layer weights when not in the Wan folder")
    convert.add_argument(
        "--dtype", choices=list(DTYPES), default="bfloat16", help="weights' precision on disk (default bfloat16)"
    )
    convert.set_defaults(run=cmd_convert)

    train = commands.add_parser("train", help="train a model from a YAML config (see configs/)")
    train.add_argument("config", help="training config (YAML)")
    train.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    train.add_argument("--steps", type=int, help="override the config's step count")
    train.add_argument("--output", help="override the config's run folder")
    train.add_argument("--init", help="override where the run starts: a preset name or a model folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    serve = commands.add_parser("serve", help="web page + HTTP API with a job queue that survives restarts")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--model", help="model folder (as for generate)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="jobs run at once here, one model each (0 with a shared --queue: this machine only takes jobs)",
    )
    serve.add_argument("--data", type=Path, default=Path("multitalk-data"), help="jobs, uploads and videos")
    serve.add_argument(
        "--queue",
        help="postgresql://USER@HOST/DB: a queue shared with `multitalk worker` on other machines "
        "(--data must then be a folder they all see); default: SQLite in --data",
    )
    serve.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (or set MULTITALK_TOKEN)")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve beyond loopback without a token (only behind something that checks who comes in)",
    )
    serve.add_argument("--examples", type=Path, help="examples folder shown on the page (default ./examples)")
    serve.add_argument("--max-file-mb", type=float, default=50.0)
    serve.add_argument("--max-audio-seconds", type=float, default=300.0)
    serve.add_argument("--max-pixels", type=int, default=4096 * 4096)
    serve.add_argument("--max-steps", type=_positive(int), default=1000, help="most sampling steps a job may ask for")
    serve.set_defaults(run=cmd_serve)

    worker = commands.add_parser("worker", help="run the jobs of a shared queue (no web page; see serve --queue)")
    worker.add_argument("--queue", required=True, help="postgresql://USER@HOST/DB, as given to serve")
    worker.add_argument("--data", type=Path, required=True, help="the jobs folder serve uses (shared storage)")
    worker.add_argument("--model", help="model folder (as for generate)")
    worker.add_argument("--workers", type=_positive(int), default=1, help="jobs run at once here, one model each")
    worker.add_argument("--heartbeat", type=_positive(float), default=10.0, help="seconds between heartbeats")
    worker.add_argument(
        "--dead-after", type=_positive(float), default=60.0, help="requeue a running job silent this long"
    )
    worker.set_defaults(run=cmd_worker)

    sync = commands.add_parser("eval-sync", help="score a video's lip-sync and binding against a synthetic scene")
    sync.add_argument("video", help="video file to score")
    sync.add_argument("--scene", required=True, help="the sample's scene.json")
    sync.add_argument("--audio", action="append", help="score against these voices instead (one per person)")
    sync.add_argument("--json", action="store_true", help="print the figures as JSON")
    sync.set_defaults(run=cmd_eval_sync)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MultiTalkInputError as err:
        print(f"multitalk {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MultiTalkError as err:
        print(f"multitalk {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
