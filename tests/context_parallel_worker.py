"""One rank of the context-parallel check, run by ``torchrun --nproc_per_node 2`` from
test_context_parallel.py: the tiny transformer's output under Ulysses 2 (gloo, CPU) against the
same model's single-process output, for 1, 2 and 3 people (and the ``split`` binding), two shapes each:

* 3 latent frames of 6 tokens (18 tokens, 9 per rank): the shards meet in the middle of frame 1;
* 1 latent frame of 12 tokens (6 per rank): the reference frame itself is split across the ranks.

Rank 0 writes ``{case: max abs difference}`` as JSON to the path given.
"""

import json
import sys

import torch
import torch.distributed as dist

# diffusers builds its device mesh on `torch.accelerator`; a CPU-only machine reports 0 devices
torch.accelerator.device_count = lambda: 1

from diffusers import ContextParallelConfig  # noqa: E402

from multitalk.models import MultiTalkTransformer3DModel  # noqa: E402

SHAPES = {"mid-frame shards": (3, 4, 6), "split reference frame": (1, 4, 12)}  # latent T, H, W (patch 2x2)


def inputs(model, people: int, frames: int, height: int, width: int, seed: int) -> dict:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(people + 1, height // 2, width // 2)
    columns = torch.linspace(0, width // 2, people + 1).round().long()
    for p in range(people):
        masks[p, :, columns[p] : columns[p + 1]] = 1
    masks[people] = 1 - masks[:people].amax(0)
    masks[people, 0] = 1  # some background on top
    masks[:people, 0] = 0
    return dict(
        hidden_states=torch.randn(1, cfg.in_channels, frames, height, width, generator=g),
        timestep=torch.tensor([700.0]),
        encoder_hidden_states=torch.randn(1, 7, cfg.text_dim, generator=g),
        audio=torch.randn(
            1, people, 4 * (frames - 1) + 1, cfg.audio_window, cfg.audio_layers, cfg.audio_channels, generator=g
        ),
        reference_masks=masks,
    )


def main(out_path: str) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = MultiTalkTransformer3DModel.from_preset("tiny").eval()
    cases = {
        (f"{people} people", shape): inputs(model, people, *SHAPES[shape], seed=10 * people + len(shape))
        for people in (1, 2, 3)
        for shape in SHAPES
    }
    for shape in SHAPES:  # the `split` binding: each token's person from its place in its frame
        cases[("2 people, split binding", shape)] = {**inputs(model, 2, *SHAPES[shape], seed=99), "binding": "split"}
    with torch.no_grad():
        single = {case: model(**x).sample for case, x in cases.items()}
        model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=2))
        split = {case: model(**x).sample for case, x in cases.items()}
    if dist.get_rank() == 0:
        result = {
            f"{who}, {shape}": float((split[(who, shape)] - single[(who, shape)]).abs().max()) for who, shape in cases
        }
        with open(out_path, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
