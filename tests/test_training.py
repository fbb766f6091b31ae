"""Training: loss goes down, frozen weights stay frozen, the multi-task mix, resume."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from multitalk.cli import main
from multitalk.errors import MultiTalkError, MultiTalkInputError
from multitalk.synthetic import write_dataset
from multitalk.training import TrainConfig, Trainer, flow_matching_loss
from multitalk.training.config import DataConfig
from multitalk.training.trainer import batch_kind


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 4, (1, 2), 1.0, 64, progress=False)
    return root


def nested(**flat) -> TrainConfig:
    """A config from field names alone (``lr=…``, ``vae_base_dim=…``), each put in its section."""
    from multitalk.training.config import FLAT_NAMES

    sections: dict = {}
    for name, value in flat.items():
        if name in FLAT_NAMES:
            section, key = FLAT_NAMES[name]
            sections.setdefault(section, {})[key] = value
        else:
            sections[name] = value
    return TrainConfig.from_dict(sections)


def config(tmp_path, data, **changes):
    folders = [str(d) for d in data] if isinstance(data, list) else str(data)
    settings = dict(
        output=str(tmp_path / "run"),
        data=folders,
        init="tiny",
        frames=9,
        size=64,
        steps=6,
        batch_size=2,
        lr=1e-3,
        checkpoint_every=3,
        log_every=3,
    )
    return nested(**{**settings, **changes})


def fixed_loss(trainer):
    batch = trainer.clips.batch(np.random.default_rng(123), 4)
    generator = torch.Generator().manual_seed(123)
    sigmas = torch.rand(4, generator=generator)
    noise = torch.randn(batch["latents"].shape, generator=generator)
    with torch.no_grad():
        return float(flow_matching_loss(trainer.model, batch, sigmas, noise, use_audio=True))


def test_training_reduces_the_loss(tmp_path, data):
    trainer = Trainer(
        config(
            tmp_path,
            data,
            steps=40,
            trainable="all",
            checkpoint_every=40,
            sample_every=20,
            sample_steps=1,
            sample_text_guidance=1.0,
            sample_audio_guidance=2.0,
        ),
        progress=False,
    )
    before = fixed_loss(trainer)
    trainer.run()
    assert fixed_loss(trainer) < 0.9 * before
    assert (tmp_path / "run" / "loss.png").is_file() and (tmp_path / "run" / "final" / "model_index.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_0000020.mp4", "step_0000040.mp4"]


@pytest.mark.parametrize("trainable", ["audio", "base"])
def test_partial_training_leaves_frozen_weights_bit_identical(tmp_path, data, trainable):
    """audio: only the audio layers learn; base: everything but them (a trained audio model's base learns on)."""
    trainer = Trainer(config(tmp_path, data, trainable=trainable), progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    audio = {name for name, _ in trainer.model.trainable_audio_parameters()}
    assert 0 < trainer.trainable_count < trainer.total_count
    learning = audio if trainable == "audio" else set(before) - audio
    for name, value in before.items():
        if name not in learning:
            assert torch.equal(value, after[name]), name
    assert any(not torch.equal(before[name], after[name]) for name in learning)


@pytest.mark.parametrize("image_dropout", [0.0, 1.0])
def test_image_dropout_withholds_the_given_frames(tmp_path, data, monkeypatch, image_dropout):
    from multitalk.training import trainer as trainer_module

    given, loss = [], trainer_module.flow_matching_loss

    def spy(model, batch, *args):
        given.append(float(batch["condition"].abs().sum()))
        return loss(model, batch, *args)

    monkeypatch.setattr(trainer_module, "flow_matching_loss", spy)
    Trainer(config(tmp_path, data, steps=3, image_dropout=image_dropout), progress=False).run()
    assert len(given) == 3 and all((g == 0) == (image_dropout == 1.0) for g in given)
    with pytest.raises(MultiTalkInputError, match="image_dropout"):
        nested(output="x", data="y", image_dropout=1.5)


def test_zero_audio_batches_come_at_the_configured_rate(tmp_path, data):
    settings = nested(output="x", data="y", i2v_share=0.3, audio_dropout=0.1)
    rng = np.random.default_rng(0)
    kinds = [batch_kind(rng, settings) for _ in range(4000)]
    assert abs(kinds.count("i2v") / 4000 - 0.3) < 0.03
    assert abs(kinds.count("audio_dropout") / 4000 - 0.07) < 0.02


def test_a_second_precision_in_one_process_is_a_clear_error(tmp_path, data):
    """accelerate holds one state per process: a second trainer with another precision must say so and how."""
    from accelerate.state import AcceleratorState

    Trainer(config(tmp_path / "a", data), progress=False)
    try:
        with pytest.raises(MultiTalkError, match="another mixed_precision than 'bf16'.*its own process"):
            Trainer(config(tmp_path / "b", data, mixed_precision="bf16"), progress=False)
    finally:
        AcceleratorState._reset_state(True)  # the next tests start from a fresh state, as a new process would


def test_resume_continues_with_identical_state(tmp_path, data):
    straight = Trainer(config(tmp_path / "a", data), progress=False)
    straight.run()
    first = Trainer(config(tmp_path / "b", data, steps=3), progress=False)
    first.run()
    again = Trainer(config(tmp_path / "b", data), progress=False)
    again.run(resume=True)
    assert again.step == 6
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name]), name
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in again.history]


