"""`multitalk generate` as torchrun starts it on a CPU-only machine (test_context_parallel.py):
diffusers builds its device mesh on `torch.accelerator`, which reports 0 devices here."""

import sys

import torch

torch.accelerator.device_count = lambda: 1

from multitalk.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
