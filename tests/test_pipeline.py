"""MultiTalkPipeline and `multitalk generate` on a tiny random model (CPU, seconds)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from multitalk.cli import main
from multitalk.conditioning.audio import combine_voices
from multitalk.conditioning.people import BUCKETS_480P, default_masks, masks_from_bboxes, nearest_bucket
from multitalk.guidance import three_pass, two_pass
from multitalk.media import frames_from_uint8, frames_to_uint8, probe, read_video
from multitalk.pipeline import clip_lengths
from multitalk.random_pipeline import random_pipeline
from multitalk.synthetic import make_sample, random_scene

REPO = Path(__file__).resolve().parents[1]
FAST = dict(num_inference_steps=2, num_frames=9)


@pytest.fixture(scope="module")
def pipe():
    pipe = random_pipeline("tiny", seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def model_dir(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def duet():
    return make_sample(random_scene(3, 2, 2.0, "add", width=96, height=64, action=None))


def test_clip_mode_gives_num_frames_at_the_bucket_size(pipe, duet):
    out = pipe(duet.video[0], duet.tracks, "two people talk", bboxes=duet.scene.bboxes(), mode="clip", **FAST)
    assert out.frames.shape == (9, 64, 96, 3) and out.frames.dtype == np.uint8
    assert abs(out.audio.size - 9 / 25 * 16000) <= 1


def test_streaming_runs_exactly_as_long_as_the_audio(pipe, duet, tmp_path):
    audio = [t[: int(2.5 * 9 / 25 * 16000)] for t in duet.tracks]  # 2.5 clips of 9 frames
    out = pipe(duet.video[0], audio, "two people talk", mode="streaming", motion_frames=3, **FAST)
    assert out.frames.shape[0] == int(audio[0].size / 16000 * 25) == 22
    from multitalk.media import write_video

    write_video(tmp_path / "v.mp4", out.frames, out.fps, out.audio)
    info = probe(tmp_path / "v.mp4")
    assert abs(info["video"]["seconds"] - audio[0].size / 16000) <= 1 / 25 + 1e-6
    assert abs(info["audio"]["seconds"] - info["video"]["seconds"]) <= 1 / 25 + 0.03  # AAC frames are 64 ms


def test_fit_clips_cuts_the_last_clip_to_the_audio(pipe, duet, monkeypatch):
    assert clip_lengths(22, 9, 3) == [9, 9, 9, 9] and clip_lengths(22, 9, 3, fit=True) == [9, 9, 9, 5]
    assert clip_lengths(50, 81, 5, fit=True) == [53] and clip_lengths(81, 81, 5, fit=True) == [81]
    made, generate_clip = [], pipe.generate_clip

    def recorded(cond, audio, clip, num_frames, *args):
        made.append(num_frames)
        return generate_clip(cond, audio, clip, num_frames, *args)

    monkeypatch.setattr(pipe, "generate_clip", recorded)
    audio = [t[: int(22 / 25 * 16000)] for t in duet.tracks]
    out = pipe(duet.video[0], audio, "talk", mode="streaming", motion_frames=3, fit_clips=True, **FAST)
    assert made == [9, 9, 9, 5] and out.frames.shape[0] == 22


def test_same_seed_same_frames(pipe, duet):
    def run(seed):
        return pipe(
            duet.video[0], duet.tracks, "talk", generator=torch.Generator().manual_seed(seed), mode="clip", **FAST
        ).frames

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_old_keyword_names_still_work_with_one_warning_each(pipe, duet, recwarn):
    """steps/seed/callback/progress: the names before diffusers' conventions, kept for one release."""
    import multitalk.pipeline as pipeline_module

    pipeline_module._WARNED.clear()
    seen = []
    old = pipe(
        duet.video[0],
        duet.tracks,
        "talk",
        mode="clip",
        steps=2,
        num_frames=9,
        seed=3,
        progress=False,
        callback=lambda clip, clips, step, steps: seen.append((clip, clips, step, steps)),
    ).frames
    pipe(duet.video[0], duet.tracks, "talk", mode="clip", steps=2, num_frames=9, seed=3, progress=False)
    new = pipe(
        duet.video[0],
        duet.tracks,
        "talk",
        mode="clip",
        num_inference_steps=2,
        num_frames=9,
        generator=torch.Generator().manual_seed(3),
    ).frames
    assert np.array_equal(old, new) and seen == [(0, 1, 1, 2), (0, 1, 2, 2)]
    names = sorted(str(w.message).split("`")[1] for w in recwarn if issubclass(w.category, FutureWarning))
    assert names == ["callback", "progress", "seed", "steps"]  # once each
    with pytest.raises(TypeError, match="unexpected"):
        pipe(duet.video[0], duet.tracks, "talk", stepz=2)