def test_train_cli_and_bad_config(tmp_path, data, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**config(tmp_path, data, steps=2).to_dict()}))
    assert main(["train", str(path), "--quiet"]) == 0
    assert "trained to step 2" in capsys.readouterr().out
    path.write_text(yaml.safe_dump({"output": "x", "data": {"folders": "y"}, "optim": {"learning_rate": 1}}))
    assert main(["train", str(path)]) == 2
    assert "unknown keys in `optim:` ['learning_rate']" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"output": "x", "data": {"folders": "y"}, "lr": 1}))
    assert main(["train", str(path)]) == 2
    assert "move lr -> optim.lr" in capsys.readouterr().err


def test_a_flat_config_of_the_old_layout_still_loads_with_a_warning(tmp_path):
    from multitalk.training import load_config

    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"output": "x", "data": "y", "lr": 0.5, "vae": "v", "stage": "dit", "steps": 3}))
    with pytest.warns(FutureWarning, match="lr -> optim.lr"):
        old = load_config(path)
    assert (old.data.folders, old.optim.lr, old.init.vae, old.schedule.steps) == ("y", 0.5, "v", 3)
    assert load_config(path, **{"schedule.steps": 7}).schedule.steps == 7


def test_vae_stage_trains_and_records_latent_statistics(tmp_path, data):
    from diffusers import AutoencoderKLWan

    from multitalk.random_pipeline import random_pipeline
    from multitalk.training import trainer_for

    settings = config(
        tmp_path, data, stage="vae", init="new", vae_base_dim=4, frames=5, steps=8, lr=2e-3, checkpoint_every=4
    )
    trainer = trainer_for(settings, progress=False)
    history = trainer.run()
    assert np.mean([h["loss"] for h in history[-3:]]) < np.mean([h["loss"] for h in history[:3]])
    vae = AutoencoderKLWan.from_pretrained(tmp_path / "run" / "final")
    assert len(vae.config.latents_std) == 16 and vae.config.latents_std[0] != 2.8184  # not the Wan default
    # the DiT stages start from it
    pipe = random_pipeline("tiny", vae=str(tmp_path / "run" / "final"))
    assert pipe.vae.config.latents_mean == vae.config.latents_mean


