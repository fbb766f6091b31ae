"""InfiniteTalk: the variant switch, its clip scheme (checked on the transformer's inputs), video input."""

import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from multitalk.checkpoints import load_pipeline, variant_of
from multitalk.cli import main
from multitalk.errors import MultiTalkInputError
from multitalk.media import read_audio, read_video_frames, write_video, write_wav
from multitalk.processing import resize_image_official
from official_folder import write_original_folder, write_wav2vec2


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("it")
    folder = root / "Wan2.1-I2V-14B-480P"
    write_original_folder(folder)
    # the InfiniteTalk download: the same 330 keys in infinitetalk.safetensors, the Wan index untouched
    (folder / "multitalk.safetensors").rename(folder / "infinitetalk.safetensors")
    index = json.loads((folder / "diffusion_pytorch_model.safetensors.index.json").read_text())
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != "multitalk.safetensors"}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    write_wav2vec2(root / "w2v")
    return folder, root / "w2v"


@pytest.fixture(scope="module")
def pipe(folders):
    folder, w2v = folders
    pipe = load_pipeline(folder, audio_encoder=w2v, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _inputs(frames=17, seed=0):
    rng = np.random.default_rng(seed)
    video = (rng.random((frames, 48, 48, 3)) * 255).astype(np.uint8)
    voices = [(0.3 * np.sin(np.arange(frames * 640) / 16000 * 2 * np.pi * f)).astype(np.float32) for f in (200, 300)]
    return video, voices


def test_variant_comes_from_the_audio_file_name_or_the_keyword(folders, pipe):
    folder, w2v = folders
    assert variant_of(folder) == "infinitetalk" and pipe.config.variant == "infinitetalk"
    assert pipe.transformer.audio_proj.norm_in_float32
    as_multitalk = load_pipeline(folder, audio_encoder=w2v, variant="multitalk")
    assert as_multitalk.config.variant == "multitalk" and not as_multitalk.transformer.audio_proj.norm_in_float32


def test_infinitetalk_default_carries_9_frames(pipe):
    video, voices = _inputs(21)
    seen = []
    real = pipe.generate_clip

    def spy(cond, audio, clip, num_frames, *args, **kwargs):
        seen.append(cond.shape[1])
        return real(cond, audio, clip, num_frames, *args, **kwargs)

    pipe.generate_clip = spy
    try:  # 13-frame clips: 25 motion frames (MultiTalk's default) would not even fit
        pipe(  # at 64 x 64: the official 480p bucket would only make it slow
            video=video,
            audio=voices,
            prompt="two people talk",
            num_frames=13,
            num_inference_steps=1,
            mode="streaming",
            size=(64, 64),
        )
    finally:
        del pipe.generate_clip
    assert seen == [1, 9, 9]  # the reference alone, then the previous clip's last 9 frames


def test_clip_scheme_on_the_transformer_inputs(pipe, monkeypatch):
    """Mask on frame 0 only; y = VAE(clip k's reference = video frame k·step, + zeros); the motion
    latents written clean before every call; the noise drawn as in the MultiTalk scheme."""
    video, voices = _inputs(17)
    calls, draws = [], []
    real_forward = pipe.transformer.forward

    def forward(*args, **kwargs):
        calls.append(kwargs["hidden_states"].clone())
        return real_forward(*args, **kwargs)

    real_randn = torch.randn

    def randn(*size, generator=None, **kwargs):
        out = real_randn(*size, generator=generator, **kwargs)
        if generator is not None:
            draws.append(tuple(out.shape[-4:]))
        return out

    monkeypatch.setattr(pipe.transformer, "forward", forward)
    monkeypatch.setattr(torch, "randn", randn)
    steps, passes = 2, 3
    pipe(
        video=video,
        audio=voices,
        prompt="two people talk",
        num_frames=9,
        motion_frames=5,
        num_inference_steps=steps,
        mode="streaming",
        size=(64, 64),
        color_correction=0.0,
    )
    clips = 3  # 17 frames: 9 + 4 + 4
    assert len(calls) == clips * steps * passes
    latent, motion = (16, 3, 8, 8), (16, 2, 8, 8)
    assert draws == [latent] + ([latent] + [motion] * (steps + 1)) * (clips - 1)
    monkeypatch.setattr(torch, "randn", real_randn)
    for k in range(clips):
        first = calls[k * steps * passes]
        mask, y = first[0, 16:20], first[0, 20:36]
        assert torch.all(mask[:, 0] == 1) and torch.all(mask[:, 1:] == 0)
        ref = resize_image_official(video[min(k * 4, 16)], (64, 64))
        expected_y = pipe.encode_condition(ref[:, None], 9)[1][0]
        torch.testing.assert_close(y, expected_y.to(y.dtype), rtol=1e-5, atol=1e-5)
        n = 1 if k == 0 else 2
        head = first[0, :16, :n]
        for call in calls[k * steps * passes : (k + 1) * steps * passes]:
            assert torch.equal(call[0, :16, :n], head)  # clean, the same at every call of the clip
        if k == 0:
            torch.testing.assert_close(head, pipe.vae_encode(ref[None, :, None])[0].float(), rtol=1e-5, atol=1e-5)


def test_image_mode_uses_the_same_reference_every_clip(pipe):
    video, voices = _inputs(17)
    out = pipe(
        image=video[0],
        audio=voices,
        prompt="two people talk",
        num_frames=9,
        motion_frames=5,
        num_inference_steps=1,
        mode="streaming",
        size=(64, 64),
    )
    assert out.frames.shape == (17, 64, 64, 3)


def test_a_30_fps_video_is_resampled_by_its_timestamps(tmp_path):
    frames = np.zeros((30, 32, 32, 3), np.uint8)
    frames[:] = (np.arange(30) * 8).reshape(30, 1, 1, 1)
    write_video(tmp_path / "v30.mp4", frames, fps=30)
    seq = read_video_frames(tmp_path / "v30.mp4")
    assert len(seq) == 25 and seq.source_fps == 30
    got = [int(round(float(seq[j].mean()) / 8)) for j in range(25)]
    assert got == [j * 30 // 25 for j in range(25)]  # the source frame on screen at j/25 s
    sparse = read_video_frames(tmp_path / "v30.mp4", keep=lambda j: j % 10 == 0)
    assert sparse.indices == [0, 10, 20] and len(sparse) == 25


def test_a_video_voice_gives_its_sound(tmp_path):
    tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 300)).astype(np.float32)
    write_video(tmp_path / "talk.mp4", np.zeros((25, 32, 32, 3), np.uint8), audio=tone)
    sound = read_audio(tmp_path / "talk.mp4")
    assert abs(sound.size - 16000) < 2048 and np.abs(sound).max() > 0.1