def test_callback_on_step_end_sees_and_may_replace_the_latents(pipe, duet):
    seen = []

    def callback(p, step, t, kwargs):
        seen.append((step, kwargs["clip"], tuple(kwargs["latents"].shape)))
        return {"latents": kwargs["latents"] * 0} if step == FAST["num_inference_steps"] - 1 else {}

    out = pipe(duet.video[0], duet.tracks, "talk", mode="clip", callback_on_step_end=callback, **FAST)
    assert [s[:2] for s in seen] == [(0, 0), (1, 0)]
    plain = pipe(duet.video[0], duet.tracks, "talk", mode="clip", **FAST)
    assert not np.array_equal(out.frames, plain.frames)
    assert isinstance(out, dict) and out["frames"] is out.frames  # a diffusers BaseOutput


def test_guidance_formulas():
    cond, no_text, uncond = (torch.randn(1, 2, 3, 4, 4) for _ in range(3))
    assert torch.allclose(
        three_pass(cond, no_text, uncond, 5.0, 4.0), uncond + 5 * (cond - no_text) + 4 * (no_text - uncond)
    )
    assert torch.allclose(two_pass(cond, uncond, 3.0), uncond + 3 * (cond - uncond))
    # scale 1 everywhere: the conditional prediction itself
    assert torch.allclose(three_pass(cond, no_text, uncond, 1.0, 1.0), cond, atol=1e-6)


@pytest.mark.parametrize("text_guidance, passes", [(5.0, 3), (1.0, 2)])
def test_passes_per_step_and_what_each_pass_sees(pipe, duet, monkeypatch, text_guidance, passes):
    """3 passes: cond / no-text / no-text-no-audio; 2 passes (text scale 1): cond / no-audio."""
    seen, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        seen.append(
            (
                kwargs["audio"].shape[1],
                float(kwargs["audio"].abs().sum()) == 0.0,
                kwargs["encoder_hidden_states"].shape[1],
            )
        )
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    pipe(duet.video[0], duet.tracks, "two people talk in a room", text_guidance=text_guidance, mode="clip", **FAST)
    assert len(seen) == passes * FAST["num_inference_steps"]
    cond, *rest = seen[:passes]
    assert cond[0] == 2 and not cond[1]  # both voices
    assert rest[-1][0] == 1 and rest[-1][1]  # no audio: one all-zero stream
    if passes == 3:
        assert rest[0][0] == 2 and rest[0][2] != cond[2]  # no text: the (empty) negative prompt


def test_resume_after_a_killed_run_gives_identical_frames(pipe, duet, tmp_path):
    def args():
        return dict(mode="streaming", motion_frames=3, generator=torch.Generator().manual_seed(5), **FAST)

    whole = pipe(duet.video[0], duet.tracks, "talk", **args()).frames

    def kill(pipe, step, t, kwargs):
        if kwargs["clip"] == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        pipe(duet.video[0], duet.tracks, "talk", work_dir=tmp_path / "work", callback_on_step_end=kill, **args())
    assert len(list((tmp_path / "work").glob("clip_*.npy"))) == 3
    resumed = pipe(duet.video[0], duet.tracks, "talk", work_dir=tmp_path / "work", resume=True, **args()).frames
    assert np.array_equal(whole, resumed)
    with pytest.raises(ValueError, match="different request"):  # another prompt cannot reuse the clips
        pipe(duet.video[0], duet.tracks, "other", work_dir=tmp_path / "work", resume=True, **args())


def test_uint8_frames_to_model_range_and_back():
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)  # F, H, W, 3
    x = frames_from_uint8(frames)
    assert x.shape == (3, 3, 4, 5) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(frames_to_uint8(x), frames)


