"""One validation layer: the same rule refuses the same value at every entry point, with the same line;
the clip-length limit comes from memory and the frame's size."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from multitalk.app.server import Limits, create_app
from multitalk.cli import main
from multitalk.errors import MultiTalkInputError
from multitalk.media import frame_size, write_image, write_video, write_wav
from multitalk.memory import CLIP_BYTES_PER_PIXEL_FRAME, VIDEO_BYTES_PER_PIXEL_FRAME, check_clip_memory
from multitalk.random_pipeline import random_pipeline
from multitalk.schema import MAX_JSON_DEPTH, check_settings, parse_input_file, parse_json_object

BAD = [  # (field, value, the part of the line every entry point must show)
    ("shift", 0, "shift: Input should be greater than 0"),
    ("text_guidance", float("inf"), "text_guidance: Input should be a finite number"),
    ("num_frames", 80, "num_frames: must be of the form 4k+1"),
    ("num_inference_steps", 0, "num_inference_steps: Input should be greater than or equal to 1"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    write_image(root / "ref.png", np.full((64, 64, 3), 100, np.uint8))
    write_wav(root / "a.wav", (0.2 * np.sin(np.arange(8000) / 9)).astype(np.float32))
    return root


@pytest.fixture(scope="module")
def pipe():
    return random_pipeline("tiny", buckets=[[64, 64]])


@pytest.mark.parametrize("field, value, line", BAD)
def test_the_same_rule_and_line_at_every_entry_point(files, pipe, capsys, tmp_path, field, value, line):
    flag = "--" + field.replace("_", "-")
    argv = ["generate", "--image", str(files / "ref.png"), "--audio", str(files / "a.wav"), "--prompt", "hi"]
    assert main([*argv, flag, str(value), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line.replace(f"{field}:", f"{flag}:") in err[0]
    assert not (tmp_path / "o.mp4").exists()

    app = create_app(tmp_path / "data", lambda: pipe, limits=Limits())
    with TestClient(app) as client:
        response = client.post(
            "/v1/jobs",
            files=[("image", ("r.png", (files / "ref.png").read_bytes())), ("audio", ("a.wav", b"x"))],
            data={"request": json.dumps({"prompt": "hi", field: value})},
        )
        assert response.status_code == 400 and line in response.json()["detail"]
        assert client.get("/v1/jobs").json() == []

    image = np.full((64, 64, 3), 100, np.uint8)
    voice = np.zeros(16000, np.float32)
    with pytest.raises(MultiTalkInputError, match=line.split(":")[0]):
        pipe(image, [voice], "hi", mode="clip", **{field: value})


def test_numbers_are_strict_but_numpy_scalars_pass():
    base = dict(num_inference_steps=4, num_frames=9, motion_frames=1, text_guidance=5, audio_guidance=4.0)
    assert check_settings({**base, "num_frames": np.int64(13)}).num_frames == 13
    for field, value in [("num_inference_steps", True), ("num_frames", "9"), ("shift", "7"), ("seed", 2.0)]:
        with pytest.raises(MultiTalkInputError, match=field):
            check_settings({**base, field: value})
    assert check_settings({**base, "num_inference_steps": 1500}, max_steps=2000).num_inference_steps == 1500
    with pytest.raises(MultiTalkInputError, match="--max-steps raises it"):
        check_settings({**base, "num_inference_steps": 1500})


def test_the_official_file_form():
    good = parse_input_file({"prompt": "p", "cond_audio": {"person1": "a.wav"}, "bbox": {"person1": [0, 0, 9, 9]}})
    assert good.bbox == {"person1": [0.0, 0.0, 9.0, 9.0]}
    for data, field in [
        ({"cond_audio": {"speaker1": "a.wav"}}, "cond_audio.speaker1"),
        ({"bbox": {"person1": [0, 0, 9]}}, "bbox.person1"),
        ({"tts_audio": {"text": "(s1) hi", "human1_voice": 3}}, "tts_audio.human1_voice"),
        ({"audio_type": "both"}, "audio_type"),
    ]:
        with pytest.raises(MultiTalkInputError, match=field.replace(".", r"\.")):
            parse_input_file(data)
    deep = {"a": 1}
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(MultiTalkInputError, match="nests deeper"):
        parse_json_object(json.dumps(deep), "request")


def test_the_clip_limit_comes_from_memory_and_size():
    per_frame = 480 * 832 * (CLIP_BYTES_PER_PIXEL_FRAME + VIDEO_BYTES_PER_PIXEL_FRAME)
    available = 81 * per_frame
    check_clip_memory(81, 81, 480, 832, available=available)  # exactly fits
    with pytest.raises(MultiTalkInputError, match="the longest clip that fits is 77 frames: lower --num-frames"):
        check_clip_memory(85, 85, 480, 832, available=available, flags=True)
    check_clip_memory(1001, 1001, 64, 64, available=available)  # a small frame may have a long clip
    with pytest.raises(MultiTalkInputError, match="shorten the video"):  # the whole video's frames count too
        check_clip_memory(5, 10**6, 480, 832, available=available)


def test_sizes_come_from_the_header(tmp_path):
    from PIL import Image

    image = Image.fromarray(np.zeros((40, 60, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # shown turned a quarter: 40 wide, 60 high
    image.save(tmp_path / "turned.jpg", exif=exif)
    assert frame_size(tmp_path / "turned.jpg") == (60, 40)
    write_video(tmp_path / "v.mp4", np.zeros((3, 48, 80, 3), np.uint8))
    assert frame_size(tmp_path / "v.mp4", video=True) == (48, 80)
    with pytest.raises(MultiTalkInputError, match="not a readable image"):
        frame_size(tmp_path / "v.mp4")