def test_vae_decoder_only_training_keeps_the_encoder_and_so_the_latents(tmp_path, data):
    from diffusers import AutoencoderKLWan

    from multitalk.training import trainer_for
    from multitalk.training.digest import encoder_digest, weights_digest

    first = trainer_for(
        config(tmp_path, data, stage="vae", init="new", vae_base_dim=4, frames=5, steps=2, checkpoint_every=2),
        progress=False,
    )
    first.run()
    start = AutoencoderKLWan.from_pretrained(tmp_path / "run" / "final")
    settings = config(
        tmp_path,
        data,
        stage="vae",
        init=str(tmp_path / "run" / "final"),
        trainable="decoder",
        output=str(tmp_path / "decoder"),
        frames=5,
        steps=4,
        lr=2e-3,
        checkpoint_every=2,
    )
    trainer = trainer_for(settings, progress=False)
    assert 0 < trainer.trainable_count < trainer.total_count
    trainer.run()
    tuned = AutoencoderKLWan.from_pretrained(tmp_path / "decoder" / "final")
    for part in ("encoder", "quant_conv"):  # what makes the latents
        assert weights_digest(getattr(tuned, part)) == weights_digest(getattr(start, part))
    assert weights_digest(tuned.decoder) != weights_digest(start.decoder)
    assert tuned.config.latents_mean == start.config.latents_mean  # same encoder, same statistics
    assert encoder_digest(tuned) == encoder_digest(start)  # so a clip cache made with either fits both
    with pytest.raises(MultiTalkInputError, match="for the dit stage"):
        nested(output="x", data="y", trainable="decoder")
    with pytest.raises(MultiTalkInputError, match="vae.inflate needs"):
        nested(output="x", data="y", stage="vae", init="new", vae_inflate=True)
    with pytest.raises(MultiTalkInputError, match="belongs to `stage: vae` only"):
        TrainConfig.from_dict({"output": "x", "data": {"folders": "y"}, "vae": {"base_dim": 4}})


def test_new_vae_starts_with_the_posterior_noise_asked_for():
    import torch

    from multitalk.training.vae import chroma, new_vae

    torch.manual_seed(0)
    x = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        small = new_vae(4, posterior_std=0.05).encode(x).latent_dist.std
        default = new_vae(4).encode(x).latent_dist.std
    assert 0.03 < float(small.mean()) < 0.08 and 0.5 < float(default.mean()) < 2
    grey = x.mean(1, keepdim=True).expand_as(x)
    assert float(chroma(grey).abs().max()) < 1e-6 and float(chroma(x).abs().mean()) > 0.1


def test_an_inflated_image_vae_treats_a_clip_as_frames_on_their_own():
    import torch

    from multitalk.training.vae import inflate_to_video, new_vae

    torch.manual_seed(0)
    image = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    still = image.expand(-1, -1, 9, -1, -1)  # a clip that does not move
    moving = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    vae = new_vae(4).eval()

    def encode(x):
        return vae.encode(x).latent_dist.mean  # 1, 16, T, 4, 4

    with torch.no_grad():
        as_image = encode(image)
        before = (encode(still)[:, :, 1:] - as_image).abs().mean()  # random time weights: the still clip drifts off
        inflate_to_video(vae)
        assert torch.equal(encode(image), as_image)  # single frames are untouched
        latents = encode(still)
        # the encoder's time shortcut (an average) still treats a 4-frame group apart from a first frame
        assert (latents[:, :, 1:] - as_image).abs().mean() < before / 3
        assert torch.allclose(latents[:, :, 1], latents[:, :, 2], atol=1e-6)
        held = vae.decode(as_image.expand(-1, -1, 3, -1, -1)).sample  # a latent held still decodes every frame
        assert torch.allclose(held, vae.decode(as_image).sample.expand_as(held), atol=1e-5)  # as the image
        # a moving clip: latent frame 1 (video frames 1-4) carries frame 2 and only the average of the others
        changes = []
        for frame in (2, 4):
            flipped = moving.clone()
            flipped[:, :, frame] = -flipped[:, :, frame]
            changes.append((encode(flipped) - encode(moving))[:, :, 1].abs().mean())
    assert changes[0] > 2 * changes[1]