def test_masks_buckets_and_audio_types():
    assert nearest_bucket(480, 832, BUCKETS_480P) == (448, 896)
    assert nearest_bucket(1000, 1000, BUCKETS_480P) == (640, 640)
    two = default_masks(2, 100, 200)
    assert two[0, 5:95, 5:95].all() and two[1, 5:95, 105:195].all() and two[:2].sum(0).max() == 1
    assert torch.equal(two[2], 1 - two[:2].amax(0))
    xyxy = masks_from_bboxes([[10, 20, 30, 60]], 100, 100, "xyxy")  # left, top, right, bottom
    assert xyxy[0, 20:60, 10:30].all() and xyxy[0].sum() == 40 * 20
    a, b = np.ones(1600, np.float32) * 0.1, np.ones(800, np.float32) * 0.1
    add = combine_voices([a, b], "add")
    assert [t.size for t in add] == [2400, 2400] and not add[0][1600:].any() and not add[1][:1600].any()
    para = combine_voices([a, b], "para")
    assert [t.size for t in para] == [1600, 1600]


# ----------------------------------------------------------------------------- the CLI


def _gen(model_dir, *argv):
    return main(
        [
            "generate",
            *argv,
            "--model",
            str(model_dir),
            "--steps",
            "1",
            "--frames",
            "9",
            "--motion-frames",
            "3",
            "--quiet",
        ]
    )


