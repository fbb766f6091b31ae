"""What a lent GPU shows, in one short run: training and sampling work on CUDA and agree with
the CPU, how fast they are, and the official-size transformer's step time with random weights.

Four tables (each part can be skipped; a part that fails prints its error and the rest go on):

* train: ``multitalk train`` itself, one process per run, on synthetic clips with the demo model's
  shape (the ``small`` preset) and the demo recipe's mix settings: steps/s in float32 and bf16 (on
  CUDA), the loss falling, and a resume from the halfway checkpoint. Accelerate picks the device:
  the GPU whenever there is one, whatever ``--device`` says.
* sample: one 2-person clip from a random ``small`` pipeline, same seed, on the CPU and on the
  device: time, and how far the device's frames are from the CPU's (pixel levels, 0-255).
* official size: the ``wan2.1-i2v-14b-480p`` transformer (random weights, bf16, built on the meta device
  and filled on the GPU) on an 81-frame 480x832 clip: seconds per forward for 1, 2 and 3 people and
  without audio, the 3-pass and 2-pass steps, the share of the GPU's bf16 peak, the forward with int8 /
  fp8 weights, with the blocks offloaded in fp8 (``--memory low``) and compiled (``--compile``), each
  with its peak GPU memory, and how many of 40 steps TeaCache computes.
* lora: a whole 4-step clip as lightx2v users make it, at the official size with random weights
  (the 14B transformer, Wan's VAE, umT5-XXL, CLIP ViT-H/14 and wav2vec2-base shapes): a
  rank-32 LoRA in the published key format fused, ``--preset lightx2v`` (4 steps, 2 passes), an
  81-frame 480x832 clip with 2 people, wall time from the call to the decoded frames, for each
  memory tier (``max``, ``balanced``, ``low``) with its peak GPU memory.

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

PARTS = ("train", "sample", "official", "lora")
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


# dense bf16 peak of the GPUs people run this on (TFLOPS, NVIDIA's data sheets; no sparsity)
BF16_PEAK = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L40": 181, "A6000": 155, "4090": 165, "3090": 71}


def official_inputs(model, people: int, frames: int, height: int, width: int, device: str) -> dict:
    cfg = model.config
    lat_t, lat_h, lat_w = (frames - 1) // 4 + 1, height // 8, width // 8
    g = torch.Generator(device).manual_seed(0)
    masks = torch.zeros(people + 1, lat_h, lat_w, device=device)
    edges = torch.linspace(0, lat_w, people + 1).round().long().tolist()
    for p in range(people):
        masks[p, 1 : lat_h - 1, edges[p] + 1 : max(edges[p + 1] - 1, edges[p] + 2)] = 1
    masks[people] = 1 - masks[:people].amax(0)
    bf16 = dict(device=device, dtype=torch.bfloat16, generator=g)
    return dict(
        hidden_states=torch.randn(1, cfg.in_channels, lat_t, lat_h, lat_w, **bf16),
        timestep=torch.tensor([500.0], device=device),
        encoder_hidden_states=torch.randn(1, 512, cfg.text_dim, **bf16),
        encoder_hidden_states_image=torch.randn(1, 257, cfg.image_dim, **bf16) if cfg.image_dim else None,
        audio=torch.randn(1, people, frames, cfg.audio_window, cfg.audio_layers, cfg.audio_channels, **bf16),
        reference_masks=masks,
    )


def timed_forward(model, inputs: dict, device: str, repeats: int) -> tuple[float, float]:
    """Median seconds per forward and peak GPU memory (GiB; nan on the CPU), after one warm-up."""
    with torch.inference_mode():
        model(**inputs)
        sync(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(**inputs)
            sync(device)
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else float("nan")
    return statistics.median(times), peak


def forward_flops(model, tokens: int) -> float:
    """Matmul FLOPs of one no-audio forward: 2 x weights x tokens for the linear layers of the blocks, plus
    self-attention's 4 x tokens² x width per block (text and CLIP cross-attention counted in the linears)."""
    cfg = model.config
    width = cfg.num_attention_heads * cfg.attention_head_dim
    linear = sum(m.weight.numel() for n, m in model.blocks.named_modules() if isinstance(m, torch.nn.Linear))
    linear -= sum(p.numel() for n, p in model.blocks.named_parameters() if "audio_cross_attn" in n and "weight" in n)
    return 2 * linear * tokens + 4 * tokens**2 * width * cfg.num_layers