def test_head_weights_cover_each_head_and_mouth_in_the_resized_frames(data):
    from multitalk.synthetic.dataset import load_scene_record
    from multitalk.training.data import sample_folders
    from multitalk.training.regions import head_weights
    from multitalk.training.vae import load_heads

    folder = sample_folders(data, (1, 2))[0]
    scene = load_scene_record(folder)["scene"]
    heads = load_heads(data, 32, (1, 2))[0]  # the 64-px samples seen at 32 px
    weights = head_weights(heads, slice(2, 5), 32, 8.0)
    assert weights.shape == (3, 32, 32) and set(np.unique(weights)) == {1.0, 9.0}
    x, y = (scene.tracks()[0][2, 0] / 2).astype(int)  # person 1's head centre in frame 2, halved
    assert weights[0, y, x] == 9.0 and weights[0, 0, 0] == 1.0
    inside = (weights[0] > 1).sum()
    assert 0.5 < inside / (np.pi * (1.2 * scene.radii() / 2) ** 2).sum() < 1.5  # about the discs' area
    assert (head_weights(None, slice(0, 2), 32, 8.0) == 1).all()
    mouths = head_weights(heads, slice(2, 5), 32, 8.0, mouth=20.0)
    assert set(np.unique(mouths)) == {1.0, 9.0, 29.0}  # every mouth box lies inside its head
    r = scene.radii()[0] / 2
    assert mouths[0, int(y + 0.45 * r), x] == 29.0 and mouths[0, int(y - 0.45 * r), x] == 9.0  # mouth, eyes
    assert 0.5 < (mouths == 29).sum() / (3 * 0.77 * (scene.radii() / 2) ** 2).sum() < 1.5  # about the boxes' area


def test_demo_recipe_configs_are_valid():
    from pathlib import Path

    from multitalk.training import load_config

    recipe = Path(__file__).resolve().parents[1] / "configs" / "recipes" / "demo"
    stages = {p.stem.split("_", 1)[1]: load_config(p) for p in recipe.glob("*.yaml")}
    assert sorted(p.stem.split("_", 1)[0] for p in recipe.glob("*.yaml")) == [f"{i:02d}" for i in range(1, 12)]
    assert set(stages) == {
        "vae_image",
        "vae",
        "base",
        "stage1",
        "stage2",
        "walks",
        "walks_2s",
        "twins",
        "twins_2_3",
        "mixed",
        "voices",
    }
    assert stages["walks"].output == stages["walks_2s"].output  # one run, resumed with more data
    assert stages["walks"].init.trainable == stages["twins"].init.trainable == "base"
    assert stages["mixed"].init.trainable == "all" and stages["voices"].init.trainable == "audio"
    assert stages["twins"].loss.i2v_share == stages["twins_2_3"].loss.i2v_share == 1.0  # silent twins
    assert stages["vae_image"].data.frames == 1 and stages["vae"].init.model == stages["vae_image"].output + "/final"
    assert stages["vae"].loss.mouth_weight > 0 and stages["stage1"].loss.mouth_weight > 0
    assert stages["vae"].output + "/final" == stages["base"].init.vae and stages["base"].init.trainable == "all"
    assert stages["stage1"].data.people == [1, 1] and stages["stage2"].data.people[0] >= 2
    assert stages["stage1"].init.trainable == stages["stage2"].init.trainable == "audio"
    dit = [stages[name] for name in ("base", "stage1", "stage2")]  # one shared cache: the same clips for all
    assert (
        len({(c.data.cache, c.data.frames, c.data.size, c.data.clips_per_sample, c.data.motion_frames) for c in dit})
        == 1
    )


def test_train_demo_recipe_runs_in_an_order_that_can_work():
    """`make train-demo`: every stage starts from a model an earlier line made and reads data an earlier line
    wrote, and the bundle is the last stage's result (a misnamed folder would only show hours into the run)."""
    import shlex
    from pathlib import Path

    from multitalk.training import load_config

    repo = Path(__file__).resolve().parents[1]
    recipe = (repo / "Makefile").read_text().split("\ntrain-demo:")[1].split("\n\n")[0]
    made, data, run, bundled = [], set(), set(), None
    for line in recipe.splitlines()[1:]:
        words = shlex.split(line.strip())
        if "--out" in words:  # a data command
            data.add(words[words.index("--out") + 1])
        elif "train" in words:
            path = words[words.index("train") + 1]
            config = load_config(repo / path)
            run.add(Path(path).name)
            folders = config.data.folders if isinstance(config.data.folders, list) else [config.data.folders]
            assert {str(f) for f in folders} <= data, f"{path} reads data no earlier line writes"
            for source in (config.init.model, config.init.vae):
                if source and str(source).startswith("runs/"):
                    assert f"{source}" in made, f"{path} starts from {source}, which no earlier stage makes"
            made.append(f"{config.output}/final")
        elif "multitalk.training.bundle" in words:
            bundled = words[words.index("multitalk.training.bundle") + 1]
    assert bundled == made[-1], "the bundle is not the last stage's result"
    recipe_files = {p.name for p in (repo / "configs" / "recipes" / "demo").glob("*.yaml")}
    assert run == recipe_files, "a demo config the recipe never runs"


