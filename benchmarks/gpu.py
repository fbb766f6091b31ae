"""What a lent GPU shows, in one short run: training and sampling work on CUDA and agree with
the CPU, how fast they are, and the official-size transformer's step time with random weights.

Three tables (each part can be skipped; a part that fails prints its error and the rest go on):

* train: ``multitalk train`` itself, one process per run, on synthetic clips with the demo model's
  shape (the ``small`` preset) and the demo recipe's mix settings: steps/s in float32 and bf16 (on
  CUDA), the loss falling, and a resume from the halfway checkpoint. Accelerate picks the device:
  the GPU whenever there is one, whatever ``--device`` says.
* sample: one 2-person clip from a random ``small`` pipeline, same seed, on the CPU and on the
  device: time, and how far the device's frames are from the CPU's (pixel levels, 0-255).
* official size: the ``wan2.1-i2v-14b-480p`` transformer (random weights, bf16) on an 81-frame
  480x832 clip with 2 people: seconds per forward pass with Label-RoPE audio, and without audio.

    python benchmarks/gpu.py [--train-steps 300] [--skip official]
    python benchmarks/gpu.py --smoke              # tiny shapes on whatever device there is (run by the tests)

Without CUDA it says so and stops (exit 0) unless ``--device cpu`` or ``--smoke`` asks for the CPU.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from report import Report, Table, add_arguments

PARTS = ("train", "sample", "official")
REPO = Path(__file__).resolve().parents[1]


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def train_part(work: Path, device: str, steps: int, smoke: bool = False) -> Table:
    """`multitalk train` itself, one process per run as a user runs it (accelerate picks the GPU)."""
    import json

    import yaml

    def train(config: Path, *flags: str) -> float:
        out = subprocess.run(
            [sys.executable, "-m", "multitalk.cli", "train", str(config), "--quiet", *flags],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return float(re.search(r"trained to step \d+ in ([\d.]+) s", out).group(1))

    def losses(run: Path) -> list[float]:
        last = sorted((run / "checkpoints").glob("step_*"))[-1]
        return [h["loss"] for h in json.loads((last / "trainer.json").read_text())["history"]]

    data = work / "data"
    if not data.is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "multitalk.cli",
                "synth",
                "--out",
                str(data),
                "--count",
                "2" if smoke else "12",
                "--people",
                "1-2",
                "--size",
                "64",
                "--seconds",
                "1" if smoke else "2",
                "--seed",
                "0",
                "--action",
                "walk",
            ],
            check=True,
            capture_output=True,
        )
    half = max(steps // 2, 1)
    rows = []
    mix_stage = yaml.safe_load((REPO / "configs" / "recipes" / "demo" / "10_mixed.yaml").read_text())
    for precision in ("no", "bf16") if device.startswith("cuda") else ("no",):
        run = work / f"train_{precision}"
        shutil.rmtree(run, ignore_errors=True)
        # the demo recipe's mix stage on the demo model's shape, from random weights and this run's clips
        settings = {
            **mix_stage,
            "output": str(run),
            "data": {**mix_stage["data"], "folders": str(data), "cache": str(work / "cache")},
            "init": {**mix_stage["init"], "model": "tiny" if smoke else "small", "text_encoder": "random"},
            "optim": {**mix_stage["optim"], "mixed_precision": precision, "batch_size": 2 if smoke else 6},
            "schedule": {**mix_stage["schedule"], "steps": steps, "checkpoint_every": half, "log_every": 1},
        }
        config = work / f"train_{precision}.yaml"
        config.write_text(yaml.safe_dump(settings))
        train(config)  # builds the clip cache first, untimed
        shutil.rmtree(run)
        seconds = train(config)
        first = losses(run)
        # resume: without the last checkpoint, --resume picks up the halfway one and runs to the end again
        shutil.rmtree(run / "checkpoints" / f"step_{steps:07d}")
        train(config, "--resume")
        drift = max(abs(a - b) for a, b in zip(losses(run)[half:], first[half:], strict=True))
        rows.append(
            [
                device_name(device),
                precision,
                steps,
                f"{seconds:.1f}",
                f"{steps / seconds:.2f}",
                f"{np.mean(first[:20]):.4f}",
                f"{np.mean(first[-20:]):.4f}",
                f"{half} -> {steps}",
                f"{drift:.2g}",
            ]
        )
    return Table(
        [
            "device",
            "precision",
            "steps",
            "s",
            "steps/s",
            "loss, first 20",
            "loss, last 20",
            "resumed at",
            "resumed losses vs first run, max diff",
        ],
        rows,
        title="**Training**: `multitalk train` itself, one process per run, on synthetic 2-s clips with the demo "
        "recipe's mix-stage settings (`configs/recipes/demo/10_mixed.yaml`) on the demo model's shape (`small` "
        "preset, random start); timed without the clip-cache build, checkpoints included.",
    )


def sample_part(work: Path, device: str, smoke: bool = False) -> Table:
    from multitalk.checkpoints import load_pipeline
    from multitalk.random_pipeline import random_pipeline
    from multitalk.synthetic import make_sample, random_scene

    sample = make_sample(random_scene(3, 2, 2.0, "add", width=64, height=64, action=None))
    frames, steps = (9, 2) if smoke else (49, 10)
    args = dict(mode="clip", num_frames=frames, num_inference_steps=steps, size=(64, 64))
    folder = work / "sample_pipeline"
    random_pipeline("tiny" if smoke else "small", seed=0).save_pretrained(folder)
    runs = {}
    for where, dtype in (("cpu", torch.float32), (device, torch.float32), (device, torch.bfloat16)):
        if (where, dtype) in runs:
            continue
        pipe = load_pipeline(folder, torch_dtype=dtype).to(where)  # as `multitalk generate --dtype` loads it
        pipe.set_progress_bar_config(disable=True)
        pipe(
            sample.video[0], sample.tracks, "two people talk", **args, generator=torch.Generator().manual_seed(0)
        )  # warm-up
        sync(where)
        start = time.perf_counter()
        out = pipe(
            sample.video[0], sample.tracks, "two people talk", **args, generator=torch.Generator().manual_seed(0)
        )
        sync(where)
        runs[(where, dtype)] = (time.perf_counter() - start, out.frames.astype(np.float32))
    reference = runs[("cpu", torch.float32)][1]
    rows = []
    for (where, dtype), (seconds, video) in runs.items():
        diff = np.abs(video - reference)
        rows.append(
            [
                device_name(where),
                str(dtype).removeprefix("torch."),
                f"{seconds:.2f}",
                f"{diff.mean():.3f}",
                f"{diff.max():.0f}",
            ]
        )
    return Table(
        ["where", "transformer", f"s per {frames}-frame clip, {steps} steps", "mean abs diff to CPU", "max abs diff"],
        rows,
        title="**Sampling**: one 2-person clip at 64×64 from a random pipeline saved and loaded as "
        "`multitalk generate --dtype` loads it, same seed (the noise is drawn on the CPU); second of two runs timed.",
        notes="Differences are in 0–255 pixel levels.",
    )


def official_part(device: str, repeats: int = 3, smoke: bool = False) -> Table:
    from multitalk.models import MultiTalkTransformer3DModel

    frames, height, width, people = (9, 64, 64, 2) if smoke else (81, 480, 832, 2)
    preset = "tiny" if smoke else "wan2.1-i2v-14b-480p"
    lat_t, lat_h, lat_w = (frames - 1) // 4 + 1, height // 8, width // 8
    with torch.device(device):
        torch.manual_seed(0)
        model = MultiTalkTransformer3DModel.from_preset(preset).to(torch.bfloat16).eval()
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator(device).manual_seed(0)
    masks = torch.zeros(people + 1, lat_h, lat_w, device=device)
    masks[0, : lat_h - 1, : lat_w // 2 - 1] = 1
    masks[1, : lat_h - 1, lat_w // 2 + 1 :] = 1
    masks[2] = 1 - masks[:2].amax(0)
    inputs = dict(
        hidden_states=torch.randn(
            1, cfg.in_channels, lat_t, lat_h, lat_w, generator=g, device=device, dtype=torch.bfloat16
        ),
        timestep=torch.tensor([500.0], device=device),
        encoder_hidden_states=torch.randn(1, 512, cfg.text_dim, generator=g, device=device, dtype=torch.bfloat16),
        encoder_hidden_states_image=torch.randn(1, 257, cfg.image_dim, generator=g, device=device, dtype=torch.bfloat16)
        if cfg.image_dim
        else None,
        audio=torch.randn(
            1,
            people,
            frames,
            cfg.audio_window,
            cfg.audio_layers,
            cfg.audio_channels,
            generator=g,
            device=device,
            dtype=torch.bfloat16,
        ),
        reference_masks=masks,
    )
    tokens = lat_t * lat_h * lat_w // 4
    rows = []
    with torch.inference_mode():
        for name, overrides in (("Label-RoPE audio, 2 people", {}), ("no audio", {"audio": None})):
            model(**{**inputs, **overrides})  # warm-up
            sync(device)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(**{**inputs, **overrides})
                sync(device)
                times.append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else float("nan")
            rows.append([name, f"{statistics.median(times):.3f}", f"{peak:.1f} GiB"])
    return Table(
        ["variant", f"s per forward (median of {repeats})", "peak GPU memory"],
        rows,
        title=f"**The official size**: the `{preset}` transformer, random weights in bf16 ({params / 1e9:.2f} B "
        f"parameters): one forward pass on a {frames}-frame {height}×{width} clip ({tokens} video tokens), "
        f"{people} people, 512 text tokens, 257 CLIP tokens; attention through diffusers' dispatch.",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", help="default: cuda when there is one")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[], choices=PARTS)
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic clips and runs")
    add_arguments(parser, "tiny shapes and 4 training steps, on the CPU when there is no GPU")
    args = parser.parse_args()
    if args.device is None:
        if not torch.cuda.is_available() and not args.smoke:
            print("benchmarks/gpu.py: no CUDA device here; nothing measured (--device cpu runs it on the CPU)")
            return 0
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = 4 if args.smoke else args.train_steps
    report = Report(
        "gpu",
        "On a GPU",
        f"{device_name(args.device)}. Each part runs on its own; a part that fails is reported and the others go on.",
    )
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        parts = {
            "train": lambda: train_part(work, args.device, steps, args.smoke),
            "sample": lambda: sample_part(work, args.device, args.smoke),
            "official": lambda: official_part(args.device, 1 if args.smoke else 3, args.smoke),
        }
        for name, run in parts.items():
            if name in args.skip:
                continue
            start = time.perf_counter()
            try:
                table = run()
            except Exception:  # one part's failure is a finding; the others still run
                traceback.print_exc(file=sys.stdout)
                report.note(f"{name}: failed ({traceback.format_exc(limit=1).strip().splitlines()[-1]})")
                failed += 1
                continue
            table.notes = (table.notes + " " if table.notes else "") + f"({name}: {time.perf_counter() - start:.0f} s)"
            report.tables.append(table)
    report.finish(args)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
