"""One queue shared by several machines (PostgreSQL): two `multitalk worker` processes take 20
jobs, none lost and none run twice; a worker killed mid-job leaves it to the other, which goes
on from its last finished clip."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from postgres_server import postgres_url


@pytest.fixture(scope="module")
def queue():
    with postgres_url() as (url, reason):
        if url is None:
            pytest.skip(reason)
        yield url


@pytest.fixture
def shared(queue, tmp_path_factory):
    """A shared jobs folder the postgres user can read too, a tiny model and one job's inputs."""
    from multitalk.app.jobs import JobStore
    from multitalk.media import write_image, write_wav
    from multitalk.random_pipeline import random_pipeline
    from multitalk.synthetic import make_sample, random_scene

    data = Path(tempfile.mkdtemp(prefix="mt-shared-"))
    inputs = tmp_path_factory.mktemp("inputs")
    sample = make_sample(random_scene(4, 2, 1.6, "add", width=64, height=64, action=None))
    write_image(inputs / "image.png", sample.video[0])
    for i, track in enumerate(sample.tracks):
        write_wav(inputs / f"person{i + 1}.wav", track)
    random_pipeline("tiny", buckets=[[64, 64]]).save_pretrained(inputs / "tiny")
    store = JobStore(data, queue=queue)
    store._execute("DELETE FROM jobs")
    yield store, inputs, sample.scene.bboxes()
    shutil.rmtree(data, ignore_errors=True)


def submit(store, inputs: Path, boxes, **settings) -> str:
    """A job as `POST /v1/jobs` queues it."""
    from multitalk.app.server import Limits, _parse_request, default_settings

    request = {"prompt": "two people talk", "bboxes": boxes, "num_frames": 9, "motion_frames": 3, **settings}
    spec = _parse_request(json.dumps(request), default_settings(), Limits())
    spec["settings"]["max_frames"] = 1000
    job_id = store.create()
    for name in ("image.png", "person1.wav", "person2.wav"):
        shutil.copy(inputs / name, store.folder(job_id) / name)
    spec.update(image="image.png", audio=["person1.wav", "person2.wav"])
    store.enqueue(job_id, spec)
    return job_id


def start_worker(queue: str, store, model: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "multitalk.cli", "worker", "--queue", queue, "--data", str(store.root)]
    command += ["--model", str(model), "--heartbeat", "0.3", "--dead-after", "2"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"}
    )


def wait_for(condition, timeout: float = 180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_two_workers_take_twenty_jobs_none_lost_none_twice(queue, shared):
    store, inputs, boxes = shared
    jobs = [submit(store, inputs, boxes, num_inference_steps=1, mode="clip", num_frames=5) for _ in range(20)]
    workers = [start_worker(queue, store, inputs / "tiny") for _ in range(2)]
    try:
        wait_for(lambda: all(store.get(j)["state"] in ("done", "failed") for j in jobs))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    rows = [store.get(j) for j in jobs]
    assert [r["state"] for r in rows] == ["done"] * 20, [r["error"] for r in rows]
    assert all(r["claims"] == 1 for r in rows)  # none run twice
    assert all((store.folder(j) / "video.mp4").is_file() for j in jobs)
    pids = {r["worker"].split(":")[1] for r in rows}
    assert pids == {str(w.pid) for w in workers}  # both took jobs


def test_a_job_whose_worker_dies_is_finished_by_the_other(queue, shared):
    store, inputs, boxes = shared
    job = submit(store, inputs, boxes, num_inference_steps=30)
    first = start_worker(queue, store, inputs / "tiny")
    second = None
    try:
        wait_for(lambda: store.get(job)["progress"].get("clip", 0) >= 2)
        second = start_worker(queue, store, inputs / "tiny")
        assert store.get(job)["worker"].split(":")[1] == str(first.pid)
        first.kill()
        first.wait()
        finished_clips = len(list((store.folder(job) / "work").glob("clip_*.npy")))
        assert finished_clips >= 1
        wait_for(lambda: store.get(job)["state"] in ("done", "failed"))
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
    row = store.get(job)
    assert row["state"] == "done", row["error"]
    assert row["claims"] == 2 and row["crashes"] == 1
    assert row["worker"].split(":")[1] == str(second.pid)
    assert (store.folder(job) / "video.mp4").is_file()
