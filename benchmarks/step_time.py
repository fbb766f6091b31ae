"""Per-step transformer forward time on this machine's CPU, and where it goes.

One "step" is one forward pass of the transformer (a guidance pass). Shares are measured by
difference, with no instrumentation inside the model:
  reference map + labels = t(lrope) - t(concat)   (concat = same audio attention, no L-RoPE)
  audio attention + adapter = t(concat) - t(no audio)

    python benchmarks/step_time.py [--repeats 5] [--threads N]
    python benchmarks/step_time.py --smoke       # the tiny preset, 1 repeat (run by the tests)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from report import Report, add_arguments

from multitalk.models import MultiTalkTransformer3DModel

LATENT_FRAMES, LATENT_H, LATENT_W, PEOPLE = 9, 16, 16, 2


def make_inputs(model):
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(PEOPLE + 1, LATENT_H, LATENT_W)
    masks[0, 2:14, 1:7] = 1
    masks[1, 2:14, 9:15] = 1
    masks[2] = 1 - masks[:2].amax(0)
    return dict(
        hidden_states=torch.randn(1, cfg.in_channels, LATENT_FRAMES, LATENT_H, LATENT_W, generator=g),
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 20, cfg.text_dim, generator=g),
        audio=torch.randn(
            1, PEOPLE, 4 * (LATENT_FRAMES - 1) + 1, cfg.audio_window, cfg.audio_layers, cfg.audio_channels, generator=g
        ),
        reference_masks=masks,
    )


def time_variants(model, inputs, repeats, variants: dict[str, dict]) -> dict[str, float]:
    """Median forward time of each variant, run interleaved so machine drift hits all alike."""
    times = {name: [] for name in variants}
    with torch.inference_mode():
        for overrides in variants.values():
            model(**{**inputs, **overrides})  # warm-up
        for _ in range(repeats):
            for name, overrides in variants.items():
                start = time.perf_counter()
                model(**{**inputs, **overrides})
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    add_arguments(parser, "the tiny preset, 1 repeat")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, presets = (1, ("tiny",)) if args.smoke else (args.repeats, ("tiny", "small"))
    report = Report(
        "step_time",
        "Transformer step time",
        f"float32 on the CPU, {torch.get_num_threads()} torch threads, median of {repeats} runs per variant, "
        f"the three variants interleaved. {PEOPLE} people, {LATENT_FRAMES} latent frames, {LATENT_H}×{LATENT_W} "
        f"latents ({LATENT_FRAMES * LATENT_H * LATENT_W // 4} video tokens).",
    )
    rows = []
    for preset in presets:
        torch.manual_seed(0)
        model = MultiTalkTransformer3DModel.from_preset(preset).eval()
        params = sum(p.numel() for p in model.parameters())
        inputs = make_inputs(model)
        variants = {"lrope": {}, "concat": {"binding": "concat"}, "plain": {"audio": None}}
        medians = time_variants(model, inputs, repeats, variants)
        t_lrope, t_concat, t_plain = medians["lrope"], medians["concat"], medians["plain"]
        ref_share = max(t_lrope - t_concat, 0.0) / t_lrope
        audio_share = max(t_concat - t_plain, 0.0) / t_lrope
        rows.append(
            [
                preset,
                f"{params / 1e6:.2f}M",
                f"{t_lrope:.4f}",
                f"{ref_share:.0%}",
                f"{audio_share:.0%}",
                f"{t_concat:.4f}",
                f"{t_plain:.4f}",
            ]
        )
    report.table(
        [
            "preset",
            "params",
            "s/step (lrope)",
            "ref map + labels",
            "audio attn + adapter",
            "concat s/step",
            "no-audio s/step",
        ],
        rows,
        notes='Shares are by difference: "ref map + labels" = t(lrope) − t(concat) (the same audio attention '
        'without Label-RoPE), "audio attn + adapter" = t(concat) − t(no audio), each over t(lrope). Read them '
        "to a few points: back-to-back runs differ by about 1 point.",
    )
    report.finish(args)


if __name__ == "__main__":
    main()
