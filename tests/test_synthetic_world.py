"""Scenes, rendering, the dataset writer and the sync/binding metrics of the synthetic world."""

import json

import numpy as np
import pytest

from multitalk.cli import main
from multitalk.evaluation import evaluate_sync, pearson
from multitalk.media import read_video, write_video
from multitalk.synthetic import Scene, load_scene_record, make_sample, random_scene, render, write_dataset
from multitalk.synthetic.speech import espeak_available

CASES = [(0, 2, "add", "swap"), (1, 3, "para", "walk"), (2, 2, "para", "nod"), (5, 3, "add", "swap")]


@pytest.fixture(scope="module")
def samples():
    return {case: make_sample(random_scene(case[0], case[1], 5.0, case[2], action=case[3])) for case in CASES}


def test_scene_is_deterministic_and_round_trips_through_json():
    a, b, c = random_scene(3, 3, 4.0, "para"), random_scene(3, 3, 4.0, "para"), random_scene(4, 3, 4.0, "para")
    assert a == b and a != c
    assert Scene.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    first, again = make_sample(a), make_sample(b)
    assert np.array_equal(first.video, again.video)
    assert first.video.shape == (100, 128, 128, 3)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("people", [1, 2, 3, 4])
def test_boxes_hold_their_person_and_never_overlap(seed, people):
    scene = random_scene(seed, people, 1.0, "add", action=None)
    boxes = scene.bboxes()
    head, _ = scene.tracks()
    for (top, left, bottom, right), (x, y), r in zip(boxes, head[0], scene.radii()):
        assert 0 <= top < bottom <= scene.height and 0 <= left < right <= scene.width
        assert left <= x - r and x + r <= right and top <= y - r and y + r <= bottom  # the whole head
    masks = np.zeros((people, scene.height, scene.width), bool)
    for mask, (top, left, bottom, right) in zip(masks, boxes):
        mask[top:bottom, left:right] = True  # the official reading: rows first
    assert masks.sum(0).max() == 1


def test_renders_any_size_and_refuses_tiny_frames():
    scene = random_scene(1, 2, 1.0, "add", width=160, height=96)
    assert make_sample(scene).video.shape == (25, 96, 160, 3)
    with pytest.raises(ValueError, match="at least 64"):
        random_scene(1, 2, 1.0, "add", width=48, height=48)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("people", [2, 3, 4])
def test_swap_trades_places_without_heads_touching(seed, people):
    scene = random_scene(seed, people, 5.0, "add", action="swap")
    head, _ = scene.tracks()
    a, b = scene.actions[0].person, scene.actions[0].partner
    assert head[0, a, 0] < head[0, b, 0] and head[-1, a, 0] > head[-1, b, 0]
    gap = np.linalg.norm(head[:, a] - head[:, b], axis=-1)
    assert (gap > scene.radii()[[a, b]].sum()).all()
    assert "swap places" in scene.prompt


@pytest.mark.parametrize("seed", range(4))
def test_walk_prompt_matches_the_tracked_motion(seed):
    scene = random_scene(seed, 2, 3.0, "para", action="walk")
    (action,) = scene.actions
    report = evaluate_sync(make_sample(scene).video, scene, make_sample(scene).openings)
    moved = report.measurement.heads[-1, action.person, 0] - report.measurement.heads[0, action.person, 0]
    word = "right" if moved > 0 else "left"
    assert abs(moved) > 0.05 * scene.width and f"walks to the {word}" in scene.prompt


def test_ground_truth_video_scores_perfectly(samples):
    for sample in samples.values():
        report = evaluate_sync(sample.video, sample.scene, sample.openings)
        assert all(v is None or v >= 0.9 for v in report.lip_sync)
        assert report.binding_accuracy == 1.0
        assert max(report.color_drift) < 3 and report.measurement.found.all()
        assert all(s is None or s > 0.95 for s in report.still_mouth)


def test_swapped_mouths_break_binding(samples):
    for (seed, people, mode, action), sample in samples.items():
        if people != 2:
            continue
        swapped = render(sample.scene, sample.openings[::-1].copy())
        assert evaluate_sync(swapped, sample.scene, sample.openings).binding_accuracy <= 0.1


def test_frozen_mouths_have_no_lip_sync(samples):
    for sample in samples.values():
        frozen = render(sample.scene, np.full_like(sample.openings, 0.4))
        report = evaluate_sync(frozen, sample.scene, sample.openings)
        assert all(v is None or abs(v) < 0.1 for v in report.lip_sync)


def test_metrics_survive_an_mp4_round_trip(samples, tmp_path):
    for sample in samples.values():
        write_video(tmp_path / "gt.mp4", sample.video, 25, audio=sample.mix)
        video, fps = read_video(tmp_path / "gt.mp4")
        report = evaluate_sync(video, sample.scene, sample.openings)
        assert fps == 25 and video.shape == sample.video.shape
        assert all(v is None or v >= 0.85 for v in report.lip_sync) and report.binding_accuracy == 1.0