def test_recipe_chain_vae_then_base_then_audio_stage_then_generate(tmp_path, data):
    """The demo recipe's hand-offs, tiny: VAE -> image->video base -> audio stage -> a video."""
    from diffusers import AutoencoderKLWan

    from multitalk.checkpoints import load_pipeline
    from multitalk.training import trainer_for
    from multitalk.training.digest import weights_digest

    def stage(name, **settings):
        trainer_for(config(tmp_path / name, data, steps=2, checkpoint_every=2, **settings), progress=False).run()
        return str(tmp_path / name / "run" / "final")

    vae = stage(
        "vae", stage="vae", init="new", vae_base_dim=4, frames=5, chroma_weight=4.0, face_weight=8.0, mouth_weight=40.0
    )
    base = stage("base", vae=vae, trainable="all", i2v_share=1.0, motion_frames=5, motion_share=1.0)
    final = stage("stage1", init=base, trainable="audio")
    pipe = load_pipeline(final)
    assert pipe.vae.config.latents_mean == load_pipeline(base).vae.config.latents_mean
    # a model goes on with a retrained VAE (`vae:` with a model folder as `init:`)
    vae2 = stage("vae2", stage="vae", init=vae, frames=5, mouth_weight=150.0)
    again = load_pipeline(stage("again", init=final, vae=vae2, trainable="audio"))
    assert weights_digest(again.vae) == weights_digest(AutoencoderKLWan.from_pretrained(vae2))
    assert weights_digest(again.vae) != weights_digest(pipe.vae)
    sample = data / "000000"
    from multitalk.media import read_audio, read_image

    out = pipe(
        read_image(sample / "frame0.png"),
        [read_audio(p) for p in sorted(sample.glob("person*.wav"))],
        "talk",
        num_frames=5,
        steps=1,
        mode="clip",
        progress=False,
    )
    assert out.frames.shape[0] == 5


def test_a_model_started_here_records_its_longest_training_clips(tmp_path, data):
    """Sampling squeezes time in clips longer than this record (models/time_rope.py); weights from elsewhere have
    none and keep Wan's positions."""
    from multitalk.random_pipeline import random_pipeline

    random_pipeline("tiny", buckets=[[64, 64]]).save_pretrained(tmp_path / "foreign")
    foreign = Trainer(config(tmp_path / "a", data, init=str(tmp_path / "foreign"), steps=1), progress=False)
    assert foreign.pipe.transformer.config.trained_frames is None
    started = Trainer(config(tmp_path / "b", data, frames=5, steps=1, checkpoint_every=1), progress=False)
    started.run()
    assert started.pipe.transformer.config.trained_frames == 5
    longer = Trainer(
        config(tmp_path / "c", data, init=str(tmp_path / "b" / "run" / "final"), frames=9, steps=1), progress=False
    )
    assert longer.pipe.transformer.config.trained_frames == 9
    assert longer.pipe.transformer.rope.trained_latent_frames == 3


