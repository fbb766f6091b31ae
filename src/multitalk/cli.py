"""`multitalk ...`: the command line. Bad input ends in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
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
    start = time.perf_counter()
    folders = write_dataset(args.out, args.count, args.people, args.seconds, args.size, args.seed,
                            with_video=not args.no_video, speech=args.speech)
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
    synth.add_argument("--speech", choices=["tone", "espeak"], default="tone",
                       help="voices: speech-like tones (default) or espeak-ng speech when it is installed")
    synth.add_argument("--no-video", action="store_true", help="skip video.mp4 (frames come from the spec)")
    synth.set_defaults(run=cmd_synth)

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