def test_pearson_ignores_tracks_that_do_not_move():
    rng = np.random.default_rng(0)
    x = rng.random(100)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, np.full(100, 0.3) + 1e-4 * x) == 0.0


def test_synth_action_flag_gives_every_scene_that_action(tmp_path):
    from multitalk.cli import SYNTH_ACTIONS
    from multitalk.synthetic import ACTIONS

    assert set(SYNTH_ACTIONS) == {"random", "none", *ACTIONS}
    out = tmp_path / "walks"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--count",
                "3",
                "--people",
                "1",
                "--seconds",
                "2",
                "--size",
                "64",
                "--action",
                "walk",
                "--no-video",
            ]
        )
        == 0
    )
    for k in range(3):
        scene = load_scene_record(out / f"{k:06d}")["scene"]
        assert [a.kind for a in scene.actions] == ["walk"] and "walks to the" in scene.prompt
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "still"),
                "--count",
                "2",
                "--seconds",
                "2",
                "--size",
                "64",
                "--action",
                "none",
                "--no-video",
            ]
        )
        == 0
    )
    assert all(not load_scene_record(tmp_path / "still" / f"{k:06d}")["scene"].actions for k in range(2))


def test_dataset_writer_cli_and_eval_sync(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["synth", "--out", str(out), "--count", "2", "--people", "2", "--seconds", "2", "--size", "96"]) == 0
    sample = out / "000001"
    names = {p.name for p in sample.iterdir()}
    assert names == {"video.mp4", "frame0.png", "person1.wav", "person2.wav", "scene.json", "input.json", "regions.npz"}
    official = json.loads((sample / "input.json").read_text())
    assert set(official) == {"prompt", "cond_image", "cond_audio", "audio_type", "bbox"}
    assert set(official["cond_audio"]) == set(official["bbox"]) == {"person1", "person2"}
    with np.load(sample / "regions.npz") as regions:  # the layout training/regions.py documents
        assert regions["heads"].shape == regions["bodies"].shape == (50, 2, 2) and regions["radii"].shape == (2,)
        assert regions["boxes"][0].tolist() == [official["bbox"]["person1"], official["bbox"]["person2"]]
    record = load_scene_record(sample)
    assert record["mouth_opening"].shape == (2, 50) and record["scene"].width == 96

    stamp = (sample / "video.mp4").stat().st_mtime_ns
    write_dataset(out, 2, (2, 2), 2.0, 96, progress=False)  # complete samples are kept: a rerun resumes
    assert (sample / "video.mp4").stat().st_mtime_ns == stamp

    capsys.readouterr()
    assert main(["eval-sync", str(sample / "video.mp4"), "--scene", str(sample / "scene.json"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["binding_accuracy"] == 1.0 and figures["lip_sync"] >= 0.85
    # the voices swapped between the people: the mouths no longer follow them
    swapped = ["--audio", str(sample / "person2.wav"), "--audio", str(sample / "person1.wav")]
    score = ["eval-sync", str(sample / "video.mp4"), "--scene", str(sample / "scene.json"), "--json"]
    assert main(score + swapped) == 0
    assert json.loads(capsys.readouterr().out)["binding_accuracy"] <= 0.1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval-sync", "missing.mp4", "--scene", "missing.json"], "scene file not found"),
        (["synth", "--out", "x", "--size", "32"], "at least 64 px"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (apt install espeak-ng)")
def test_espeak_voices_drive_mouths():
    sample = make_sample(random_scene(0, 2, 3.0, "add", speech="espeak"))
    assert all(np.abs(t).max() > 0.05 for t in sample.tracks if t.any())
    assert evaluate_sync(sample.video, sample.scene, sample.openings).binding_accuracy == 1.0


def test_synth_refuses_held_out_seeds(tmp_path, capsys):
    from multitalk.cli import main
    from multitalk.synthetic.splits import HELD_OUT_START

    code = main(["synth", "--out", str(tmp_path / "d"), "--count", "3", "--seed", str(HELD_OUT_START - 1)])
    assert code == 2 and "held-out" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "t"),
                "--twins",
                "1",
                "--people",
                "1",
                "--seconds",
                "1",
                "--size",
                "64",
                "--seed",
                "30000",
                "--no-video",
            ]
        )
        == 0
    )
    first, twin = sorted(p.name for p in (tmp_path / "t").iterdir())  # a scene and its mirrored walk
    assert first.endswith("_0") and twin == first[:-1] + "1"
    import json

    prompts = [
        json.loads((tmp_path / "t" / name / "scene.json").read_text())["scene"]["prompt"] for name in (first, twin)
    ]
    assert prompts[0] != prompts[1] and {"left" in p for p in prompts} == {True, False}