@pytest.mark.parametrize("example", ["duet", "turns", "solo"])
def test_official_example_files_run_unchanged(model_dir, example, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # official files name paths relative to the repository root
    out = tmp_path / f"{example}.mp4"
    assert _gen(model_dir, f"examples/{example}.json", "-o", str(out)) == 0
    data = json.loads((REPO / "examples" / f"{example}.json").read_text())
    info = probe(out)
    assert info["audio"]["codec"] == "aac" and info["video"]["frames"] >= 9
    assert len(data["cond_audio"]) in (1, 2)
    assert "wrote" in capsys.readouterr().out
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # work folder and temp files gone


def test_flags_without_json_and_save_frames(model_dir, tmp_path, duet):
    from multitalk.media import write_image, write_wav

    write_image(tmp_path / "ref.png", duet.video[0])
    write_wav(tmp_path / "a.wav", duet.tracks[0])
    write_wav(tmp_path / "b.wav", duet.tracks[1])
    boxes = [",".join(map(str, b)) for b in duet.scene.bboxes()]
    assert (
        _gen(
            model_dir,
            "--image",
            str(tmp_path / "ref.png"),
            "--audio",
            str(tmp_path / "a.wav"),
            "--audio",
            str(tmp_path / "b.wav"),
            "--prompt",
            "two people",
            "--bbox",
            boxes[0],
            "--bbox",
            boxes[1],
            "--mode",
            "clip",
            "-o",
            str(tmp_path / "o.mp4"),
            "--save-frames",
            str(tmp_path / "frames"),
        )
        == 0
    )
    video, _ = read_video(tmp_path / "o.mp4")
    assert video.shape[0] == 9 and len(list((tmp_path / "frames").glob("*.png"))) == 9


@pytest.fixture()
def inputs(tmp_path, duet):
    from multitalk.media import write_image, write_wav

    write_image(tmp_path / "ref.png", duet.video[0])
    write_wav(tmp_path / "a.wav", duet.tracks[0])
    write_wav(tmp_path / "b.wav", duet.tracks[1])
    (tmp_path / "text.txt").write_text("not media")
    (tmp_path / "empty.wav").write_bytes(b"")
    import soundfile

    soundfile.write(tmp_path / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    (tmp_path / "notamodel").mkdir()
    return tmp_path


BAD = [
    (["--image", "missing.png"], "image file not found"),
    (["--image", "text.txt"], "not a readable image"),
    (["--audio", "missing.wav", "--audio", "b.wav"], "audio file not found"),
    (["--audio", "text.txt", "--audio", "b.wav"], "audio"),
    (["--audio", "empty.wav", "--audio", "b.wav"], "empty"),
    (["--audio", "nan.wav", "--audio", "b.wav"], "NaN"),
    (["--bbox", "0,0,30,40", "--bbox", "0,50,30,90", "--bbox", "31,0,60,40"], "3 bboxes for 2 audio tracks"),
    (["--audio", "a.wav", "--bbox", "0,0,30,40", "--bbox", "0,50,30,90"], "2 bboxes for 1 audio tracks"),
    (["--bbox", "0,0,30,40", "--bbox", "0,50,30,900"], "outside"),
    (["--bbox", "0,0,30,40", "--bbox", "30,50,30,90"], "empty"),
    (["--audio-type", "both"], "unknown audio_type"),
    (["--frames", "10"], "4k+1"),
    (["--steps", "0"], "--num-inference-steps: Input should be greater than or equal to 1"),
    (["--model", "notamodel"], "not a model folder"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_exit_2_and_no_output(model_dir, inputs, monkeypatch, capsys, override, message):
    monkeypatch.chdir(inputs)
    argv = {
        "--image": ["ref.png"],
        "--audio": ["a.wav", "b.wav"],
        "--prompt": ["two people"],
        "--model": [str(model_dir)],
        "--steps": ["1"],
        "--frames": ["9"],
    }
    for flag in dict.fromkeys(override[::2]):  # replace whole flags given by the case
        argv[flag] = []
    for flag, value in zip(override[::2], override[1::2]):
        argv[flag].append(value)
    args = ["generate", "-o", "out.mp4", "--quiet", "--mode", "clip"] + [
        x for f, vs in argv.items() for v in vs for x in (f, v)
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (inputs / "out.mp4").exists()


def test_overlapping_boxes_warn_but_run(model_dir, inputs, monkeypatch, capsys):
    monkeypatch.chdir(inputs)
    assert (
        _gen(
            model_dir,
            "--image",
            "ref.png",
            "--audio",
            "a.wav",
            "--audio",
            "b.wav",
            "--prompt",
            "p",
            "--bbox",
            "0,0,40,60",
            "--bbox",
            "0,40,40,90",
            "--mode",
            "clip",
            "-o",
            "o.mp4",
        )
        == 0
    )
    assert "overlap" in capsys.readouterr().err and (inputs / "o.mp4").exists()


def test_no_model_and_no_bundled_model_is_a_clear_error(inputs, monkeypatch, capsys):
    monkeypatch.chdir(inputs)
    monkeypatch.setattr("multitalk.loading.DEMO_MODEL", inputs / "no-such-bundle")
    assert main(["generate", "--image", "ref.png", "--audio", "a.wav", "--prompt", "p", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no bundled demo model" in err and "--model" in err and len(err.strip().splitlines()) == 1
    shutil.rmtree(inputs / "notamodel")


@pytest.mark.parametrize("cache", ["first-block", "teacache"])
def test_cache_hook_and_bfloat16_run_through_the_cli(model_dir, tmp_path, monkeypatch, cache):
    monkeypatch.chdir(REPO)
    out = tmp_path / "c.mp4"
    assert (
        _gen(
            model_dir,
            "examples/solo.json",
            "-o",
            str(out),
            "--cache",
            cache,
            "--dtype",
            "bfloat16",
            "--mode",
            "clip",
        )
        == 0
    )
    assert probe(out)["video"]["frames"] == 9


def test_no_negative_prompt_means_the_models_default(duet, monkeypatch):
    pipe = random_pipeline("tiny", seed=0)
    pipe.register_to_config(negative_prompt="blurry static picture with many extra people")
    lengths, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        lengths.append(kwargs["encoder_hidden_states"].shape[1])
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    pipe(duet.video[0], duet.tracks, "talk", mode="clip", num_inference_steps=1, num_frames=9)
    default = pipe.encode_prompt([pipe.config.negative_prompt])[0].shape[0]
    assert lengths[1] == default != lengths[0]  # the no-text pass got the default negative prompt
    lengths.clear()
    pipe(duet.video[0], duet.tracks, "talk", negative_prompt="", mode="clip", num_inference_steps=1, num_frames=9)
    assert lengths[1] == pipe.encode_prompt([""])[0].shape[0]


def test_a_model_brings_its_own_sampling_settings(duet, tmp_path, monkeypatch, capsys):
    """A folder's ``sampling`` fills what the caller leaves out; the caller still wins."""
    from multitalk.checkpoints import model_sampling

    pipe = random_pipeline("tiny", seed=0)
    pipe.register_to_config(sampling={"num_frames": 5, "steps": 1})
    assert pipe(duet.video[0], duet.tracks, "talk", mode="clip").frames.shape[0] == 5
    assert pipe(duet.video[0], duet.tracks, "talk", mode="clip", num_frames=9).steps_run == 1
    folder = tmp_path / "model"
    pipe.save_pretrained(folder)
    assert model_sampling(folder) == {"num_frames": 5, "steps": 1}
    monkeypatch.chdir(REPO)
    assert (
        main(
            [
                "generate",
                "examples/solo.json",
                "--model",
                str(folder),
                "--mode",
                "clip",
                "-o",
                str(tmp_path / "s.mp4"),
                "--quiet",
            ]
        )
        == 0
    )
    assert probe(tmp_path / "s.mp4")["video"]["frames"] == 5 and "over 1 steps" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown sampling settings"):
        type(pipe)(**pipe.components, sampling={"frame_rate": 5})
