"""Training over two processes (torchrun + accelerate, gloo on the CPU): each process draws its own
batches, one process writes, the loss falls, and a resumed run retraces the straight one."""

import json
import os
import subprocess
from pathlib import Path

import yaml

from multitalk.synthetic import write_dataset
from test_context_parallel import torchrun

HERE = Path(__file__).resolve().parent


def launch(config: Path, out: Path, resume: bool = False) -> dict:
    run = subprocess.run(
        [*torchrun(), "--standalone", "--nproc_per_node", "2", str(HERE / "multiprocess_training_worker.py")]
        + [str(config), str(out), "resume" if resume else "fresh"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ACCELERATE_USE_CPU": "true"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {rank: json.loads((out / f"{rank}.json").read_text()) for rank in (0, 1)}


def test_two_processes_draw_their_own_batches_one_writes_and_resume_retraces(tmp_path):
    write_dataset(tmp_path / "data", 6, (1, 2), 1.0, 64, progress=False)

    def config(name: str, steps: int) -> Path:
        settings = {
            "output": str(tmp_path / name),
            "data": {"folders": str(tmp_path / "data"), "people": [1, 2], "frames": 9, "size": 64},
            "init": {"model": "tiny", "trainable": "all"},
            "optim": {"lr": 1e-3, "batch_size": 2},
            "schedule": {"steps": steps, "checkpoint_every": 4, "log_every": 1},
        }
        path = tmp_path / f"{name}_{steps}.yaml"
        path.write_text(yaml.safe_dump(settings))
        return path

    (tmp_path / "straight").mkdir()
    straight = launch(config("straight", 8), tmp_path / "straight")
    main, other = straight[0], straight[1]
    assert main["drawn"] != other["drawn"]  # each process its own batches
    assert main["losses"] == other["losses"] and main["losses"][-1] < main["losses"][0]  # the mean loss, falling
    assert main["wrote"] == {"loss_curve": 2, "trainer_json": 2, "final": 1}
    assert other["wrote"] == {"loss_curve": 0, "trainer_json": 0, "final": 0}
    checkpoint = tmp_path / "straight" / "checkpoints" / "step_0000004"
    assert (checkpoint / "trainer.json").is_file() and (checkpoint / "draws_1.json").is_file()

    (tmp_path / "halves").mkdir()
    launch(config("halves", 4), tmp_path / "halves")
    resumed = launch(config("halves", 8), tmp_path / "halves", resume=True)
    assert resumed[0]["step"] == 8
    assert resumed[0]["losses"] == main["losses"]  # the whole history, the resumed half retraced exactly