def _zero_frame_video(path):
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono")
        piece = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        piece.sample_rate, piece.pts, piece.time_base = 16000, 0, Fraction(1, 16000)
        for packet in sound.encode(piece):
            container.mux(packet)


@pytest.mark.parametrize("kind", ["corrupt", "audio only", "zero frames"])
def test_bad_videos_are_one_line_errors_exit_2(kind, tmp_path, capsys):
    path = tmp_path / "bad.mp4"
    if kind == "corrupt":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    elif kind == "audio only":
        write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32))
        shutil.copy(tmp_path / "a.wav", path)
    else:
        _zero_frame_video(path)
    with pytest.raises(MultiTalkInputError):
        read_video_frames(path)
    write_wav(tmp_path / "v.wav", (0.1 * np.ones(16000)).astype(np.float32))
    code = main(
        [
            "generate",
            "--video",
            str(path),
            "--audio",
            str(tmp_path / "v.wav"),
            "--prompt",
            "p",
            "-o",
            str(tmp_path / "out.mp4"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "video" in err[0]
    assert not (tmp_path / "out.mp4").exists()


def test_dub_example_runs_with_the_bundled_model(tmp_path):
    assert (
        main(
            [
                "generate",
                "examples/dub.json",
                "--variant",
                "infinitetalk",
                "--steps",
                "1",
                "--quiet",
                "-o",
                str(tmp_path / "dub.mp4"),
            ]
        )
        == 0
    )
    assert (tmp_path / "dub.mp4").stat().st_size > 0


def test_an_av1_video_is_read_and_resampled(tmp_path):
    """Any codec PyAV reads: an AV1 (SVT-AV1) 30 fps source comes out at 25 fps, frame by timestamp."""
    from fractions import Fraction

    import av

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV build has no AV1 encoder to write the test file")
    path = tmp_path / "av1.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert av.open(str(path)).streams.video[0].codec_context.name in ("libdav1d", "av1", "libaom-av1")
    frames = read_video_frames(path)
    assert len(frames) == 25 and frames[0].shape == (48, 64, 3)  # one second at 25 fps
    levels = [float(np.asarray(frames[j]).mean()) for j in (0, 5, 10, 20)]
    assert levels == sorted(levels) and abs(levels[2] - 8 * 12) < 10  # frame 10 at 25 fps shows source frame 12


def test_each_shot_starts_a_fresh_first_clip_with_its_own_frame_and_audio(pipe):
    from multitalk.processing import resize_image

    video, voices = _inputs(40)
    video[17:] = 255 - video[17:]  # a cut at frame 17
    calls, lengths = [], []
    real_clip, real_audio = pipe.generate_clip, pipe.encode_audio

    def spy(cond, audio, clip, num_frames, *args, **kwargs):
        calls.append((cond.shape[1], args[-1].cpu() if args[-1] is not None else None))
        return real_clip(cond, audio, clip, num_frames, *args, **kwargs)

    def audio_spy(waveform):
        lengths.append(waveform.size)
        return real_audio(waveform)

    pipe.generate_clip, pipe.encode_audio = spy, audio_spy
    try:
        out = pipe(
            video=video,
            audio=voices,
            prompt="two people talk",
            num_frames=13,
            num_inference_steps=1,
            mode="streaming",
            size=(64, 64),
            shots=[17],
        )
    finally:
        del pipe.generate_clip, pipe.encode_audio
    assert out.frames.shape[0] == 40 and out.audio.size == 40 * 640
    firsts = [i for i, (given, _) in enumerate(calls) if given == 1]  # a fresh first clip: the reference alone
    assert len(firsts) == 2 and firsts[0] == 0
    assert lengths == [17 * 640] * 2 + [23 * 640] * 2  # each shot hears its own span of both voices
    expected = resize_image(video[17], (64, 64), pipe.processing.resize)
    assert torch.allclose(calls[firsts[1]][1].float(), expected.float())  # the second shot's own first frame
    with pytest.raises(MultiTalkInputError, match="shots must be increasing"):
        pipe(video=video, audio=voices, prompt="p", mode="streaming", shots=[40])


def test_shot_cuts_are_found_where_the_picture_changes(tmp_path, capsys):
    pytest.importorskip("scenedetect", reason="PySceneDetect is not installed (pip install 'multitalk[scenes]')")
    pytest.importorskip("cv2", reason="OpenCV is not installed or lacks libGL (apt install libgl1)")
    from multitalk.media import detect_shots, write_image

    rng = np.random.default_rng(0)
    frames = np.zeros((60, 48, 64, 3), np.uint8)
    frames[:36] = (20, 40, 160)  # a blue shot for 1.2 s at 30 fps, then a bright orange one
    frames[36:] = (230, 150, 30)
    frames = np.clip(frames + rng.integers(-6, 7, frames.shape), 0, 255).astype(np.uint8)
    write_video(tmp_path / "cut.mp4", frames, 30)
    assert detect_shots(tmp_path / "cut.mp4") == [30]  # 1.2 s at 25 fps
    write_image(tmp_path / "ref.png", frames[0])
    write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32))
    argv = ["generate", "--image", str(tmp_path / "ref.png"), "--audio", str(tmp_path / "a.wav"), "--prompt", "p"]
    assert main([*argv, "--scenes", "-o", str(tmp_path / "o.mp4")]) == 2
    assert "--scenes cuts a video" in capsys.readouterr().err


def test_scenes_dubs_a_video_with_a_cut_shot_by_shot(tmp_path):
    pytest.importorskip("scenedetect", reason="PySceneDetect is not installed (pip install 'multitalk[scenes]')")
    pytest.importorskip("cv2", reason="OpenCV is not installed or lacks libGL (apt install libgl1)")
    from multitalk.media import detect_shots, probe

    source = read_video_frames("examples/dub/source.mp4")
    frames = np.stack([source[i] for i in range(len(source))])
    frames[40:] = 255 - frames[40:]  # the example's video with a cut at 1.6 s
    write_video(tmp_path / "cut.mp4", frames, 25)
    assert detect_shots(tmp_path / "cut.mp4") == [40]
    spec = json.loads(open("examples/dub.json").read())
    spec["cond_video"] = str(tmp_path / "cut.mp4")
    spec["cond_audio"] = {k: str(Path(v).resolve()) for k, v in spec["cond_audio"].items()}
    (tmp_path / "cut.json").write_text(json.dumps(spec))
    argv = ["generate", str(tmp_path / "cut.json"), "--scenes", "--steps", "1", "--quiet"]
    assert main([*argv, "-o", str(tmp_path / "dubbed.mp4")]) == 0
    voice = read_audio("examples/dub/person1.wav")
    assert probe(tmp_path / "dubbed.mp4")["video"]["frames"] == math.ceil(voice.size / 640)
