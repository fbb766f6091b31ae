"""Time and peak host memory to load an original-layout MultiTalk transformer.

Writes a random-weight checkpoint in the layout of the official download — float32 DiT shards +
an index that also maps the audio keys to ``multitalk.safetensors`` + ``config.json`` — at the real
width (5120 wide, 40 heads, FFN 13824, 12 x 768 audio features) with fewer blocks than the real 40,
then loads it with ``multitalk.checkpoints.load_transformer`` in a fresh process and reports:

* wall time of the load,
* peak resident memory of that process (``ru_maxrss``, which counts memory-mapped file pages
  the process touched) and peak anonymous memory (sampled ``RssAnon``: what the process itself
  allocated),
* both divided by the loaded model's size in the load dtype.

    python benchmarks/load_time.py --blocks 8            # ~3.8 B parameters, 15 GB on disk
    python benchmarks/load_time.py --blocks 40 --device cuda   # the full 14B on a GPU machine
    python benchmarks/load_time.py --smoke               # tiny, seconds (run by the tests)

The checkpoint goes to a temporary folder (``--folder`` keeps it for reruns).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from report import Report, add_arguments

REAL = dict(
    dim=5120,
    ffn=13824,
    heads=40,
    text_dim=4096,
    freq_dim=256,
    clip_dim=1280,
    audio_layers=12,
    audio_channels=768,
    audio_inter=512,
    audio_out=768,
    context_tokens=32,
    window=5,
)
SMOKE = dict(
    dim=64,
    ffn=96,
    heads=2,
    text_dim=32,
    freq_dim=32,
    clip_dim=32,
    audio_layers=2,
    audio_channels=16,
    audio_inter=16,
    audio_out=16,
    context_tokens=4,
    window=5,
)


def original_shapes(blocks: int, s: dict) -> tuple[dict, dict]:
    """Key -> shape of Wan2.1-I2V's original DiT layout, and of MultiTalk's audio keys."""
    d, f, c = s["dim"], s["ffn"], s["clip_dim"]
    base = {
        "patch_embedding.weight": (d, 36, 1, 2, 2),
        "patch_embedding.bias": (d,),
        "text_embedding.0.weight": (d, s["text_dim"]),
        "text_embedding.0.bias": (d,),
        "text_embedding.2.weight": (d, d),
        "text_embedding.2.bias": (d,),
        "time_embedding.0.weight": (d, s["freq_dim"]),
        "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d),
        "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d),
        "time_projection.1.bias": (6 * d,),
        "head.modulation": (1, 2, d),
        "head.head.weight": (16 * 4, d),
        "head.head.bias": (16 * 4,),
        "img_emb.proj.0.weight": (c,),
        "img_emb.proj.0.bias": (c,),
        "img_emb.proj.1.weight": (c, c),
        "img_emb.proj.1.bias": (c,),
        "img_emb.proj.3.weight": (d, c),
        "img_emb.proj.3.bias": (d,),
        "img_emb.proj.4.weight": (d,),
        "img_emb.proj.4.bias": (d,),
    }
    a = s["audio_layers"] * s["audio_channels"]
    audio = {
        "audio_proj.proj1.weight": (s["audio_inter"], s["window"] * a),
        "audio_proj.proj1.bias": (s["audio_inter"],),
        "audio_proj.proj1_vf.weight": (s["audio_inter"], (s["window"] + 3) * a),
        "audio_proj.proj1_vf.bias": (s["audio_inter"],),
        "audio_proj.proj2.weight": (s["audio_inter"], s["audio_inter"]),
        "audio_proj.proj2.bias": (s["audio_inter"],),
        "audio_proj.proj3.weight": (s["context_tokens"] * s["audio_out"], s["audio_inter"]),
        "audio_proj.proj3.bias": (s["context_tokens"] * s["audio_out"],),
        "audio_proj.norm.weight": (s["audio_out"],),
        "audio_proj.norm.bias": (s["audio_out"],),
    }
    for n in range(blocks):
        b = f"blocks.{n}."
        base[b + "modulation"] = (1, 6, d)
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o") + (("k_img", "v_img") if attn == "cross_attn" else ()):
                base[f"{b}{attn}.{proj}.weight"] = (d, d)
                base[f"{b}{attn}.{proj}.bias"] = (d,)
            base[f"{b}{attn}.norm_q.weight"] = (d,)
            base[f"{b}{attn}.norm_k.weight"] = (d,)
        base[b + "cross_attn.norm_k_img.weight"] = (d,)
        base[b + "norm3.weight"], base[b + "norm3.bias"] = (d,), (d,)
        base[b + "ffn.0.weight"], base[b + "ffn.0.bias"] = (f, d), (f,)
        base[b + "ffn.2.weight"], base[b + "ffn.2.bias"] = (d, f), (d,)
        audio[b + "norm_x.weight"], audio[b + "norm_x.bias"] = (d,), (d,)
        audio[b + "audio_cross_attn.q_linear.weight"] = (d, d)
        audio[b + "audio_cross_attn.q_linear.bias"] = (d,)
        audio[b + "audio_cross_attn.kv_linear.weight"] = (2 * d, s["audio_out"])
        audio[b + "audio_cross_attn.kv_linear.bias"] = (2 * d,)
        audio[b + "audio_cross_attn.proj.weight"] = (d, d)
        audio[b + "audio_cross_attn.proj.bias"] = (d,)
    return base, audio


def write_checkpoint(folder: Path, blocks: int, s: dict, shard_bytes: float = 4e9) -> int:
    """Random float32 weights in the official layout; returns the parameter count."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    base, audio = original_shapes(blocks, s)
    torch.manual_seed(0)
    shards, current, size = [], {}, 0
    for key, shape in base.items():
        current[key] = shape
        size += 4 * torch.Size(shape).numel()
        if size >= shard_bytes:
            shards.append(current)
            current, size = {}, 0
    if current:
        shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: torch.randn(shape) * 0.02 for k, shape in shard.items()}, str(folder / name))
        weight_map.update({k: name for k in shard})
    save_file({k: torch.randn(shape) * 0.02 for k, shape in audio.items()}, str(folder / "multitalk.safetensors"))
    weight_map.update({k: "multitalk.safetensors" for k in audio})
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "_class_name": "WanModel",
                "model_type": "i2v",
                "dim": s["dim"],
                "ffn_dim": s["ffn"],
                "freq_dim": s["freq_dim"],
                "num_heads": s["heads"],
                "num_layers": blocks,
                "text_len": 512,
                "in_dim": 36,
                "out_dim": 16,
                "eps": 1e-6,
            }
        )
    )
    return sum(torch.Size(v).numel() for v in {**base, **audio}.values())