def test_cache_cuts_several_clips_with_motion_conditions_and_moving_boxes(tmp_path, data):
    from multitalk.random_pipeline import random_pipeline
    from multitalk.synthetic import load_scene_record
    from multitalk.training.data import CachedClips, build_cache, encode_sample

    pipe = random_pipeline("tiny")
    folder = data / "000001"
    items = encode_sample(pipe, folder, 9, 64, clips=3, motion_frames=5)
    assert len(items) == 3  # clips start at frames 0, 8 and 16 of the 25
    image, motion = items[1]["condition"], items[1]["condition_motion"]
    assert image.shape == motion.shape == (4 + 16, 3, 8, 8)
    assert image[:4, 0].eq(1).all() and image[:4, 1:].eq(0).all()  # mask: first frame given
    assert motion[:4, :2].eq(1).all() and motion[:4, 2:].eq(0).all()  # 5 frames -> two latent frames given
    # the second clip's audio is the audio of frames 8..16, not 0..8
    assert not torch.equal(items[0]["audio"], items[1]["audio"])
    scene = load_scene_record(folder)["scene"]
    assert scene.bboxes(0) == load_scene_record(folder)["scene"].bboxes()

    cache = tmp_path / "cache"
    files = build_cache(pipe, data, cache, 9, 64, (1, 2), progress=False, clips=3, motion_frames=5)
    assert len(files) == 12 and (cache / "key.json").is_file()
    clips = CachedClips(files, cache)
    batch = clips.batch(np.random.default_rng(0), 2, motion=True)
    assert batch["condition"][:, :4, 1].eq(1).all() and batch["mouths"].shape == batch["movers"].shape == (2, 3, 8, 8)
    # the same folder with another VAE is refused, naming what differs
    other = random_pipeline("tiny", seed=1)
    with pytest.raises(Exception, match="encoded with other .*vae"):
        build_cache(other, data, cache, 9, 64, (1, 2), progress=False, clips=3, motion_frames=5)


def test_mouth_cells_mark_the_latent_cells_under_each_mouth(data):
    from multitalk.training.regions import Regions, mouth_cells

    heads = Regions.load(data / "000001").heads_at(64)
    cells = mouth_cells(heads, slice(8, 17), 64, (3, 8, 8))  # frames 8..16 -> latent frames (8), (9-12), (13-16)
    assert set(cells.unique().tolist()) == {0.0, 1.0} and cells.mean() < 0.25
    for t, frame in ((0, 8), (1, 10), (2, 16)):
        for (x, y), r in zip(heads[0][frame], heads[1]):
            assert cells[t, int(y + 0.4 * r) // 8, int(x) // 8] == 1  # the middle of each mouth box
    assert mouth_cells(None, slice(0, 9), 64, (3, 8, 8)).eq(0).all()
    with pytest.raises(ValueError, match="do not match"):
        mouth_cells(heads, slice(0, 9), 64, (3, 4, 4))


def test_mouth_and_mover_weights_scale_the_loss_on_their_cells():
    from multitalk.training import flow_matching_loss

    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 3, 8, 8, generator=generator), torch.randn(2, 4, 3, 8, 8, generator=generator)
    mouths, movers = torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)
    mouths[:, :, 2, 5] = 1
    movers[:, :, 1:, :3] = 1
    batch = {
        "latents": x0,
        "condition": torch.zeros(2, 20, 3, 8, 8),
        "text": torch.zeros(2, 1, 4),
        "audio": torch.zeros(2, 1, 9, 5, 12, 8),
        "masks": torch.ones(2, 1, 8, 8),
        "mouths": mouths,
        "movers": movers,
    }

    def zero_model(hidden_states, **_):  # predicts velocity 0: the loss is the target's mean square
        return (torch.zeros_like(hidden_states[:, :4]),)

    target = (noise - x0) ** 2
    plain = flow_matching_loss(zero_model, batch, torch.full((2,), 0.5), noise, True)
    weighted = flow_matching_loss(zero_model, batch, torch.full((2,), 0.5), noise, True, mouth_weight=9.0)
    assert torch.allclose(plain, target.mean())
    assert torch.allclose(weighted, (target * (1 + 9 * mouths[:, None])).mean())
    both = flow_matching_loss(zero_model, batch, torch.full((2,), 0.5), noise, True, mouth_weight=9.0, mover_weight=3.0)
    assert torch.allclose(both, (target * (1 + 9 * mouths[:, None] + 3 * movers[:, None])).mean())


