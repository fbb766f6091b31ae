"""The HTTP service: submit, poll, download, bad uploads, auth, cancel, and a SIGKILL mid-job."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from multitalk.app.background import serve_in_background
from multitalk.app.server import Limits, create_app
from multitalk.checkpoints import load_pipeline
from multitalk.media import probe, read_video, write_image, write_wav
from multitalk.random_pipeline import random_pipeline
from multitalk.synthetic import make_sample, random_scene

FAST = {"num_inference_steps": 2, "num_frames": 9, "motion_frames": 3, "mode": "streaming", "seed": 3}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    random_pipeline("tiny").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    sample = make_sample(random_scene(4, 2, 1.2, "add", width=96, height=64, action=None))
    write_image(folder / "ref.png", sample.video[0])
    for i, track in enumerate(sample.tracks):
        write_wav(folder / f"p{i + 1}.wav", track)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.txt").write_text("not a picture")
    return folder, sample.scene.bboxes()


def upload(files, request=None, image="ref.png", audio=("p1.wav", "p2.wav")):
    folder, boxes = files
    body = {"prompt": "two people talk", "bboxes": boxes, **FAST, **(request or {})}
    return {
        "files": [
            ("image", (image, (folder / image).read_bytes())),
            *[("audio", (a, (folder / a).read_bytes())) for a in audio],
        ],
        "data": {"request": json.dumps(body)},
    }


def wait(client, job_id, states=("done", "failed", "cancelled"), timeout=60, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck in {job['state']}")


@pytest.fixture()
def client(tmp_path, model_dir):
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), limits=Limits(max_file_mb=1))
    with TestClient(app) as c:
        yield c


def test_submit_poll_download(client, files, tmp_path):
    job = client.post("/v1/jobs", **upload(files)).json()
    assert job["state"] == "queued"
    done = wait(client, job["id"])
    assert done["state"] == "done", done["error"]
    assert done["progress"]["fraction"] == pytest.approx(1.0)
    video = client.get(done["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (tmp_path / "v.mp4").write_bytes(video.content)
    info = probe(tmp_path / "v.mp4")
    assert info["audio"]["codec"] == "aac" and info["video"]["frames"] == 30  # 1.2 s at 25 fps
    assert [j["id"] for j in client.get("/v1/jobs").json()] == [job["id"]]
    assert client.get("/openapi.json").json()["info"]["title"] == "multitalk"
    assert "multitalk" in client.get("/").text


def test_the_previous_release_setting_names_still_work():
    from multitalk.app.server import Limits, _parse_request, default_settings

    spec = _parse_request(
        json.dumps({"prompt": "hi", "steps": 3, "frames": 9, "mode": "clip"}), default_settings(), Limits()
    )
    assert spec["settings"]["num_inference_steps"] == 3 and spec["settings"]["num_frames"] == 9
    assert "steps" not in spec["settings"] and "frames" not in spec["settings"]


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        (dict(image="notes.txt"), 400, "not a readable image"),
        (dict(audio=("empty.wav", "p2.wav")), 400, "empty"),
        (dict(request={"bboxes": [[0, 0, 30, 40]] * 3}), 400, "3 bboxes for 2"),
        (dict(request={"colour": "blue"}), 400, "unknown fields"),
        (dict(request={"num_frames": 10}), 400, "4k+1"),
        (dict(request={"prompt": ""}), 400, "prompt: String should have at least 1 character"),
        (dict(request={"prompt": 5}), 400, "prompt: Input should be a valid string"),
        (dict(request={"num_inference_steps": 10**9}), 400, "over the limit of 1000 (--max-steps raises it)"),
        (dict(request={"num_inference_steps": 1e9}), 400, "num_inference_steps: Input should be a valid integer"),
        (dict(request={"num_frames": 100001}), 400, "the longest clip that fits is"),
        (dict(request={"steps": 2, "num_inference_steps": 2}), 400, "num_inference_steps only"),
        (dict(request={"seed": 2**70}), 400, "seed: Input should be less than or equal to 9223372036854775807"),
        (dict(request={"shift": 0}), 400, "shift: Input should be greater than 0"),
        (dict(request={"text_guidance": "nan"}), 400, "finite"),
        (dict(request={"bboxes": [["a", 1, 2, 3]] * 2}), 400, "four numbers"),
    ],
)
def test_bad_uploads_get_4xx_and_never_enter_the_queue(client, files, kwargs, status, message):
    request = kwargs.pop("request", None)
    response = client.post("/v1/jobs", **upload(files, request, **kwargs))
    assert response.status_code == status and message in response.json()["detail"]
    assert client.get("/v1/jobs").json() == []


def test_too_large_upload(tmp_path, model_dir, files):
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), limits=Limits(max_file_mb=0.01))
    with TestClient(app) as small:
        response = small.post("/v1/jobs", **upload(files))
        assert response.status_code == 413 and "larger than" in response.json()["detail"]
        assert small.get("/v1/jobs").json() == []


def test_token_guards_everything_but_health(tmp_path, model_dir, files):
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), token="s3cret")
    with TestClient(app) as guarded:
        assert guarded.get("/v1/health").status_code == 200
        assert guarded.get("/v1/jobs").status_code == 401
        assert guarded.post("/v1/jobs", **upload(files)).status_code == 401
        assert guarded.get("/").status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert guarded.get("/v1/jobs", headers=ok).status_code == 200
        assert guarded.get("/?token=s3cret").status_code == 200


def test_cancel_stops_a_running_job(client, files):
    job = client.post("/v1/jobs", **upload(files, {"num_inference_steps": 200})).json()
    wait(client, job["id"], states=("running",))
    assert client.delete(f"/v1/jobs/{job['id']}").json()["state"] in ("cancelling", "cancelled")
    assert wait(client, job["id"])["state"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}/video").status_code == 409
    assert client.delete(f"/v1/jobs/{job['id']}").json()["state"] == "deleted"  # an ended job: gone, files too
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    running = client.post("/v1/jobs", **upload(files, {"num_inference_steps": 200})).json()
    queued = client.post("/v1/jobs", **upload(files)).json()  # waits behind the running one
    wait(client, running["id"], states=("running",))
    assert client.delete(f"/v1/jobs/{queued['id']}").json()["state"] == "cancelled"
    client.delete(f"/v1/jobs/{running['id']}")
    assert wait(client, running["id"])["state"] == "cancelled"


def test_sigkill_mid_job_then_restart_finishes_the_same_video(model_dir, files, tmp_path):
    import httpx

    server, base = serve_in_background(model_dir, tmp_path / "data")
    port = base.rsplit(":", 1)[1]
    try:
        request = {"num_inference_steps": 4}
        killed = httpx.post(base + "/v1/jobs", **upload(files, request)).json()["id"]
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until at least two clips are finished, then kill hard
            progress = httpx.get(f"{base}/v1/jobs/{killed}").json()["progress"]
            if progress.get("clip", 0) >= 3:
                break
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        assert stored_state(tmp_path / "data", killed) == "running"
        assert len(list((tmp_path / "data" / "jobs" / killed / "work").glob("clip_*.npy"))) >= 2

        server, _ = serve_in_background(model_dir, tmp_path / "data", port=int(port))
        with httpx.Client(base_url=base) as http:
            fresh = http.post("/v1/jobs", **upload(files, request)).json()["id"]  # the uninterrupted twin
            for job_id in (killed, fresh):
                deadline = time.time() + 60
                while http.get(f"/v1/jobs/{job_id}").json()["state"] != "done" and time.time() < deadline:
                    time.sleep(0.05)
                (tmp_path / f"{job_id}.mp4").write_bytes(http.get(f"/v1/jobs/{job_id}/video").content)
        # the frames each video was encoded from (the jobs' finished clips) are identical
        frames = [
            np.concatenate([np.load(p) for p in sorted((tmp_path / "data" / "jobs" / j / "work").glob("clip_*"))])
            for j in (killed, fresh)
        ]
        assert np.array_equal(*frames)
        a, _ = read_video(tmp_path / f"{killed}.mp4")
        b, _ = read_video(tmp_path / f"{fresh}.mp4")
        assert a.shape == b.shape == (30, 64, 96, 3)
    finally:
        server.kill()


def stored_state(data: Path, job_id: str) -> str:
    import sqlite3

    with sqlite3.connect(data / "jobs.sqlite3") as db:
        return db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()[0]


def test_jobs_default_to_the_models_own_sampling_settings(tmp_path, model_dir, files):
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), sampling={"num_frames": 5, "steps": 1})
    with TestClient(app) as client:
        defaults = client.get("/v1/settings").json()
        assert defaults["num_frames"] == 5 and defaults["num_inference_steps"] == 1 and defaults["motion_frames"] == 25
        request = upload(files)
        request["data"]["request"] = json.dumps({"prompt": "talk", "mode": "clip"})  # no settings given
        job = client.post("/v1/jobs", **request).json()
        done = wait(client, job["id"])
        assert done["state"] == "done", done["error"]
        (tmp_path / "v.mp4").write_bytes(client.get(done["video"]).content)
        assert probe(tmp_path / "v.mp4")["video"]["frames"] == 5 and done["progress"]["steps"] == 1


def test_a_video_to_dub_goes_through_the_api(client, files, tmp_path):
    """``video`` instead of ``image``: the job runs on the video's frames (dubbing)."""
    from multitalk.media import write_video

    folder, boxes = files
    frames = np.repeat(np.asarray(Image.open(folder / "ref.png").convert("RGB"))[None], 30, axis=0)
    write_video(tmp_path / "talk.mp4", frames, 25)
    body = {"prompt": "two people talk", "bboxes": boxes, **FAST}
    upload_files = [
        ("video", ("talk.mp4", (tmp_path / "talk.mp4").read_bytes())),
        *[("audio", (a, (folder / a).read_bytes())) for a in ("p1.wav", "p2.wav")],
    ]
    job = client.post("/v1/jobs", files=upload_files, data={"request": json.dumps(body)}).json()
    done = wait(client, job["id"])
    assert done["state"] == "done", done["error"]
    both = client.post(
        "/v1/jobs",
        files=[*upload_files, ("image", ("ref.png", (folder / "ref.png").read_bytes()))],
        data={"request": json.dumps(body)},
    )
    assert both.status_code == 400 and "one of them" in both.json()["detail"]


def test_a_job_the_server_died_under_twice_is_failed_not_resumed(tmp_path):
    from multitalk.app.jobs import JobStore

    store = JobStore(tmp_path)
    job_id = store.create()
    store.enqueue(job_id, {"prompt": "p"})
    assert store.next_queued()["id"] == job_id  # running: the process dies here
    store = JobStore(tmp_path)  # first restart: resumed
    assert store.get(job_id)["state"] == "queued"
    assert store.next_queued()["id"] == job_id  # and dies again
    store = JobStore(tmp_path)
    job = store.get(job_id)
    assert job["state"] == "failed" and "2 times" in job["error"] and store.next_queued() is None
