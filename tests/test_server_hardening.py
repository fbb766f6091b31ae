"""The service under abuse: auth details, cross-site posts, security headers, bodies too large while they
stream, no server paths in errors, and storage errors (a full disk) that degrade instead of crashing."""

import errno
import sqlite3
import time

import pytest
from fastapi.testclient import TestClient

from multitalk.app.server import Limits, create_app
from multitalk.checkpoints import load_pipeline
from multitalk.cli import main
from multitalk.random_pipeline import random_pipeline
from test_app import files, upload, wait  # noqa: F401  (fixtures and helpers of the API tests)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    random_pipeline("tiny").save_pretrained(folder)
    return folder


def test_a_token_must_come_as_bearer_and_guards_the_api_description(tmp_path, model_dir, files):  # noqa: F811
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), token="s3cret")
    with TestClient(app) as c:
        assert c.get("/v1/jobs", headers={"Authorization": "s3cret"}).status_code == 401  # no "Bearer "
        assert c.get("/v1/jobs", headers={"Authorization": "Bearer s3cre"}).status_code == 401
        assert c.get("/v1/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/jobs?token=s3cret").status_code == 200  # GETs may carry it in the URL (media)
        assert c.post("/v1/jobs?token=s3cret", **upload(files)).status_code == 401  # but nothing that changes state
        for path in ("/docs", "/openapi.json"):
            assert c.get(path).status_code == 401
            assert c.get(path + "?token=s3cret").status_code == 200
        assert "/v1/jobs" in c.get("/openapi.json?token=s3cret").json()["paths"]


def test_without_a_token_other_sites_cannot_post(tmp_path, model_dir, files):  # noqa: F811
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir))
    with TestClient(app) as c:
        refused = c.post("/v1/jobs", **upload(files), headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403 and "cross-site" in refused.json()["detail"]
        assert c.get("/v1/jobs").json() == []
        same = c.post("/v1/jobs", **upload(files), headers={"Origin": "http://testserver"})
        assert same.status_code == 201


def test_answers_carry_security_headers(tmp_path, model_dir):
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir))
    with TestClient(app) as c:
        for path in ("/", "/v1/health", "/v1/jobs/nope"):
            headers = c.get(path).headers
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_a_body_over_the_limit_is_refused_while_it_streams(tmp_path, model_dir, files):  # noqa: F811
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), limits=Limits(max_file_mb=0.01, max_people=2))
    with TestClient(app) as c:
        declared = c.post("/v1/jobs", content=b"x" * 10, headers={"Content-Length": str(10**9)})
        assert declared.status_code == 413

        def chunks():  # a well-formed upload with no Content-Length: the server counts what arrives
            yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
            for _ in range(200):
                yield b"x" * 10_000
            yield b"\r\n--b--\r\n"

        streamed = c.post("/v1/jobs", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert streamed.status_code == 413 and "over" in streamed.json()["detail"]
        assert c.get("/v1/jobs").json() == []


def test_errors_name_files_not_server_paths_and_prompts_are_bounded(tmp_path, model_dir, files):  # noqa: F811
    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir))
    with TestClient(app) as c:
        bad = c.post("/v1/jobs", **upload(files, image="notes.txt"))
        assert bad.status_code == 400 and str(tmp_path) not in bad.json()["detail"]
        long = c.post("/v1/jobs", **upload(files, {"prompt": "talk " * 2000}))
        assert long.status_code == 400 and "4000 characters" in long.json()["detail"]


def test_a_full_disk_fails_the_job_degrades_health_and_the_worker_lives_on(tmp_path, model_dir, files, monkeypatch):  # noqa: F811
    import multitalk.app.worker as worker_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "secret" / "video.mp4"))

    app = create_app(tmp_path / "data", lambda: load_pipeline(model_dir), limits=Limits(max_file_mb=1))
    store = app.state.store
    with TestClient(app) as c:
        monkeypatch.setattr(worker_module, "write_video", full)
        first = c.post("/v1/jobs", **upload(files)).json()["id"]
        job = wait(c, first)
        assert job["state"] == "failed" and "No space left on device" in job["error"] and "secret" not in job["error"]

        finish = store.finish

        def database_full(*args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(store, "finish", database_full)
        c.post("/v1/jobs", **upload(files))
        deadline = time.time() + 60
        while c.get("/v1/health").status_code != 503 and time.time() < deadline:
            time.sleep(0.05)
        health = c.get("/v1/health")
        assert health.status_code == 503 and "disk is full" in health.json()["degraded"][0]
        assert all(w.is_alive() for w in app.state.workers)
        monkeypatch.setattr(store, "_execute", lambda *a, **k: (_ for _ in ()).throw(database_full()))
        deleted = c.delete(f"/v1/jobs/{first}")
        assert deleted.status_code == 507 and "cannot write" in deleted.json()["detail"]

        monkeypatch.undo()  # the disk has room again: the next job goes through and health recovers
        monkeypatch.setattr(store, "finish", finish)
        third = c.post("/v1/jobs", **upload(files)).json()["id"]
        assert wait(c, third)["state"] == "done"
        assert c.get("/v1/health").status_code == 200


def test_serving_beyond_loopback_needs_a_token_or_no_auth(tmp_path, model_dir, capsys):
    assert main(["serve", "--model", str(model_dir), "--data", str(tmp_path), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    assert main(["serve", "--model", str(model_dir), "--data", str(tmp_path), "--token", " "]) == 2
    assert "empty" in capsys.readouterr().err
