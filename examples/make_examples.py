"""Write the example inputs: official MultiTalk input files with synthetic-world images and voices.

    python examples/make_examples.py

The JSON files copy the official examples' structure (prompt, cond_image, cond_audio,
audio_type, bbox) and name files relative to the repository root, as the official ones do.
"""

import json
from pathlib import Path

import numpy as np

from multitalk.media import write_image, write_video, write_wav
from multitalk.synthetic import make_sample, random_scene

HERE = Path(__file__).parent


def write(name: str, data: dict) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(data, indent=4) + "\n")


def main() -> None:
    # two people taking turns on one timeline: both tracks play together ("para")
    duet = make_sample(random_scene(11, 2, 5.0, "add", width=128, height=128, action=None))
    write_image(HERE / "duet" / "ref.png", duet.video[0])
    for i, track in enumerate(duet.tracks):
        write_wav(HERE / "duet" / f"person{i + 1}.wav", track)
    write(
        "duet",
        {
            "prompt": duet.scene.prompt,
            "cond_image": "examples/duet/ref.png",
            "audio_type": "para",
            "cond_audio": {"person1": "examples/duet/person1.wav", "person2": "examples/duet/person2.wav"},
            "bbox": {f"person{i + 1}": box for i, box in enumerate(duet.scene.bboxes())},
        },
    )

    # the official "add" form: each file holds only that person's speech; person 2 answers person 1
    turns = make_sample(random_scene(12, 2, 4.0, "para", width=128, height=128, action=None))
    write_image(HERE / "turns" / "ref.png", turns.video[0])
    for i, track in enumerate(turns.tracks):
        spoken = np.flatnonzero(np.abs(track) > 1e-4)
        write_wav(HERE / "turns" / f"person{i + 1}.wav", track[spoken[0] : spoken[-1] + 1] if spoken.size else track)
    write(
        "turns",
        {
            "prompt": turns.scene.prompt,
            "cond_image": "examples/turns/ref.png",
            "audio_type": "add",
            "cond_audio": {"person1": "examples/turns/person1.wav", "person2": "examples/turns/person2.wav"},
        },
    )

    # one person, no boxes
    solo = make_sample(random_scene(13, 1, 3.0, "add", width=128, height=128, action=None))
    write_image(HERE / "solo" / "ref.png", solo.video[0])
    write_wav(HERE / "solo" / "person1.wav", solo.tracks[0])
    write(
        "solo",
        {
            "prompt": solo.scene.prompt,
            "cond_image": "examples/solo/ref.png",
            "cond_audio": {"person1": "examples/solo/person1.wav"},
        },
    )


def dub() -> None:
    """InfiniteTalk's input: a video of two people (cond_video) to dub with new voices."""
    source = make_sample(random_scene(14, 2, 3.0, "add", width=128, height=128, action=None))
    voices = make_sample(random_scene(15, 2, 3.0, "para", width=128, height=128, action=None)).tracks
    write_video(HERE / "dub" / "source.mp4", source.video, 25, audio=np.sum(source.tracks, axis=0))
    for i, track in enumerate(voices):
        write_wav(HERE / "dub" / f"person{i + 1}.wav", track)
    write(
        "dub",
        {
            "prompt": source.scene.prompt,
            "cond_video": "examples/dub/source.mp4",
            "audio_type": "para",
            "cond_audio": {"person1": "examples/dub/person1.wav", "person2": "examples/dub/person2.wav"},
            "bbox": {f"person{i + 1}": box for i, box in enumerate(source.scene.bboxes())},
        },
    )


if __name__ == "__main__":
    main()
    dub()
