"""Render ``docs/benchmarks.md`` from the result files the benchmarks write (``results/*.json``).

python benchmarks/render.py > docs/benchmarks.md
python benchmarks/render.py --check          # exit 1 when the page is not the files' rendering
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from report import RESULTS, to_markdown  # the sibling module: python puts this folder on the path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
# the page's order: speed first, then the synthetic world and the demo model's quality
ORDER = [
    "step_time",
    "load_time",
    "clip_memory",
    "gpu",
    "generate",
    "serve_load",
    "synthetic_world",
    "clip_coverage",
    "vae_eval",
    "demo_eval",
    "sampling_sweep",
    "stream_drift",
]
MISSING = {"gpu": " (it needs a CUDA GPU, and none was available; an earlier run is in research/findings)"}
HEADER = """# Benchmarks

Each section is the latest full run of one script in `benchmarks/`, with the command, date and
machine that made it. The scripts write `results/NAME.json`; this page is rendered from those
files by `python benchmarks/render.py > docs/benchmarks.md` (a test checks that it is). Every
script also has a `--smoke` mode (tiny sizes, seconds) that the tests run.
"""


def render(results: Path = RESULTS) -> str:
    files = sorted(
        results.glob("*.json"), key=lambda p: (p.stem.split("-")[0], "-" in p.stem, p.stem)
    )  # main run first
    by_script: dict[str, list[dict]] = {}
    for path in files:
        data = json.loads(path.read_text())
        by_script.setdefault(data["script"], []).append(data)
    unknown = set(by_script) - set(ORDER)
    if unknown:
        raise SystemExit(f"results for scripts render.py does not list: {sorted(unknown)}")
    parts = [HEADER]
    for script in ORDER:
        runs = by_script.get(script, [])
        for k, data in enumerate(runs):
            parts.append(to_markdown(data, heading=k == 0))
        if not runs:
            why = MISSING.get(script, "")
            parts.append(f"## `benchmarks/{script}.py`\n\nNo full run of the current script is on record yet{why}.\n")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/benchmarks.md instead of printing")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    page = render(args.results)
    if args.check:
        if DOC.read_text() != page:
            print(
                "docs/benchmarks.md is not the rendering of results/: python benchmarks/render.py > docs/benchmarks.md"
            )
            return 1
        return 0
    print(page, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
