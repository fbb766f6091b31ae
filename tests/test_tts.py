"""The official ``tts_audio`` input, spoken offline by espeak-ng (skipped with the reason without it)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from multitalk.cli import main
from multitalk.conditioning.tts import turns
from multitalk.errors import MultiTalkInputError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt)")


def test_turns_follow_the_official_marks():
    assert turns("(s1) Hello there. (s2) Hi! (s1) Bye.") == [(0, "Hello there."), (1, "Hi!"), (0, "Bye.")]
    assert turns("Just one person.") == [(0, "Just one person.")]


@needs_espeak
def test_each_person_speaks_their_turns_on_one_timeline():
    from multitalk.conditioning.tts import tts_tracks

    one, two = tts_tracks({"text": "(s1) Good morning. (s2) Hello, how are you?", "human2_voice": "en+f2"})
    assert one.shape == two.shape and one.dtype == np.float32
    loud = lambda x: np.abs(x) > 0.01  # noqa: E731
    first_two = np.argmax(loud(two))
    assert loud(one[:first_two]).any() and not loud(one[first_two:]).any()  # person 1 speaks, then is silent
    assert not loud(two[:first_two]).any()
    with pytest.raises(MultiTalkInputError, match="espeak-ng voice name"):
        tts_tracks({"text": "(s1) Hi.", "human1_voice": "weights/Kokoro-82M/voices/am_adam.pt"})


@needs_espeak
def test_generate_speaks_a_tts_input(tmp_path, monkeypatch):
    from multitalk.media import probe
    from multitalk.random_pipeline import random_pipeline

    repo = Path(__file__).resolve().parents[1]
    duet = json.loads((repo / "examples" / "duet.json").read_text())
    spec = {
        "prompt": duet["prompt"],
        "cond_image": str(repo / duet["cond_image"]),
        "bbox": duet["bbox"],
        "tts_audio": {"text": "(s1) Hello. (s2) Hi there.", "human1_voice": "en+m3", "human2_voice": "en+f3"},
    }
    (tmp_path / "tts.json").write_text(json.dumps(spec))
    random_pipeline("tiny", buckets=[[64, 64]]).save_pretrained(tmp_path / "tiny")
    out = tmp_path / "tts.mp4"
    args = ["generate", str(tmp_path / "tts.json"), "--model", str(tmp_path / "tiny"), "--num-frames", "9"]
    args += ["--motion-frames", "3", "--num-inference-steps", "1", "--quiet", "-o", str(out)]
    assert main(args) == 0
    info = probe(out)
    assert info["audio"] is not None and info["video"]["frames"] > 25  # the spoken turns last over a second
