"""Media files in and out: clear errors for bad files, nothing half-written."""

import numpy as np
import pytest

from multitalk.errors import MultiTalkInputError
from multitalk.media import probe, read_audio, read_image, read_video, write_video, write_wav


def test_mp4_carries_frames_and_sound_of_the_right_length(tmp_path):
    frames = np.zeros((30, 64, 80, 3), np.uint8)
    frames[:, :, :40] = 200
    tone = (0.3 * np.sin(np.arange(32000) / 16000 * 2 * np.pi * 220)).astype(np.float32)  # 2 s: cut to 1.2 s
    write_video(tmp_path / "v.mp4", frames, 25, audio=tone)
    info = probe(tmp_path / "v.mp4")
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert info["video"]["frames"] == 30 and abs(info["audio"]["seconds"] - 1.2) < 0.07
    video, fps = read_video(tmp_path / "v.mp4")
    assert fps == 25 and video.shape == frames.shape and np.abs(video.astype(int) - frames).max() <= 3
    sound = read_audio(tmp_path / "v.mp4")  # a video file gives its audio track
    assert abs(sound.size / 16000 - 1.2) < 0.1 and np.abs(sound).max() > 0.2
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temp files left


def test_audio_is_resampled_to_16k_mono(tmp_path):
    import soundfile

    stereo = np.stack([np.sin(np.arange(44100) / 44100 * 2 * np.pi * 440)] * 2, axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "a.flac", stereo, 44100)
    samples = read_audio(tmp_path / "a.flac")
    assert samples.dtype == np.float32 and samples.ndim == 1 and abs(samples.size - 16000) < 200


@pytest.mark.parametrize(
    "content, reader, message",
    [
        (None, read_audio, "not found"),
        (b"", read_audio, "is empty"),
        (b"this is not audio at all" * 20, read_audio, "audio"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", read_audio, "audio"),
        (None, read_image, "not found"),
        (b"plain text, not a picture", read_image, "not a readable image"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, reader, message):
    path = tmp_path / "input.bin"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MultiTalkInputError, match=message) as err:
        reader(path)
    assert "\n" not in str(err.value)


def test_silent_and_nan_audio(tmp_path):
    write_wav(tmp_path / "zero.wav", np.zeros(0, np.float32))
    with pytest.raises(MultiTalkInputError):
        read_audio(tmp_path / "zero.wav")
    import soundfile

    soundfile.write(tmp_path / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(MultiTalkInputError, match="NaN"):
        read_audio(tmp_path / "nan.wav")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", np.zeros((3, 8, 8), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_truncated_image_is_an_input_error(tmp_path):
    from multitalk.media import write_image

    write_image(tmp_path / "ok.png", (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MultiTalkInputError, match="not a readable image"):
        read_image(tmp_path / "cut.png")


def test_the_same_frames_and_sound_make_the_same_mp4_bytes(tmp_path):
    """One x264 thread: the file does not depend on how busy the machine is."""
    rng = np.random.default_rng(0)
    frames = (rng.random((9, 64, 96, 3)) * 255).astype(np.uint8)
    sound = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    for k in range(3):
        write_video(tmp_path / f"{k}.mp4", frames, 25, audio=sound)
    assert len({(tmp_path / f"{k}.mp4").read_bytes() for k in range(3)}) == 1
