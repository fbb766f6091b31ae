"""Context parallelism (diffusers' Ulysses) gives the single-process output, exactly: two CPU
processes over gloo, shards that start mid-frame and a reference frame split across them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def torchrun() -> list[str]:
    found = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "torch.distributed.run"]


def test_ulysses_over_two_processes_equals_one_process(tmp_path):
    out = tmp_path / "diffs.json"
    run = subprocess.run(
        [*torchrun(), "--standalone", "--nproc_per_node", "2", str(HERE / "context_parallel_worker.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    diffs = json.loads(out.read_text())
    assert len(diffs) == 8
    assert all(d == 0.0 for d in diffs.values()), diffs


def test_what_cannot_be_split_is_refused_in_one_line():
    from multitalk.models.context_parallel import check_context_parallel

    with pytest.raises(ValueError, match="40 attention heads cannot be split over --ulysses 3"):
        check_context_parallel(40, 3, 1)
    with pytest.raises(ValueError, match="log-sum-exp"):
        check_context_parallel(40, 2, 2)
    check_context_parallel(40, 4, 2, backend="_native_cudnn")


def test_generate_under_torchrun_writes_the_single_process_video(tmp_path):
    import numpy as np

    from multitalk.media import read_image, write_image, write_wav
    from multitalk.random_pipeline import random_pipeline
    from multitalk.synthetic import make_sample, random_scene

    sample = make_sample(random_scene(5, 2, 1.0, "add", width=64, height=64, action=None))
    write_image(tmp_path / "ref.png", sample.video[0])
    voices = []
    for i, track in enumerate(sample.tracks):
        write_wav(tmp_path / f"p{i}.wav", track)
        voices += ["--audio", str(tmp_path / f"p{i}.wav")]
    random_pipeline("tiny", buckets=[[64, 64]]).save_pretrained(tmp_path / "tiny")
    common = ["generate", "--model", str(tmp_path / "tiny"), "--image", str(tmp_path / "ref.png"), *voices]
    common += ["--prompt", sample.scene.prompt, "--num-frames", "9", "--motion-frames", "3"]
    common += ["--num-inference-steps", "2", "--quiet", "--device", "cpu"]
    for bbox in sample.scene.bboxes():
        common += ["--bbox", ",".join(map(str, bbox))]
    script = str(HERE / "context_parallel_generate.py")
    one = subprocess.run(
        [sys.executable, script, *common, "-o", str(tmp_path / "one.mp4"), "--save-frames", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # as torchrun starts its processes: same kernels, same sums
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [*torchrun(), "--standalone", "--nproc_per_node", "2", script, *common, "--ulysses", "2"]
        + ["-o", str(tmp_path / "two.mp4"), "--save-frames", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    frames = sorted((tmp_path / "one").glob("*.png"))
    assert len(frames) == 25 and [p.name for p in frames] == sorted(p.name for p in (tmp_path / "two").glob("*.png"))
    for path in frames:
        assert np.array_equal(read_image(path), read_image(tmp_path / "two" / path.name)), path.name
    assert two.stdout.count("wrote ") == 1 and (tmp_path / "two.mp4").is_file()  # one process writes
