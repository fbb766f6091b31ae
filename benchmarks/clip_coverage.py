"""Do the cached training clips see what the prompts say? Per `clips_per_sample`, how many frames of each
walk, nod and swap of a `multitalk synth` folder fall inside the clips the DiT stages cache.

    python benchmarks/clip_coverage.py data/demo --frames 17 --clips 2 3 4
    python benchmarks/clip_coverage.py --smoke    # 4 fresh 2-s samples (run by the tests)

The cache cuts `clips_per_sample` clips spread evenly over each video (training/data.py); an action
no clip overlaps is one the model never sees, although its prompt still names it.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from report import Report, add_arguments

from multitalk.synthetic.dataset import load_scene_record
from multitalk.training.data import clip_starts, sample_folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="a `multitalk synth` folder")
    parser.add_argument("--frames", type=int, default=17, help="frames per cached clip")
    parser.add_argument("--clips", type=int, nargs="+", default=[1, 2, 3, 4], help="clips_per_sample values")
    parser.add_argument("--people", type=int, nargs=2, default=[1, 3])
    add_arguments(parser, "4 fresh 2-s samples, each with an action, instead of DATA")
    args = parser.parse_args()
    if args.data is None and not args.smoke:
        parser.error("give a `multitalk synth` folder (or --smoke)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from multitalk.synthetic import write_dataset

            args.data = f"{tmp}/data"
            write_dataset(args.data, 4, (1, 2), 2.0, 64, first_seed=500, progress=False, action="walk")
        scenes = [load_scene_record(folder)["scene"] for folder in sample_folders(args.data, tuple(args.people))]
    actions = [(scene, action) for scene in scenes for action in scene.actions]
    rows = []
    for clips in args.clips:
        for kind in sorted({action.kind for _, action in actions}):
            inside = []
            for scene, action in (pair for pair in actions if pair[1].kind == kind):
                first, last = action.start * scene.fps, action.end * scene.fps
                inside.append(
                    sum(
                        max(0.0, min(s + args.frames, last) - max(s, first))
                        for s in clip_starts(scene.num_frames, args.frames, clips)
                    )
                )
            inside = np.array(inside)
            rows.append(
                [
                    clips,
                    kind,
                    len(inside),
                    f"{inside.mean():.1f}",
                    f"{(inside > 0).mean():.0%}",
                    f"{(inside >= 8).mean():.0%}",
                ]
            )
    report = Report(
        "clip_coverage",
        "Actions inside the cached training clips",
        f"`{args.data if not args.smoke else 'a fresh 4-sample set'}`: {len(scenes)} samples, {len(actions)} actions, "
        f"{args.frames}-frame clips spread evenly over each video (`training/data.py`); an action no clip overlaps is "
        "one the model never sees, although its prompt names it.",
    )
    report.table(
        [
            "clips per sample",
            "action",
            "actions",
            "frames inside the clips (mean)",
            "seen at all",
            "seen for 8+ frames",
        ],
        rows,
    )
    report.finish(args)


if __name__ == "__main__":
    main()
