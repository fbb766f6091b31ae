"""Bad input as a new user or an attacker gives it: one line on stderr, exit code 2, no output file."""

import json

import numpy as np
import pytest
from PIL import Image

from multitalk.cli import main
from multitalk.media import write_image, write_wav


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    write_image(tmp_path / "ref.png", np.full((64, 64, 3), 120, np.uint8))
    write_wav(tmp_path / "a.wav", (0.2 * np.sin(np.arange(16000) / 10)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(argv, capsys):
    code = main(["generate", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def request(folder, **fields):
    data = {"prompt": "a person talks", "cond_image": "ref.png", "cond_audio": {"person1": "a.wav"}, **fields}
    (folder / "in.json").write_text(json.dumps(data))
    return ["in.json"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"prompt": 7}, "prompt: Input should be a valid string"),
        ({"prompt": ["a", "b"]}, "prompt: Input should be a valid string"),
        ({"bbox": {"person1": ["top", 0, 10, 10]}}, "four numbers"),
        ({"bbox": {"person1": 5}}, "four numbers"),
        ({"bbox": {"person1": None}}, "four numbers"),
        ({"cond_audio": {"person1": 3}}, "audio file names"),
    ],
)
def test_json_fields_of_the_wrong_type(folder, capsys, fields, message):
    code, err = run([*request(folder, **fields), "-o", "out.mp4"], capsys)
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (folder / "out.mp4").exists()


def test_deeply_nested_json(folder, capsys):
    (folder / "in.json").write_text("[" * 100000 + "]" * 100000)
    code, err = run(["in.json"], capsys)
    assert code == 2 and len(err) == 1 and "nested too deeply" in err[0]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", str(2**64)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--num-frames", "4000001"], "the longest clip that fits is"),
        (["--num-inference-steps", "1001"], "over the limit of 1000 (--max-steps raises it)"),
        (["--max-frames", "99999999"], "--max-frames: Input should be less than or equal to 90000"),
        (["--shift", "0"], "--shift: Input should be greater than 0"),
        (["--shift", "-1"], "--shift: Input should be greater than 0"),
        (["--text-guidance", "nan"], "finite"),
        (["--device", "tpu9"], "device"),
        (["--device", "cpu", "--memory", "low"], "--memory max"),
        (["--memory", "balanced", "--offload"], "give one of them"),
    ],
)
def test_numbers_and_devices_out_of_range(folder, capsys, flags, message):
    code, err = run([*request(folder), *flags, "-o", "out.mp4"], capsys)
    assert code == 2 and len(err) == 1 and message in err[0]


def test_output_paths_are_checked_before_the_render(folder, capsys):
    (folder / "dir.mp4").mkdir()
    assert run([*request(folder), "-o", "dir.mp4"], capsys)[0] == 2
    assert run([*request(folder), "-o", "nowhere/x/out.mp4"], capsys)[0] == 2
    (folder / "frames").write_text("a file")
    code, err = run([*request(folder), "--save-frames", "frames", "-o", "out.mp4"], capsys)
    assert code == 2 and "--save-frames" in err[0]
    write_wav(folder / "a.mp4", (0.2 * np.sin(np.arange(16000) / 10)).astype(np.float32))
    before = (folder / "a.mp4").read_bytes()
    code, err = run(["--image", "ref.png", "--audio", "a.mp4", "--prompt", "p", "-o", "a.mp4"], capsys)
    assert code == 2 and "one of the inputs" in err[0] and (folder / "a.mp4").read_bytes() == before


def test_huge_image_refused_from_its_header(folder, capsys):
    Image.new("L", (8000, 6000)).save(folder / "big.png")  # 48 Mpx, a few kB compressed
    code, err = run(["--image", "big.png", "--audio", "a.wav", "--prompt", "p", "-o", "out.mp4"], capsys)
    assert code == 2 and "Mpx" in err[0]


def test_a_wav_declaring_1_hz_is_refused(folder, capsys):
    import soundfile

    soundfile.write(folder / "slow.wav", np.zeros(40, np.float32), 1, subtype="PCM_16")
    code, err = run(["--image", "ref.png", "--audio", "slow.wav", "--prompt", "p", "-o", "out.mp4"], capsys)
    assert code == 2 and "1 Hz" in err[0]


def test_exif_orientation_is_applied(folder):
    from multitalk.media import read_image

    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(folder / "rot.jpg", exif=exif)
    upright = read_image(folder / "rot.jpg")
    assert upright.shape == (40, 20, 3) and upright[:20].mean() > 200 and upright[20:].mean() < 60


def test_masks_preview_of_the_duet_and_its_warnings(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["masks", "examples/duet.json", "-o", str(tmp_path / "m.png")]) == 0
    out = capsys.readouterr()
    preview = np.asarray(Image.open(tmp_path / "m.png"))
    assert preview.shape == (640, 640, 3) and "warning" not in out.err
    assert (
        main(
            [
                "masks",
                "--image",
                "examples/duet/ref.png",
                "--bbox",
                "0,0,5,5",
                "--bbox",
                "10,60,100,127",
                "-o",
                str(tmp_path / "w.png"),
            ]
        )
        == 0
    )
    assert "covers 0.2%" in capsys.readouterr().err