def test_mover_cells_cover_a_walkers_path_and_nothing_else():
    from multitalk.synthetic import random_scene
    from multitalk.synthetic.dataset import scene_regions
    from multitalk.training.regions import Regions, mover_cells

    scene = random_scene(3, 2, 4.0, "para", 128, 128, action="walk")
    regions = Regions(**scene_regions(scene))
    (walk,) = scene.actions
    middle = int((walk.start + walk.end) / 2 * scene.fps)
    frames = slice(middle - 8, middle + 9)  # 17 frames inside the walk -> 5 latent frames
    cells = mover_cells(regions, frames, 64, (5, 8, 8))
    _, body, radii = regions.at_size(64)
    walker, other = body[frames, walk.person, 0], body[frames, 1 - walk.person, 0]
    assert cells.eq(cells[:1]).all()  # the whole path, in every latent frame
    columns = cells[0].amax(0)  # 8: a column holds some of the path
    assert columns[int(walker[0]) // 8] == 1 and columns[int(walker[-1]) // 8] == 1
    assert columns[int(other[0]) // 8] == 0  # the one standing (swaying a little) is no mover
    assert cells[0, 0].sum() == 0 and cells[0, -1].amax() == 1  # from above the head down to the bottom
    still = random_scene(3, 2, 4.0, "para", 128, 128, action=None)
    assert mover_cells(Regions(**scene_regions(still)), frames, 64, (5, 8, 8)).eq(0).all()
    assert mover_cells(None, frames, 64, (5, 8, 8)).eq(0).all()


def test_boxes_follow_a_walking_person():
    from multitalk.synthetic import random_scene

    scene = random_scene(3, 2, 4.0, "para", 128, 128, action="walk")
    walk = next(a for a in scene.actions if a.kind == "walk")
    end = int(walk.end * scene.fps) + 1
    before, after = scene.bboxes(0)[walk.person], scene.bboxes(end)[walk.person]
    moved = (after[1] + after[3]) / 2 - (before[1] + before[3]) / 2
    assert np.sign(moved) == np.sign(walk.dx) and abs(moved) > 5


def test_bundle_writes_a_slim_folder_that_loads_back(tmp_path):
    """The shipped form: float16 transformer, no copy of MiniLM, the model's sampling settings."""
    from safetensors import safe_open

    from multitalk.checkpoints import load_pipeline, model_sampling
    from multitalk.random_pipeline import random_pipeline
    from multitalk.training.bundle import bundle, folder_size

    pipe = random_pipeline("small", text_encoder="minilm", buckets=[[64, 64]])
    pipe.save_pretrained(tmp_path / "full")
    slim = bundle(tmp_path / "full", tmp_path / "slim", sampling={"num_frames": 9, "steps": 2})
    assert not (slim / "text_encoder").exists() and (slim / "shared.json").is_file()
    assert folder_size(slim) < 0.5 * folder_size(tmp_path / "full")
    with safe_open(str(slim / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    assert model_sampling(slim) == {"num_frames": 9, "num_inference_steps": 2}  # the old name, stored as today's
    again = load_pipeline(slim)
    assert again.transformer.dtype == torch.float32
    for (name, a), b in zip(pipe.transformer.state_dict().items(), again.transformer.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name
    assert torch.equal(again.encode_prompt(["hello"])[0], pipe.encode_prompt(["hello"])[0])
    with pytest.raises(ValueError, match="unknown sampling settings"):
        bundle(tmp_path / "full", tmp_path / "t1", sampling={"frame_rate": 9})
    random_pipeline("tiny").save_pretrained(tmp_path / "tiny")
    with pytest.raises(ValueError, match="MiniLM"):
        bundle(tmp_path / "tiny", tmp_path / "t2")


def test_clips_carry_their_samples_reference_image_latents(tmp_path, data):
    from multitalk.random_pipeline import random_pipeline
    from multitalk.training.data import CachedClips, build_cache

    pipe = random_pipeline("tiny")
    cache = tmp_path / "cache"
    files = build_cache(pipe, data, cache, 9, 64, (1, 2), progress=False, clips=3, motion_frames=5)
    clips = CachedClips(files, cache)
    first = read_first_frame(data / "000001")
    expected = pipe.vae_encode(first[None, :, None])[0].float()
    for path, item in zip(files, clips.items, strict=True):
        if path.name.startswith("000001_"):  # every clip of the sample, wherever it starts: its frame 0
            torch.testing.assert_close(item["reference"], expected, rtol=1e-4, atol=1e-4)
    assert clips.batch(np.random.default_rng(0), 2)["reference"].shape == (2, 16, 1, 8, 8)


def read_first_frame(folder):
    from multitalk.media import frames_from_uint8, read_video

    return frames_from_uint8(read_video(folder / "video.mp4")[0][:1])[:, 0]


def test_data_may_mix_several_folders_but_not_two_samples_of_one_name(tmp_path, data):
    import shutil

    from multitalk.training.data import sample_folders

    other = tmp_path / "other"
    shutil.copytree(data / sorted(p.name for p in data.iterdir() if p.is_dir())[0], other / "extra")
    mixed = sample_folders([str(data), str(other)], (1, 2))
    assert mixed[:-1] == sample_folders(data, (1, 2)) and mixed[-1] == other / "extra"
    trainer = Trainer(config(tmp_path, [data, other], steps=1), progress=False)
    assert len(trainer.clips.samples) == len(mixed) and trainer.clips.samples[-1] == "extra"
    shutil.copytree(other / "extra", other / mixed[0].name)
    with pytest.raises(MultiTalkInputError, match="rename one"):
        sample_folders([data, other], (1, 2))
    with pytest.raises(MultiTalkInputError, match="data.folders must be a folder or a list"):
        config(tmp_path, [])
    given = TrainConfig(output="x", data=DataConfig(folders=[data, other]))
    assert given.data.folders == [data, other]  # paths, as the Python API passes them


def test_the_training_reference_matches_the_config():
    """docs/training.md is generated from TrainConfig's field comments: regenerate it when a field changes."""
    from dataclasses import fields

    from multitalk.training.config import SECTIONS, TrainConfig, reference_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    assert doc == reference_markdown(), "run: python -m multitalk.training.config > docs/training.md"
    count = len(fields(TrainConfig)) - len(SECTIONS) + sum(len(fields(kind)) for kind in SECTIONS.values())
    assert doc.count("\n| `") == count


def test_the_infinitetalk_scheme_marks_frame_0_and_puts_motion_latents_in_clean(tmp_path, data, monkeypatch):
    from multitalk.checkpoints import load_pipeline
    from multitalk.training import trainer as trainer_module

    seen, predict = [], trainer_module.predict_velocity

    def spy(model, batch, sigmas, noise, use_audio, clean_frames=0):
        noisy, pred = predict(model, batch, sigmas, noise, use_audio, clean_frames)
        condition = batch["condition"]
        seen.append(
            dict(
                clean=clean_frames,
                exact=bool((noisy[:, :, :clean_frames] == batch["latents"][:, :, :clean_frames]).all()),
                noised=bool((noisy[:, :, clean_frames:] != batch["latents"][:, :, clean_frames:]).any()),
                marked=[bool(condition[:, :4, t].any()) for t in range(condition.shape[2])],  # mask channels
            )
        )
        return noisy, pred

    monkeypatch.setattr(trainer_module, "predict_velocity", spy)
    settings = dict(steps=8, motion_frames=5, motion_share=0.5, variant="infinitetalk", checkpoint_every=8)
    trainer = Trainer(config(tmp_path, data, **settings), progress=False)
    trainer.run()
    # 9-frame clips, 5 motion frames: a continuation has 2 clean latents, a first clip 1 (the reference's)
    assert {s["clean"] for s in seen} == {1, 2} and all(s["exact"] and s["noised"] for s in seen)
    assert all(s["marked"] == [True, False, False] for s in seen)  # only frame 0 marked as given, always
    saved = load_pipeline(tmp_path / "run" / "final")
    assert saved.config.variant == "infinitetalk" and saved.config.sampling["motion_frames"] == 5
    with pytest.raises(MultiTalkInputError, match="data.variant"):
        nested(output="x", data="y", variant="infinite")