def official_part(device: str, repeats: int = 3, smoke: bool = False, compile_blocks: bool = False) -> Table:
    """The official transformer shape with random weights: forwards by people count, the guidance passes of a
    step, the share of the GPU's bf16 peak, and the lighter ways to hold the weights."""
    from multitalk.models import MultiTalkTransformer3DModel

    frames, height, width = (9, 64, 64) if smoke else (81, 480, 832)
    preset = "tiny" if smoke else "wan2.1-i2v-14b-480p"
    with torch.device("meta"):  # built without memory, then materialised on the device: no checkpoint on disk
        model = MultiTalkTransformer3DModel.from_preset(preset)
    model = model.to_empty(device=device).to(torch.bfloat16).eval()
    torch.manual_seed(0)
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.02)
    params = sum(p.numel() for p in model.parameters())
    tokens = ((frames - 1) // 4 + 1) * (height // 16) * (width // 16)
    rows, seconds = [], {}
    for people in (1, 2, 3):
        seconds[people], peak = timed_forward(
            model, official_inputs(model, people, frames, height, width, device), device, repeats
        )
        rows.append(
            [f"forward, {people} {'person' if people == 1 else 'people'}", f"{seconds[people]:.3f}", f"{peak:.1f} GiB"]
        )
    plain = {**official_inputs(model, 2, frames, height, width, device), "audio": None}
    seconds[0], peak = timed_forward(model, plain, device, repeats)
    rows.append(["forward, no audio", f"{seconds[0]:.3f}", f"{peak:.1f} GiB"])
    rows.append(["step, 3 passes (2 people): cond, no text, no audio", f"{2 * seconds[2] + seconds[0]:.3f}", ""])
    rows.append(["step, 2 passes (2 people; text guidance 1)", f"{seconds[2] + seconds[0]:.3f}", ""])
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else ""
    peak_tflops = next((v for k, v in BF16_PEAK.items() if k in name), None)
    achieved = forward_flops(model, tokens) / seconds[0] / 1e12
    share = f", {achieved / peak_tflops:.0%} of the {peak_tflops} TFLOPS bf16 peak" if peak_tflops else ""
    overhead = seconds[2] / seconds[0] - 1
    notes = [f"No-audio forward: {achieved:.0f} TFLOPS{share}; audio overhead with 2 people: {overhead:.0%}."]
    notes.append(teacache_note(model))
    rows += weight_rows(model, plain, device, repeats, compile_blocks)
    return Table(
        ["variant", f"s (median of {repeats})", "peak GPU memory"],
        rows,
        title=f"**The official size**: the `{preset}` transformer, random weights in bf16 ({params / 1e9:.2f} B "
        f"parameters) built on the meta device and filled on {device}: one forward pass on a {frames}-frame "
        f"{height}×{width} clip ({tokens} video tokens), 512 text tokens, 257 CLIP tokens; attention through "
        "diffusers' dispatch. Steps are sums of their forwards.",
        notes=" ".join(notes),
    )


def teacache_note(model) -> str:
    """How many of the official 40 steps TeaCache computes (its decision reads only the timestep embedding)."""
    from multitalk.pipeline import shifted_timesteps
    from multitalk.teacache import COEFFICIENTS, TeaCacheConfig, teacache_schedule

    timesteps = shifted_timesteps(40, 7.0)[:-1].to(next(model.parameters()).device)
    with torch.inference_mode():
        schedule = teacache_schedule(model, timesteps, TeaCacheConfig(threshold=0.2), COEFFICIENTS["480"])
    return f"TeaCache at threshold 0.2 computes {sum(schedule)} of the 40 steps of the official 480p schedule."


def weight_rows(model, inputs: dict, device: str, repeats: int, compile_blocks: bool) -> list[list[str]]:
    """The no-audio forward with the weights held the lighter ways (each on a fresh copy where it changes them)."""
    import copy

    from multitalk.memory import offload_transformer_blocks, quantize_weights

    rows = []
    variants = {
        "int8 weights (--quantize int8)": lambda m: quantize_weights(m, "int8"),
        "fp8 weights (--quantize fp8)": lambda m: quantize_weights(m, "fp8"),
        "blocks offloaded, fp8 storage (--memory low)": lambda m: offload_transformer_blocks(m.to("cpu"), device),
    }
    if compile_blocks:
        variants["compiled blocks (--compile)"] = lambda m: m.compile_repeated_blocks(fullgraph=False, dynamic=False)
    for label, change in variants.items():
        try:
            candidate = copy.deepcopy(model)
            change(candidate)
            took, peak = timed_forward(candidate, inputs, device, repeats)
            rows.append([f"forward, no audio, {label}", f"{took:.3f}", f"{peak:.1f} GiB"])
        except Exception as err:  # a piece this device or build lacks is a finding, not the end of the run
            rows.append([f"forward, no audio, {label}", f"failed: {type(err).__name__}", ""])
        finally:
            candidate = None
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return rows


def random_modules(model, smoke: bool, device: str) -> dict:
    """The encoders and VAE around ``model`` at the official shapes (tiny ones in ``--smoke``), random weights:
    built on the meta device, materialised on ``device`` and filled there."""
    from diffusers import AutoencoderKLWan
    from transformers import (
        AutoTokenizer,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    from multitalk.encoders.text import minilm_path

    cfg = model.config
    if smoke:
        t5 = UMT5Config(d_model=cfg.text_dim, d_ff=2 * cfg.text_dim, num_layers=1, num_heads=2, d_kv=8)
        audio = Wav2Vec2Config(
            hidden_size=cfg.audio_channels,
            num_hidden_layers=cfg.audio_layers,
            num_attention_heads=2,
            intermediate_size=16,
            conv_dim=(16,) * 7,
            num_conv_pos_embedding_groups=2,
        )
        vae = dict(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    else:  # umT5-XXL's encoder, chinese-wav2vec2-base's shape (transformers' defaults), Wan2.1's VAE
        t5 = UMT5Config(d_model=4096, d_ff=10240, num_layers=24, num_heads=64, d_kv=64, vocab_size=256384)
        audio = Wav2Vec2Config()
        vae = {}
    built = {}
    with torch.device("meta"):
        built["text_encoder"] = UMT5EncoderModel(t5)
        built["audio_encoder"] = Wav2Vec2Model(audio)
        built["vae"] = AutoencoderKLWan(z_dim=cfg.out_channels, **vae)
        if cfg.image_dim:  # CLIP ViT-H/14's vision tower, as the I2V model reads it
            built["image_encoder"] = CLIPVisionModel(
                CLIPVisionConfig(
                    hidden_size=cfg.image_dim,
                    intermediate_size=4 * cfg.image_dim,
                    num_hidden_layers=32,
                    num_attention_heads=16,
                    image_size=224,
                    patch_size=14,
                )
            )
    torch.manual_seed(1)
    for name, module in built.items():
        module.to_empty(device=device)
        for param in module.parameters():
            torch.nn.init.normal_(param, std=0.02)
        for buffer_name, buffer in module.named_buffers():
            if buffer.is_floating_point():
                torch.nn.init.zeros_(buffer)
        module.eval()
    built["vae"].to(torch.float32)
    for name in ("text_encoder", "image_encoder"):
        if name in built:
            built[name].to(torch.bfloat16)
    built["tokenizer"] = AutoTokenizer.from_pretrained(minilm_path())  # any tokenizer: the ids are random anyway
    built["feature_extractor"] = Wav2Vec2FeatureExtractor()
    return built


def write_random_lora(model, path: Path, rank: int) -> None:
    """A LoRA in the published (ComfyUI/Kijai) key format on every block's attention and feed-forward layers."""
    from safetensors.torch import save_file

    cfg = model.config
    width = cfg.num_attention_heads * cfg.attention_head_dim
    shapes = {f"{a}.{p}": (width, width) for a in ("self_attn", "cross_attn") for p in "qkvo"}
    shapes.update({"ffn.0": (cfg.ffn_dim, width), "ffn.2": (width, cfg.ffn_dim)})
    g = torch.Generator().manual_seed(2)
    state = {}
    for block in range(cfg.num_layers):
        for name, (out_dim, in_dim) in shapes.items():
            key = f"diffusion_model.blocks.{block}.{name}"
            state[f"{key}.lora_down.weight"] = torch.randn(rank, in_dim, generator=g, dtype=torch.bfloat16) * 0.01
            state[f"{key}.lora_up.weight"] = torch.randn(out_dim, rank, generator=g, dtype=torch.bfloat16) * 0.01
    save_file(state, str(path))


def lora_part(work: Path, device: str, smoke: bool = False) -> Table:
    """A lightx2v 4-step clip end to end at the official size, in each memory tier."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from multitalk.memory import TIERS, apply_memory_tier
    from multitalk.models import MultiTalkTransformer3DModel
    from multitalk.pipeline import MultiTalkPipeline

    frames, height, width = (9, 64, 64) if smoke else (81, 480, 832)
    preset = "tiny" if smoke else "wan2.1-i2v-14b-480p"
    tiers = ("max",) if not device.startswith("cuda") else TIERS
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    voices = [np.random.default_rng(p).standard_normal(16000 * 4).astype(np.float32) * 0.1 for p in (1, 2)]
    boxes = [[0, 0, height, width // 2], [0, width // 2, height, width]]
    lora = work / "random_lora.safetensors"
    rows = []
    for tier in tiers:
        with torch.device("meta"):
            transformer = MultiTalkTransformer3DModel.from_preset(preset)
        # filled on the device (fast), then moved to where the tier starts
        transformer = transformer.to_empty(device=device).to(torch.bfloat16).eval()
        torch.manual_seed(0)
        for param in transformer.parameters():
            torch.nn.init.normal_(param, std=0.02)
        if not lora.is_file():
            write_random_lora(transformer, lora, rank=32)
        modules = random_modules(transformer, smoke, device)
        pipe = MultiTalkPipeline(
            transformer=transformer,
            scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0),
            buckets=[[height, width]],
            **modules,
        )
        pipe.set_progress_bar_config(disable=True)
        start = time.perf_counter()
        changed = pipe.load_lora(lora, 1.0, preset="lightx2v")
        sync(device)
        fused = time.perf_counter() - start
        if tier != "max":  # the offloading tiers start from the CPU, as `multitalk generate --memory` loads them
            pipe.to("cpu")
        apply_memory_tier(pipe, tier, device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = time.perf_counter()
        out = pipe(image, voices, "two people talk", bboxes=boxes, mode="clip", num_frames=frames)
        sync(device)
        took = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else float("nan")
        rows.append(
            [tier, f"{fused:.1f}", str(changed), f"{took:.1f}", f"{peak:.1f} GiB", f"{out.frames.shape[0]} frames"]
        )
        pipe = transformer = modules = out = None
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return Table(
        ["memory tier", "LoRA fuse, s", "weights changed", "clip, s (call to frames)", "peak GPU memory", "made"],
        rows,
        title=f"**A 4-step LoRA clip end to end**: `--preset lightx2v` (4 steps, text guidance 1 → 2 passes) on "
        f"the `{preset}` transformer with a random rank-32 LoRA in the published key format fused in, random "
        f"encoders and VAE at the official shapes; one {frames}-frame {height}×{width} clip, 2 people; the time "
        "covers text, CLIP and audio encoding, VAE encode, 8 transformer passes, VAE decode and colour correction.",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", help="default: cuda when there is one")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[], choices=PARTS)
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic clips and runs")
    parser.add_argument("--compile", action="store_true", help="also time the compiled blocks (minutes to compile)")
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
            "official": lambda: official_part(args.device, 1 if args.smoke else 3, args.smoke, args.compile),
            "lora": lambda: lora_part(work, args.device, args.smoke),
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