def measure(folder: str, dtype: str, device: str, audio: dict) -> dict:
    """Runs in a fresh process: load once, report time and peak memory."""
    import torch

    from multitalk.checkpoints import load_transformer

    peak_anon = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak_anon[0] = max(peak_anon[0], int(line.split()[1]) * 1024)
            time.sleep(0.02)

    before_anon = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            before_anon = int(line.split()[1]) * 1024
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    model = load_transformer(folder, config=audio, torch_dtype=getattr(torch, dtype), device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "seconds": seconds,
        "model_bytes": size,
        "peak_rss_bytes": peak_rss,
        "peak_anon_bytes": peak_anon[0],
        "anon_before_bytes": before_anon,
        "gpu_peak_bytes": torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=8, help="DiT blocks (the real model has 40)")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", type=Path, help="keep the checkpoint here (reused when present)")
    add_arguments(parser, "tiny widths, 2 blocks: checks the script runs")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--audio", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the child process
        print(json.dumps(measure(args.measure, args.dtype, args.device, json.loads(args.audio))))
        return 0
    shapes = SMOKE if args.smoke else REAL
    blocks = 2 if args.smoke else args.blocks
    with tempfile.TemporaryDirectory(prefix="mt-load-") as tmp:
        folder = args.folder or Path(tmp) / "ckpt"
        start = time.perf_counter()
        if not (folder / "config.json").is_file():
            params = write_checkpoint(folder, blocks, shapes)
        else:
            base, audio = original_shapes(blocks, shapes)
            import torch

            params = sum(torch.Size(v).numel() for v in {**base, **audio}.values())
        written = time.perf_counter() - start
        disk = sum(f.stat().st_size for f in folder.iterdir())
        audio = {"audio_layers": shapes["audio_layers"], "audio_channels": shapes["audio_channels"]}
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--measure",
                str(folder),
                "--dtype",
                args.dtype,
                "--device",
                args.device,
                "--audio",
                json.dumps(audio),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TQDM_DISABLE": "1"},
        )
        if child.returncode:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update(
        blocks=blocks,
        width=shapes["dim"],
        params=params,
        disk_bytes=disk,
        write_seconds=written,
        dtype=args.dtype,
        device=args.device,
    )
    gib = 2**30
    model = result["model_bytes"]
    report = Report(
        "load_time",
        "Loading the official layout",
        "A random-weight checkpoint in the official download's layout (float32 DiT shards + an index mapping the "
        "audio keys to `multitalk.safetensors` + `config.json`) at the real width (5120 wide, 40 heads, FFN 13824, "
        f"12 × 768 audio features) with {blocks} of the 40 blocks, loaded by `load_transformer` in {args.dtype} in a "
        "fresh process.",
    )
    report.table(
        [
            "blocks",
            "params",
            "on disk",
            "load dtype -> device",
            "load s",
            "model",
            "peak RSS (incl. mapped file)",
            "peak anon",
            "anon above start",
            "RSS / model",
            "anon / model",
        ],
        [
            [
                f"{blocks} of 40 (width {shapes['dim']})",
                f"{params / 1e9:.2f} B",
                f"{disk / gib:.1f} GiB fp32",
                f"{args.dtype} -> {args.device}",
                f"{result['seconds']:.1f}",
                f"{model / gib:.2f} GiB",
                f"{result['peak_rss_bytes'] / gib:.2f} GiB",
                f"{result['peak_anon_bytes'] / gib:.2f} GiB",
                f"{(result['peak_anon_bytes'] - result['anon_before_bytes']) / gib:.2f} GiB",
                f"{result['peak_rss_bytes'] / model:.2f}",
                f"{result['peak_anon_bytes'] / model:.2f}",
            ]
        ],
        notes="Peak RSS is the whole process (torch and the package included). The tensors are read one by one "
        "with plain file reads, cast, and placed on the device.",
    )
    report.figures = result
    report.finish(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
